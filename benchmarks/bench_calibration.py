"""How often do the intervals claim a difference that is not there? Trains one config under many seeds, then:

- A/A: 3 seeds named "A" against 3 others named "B" (random, repeated ``--reps`` times); the share of 95 %
  intervals excluding 0, for the earlier paired bootstrap (``cbat.stats.paired_bootstrap``), the paired t
  (``cbat.stats.paired_effect``) and the two-sample t the verdicts use (``cbat.stats.runs_effect``). Nominal: 5 %.
- null design: the same runs dealt at random onto the 16 rows of the resolution III design over the 12
  factors (no factor has any effect); the share of deals where some main effect is claimed after Holm
  adjustment (``cbat.stats.fit_effects`` + ``adjust``), and the raw per-effect rate.
- ``--permute-labels``: the same with the test labels shuffled (labels independent of the predictions).

    .venv/bin/python benchmarks/bench_calibration.py --seeds 16 --pairs 600 --epochs 4 --reps 200
    # seeds that differ as much as a real placement task (test AUROC 0.52-1.00), as in the README
    .venv/bin/python benchmarks/bench_calibration.py --workers 2 --pairs 1000 --epochs 8 --d-model 32 --reps 1000

Prints a markdown table (also ``<out>/calibration.md``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cbat import ablations, stats
from cbat.sweep import SweepSpec, run_sweep
from diagnostics.io import load_sweep


def trained_runs(args) -> tuple[np.ndarray, np.ndarray]:
    """Test labels and [n_seeds, n_pairs] probabilities of one config under ``--seeds`` seeds."""
    variant = {"name": "aa", "config": "baseline", "overrides": {"d_model": args.d_model}}
    spec = SweepSpec(variants=[variant], seeds=list(range(args.seeds)), splits=["chrom"],
                     data={"task": args.task, "n_pairs": args.pairs, "seed": 0},
                     settings={"epochs": args.epochs, "batch_size": 32, "lr": 3e-3, "patience": args.epochs,
                               "hook_every": 50, "progress": False})
    run_sweep(spec, Path(args.out) / "sweep", workers=args.workers, progress=False)
    sweep = load_sweep(Path(args.out) / "sweep")
    frames = [sweep.predictions(r).set_index("pair_index").sort_index() for r in sweep.ok()["run_id"]]
    return frames[0]["label"].to_numpy(), np.stack([f["prob"].to_numpy() for f in frames])


def null_design(labels, probs, metric, reps, n_boot, seed) -> dict[str, float]:
    """Runs of one config dealt onto a resolution III design: family-wise and per-effect false claims."""
    d = ablations.design(resolution=3)
    coded = ablations.coded(d.levels)
    rng = np.random.default_rng(seed)
    any_claim, raw = 0, []
    for rep in range(reps):
        chosen = rng.permutation(probs.shape[0])[: len(coded)]
        fit = stats.fit_effects(coded, list(ablations.FACTORS), labels, probs[chosen], metric, n_boot=n_boot,
                                seed=seed + rep)
        table = fit.table()
        raw.append(float(((table["ci_low"] > 0) | (table["ci_high"] < 0)).mean()))
        any_claim += int((stats.adjust(table["p_value"]) < 0.05).any())
    return {"familywise": any_claim / reps, "per_effect_raw": float(np.mean(raw))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/bench_calibration")
    parser.add_argument("--task", default="long_range", help="a synthetic task whose AUROC varies with the seed")
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=16, help="runs of the one config (>= 16 for the design)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--permute-labels", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    labels, probs = trained_runs(args)
    if args.permute_labels:
        labels = np.random.default_rng(0).permutation(labels)
    aurocs = stats.run_scores(labels, probs, "auroc")
    rows = []
    for metric in ("aupr", "auroc"):
        for method in ("paired_bootstrap", "paired_effect", "runs_effect"):
            result = stats.false_claim_rate(labels, probs, n_reps=args.reps, metric=metric, method=method,
                                            n_boot=args.n_boot)
            rows.append({"check": "A/A (3 vs 3 seeds)", "method": method, "metric": metric,
                         "false claims": f"{result['rate']:.1%}", "reps": args.reps})
        if probs.shape[0] >= 16:
            result = null_design(labels, probs, metric, max(args.reps // 4, 5), args.n_boot, seed=1)
            rows.append({"check": "null design (16 runs, 12 factors)", "method": "fit_effects + Holm",
                         "metric": metric, "false claims": f"{result['familywise']:.1%} any factor "
                                                           f"({result['per_effect_raw']:.1%} per effect, raw)",
                         "reps": max(args.reps // 4, 5)})
    frame = pd.DataFrame(rows)
    markdown = frame.to_string(index=False)
    print(markdown)
    print(f"\n{probs.shape[0]} runs, test AUROC {aurocs.min():.2f}-{aurocs.max():.2f}, {probs.shape[1]} test pairs"
          f"{', labels permuted' if args.permute_labels else ''}; wall time {time.perf_counter() - started:.0f} s")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "calibration.md").write_text(markdown + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
