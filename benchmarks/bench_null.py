"""The null control at the quick size: the report's quick sweep with labels permuted must claim no effect.

    python benchmarks/bench_null.py --out /tmp/null-sweep --workers 2

Trains ``cbat.sweep.quick_sweep_spec()`` with ``data["permute_labels"]`` set, then prints how many runs learnt
(expected: none), every baseline comparison's verdict (expected: none "beats"/"trails"), every hypothesis'
verdict (expected: no "supported"/"not supported" that rests on an interval) and the expected-vs-found page.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import pandas as pd

from cbat.stats import compare_to_baseline
from cbat.sweep import load_results, quick_sweep_spec, run_sweep
from diagnostics import assess
from diagnostics.expected import expected_vs_found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="sweep folder (resumable)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--permutation-seed", type=int, default=7)
    args = parser.parse_args()
    spec = quick_sweep_spec()
    spec = dataclasses.replace(spec, data={**spec.data, "permute_labels": args.permutation_seed})
    started = time.perf_counter()
    run_sweep(spec, args.out, workers=args.workers)
    print(f"sweep: {time.perf_counter() - started:.0f} s")
    pd.set_option("display.width", 200, "display.max_colwidth", 80)
    results = load_results(args.out)
    print(f"learnt runs: {int(results['learnt'].sum())} of {len(results)}")
    compared = compare_to_baseline(args.out, metrics=("aupr", "auroc"))
    print(compared[["variant", "metric", "mean_diff", "ci_low", "ci_high", "verdict"]].to_string(index=False))
    assessment = assess(args.out)
    print(assessment.table[["id", "verdict", "effect", "ci_low", "ci_high", "p_adjusted"]].to_string(index=False))
    page = expected_vs_found(args.out, assessment.verdicts)
    print(page[["check", "expected", "found", "recovered"]].to_string(index=False))


if __name__ == "__main__":
    main()
