"""Execute every explorer notebook many times in a row the way ``cbat report`` does, and count stalls.

Usage::

    python benchmarks/bench_explorer_notebooks.py --sweep reports/default/sweep --repeat 20
    python benchmarks/bench_explorer_notebooks.py --repeat 2          # trains a tiny sweep first

The report's explorers once hung in the cell that displays their ipywidgets under nbclient
(jupyter/nbclient#312). Each execution here has the report's per-cell limit (``--cell-timeout``), so a
stall shows as a failed run with "Timeout" instead of hanging the benchmark. Prints, per notebook, the
runs, failures, stalls and the slowest/median seconds, and the load average; exits 1 on any failure.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from cbat.report import NOTEBOOK_DIR, NotebookJob, ReportParams, execute_notebook, run_sweep

EXPLORERS = ("gate_explorer", "attention_explorer")


def tiny_sweep(folder: Path) -> Path:
    """Three variants x one seed, one epoch on 240 short pairs: enough for both explorers."""
    params = ReportParams(variants=["baseline", "cbat_v1", "cbat_v2"], seeds=[0], device="cpu", workers=2,
                          sweep={"data": {"n_pairs": 240, "enhancer_len": 300, "promoter_len": 200},
                                 "settings": {"epochs": 1, "batch_size": 32, "hook_every": 2}})
    run_sweep(params, folder)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, help="sweep folder (default: train a tiny one)")
    parser.add_argument("--repeat", type=int, default=20, help="executions per notebook (default 20)")
    parser.add_argument("--cell-timeout", type=float, default=120.0, help="per-cell limit in seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cbat-explorers-") as tmp:
        sweep = args.sweep.resolve() if args.sweep else tiny_sweep(Path(tmp) / "sweep")
        parameters = {"sweep_dir": str(sweep), "n_samples": 2}
        failed = 0
        for name in EXPLORERS:
            seconds, errors = [], []
            for i in range(args.repeat):
                job = NotebookJob(f"{name}_{i}", NOTEBOOK_DIR / f"{name}.ipynb", parameters)
                result = execute_notebook(job, Path(tmp) / "out", timeout_s=args.cell_timeout)
                seconds.append(result.seconds)
                if result.status != "ok":
                    errors.append(f"run {i}: {result.error} (cell {result.cell})")
            stalls = sum("Timeout" in e for e in errors)
            failed += len(errors)
            print(f"{name}: {args.repeat} runs, {len(errors)} failed, {stalls} stalled; "
                  f"median {statistics.median(seconds):.1f} s, slowest {max(seconds):.1f} s", flush=True)
            for error in errors:
                print("   ", error)
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
