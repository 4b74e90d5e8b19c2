"""Loss-balance diagnostics (hypothesis H6): each component's share of the total and gradient conflict.

The trainer (``cbat.train``) logs rows of kind "loss" named ``loss.<component>``, the component (bce, immax,
speculation, sparsity, total) in ``site``, on
sampled steps with statistic ``value`` (the raw term), ``weighted`` (weight x term, as it enters the total),
``grad_cosine`` (cosine between that auxiliary term's gradient and the BCE gradient on shared parameters;
< 0 means they pull apart) and ``grad_norm`` (of the weighted term).
"""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from diagnostics.figures import require_columns, run_keys, styled

MAIN = "bce"
TOTAL = "total"


def loss_components(trace: pd.DataFrame) -> pd.DataFrame:
    """Wide per-step loss rows: run keys, component, step, then value / weighted / grad_cosine / grad_norm.

    ``weighted`` falls back to ``value`` where a trace has no weighted statistic (unweighted terms).
    """
    require_columns(trace, ["name", "kind", "site", "statistic", "step", "value"], "loss_components")
    rows = trace[trace["kind"] == "loss"].copy()
    rows["component"] = rows["site"]
    index = run_keys(rows) + ["component", "step"]
    wide = rows.pivot_table(index=index, columns="statistic", values="value").reset_index().rename_axis(None, axis=1)
    for column in ("value", "weighted", "grad_cosine", "grad_norm"):
        if column not in wide.columns:
            wide[column] = float("nan")
    wide["weighted"] = wide["weighted"].fillna(wide["value"])
    return wide


def _with_share(wide: pd.DataFrame) -> pd.DataFrame:
    parts = wide[wide["component"] != TOTAL].copy()
    parts["abs_weighted"] = parts["weighted"].abs()
    parts["share"] = parts["abs_weighted"] / parts.groupby(run_keys(parts) + ["step"])["abs_weighted"].transform("sum")
    return parts


def shares(trace: pd.DataFrame, early: float = 0.25) -> pd.DataFrame:
    """Per run and component: mean share of the objective over training and over its first ``early``
    share of sampled steps, mean raw and weighted value, mean gradient cosine with the main loss and the
    fraction of sampled steps where that cosine is negative.

    The share at a step is |weighted| / sum of |weighted| over components (``total`` left out), so a
    component that dominates the objective has share near 1 whatever the sign conventions of the terms.
    ``early_share`` matters because an auxiliary term that takes over early is often driven to ~0 later:
    it has shaped the model by then (e.g. the sparsity loss sharpening attention) and its overall mean hides it.
    """
    parts = _with_share(loss_components(trace))
    keys = run_keys(parts)
    parts["conflict"] = (parts["grad_cosine"] < 0).where(parts["grad_cosine"].notna())
    first, last = (parts.groupby(keys)["step"].transform(f) if keys else parts["step"].agg(f) for f in ("min", "max"))
    parts["early_part"] = parts["share"].where(parts["step"] <= first + early * (last - first))
    return (parts.groupby(keys + ["component"])
            .agg(share=("share", "mean"), early_share=("early_part", "mean"), mean_value=("value", "mean"),
                 mean_weighted=("weighted", "mean"), grad_cosine=("grad_cosine", "mean"),
                 frac_conflict=("conflict", "mean"), n_cosine=("grad_cosine", "count"))
            .reset_index())


def share_figure(trace: pd.DataFrame) -> go.Figure:
    """Share of each loss component over training (stacked; one panel per run when stacked)."""
    parts = _with_share(loss_components(trace))
    fig = px.area(parts, x="step", y="share", color="component",
                  facet_col="run_id" if "run_id" in parts.columns else None,
                  facet_col_wrap=3)
    return styled(fig, "Share of each loss component in the objective", "step", "share of |loss|")


def conflict_figure(share_table: pd.DataFrame) -> go.Figure:
    """Mean gradient cosine of each auxiliary loss with the main loss (output of ``shares``)."""
    aux = share_table[~share_table["component"].isin([MAIN, TOTAL])]
    color = "variant" if "variant" in aux.columns else None
    fig = px.strip(aux, x="component", y="grad_cosine", color=color, hover_data=["share"])
    fig.add_hline(y=0, line_dash="dot")
    fig.update_yaxes(range=[-1, 1])
    return styled(fig, "Gradient cosine of each auxiliary loss with the BCE gradient (< 0: conflict)",
                  "auxiliary loss", "cosine with BCE gradient")
