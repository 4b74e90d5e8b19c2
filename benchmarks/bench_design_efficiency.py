"""Designed ablation vs leave-one-out: runs and interval widths of the 12 main effects, same task and budget.

    .venv/bin/python benchmarks/bench_design_efficiency.py --workers 2

Trains, with the same data, size and training settings,
(a) a fractional design over the 12 factors of ``cbat.ablations.FACTORS`` (``--resolution`` 4: 32 rows, 3: 16
    rows; one seed each; ``cbat sweep --design fractional --resolution 4``), and
(b) cbat_v2 and its 12 leave-one-out variants (``cbat_v2-<factor>``) under ``--seeds`` seeds each,
then prints per factor the designed main effect (``diagnostics.effects``: high - low, fitted over all designed
runs) beside the leave-one-out effect (``diagnostics.ablation.effect``: cbat_v2 - cbat_v2-<factor>) with the
width of each 95 % interval, and the run count of each approach. Both intervals hold run-to-run variance and a
test-pair bootstrap (``cbat.stats.fit_effects``). The two estimate different things where factors interact
(a main effect averages over the other factors; leave-one-out measures the switch inside cbat_v2), which the
table's signs show. Writes ``<out>/design_efficiency.md``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from cbat import ablations
from cbat.sweep import SweepSpec, run_sweep
from diagnostics import design
from diagnostics.ablation import effect


def settings(args) -> dict:
    return {"epochs": args.epochs, "batch_size": 32, "lr": 3e-3, "lr_warmup_steps": 20, "patience": args.epochs,
            "warmup_epochs": args.epochs, "hook_every": 50, "progress": False}


def data(args) -> dict:
    return {"task": args.task, "n_pairs": args.pairs, "seed": 0, "enhancer_len": args.enhancer_len,
            "promoter_len": args.promoter_len}


def designed(args, out: Path) -> tuple[pd.DataFrame, int, float]:
    spec = SweepSpec(variants=[], seeds=[0], data=data(args), settings=settings(args),
                     design={"kind": "fractional", "resolution": args.resolution,
                             "overrides": {"d_model": args.d_model}})
    started = time.perf_counter()
    run_sweep(spec, out, workers=args.workers, progress=False)
    seconds = time.perf_counter() - started
    table = design.effects(out, metric=args.metric, causes=False, n_boot=args.n_boot)
    return table[table["kind"] == "main"].set_index("factor"), len(spec.runs()), seconds


def leave_one_out(args, out: Path) -> tuple[pd.DataFrame, int, float]:
    full = ablations.preset(ablations.FULL)
    variants = [ablations.Variant(ablations.FULL, full, ablations.FULL, ())] + ablations.leave_one_out()
    entries = [{"name": v.name, "config": "baseline",
                "overrides": {**{k: val for k, val in v.config.to_dict().items() if k != "name"},
                              "d_model": args.d_model}} for v in variants]
    spec = SweepSpec(variants=entries, seeds=list(range(args.seeds)), data=data(args), settings=settings(args))
    started = time.perf_counter()
    run_sweep(spec, out, workers=args.workers, progress=False)
    seconds = time.perf_counter() - started
    rows = {}
    for factor in ablations.FACTORS:
        e = effect(out, ablations.FULL, f"{ablations.FULL}-{factor}", args.metric, n_boot=args.n_boot)
        rows[factor] = {"effect": e.mean_diff, "ci_low": e.ci_low, "ci_high": e.ci_high} if e else {}
    return pd.DataFrame.from_dict(rows, orient="index"), len(spec.runs()), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports/bench_design_efficiency")
    parser.add_argument("--task", default="sparse_strong")
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--enhancer-len", type=int, default=300)
    parser.add_argument("--promoter-len", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=4, choices=[3, 4])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per leave-one-out variant")
    parser.add_argument("--metric", default="aupr")
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    out = Path(args.out)
    main_effects, design_runs, design_s = designed(args, out / f"design_res{args.resolution}")
    loo, loo_runs, loo_s = leave_one_out(args, out / "leave_one_out")
    rows = []
    for factor in ablations.FACTORS:
        d, l = main_effects.loc[factor], loo.loc[factor] if factor in loo.index else pd.Series(dtype=float)
        rows.append({"factor": factor, "designed": d["effect"], "designed width": d["ci_high"] - d["ci_low"],
                     "leave-one-out": l.get("effect"), "leave-one-out width": l.get("ci_high", float("nan"))
                     - l.get("ci_low", float("nan"))})
    table = pd.DataFrame(rows)
    ratio = (table["designed width"] / table["leave-one-out width"]).median()
    numeral = "IV" if args.resolution == 4 else "III"
    size = (f"{args.task}, {args.pairs} pairs, {args.enhancer_len}/{args.promoter_len} bp, {args.epochs} epochs, "
            f"d_model {args.d_model}, Δ{args.metric}")
    lines = [f"# Designed (resolution {numeral}) vs leave-one-out x {args.seeds} seeds ({size})", "",
             f"runs: designed {design_runs} ({design_s:.0f} s), leave-one-out {loo_runs} ({loo_s:.0f} s); median "
             f"width ratio designed/leave-one-out {ratio:.2f}", "", table.to_string(index=False, float_format="%+.3f")]
    text = "\n".join(lines)
    print(text)
    (out / f"design_efficiency_res{args.resolution}.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
