"""Which variants learnt, and which kind of positive each one misses: the report's first page.

``run_settings`` says what was trained (``describe_settings`` in one sentence); ``learnt_status`` reads the "did it
learn" guard of every run (``cbat.metrics.learnt``) per variant; ``cause_table`` lays out test AUROC per variant and
planted cause (a cause's positives against its matched negatives, ``cbat.metrics.evaluate``), with the spread over
seeds; ``cause_figure`` draws it.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from cbat.data.tasks import NO_CAUSE
from cbat.sweep import cause_table as cause_rows
from cbat.train import TrainSettings
from diagnostics.figures import mark_not_learnt, styled
from diagnostics.io import Sweep, load_sweep

STATUS_COLUMNS = ["variant", "runs", "learnt", "status", "median_auroc", "min_auroc", "max_auroc", "reasons"]
CAUSE_COLUMNS = ["variant", "cause", "median_auroc", "min_auroc", "max_auroc", "median_aupr", "n_runs",
                 "n_learnt", "n_pos"]


def run_settings(sweep: str | Sweep) -> dict:
    """What this sweep trained: its data spec, split, seeds, variants and training settings (from ``sweep.json``),
    so a reader knows the sizes every figure of the report was measured with."""
    spec = load_sweep(sweep).spec.get("spec", {})
    names = [v if isinstance(v, str) else v["name"] for v in spec.get("variants", [])]
    # what a variant ran differently from the rest: its own training settings and seeds
    own = {v["name"]: {**({"seeds": v["seeds"]} if "seeds" in v else {}), **(v.get("settings") or {})}
           for v in spec.get("variants", []) if isinstance(v, dict) and (v.get("settings") or "seeds" in v)}
    return {"data": spec.get("data"), "splits": spec.get("splits"), "seeds": spec.get("seeds"), "variants": names,
            "design": spec.get("design"), "settings": spec.get("settings"), "variant_settings": own}


def describe_settings(settings: dict) -> str:
    """``run_settings`` as one sentence for the report's first page: data, split, variants and seeds, then the
    training budget (settings the sweep left out read as ``TrainSettings``' defaults)."""
    data = settings.get("data") or {}
    if "task" in data:
        what = f"{data['task']} benchmark, {data.get('n_pairs', '?'):,} pairs (data seed {data.get('seed', 0)})"
    else:
        what = f"data {data.get('path', '?')}"
    if "permute_labels" in data:
        what += ", labels permuted (a null control)"
    seeds = ", ".join(str(s) for s in settings.get("seeds") or [])
    design = settings.get("design")
    runs = f"{len(settings.get('variants') or [])} variants x seeds {seeds}" + (
        f" and a {design.get('kind', 'designed')} design" if design else "")
    train = TrainSettings.from_dict(settings.get("settings") or {}, "sweep settings")
    warmup = f" ({train.lr_warmup_steps}-step warm-up)" if train.lr_warmup_steps else ""

    def listed(value) -> str:
        return ", ".join(map(str, value)) if isinstance(value, list) else str(value)

    own = "".join(f"; {name} with " + ", ".join(f"{key} {listed(value)}" for key, value in values.items())
                  for name, values in (settings.get("variant_settings") or {}).items())
    stopping = (f"early stopping after epoch {train.warmup_epochs} with patience {train.patience} (validation AUPR "
                f"gain below {train.min_delta:g} counts as none)" if train.epochs > train.warmup_epochs else
                f"no early stopping (it waits {train.warmup_epochs} epochs)")
    epochs = f"{train.epochs} epoch{'s' if train.epochs != 1 else ''}"
    return (f"{what}, split {', '.join(settings.get('splits') or [])}; {runs}; up to {epochs}, batch "
            f"{train.batch_size}, AdamW lr {train.lr:g}{warmup}; {stopping}{own}")


def learnt_status(sweep: str | Sweep) -> pd.DataFrame:
    """One row per variant: how many of its runs learnt, the test AUROC over seeds, why the others did not.

    ``status`` is "learnt" (every run), "not learnt" (none) or "partly learnt (k of n)"; comparisons that rest
    on a run that did not learn are refused downstream, so this table says which rows of the report count.
    """
    sweep = load_sweep(sweep)
    rows = []
    for variant in sweep.variants():
        group = sweep.runs[sweep.runs["variant"] == variant]
        if group.empty:
            continue
        learnt = int(group["learnt"].sum())
        status = ("learnt" if learnt == len(group) else "not learnt" if learnt == 0
                  else f"partly learnt ({learnt} of {len(group)})")
        reasons = sorted({f"{r.run_id}: {r.learnt_reason}" for r in group.itertuples() if not r.learnt})
        rows.append([variant, len(group), learnt, status, group["auroc"].median(), group["auroc"].min(),
                     group["auroc"].max(), "; ".join(reasons)])
    return pd.DataFrame(rows, columns=STATUS_COLUMNS)


def cause_table(sweep: str | Sweep) -> pd.DataFrame:
    """Test AUROC/AUPR per variant and planted cause over the variant's runs (median and range).

    Empty when the data carry no causes (user data). Easy negatives (cause ``none``) have no positives to rank
    and are left out.
    """
    sweep = load_sweep(sweep)
    rows = cause_rows(list(sweep.records.values()))
    rows = rows[rows["cause"] != NO_CAUSE]
    if rows.empty:
        return pd.DataFrame(columns=CAUSE_COLUMNS)
    learnt = sweep.runs.set_index("run_id")["learnt"]
    rows = rows.assign(learnt=rows["run_id"].map(learnt).fillna(False).astype(bool))
    order = {variant: i for i, variant in enumerate(sweep.variants())}
    table = (rows.groupby(["variant", "cause"])
             .agg(median_auroc=("auroc", "median"), min_auroc=("auroc", "min"), max_auroc=("auroc", "max"),
                  median_aupr=("aupr", "median"), n_runs=("run_id", "size"), n_learnt=("learnt", "sum"),
                  n_pos=("n_pos", "median"))
             .reset_index())
    table = table.sort_values(["variant", "cause"], key=lambda c: c.map(order) if c.name == "variant" else c)
    return table[CAUSE_COLUMNS].reset_index(drop=True)


def cause_figure(table: pd.DataFrame) -> go.Figure:
    """Heat map of median test AUROC, variant x cause; each cell also shows the range over seeds."""
    if table.empty:
        return styled(go.Figure(), "No planted causes in these data (per-cause metrics need the benchmark)")
    variants = list(dict.fromkeys(table["variant"]))
    causes = sorted(table["cause"].unique())
    grid = table.pivot(index="variant", columns="cause", values="median_auroc").reindex(index=variants,
                                                                                        columns=causes)
    text = table.assign(label=[f"{m:.2f}<br>[{lo:.2f}, {hi:.2f}]" for m, lo, hi in
                               zip(table["median_auroc"], table["min_auroc"], table["max_auroc"])])
    labels = text.pivot(index="variant", columns="cause", values="label").reindex(index=variants, columns=causes)
    none_learnt = table.groupby("variant")["n_learnt"].sum().reindex(variants).eq(0).tolist()
    fig = go.Figure(go.Heatmap(z=grid.to_numpy(dtype=float), x=causes, y=mark_not_learnt(variants, none_learnt),
                               zmin=0.5, zmax=1.0,
                               colorscale="Viridis", text=labels.fillna("").to_numpy(), texttemplate="%{text}",
                               colorbar_title="AUROC", hovertemplate="%{y} on %{x}: %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=max(300, 40 * len(variants) + 120))
    return styled(fig, "Test AUROC per planted cause: median over seeds [min, max]; 0.5 = chance",
                  "cause (its positives vs its matched negatives)", "variant")
