"""Anchor diagnostics (hypothesis H5: anchors under-used).

Two anchor modes leave different traces:
- ``concat``: anchors sit in the joint [promoter, anchors, enhancer] self-attention; tokens -> anchors is
  the ``anchor_mass`` of ``blocks.<i>.joint.attn.pattern``;
- ``gather_broadcast``: anchors read every token (``anchors.gather.pattern``: anchors -> tokens), then
  tokens read the anchors (``anchors.broadcast.pattern``), and ``anchors.state`` holds the anchor outputs
  (``var_across_anchors`` 0 = all anchors carry the same thing).

``usage_ratio`` = (anchor mass / n_anchors) x effective tokens: the mass one anchor draws relative to a
typically attended key (1 / effective tokens). Well below 1 means attention passes the anchors by.
"""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from diagnostics.attention import attention_table
from diagnostics.figures import require_columns, run_keys, styled


def _late_state(trace: pd.DataFrame, tail: float) -> pd.DataFrame:
    rows = trace[trace["kind"] == "anchors"]
    keys = run_keys(rows)
    if rows.empty:
        return pd.DataFrame(columns=keys + ["block", "var_across_anchors", "anchor_norm"])
    last, first = (rows.groupby(keys + ["name"])["step"].transform(f) if keys else rows["step"].agg(f)
                   for f in ("max", "min"))
    late = rows[rows["step"] >= first + (1 - tail) * (last - first)]
    wide = late.pivot_table(index=keys + ["block"], columns="statistic", values="value").reset_index()
    return wide.rename(columns={"norm": "anchor_norm"}).rename_axis(None, axis=1)


def anchor_table(trace: pd.DataFrame, n_anchors: int | dict[str, int], tail: float = 0.25) -> pd.DataFrame:
    """Anchor use per run and block over the last ``tail`` share of training.

    Parameters
    ----------
    trace : summary trace(s); stacked traces need a ``variant`` column when ``n_anchors`` is a mapping.
    n_anchors : the config's ``n_anchors`` (or variant -> n_anchors).

    Returns
    -------
    DataFrame with run keys, block, ``tokens_to_anchors`` (mass tokens put on anchors, concat mode),
    ``usage_ratio``, ``gather_effective_tokens`` (tokens each anchor reads, gather_broadcast mode),
    ``broadcast_effective_anchors`` (anchors each token reads), ``var_across_anchors``, ``anchor_norm``.
    Columns that do not apply to a run's mode are NaN.
    """
    table = attention_table(trace)
    keys = run_keys(table)
    count = (table["variant"].map(n_anchors) if isinstance(n_anchors, dict) else pd.Series(n_anchors, table.index))
    table = table.assign(n_anchors=count.astype(float))
    joint = table[table["site"] == "joint"]
    joint = joint.assign(tokens_to_anchors=joint["anchor_mass"],
                         usage_ratio=joint["anchor_mass"] / joint["n_anchors"] * joint["effective_tokens"])
    gather = table[table["site"] == "anchors.gather"] \
        .rename(columns={"effective_tokens": "gather_effective_tokens"})
    broadcast = table[table["site"] == "anchors.broadcast"] \
        .rename(columns={"effective_tokens": "broadcast_effective_anchors"})
    out = joint[keys + ["block", "tokens_to_anchors", "usage_ratio"]]
    for part in (gather[keys + ["block", "gather_effective_tokens"]],
                 broadcast[keys + ["block", "broadcast_effective_anchors"]], _late_state(trace, tail)):
        out = out.merge(part, on=keys + ["block"], how="outer")
    for column in ("tokens_to_anchors", "usage_ratio", "gather_effective_tokens", "broadcast_effective_anchors",
                   "var_across_anchors", "anchor_norm"):
        if column not in out.columns:
            out[column] = float("nan")
    return out.sort_values(keys + ["block"]).reset_index(drop=True)


def compare_modes(table: pd.DataFrame, anchor_mode: dict[str, str]) -> pd.DataFrame:
    """Mean anchor use per variant next to its anchor mode (concat vs gather_broadcast)."""
    require_columns(table, ["variant"], "compare_modes")
    numeric = table.drop(columns=[c for c in ("run_id", "seed", "block") if c in table.columns])
    out = numeric.groupby("variant", as_index=False).mean(numeric_only=True)
    out.insert(1, "anchor_mode", out["variant"].map(anchor_mode))
    return out


def anchor_figure(table: pd.DataFrame) -> go.Figure:
    """Usage ratio (concat) and anchor-state variance (gather_broadcast) per variant and block."""
    color = "variant" if "variant" in table.columns else None
    long = table.melt(id_vars=run_keys(table) + ["block"], value_vars=["usage_ratio", "var_across_anchors"],
                      var_name="measure").dropna(subset=["value"])
    fig = px.strip(long, x="block", y="value", color=color, facet_col="measure")
    fig.update_yaxes(matches=None)
    fig.add_hline(y=1, line_dash="dot", col=1)
    return styled(fig, "Anchor use: mass per anchor vs a typical key (1 = par), anchor-state variance", "block")
