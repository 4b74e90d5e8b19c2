"""Designed effects on the planted causes: does a fractional design find the window's cost on long_range
positives and the sparsity's on diffuse ones, and claim nothing on permuted labels?

    .venv/bin/python benchmarks/bench_design_probes.py --out /tmp/design-probes --workers 2 [--permuted]
    .venv/bin/python benchmarks/bench_design_probes.py --out /tmp/design-long-range --task long_range

Trains ``cbat sweep --design fractional --resolution 4`` (32 rows over the 12 factors of
``cbat.ablations.FACTORS``, one seed each) on the report's ``mixture`` benchmark (or the single-cause probe
``--task``) with the quick training settings (``cbat.sweep.QUICK_DATA``, ``QUICK_SETTINGS``) at ``--d-model``, then
prints every main effect per planted cause
(``diagnostics.effects``) with Holm-adjusted p values over the 12 main effects of each cause, and the rows for
window x long_range and sparsity x diffuse. ``--permuted`` permutes the labels (the null control): no effect
should survive the adjustment.
"""
from __future__ import annotations

import argparse
import time

import pandas as pd

from cbat import stats
from cbat.sweep import QUICK_DATA, QUICK_SETTINGS, SweepSpec, quick_data, run_sweep
from diagnostics import design

PLANTED = {("window", "long_range"): "lower", ("sparsity", "diffuse"): "lower"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="sweep folder (resumable)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=4, choices=(3, 4))
    parser.add_argument("--permuted", action="store_true", help="permute the labels (null control)")
    parser.add_argument("--task", default=QUICK_DATA["task"], choices=["mixture", "long_range", "diffuse"],
                        help="the data: the report's mixture (default) or one planted cause's probe")
    parser.add_argument("--n-boot", type=int, default=300)
    args = parser.parse_args()
    data = {**quick_data(args.task), **({"permute_labels": 7} if args.permuted else {})}
    spec = SweepSpec(variants=[], seeds=[0], data=data, settings={**QUICK_SETTINGS, "progress": False},
                     design={"kind": "fractional", "resolution": args.resolution,
                             "overrides": {"d_model": args.d_model}})
    started = time.perf_counter()
    run_sweep(spec, args.out, workers=args.workers)
    print(f"{len(spec.runs())} runs, sweep {time.perf_counter() - started:.0f} s")
    table = design.effects(args.out, metric="aupr", causes=True, n_boot=args.n_boot)
    main_effects = table[table["kind"] == "main"].copy()
    main_effects["p_holm"] = main_effects.groupby("cause")["p_value"].transform(
        lambda p: pd.Series(stats.adjust(p.tolist(), "holm"), index=p.index))
    pd.set_option("display.width", 200)
    columns = ["factor", "cause", "effect", "ci_low", "ci_high", "n_runs", "p_value", "p_holm", "claim"]
    print(main_effects[columns].round(4).to_string(index=False))
    below = main_effects["p_holm"] < 0.05
    claimed = below & main_effects["claim"].isin(["higher", "lower"])  # not "not learnt": some run learnt
    left_out = main_effects["note"].str.extract(r"fitted without (\d+) run")[0].dropna()
    print(f"effects below 0.05 after Holm (per cause, 12 factors): {int(below.sum())}; of them claimed "
          f"(fitted on the runs that learnt; {left_out.iloc[0] if len(left_out) else 0} left out): "
          f"{int(claimed.sum())}")
    for (factor, cause), sign in PLANTED.items():
        row = main_effects[(main_effects["factor"] == factor) & (main_effects["cause"] == cause)]
        if not row.empty:
            r = row.iloc[0]
            print(f"planted {factor} on {cause} (expected {sign}): {r.effect:+.3f} "
                  f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}], Holm p {r.p_holm:.3g}, {r.claim}")


if __name__ == "__main__":
    main()
