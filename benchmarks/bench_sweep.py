"""Time the default quick sweep (four presets x 3 seeds on ``grammar``, 600/400 bp) and the --workers speed-up.

Usage::

    python benchmarks/bench_sweep.py                    # workers 2 and 1, full quick sweep
    python benchmarks/bench_sweep.py --workers 2        # only one setting
    python benchmarks/bench_sweep.py --seeds 0          # a smaller sample (4 runs) to extrapolate from

Prints wall time, per-run time (mean and per variant), training CPU seconds (with one thread per worker,
CPU seconds / workers estimates the wall time on an idle machine), the speed-up of the second workers value
over the first, and the load average so numbers from a busy machine can be recognised as such.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import pandas as pd

from cbat.sweep import quick_sweep_spec, read_records, run_sweep


def bench(workers: int, seeds: list[int]) -> dict:
    spec = quick_sweep_spec(seeds=seeds)
    with tempfile.TemporaryDirectory(prefix="cbat-bench-") as out:
        started = time.perf_counter()
        results = run_sweep(spec, out, workers=workers, progress=False)
        wall = time.perf_counter() - started
        records = read_records(out)
    per_run = pd.DataFrame([{"variant": r["variant"], "run_s": r["timings"].get("total_s"),
                             "cpu_s": r["timings"].get("cpu_s"), "epochs": len(r["history"]),
                             "aupr": (r["metrics"].get("test") or {}).get("pooled", {}).get("aupr")}
                            for r in records])
    return {"workers": workers, "runs": len(results), "failed": int((results.status != "ok").sum()),
            "wall_s": wall, "mean_run_s": float(per_run.run_s.mean()), "cpu_s": float(per_run.cpu_s.sum()),
            "per_variant": per_run.groupby("variant").mean()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--seeds", type=int, nargs="+", default=quick_sweep_spec().seeds)
    args = parser.parse_args()
    print(f"cores={os.cpu_count()} load_average={os.getloadavg()} spec settings={quick_sweep_spec().settings} "
          f"data={quick_sweep_spec().data}")
    quick_sweep_spec(seeds=args.seeds)  # validate before timing
    outcomes = []
    for workers in args.workers:
        outcome = bench(workers, args.seeds)
        outcomes.append(outcome)
        # With one torch thread per worker, CPU seconds / workers is the wall time an idle machine would need.
        print(f"workers={workers}: {outcome['runs']} runs ({outcome['failed']} failed) in {outcome['wall_s']:.1f} s "
              f"wall, {outcome['mean_run_s']:.1f} s per run; training CPU {outcome['cpu_s']:.1f} s "
              f"(idle-machine estimate {outcome['cpu_s'] / workers:.1f} s wall); load_average={os.getloadavg()}")
        print(outcome["per_variant"].to_string(float_format=lambda v: f"{v:.3f}"))
    if len(outcomes) == 2:
        print(f"speed-up workers={outcomes[0]['workers']} vs {outcomes[1]['workers']}: "
              f"{outcomes[1]['wall_s'] / outcomes[0]['wall_s']:.2f}x")


if __name__ == "__main__":
    main()
