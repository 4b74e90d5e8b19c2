#!/usr/bin/env bash
# GPU check for a session lent the device machine (issue 16), in two parts that each fit one device call
# (at most 600 s a command): part 1, about 8 minutes on one H100/H200, the figures the issue names; part 2, about
# 6 minutes, the rest.
# The machine has PyTorch but no network; carry the missing pure-Python wheels first, here:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl entmax==1.3 \
#       captum==0.9.0 plotly==7.1.0 pyDOE3==1.6.2   # what the benchmarks import that the image lacks
# then run through the device tool with carry [".whl"]:
#   bash benchmarks/gpu_check.sh 1      # then, budget permitting:  bash benchmarks/gpu_check.sh 2
# It writes gpu_check_<part>.txt and bench_*.jsonl into $OUT (or ./gpu_check_out without the device tool). Each
# step has its own time limit and a failed step does not stop the next; output is unbuffered, so a step cut off at
# its limit still leaves what it printed.
set -uo pipefail
part="${1:-1}"
out="${OUT:-gpu_check_out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
paper=(--device cuda --bf16 --lengths paper)
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
  case "$part" in
  1)
    # The two presets the issue names at 3000/2000 bp under bf16 (batch 128): FLOPs/pair, pairs/s, fraction of the
    # bf16 matmul rate, summary/off and off/bare (medians over interleaved rounds), peak memory, then one epoch
    # over a TargetFinder-sized cell line (44,000 pairs).
    timeout 200 python3 benchmarks/bench_model.py "${paper[@]}" --presets baseline cbat_v2 --rounds 5 --steps 5 \
      --timeout 80 --out "$out/bench_paper.jsonl" --epoch-pairs 44000
    echo "exit $?"
    # The trainer itself (cbat.train: batches, NaN/inf checks, recorded hook steps), one epoch of 12,800 pairs.
    timeout 120 python3 benchmarks/bench_trainer.py --device cuda --presets baseline cbat_v2 --batch 128 512 \
      --rounds 2 --out "$out/bench_trainer.jsonl"
    echo "exit $?"
    # Host- or GPU-bound: wall time against the time kernels keep the GPU busy, and kernel launches per step.
    for batch in 128 512; do
      timeout 60 python3 benchmarks/bench_model.py --device cuda --bf16 --presets baseline cbat_v2 --profile \
        --batch 32 "$batch"
      echo "exit $?"
    done
    ;;
  2)
    # CUDA graphs (torch.compile mode reduce-overhead): at batch 128 both presets wait on the host's kernel
    # launches (the profile: GPU busy 3.6 of 11 ms a baseline step, 23 of 55-75 ms a cbat_v2 step).
    timeout 200 python3 benchmarks/bench_model.py "${paper[@]}" --presets baseline cbat_v2 --rounds 3 --steps 5 \
      --warmup 3 --compile --compile-mode reduce-overhead --timeout 95 --out "$out/bench_graphs.jsonl"
    echo "exit $?"
    # The other presets, fewer rounds.
    timeout 120 python3 benchmarks/bench_model.py "${paper[@]}" --presets no_cross cbat_v1 cbat_v3 --rounds 3 \
      --steps 3 --timeout 38 --out "$out/bench_others.jsonl"
    echo "exit $?"
    # Integrated Gradients seconds per loop (10 shuffled references, converged steps) at both lengths.
    timeout 120 python3 benchmarks/bench_attribution.py --part cost --device cuda --loops 4 \
      --batch cpu_default:400,paper:200
    echo "exit $?"
    ;;
  *) echo "gpu_check.sh: part is '$part'; expected 1 or 2" >&2; exit 2 ;;
  esac
} 2>&1 | tee "$out/gpu_check_$part.txt"
