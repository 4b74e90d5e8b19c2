"""Gradient diagnostics (hypothesis H3): per-block gradient norm over training and its decay with depth.

Gradient norms are recorded per parameter group as ``<group>.grad_norm`` / statistic ``l2``, where a group
is ``blocks.<i>`` or a top-level module (``head``, ``stem_e``, ...). Blocks share one recipe, so their
norms compare like with like; the head has other parameters and is shown but not used for ratios.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from diagnostics.figures import require_columns, run_keys, styled


def grad_norms(trace: pd.DataFrame) -> pd.DataFrame:
    """Gradient L2 norm per run, group and step, with ``depth`` = distance from the head (head 0,
    last block 1, ..., first block n_blocks, everything below the blocks n_blocks + 1)."""
    require_columns(trace, ["name", "block", "kind", "site", "statistic", "step", "value"], "grad_norms")
    rows = trace[(trace["kind"] == "grad") & (trace["statistic"] == "l2")].copy()
    rows["group"] = rows["site"]
    keys = run_keys(rows)
    n_blocks = (rows.groupby(keys)["block"].transform("max") + 1) if keys else rows["block"].max() + 1
    rows["depth"] = np.where(rows["group"] == "head", 0,
                             np.where(rows["block"] >= 0, n_blocks - rows["block"], n_blocks + 1))
    return rows[keys + ["group", "block", "depth", "step", "value"]].reset_index(drop=True)


def depth_profile(trace: pd.DataFrame) -> pd.DataFrame:
    """Median gradient norm over training per run and group, ordered from the head down."""
    norms = grad_norms(trace)
    keys = run_keys(norms)
    return (norms.groupby(keys + ["group", "block", "depth"], as_index=False)["value"].median()
            .rename(columns={"value": "median_l2"}).sort_values(keys + ["depth", "group"]).reset_index(drop=True))


def block_decay(trace: pd.DataFrame) -> pd.DataFrame:
    """How much the gradient shrinks from the last block to the first, per run.

    Returns
    -------
    DataFrame with n_blocks, ``first_to_last`` (median over sampled steps of ||g(blocks.0)|| /
    ||g(blocks.last)||; 1 for a single block, below 1 when gradients decay on their way down) and
    ``first_to_head`` (same against the head, for reference).
    """
    norms = grad_norms(trace)
    keys = run_keys(norms)
    columns = keys + ["n_blocks", "first_to_last", "first_to_head"]

    def one_run(frame: pd.DataFrame) -> Optional[dict]:
        # each run's own blocks: runs of different depths in one trace have different last blocks
        wide = frame.pivot_table(index="step", columns="group", values="value")
        block_of = frame.drop_duplicates("group").set_index("group")["block"]
        blocks = sorted((g for g in wide.columns if block_of.get(g, -1) >= 0), key=lambda g: block_of[g])
        if not blocks:
            return None
        first = wide[blocks[0]]
        return {"n_blocks": len(blocks), "first_to_last": float((first / wide[blocks[-1]]).median()),
                "first_to_head": float((first / wide["head"]).median()) if "head" in wide.columns else np.nan}

    groups = norms.groupby(keys, sort=True) if keys else [((), norms)]
    rows = []
    for key, frame in groups:
        found = one_run(frame)
        if found is not None:
            rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))), **found})
    return pd.DataFrame(rows, columns=columns)


def grad_norm_figure(trace: pd.DataFrame) -> go.Figure:
    """Gradient norm per group over training (log scale)."""
    norms = grad_norms(trace)
    color = "variant" if "variant" in norms.columns else "group"
    fig = px.line(norms, x="step", y="value", color=color, line_dash="group" if color == "variant" else None,
                  line_group="run_id" if "run_id" in norms.columns else None, log_y=True)
    return styled(fig, "Gradient norm per block over training", "step", "gradient L2 norm")


def depth_figure(profile: pd.DataFrame) -> go.Figure:
    """Median gradient norm against distance from the head (output of ``depth_profile``)."""
    color = "variant" if "variant" in profile.columns else None
    frame = profile.groupby(([color] if color else []) + ["depth", "group"], as_index=False)["median_l2"].mean()
    fig = px.line(frame.sort_values("depth"), x="depth", y="median_l2", color=color, markers=True,
                  hover_data=["group"], log_y=True)
    return styled(fig, "Gradient norm from the head (0) down to the first block", "depth from head",
                  "median gradient L2 norm")
