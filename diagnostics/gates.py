"""Gate diagnostics (hypotheses V1c and H3): value distribution over training, saturation, early noise.

Input is a summary trace (one run, or several stacked by ``Sweep.traces`` with run_id/variant/seed).
Gate rows are the trace's ``kind == "gate"`` rows; their ``site`` is the gated step (attn/joint/ffn).
"""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from diagnostics.figures import require_columns, run_keys, styled, training_rows

GATE_STATISTICS = ("mean", "std", "frac_saturated", "frac_low", "frac_high", "sample_var")


def gated_runs(sweep) -> list[str]:
    """Finished runs of a ``diagnostics.io.Sweep`` whose config has gates (``gate`` other than "none")."""
    return [r for r in sweep.ok()["run_id"] if sweep.config(r).get("gate", "none") != "none"]


def gate_rows(trace: pd.DataFrame) -> pd.DataFrame:
    """The gate rows recorded while training, with a ``gate`` column (attn/joint/ffn). The trainer's final
    evaluation forward (``phase`` "final": eval mode, a validation batch, one step past the last) is left out,
    so saturation, noise and the last step's histogram read training steps only."""
    require_columns(trace, ["name", "block", "kind", "site", "statistic", "step", "value"], "gate_rows")
    trace = training_rows(trace)
    rows = trace[trace["kind"] == "gate"].copy()
    rows["gate"] = rows["site"]
    return rows


def gate_timeline(trace: pd.DataFrame) -> pd.DataFrame:
    """Wide per-step gate statistics: one row per (run, gate name, step), a column per statistic."""
    rows = gate_rows(trace)
    rows = rows[rows["statistic"].isin(GATE_STATISTICS)]
    index = run_keys(rows) + ["name", "block", "gate", "step"]
    return rows.pivot_table(index=index, columns="statistic", values="value").reset_index().rename_axis(None, axis=1)


def saturation(trace: pd.DataFrame, tail: float = 0.25) -> pd.DataFrame:
    """Fraction of gate values < 0.05 or > 0.95 per run and gate.

    Returns columns ``overall`` (mean over all sampled steps) and ``late`` (mean over the last ``tail``
    share of sampled steps, where saturation has had time to set in).
    """
    timeline = gate_timeline(trace)
    if timeline.empty:
        return pd.DataFrame(columns=run_keys(trace) + ["name", "block", "gate", "overall", "late"])
    keys = run_keys(timeline) + ["name", "block", "gate"]

    def summarise(group: pd.DataFrame) -> pd.Series:
        steps = group["step"]
        cut = steps.min() + (1 - tail) * (steps.max() - steps.min())
        return pd.Series({"overall": group["frac_saturated"].mean(),
                          "late": group.loc[steps >= cut, "frac_saturated"].mean()})

    return timeline.groupby(keys).apply(summarise, include_groups=False).reset_index()


def early_noise(trace: pd.DataFrame, first_steps: int = 5) -> pd.DataFrame:
    """Gate noise early in training: variance across samples of the per-sample gate mean, averaged over
    the first ``first_steps`` sampled steps, next to the same over the rest of training."""
    timeline = gate_timeline(trace)
    keys = run_keys(timeline) + ["name", "block", "gate"]
    if timeline.empty:
        return pd.DataFrame(columns=keys + ["early_sample_var", "late_sample_var"])
    rank = timeline.groupby(keys)["step"].rank(method="dense")
    early = timeline[rank <= first_steps].groupby(keys)["sample_var"].mean().rename("early_sample_var")
    late = timeline[rank > first_steps].groupby(keys)["sample_var"].mean().rename("late_sample_var")
    return pd.concat([early, late], axis=1).reset_index()


def histogram(trace: pd.DataFrame, step: int | None = None) -> pd.DataFrame:
    """Share of gate values per tenth of [0, 1] at ``step`` (default: each run's last sampled step)."""
    rows = gate_rows(trace)
    rows = rows[rows["statistic"].str.startswith("hist_")]
    keys = run_keys(rows)
    if step is None:
        last = rows.groupby(keys)["step"].transform("max") if keys else rows["step"].max()
        rows = rows[rows["step"] == last]
    else:
        rows = rows[rows["step"] == step]
    out = rows[keys + ["name", "block", "gate", "step", "value"]].copy()
    out.insert(len(keys) + 3, "bin_start", rows["statistic"].str[5:].astype(int) / 10)
    return out.rename(columns={"value": "share"}).reset_index(drop=True)


def compare_kinds(saturation_table: pd.DataFrame, gate_kind: dict[str, str]) -> pd.DataFrame:
    """Saturation per variant with its gate kind (e.g. v1 ``sigmoid`` vs v2 ``temp_sigmoid``).

    Parameters
    ----------
    saturation_table : output of ``saturation`` over stacked traces (needs ``variant`` and ``seed``).
    gate_kind : variant -> the config's ``gate`` switch.

    Returns
    -------
    DataFrame with variant, gate_kind, n_seeds, late (mean over seeds of the mean over gates), late_min,
    late_max (spread across seeds).
    """
    require_columns(saturation_table, ["variant", "seed", "late"], "compare_kinds")
    per_seed = saturation_table.groupby(["variant", "seed"])["late"].mean().reset_index()
    out = per_seed.groupby("variant")["late"].agg(n_seeds="count", late="mean", late_min="min",
                                                  late_max="max").reset_index()
    out.insert(1, "gate_kind", out["variant"].map(gate_kind))
    return out


def saturation_figure(trace: pd.DataFrame) -> go.Figure:
    """Fraction saturated over training, one line per gate (and per variant when stacked)."""
    timeline = gate_timeline(trace)
    color = "variant" if "variant" in timeline.columns else None
    fig = px.line(timeline, x="step", y="frac_saturated", color=color, line_dash="name",
                  line_group="run_id" if "run_id" in timeline.columns else None)
    fig.update_yaxes(range=[0, 1])
    return styled(fig, "Gate saturation (<0.05 or >0.95) over training", "step", "fraction saturated")


def histogram_figure(hist: pd.DataFrame) -> go.Figure:
    """Gate value distribution (output of ``histogram``), one panel per gate."""
    color = "variant" if "variant" in hist.columns else None
    frame = hist.groupby(([color] if color else []) + ["name", "bin_start"], as_index=False)["share"].mean()
    fig = px.bar(frame, x="bin_start", y="share", color=color, facet_col="name", barmode="group")
    return styled(fig, "Gate value distribution", "gate value (bin start)", "share of values")
