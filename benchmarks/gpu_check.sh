#!/usr/bin/env bash
# GPU check for a session lent the device machine (issue 8). Under 5 minutes on one H100/H200.
# The machine has PyTorch but no network; carry the missing pure-Python wheels first, here:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl entmax==1.3   # the only package cbat needs that the image lacks
# then run through the device tool with carry [".whl"]:
#   bash benchmarks/gpu_check.sh
# It writes gpu_check.txt and bench_paper.jsonl into $OUT (or ./gpu_check_out without the device tool).
set -euo pipefail
out="${OUT:-gpu_check_out}"
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  # Every preset at 3000/2000 bp under bf16: FLOPs/pair, pairs/s, fraction of the bf16 matmul rate,
  # summary/off and off/bare (medians over interleaved rounds), peak memory, then one epoch over a
  # TargetFinder-sized cell line (44,000 pairs) for the baseline and cbat_v2.
  timeout 240 python3 benchmarks/bench_model.py --device cuda --bf16 --lengths paper --rounds 5 --steps 5 \
    --timeout 100 --out "$out/bench_paper.jsonl" --epoch-pairs 44000
  # compiled vs eager for the two presets the issue names (compilation takes about a minute each)
  timeout 200 python3 benchmarks/bench_model.py --device cuda --bf16 --lengths paper --presets baseline cbat_v2 \
    --rounds 3 --steps 5 --compile --timeout 95
} 2>&1 | tee "$out/gpu_check.txt"
