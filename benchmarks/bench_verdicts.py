"""Do the verdicts find the planted cause? Trains small sweeps on the synthetic probe tasks and prints, per
check, the verdict ``diagnostics.assess`` returns next to the one the planted cause calls for.

    .venv/bin/python benchmarks/bench_verdicts.py --pairs 1000 --epochs 8 --seeds 0 1 2 --workers 2

Checks (variant twins differ in one mechanism only):
- long_range: a sliding window of ``--window`` tokens vs global attention -> H1 "supported";
- diffuse: hard top-1 vs dense softmax -> H2 and V1a "supported";
- sparse_strong (cause absent for H2): hard top-8 vs dense -> H2 not "supported" (top-1 cannot learn at all,
  which is V1a's cut gradient, not H2's lost diffuse signal);
- sparse_strong: the adaptive sparsity loss at weight 50 (far too high) vs none -> H6 "supported".
Prints a markdown table (also written to ``<out>/verdicts.md``) and the wall time.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from cbat.sweep import SweepSpec, run_sweep
from diagnostics.verdicts import assess


def variant(name: str, **overrides) -> dict:
    return {"name": name, "config": "baseline", "overrides": overrides}


def checks(args) -> list[dict]:
    """The planted-cause checks: task, variants, and the verdict each hypothesis should get."""
    size = {"d_model": args.d_model}
    dense, topk = variant("dense", **size), variant("topk1", sparsity="hard_topk", topk=1, **size)
    return [
        {"name": "long_range", "task": "long_range",
         "variants": [variant("global", **size), variant("window", window_size=args.window, **size)],
         "expect": {"H1": "supported"}},
        {"name": "diffuse", "task": "diffuse", "variants": [dense, topk],
         "expect": {"H2": "supported", "V1a": "supported"}},
        {"name": "sparse_strong", "task": "sparse_strong",
         "variants": [dense, variant("topk8", sparsity="hard_topk", topk=8, **size)],
         "expect": {"H2": "not supported or inconclusive"}},
        {"name": "aux_heavy", "task": "sparse_strong",
         "variants": [dense, variant("aux_heavy", sparsity_loss_weight=50.0, sparsity_target=0.05, **size)],
         "expect": {"H6": "supported"}},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/bench_verdicts")
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--enhancer-len", type=int, default=600)
    parser.add_argument("--promoter-len", type=int, default=600)
    parser.add_argument("--cell-lines", nargs="+", default=None, help="default: every cell line")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--window", type=int, default=16, help="window of the long_range check, in tokens")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--n-boot", type=int, default=300)
    parser.add_argument("--checks", nargs="+", default=None, help="run only these checks (by name)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = []
    for check in checks(args):
        if args.checks and check["name"] not in args.checks:
            continue
        data = {"task": check["task"], "n_pairs": args.pairs, "seed": 0, "enhancer_len": args.enhancer_len,
                "promoter_len": args.promoter_len}
        if args.cell_lines:
            data["cell_lines"] = args.cell_lines
        settings = {"epochs": args.epochs, "batch_size": 32, "lr": 3e-3, "patience": args.epochs, "hook_every": 10,
                    "progress": False}
        spec = SweepSpec(variants=check["variants"], seeds=args.seeds, splits=["chrom"], data=data, settings=settings)
        sweep_dir = Path(args.out) / check["name"]
        tick = time.perf_counter()
        results = run_sweep(spec, sweep_dir, workers=args.workers)
        train_s = time.perf_counter() - tick
        table = assess(sweep_dir, hypotheses=list(check["expect"]), n_boot=args.n_boot).table
        for row in table.itertuples():
            expected = check["expect"][row.id]
            ok = row.verdict in expected.split(" or ") if " or " in expected else row.verdict == expected
            rows.append({"check": check["name"], "task": check["task"], "id": row.id, "expected": expected, "verdict": row.verdict,
                         "found": "yes" if ok else "NO", "evidence": row.evidence})
        means = results.groupby("variant")[["aupr", "auroc"]].mean().round(3).to_dict("index")
        print(f"{check['name']}: {len(results)} runs in {train_s:.0f} s; mean test AUPR/AUROC {means}",
              file=sys.stderr, flush=True)
    frame = pd.DataFrame(rows)
    markdown = frame.to_markdown(index=False) if _has_tabulate() else frame.to_string(index=False)
    print(markdown)
    print(f"\nwall time {time.perf_counter() - started:.0f} s ({args.pairs} pairs, {args.enhancer_len}/"
          f"{args.promoter_len} bp, {args.epochs} epochs, seeds {args.seeds}, d_model {args.d_model})")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "verdicts.md").write_text(markdown + "\n")
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401 - pandas.to_markdown needs it
        return True
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
