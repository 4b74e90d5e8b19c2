"""Shared plotly styling and small tidy-frame helpers used by every diagnostics figure."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

TEMPLATE = "plotly_white"
RUN_KEYS = ("run_id", "variant", "seed")


def run_keys(frame: pd.DataFrame) -> list[str]:
    """The run-identity columns a stacked trace carries (none for a single run's trace)."""
    return [key for key in RUN_KEYS if key in frame.columns]


def training_rows(trace: pd.DataFrame) -> pd.DataFrame:
    """Rows recorded during training (the trainer appends one 'final' evaluation forward after the last step)."""
    return trace[trace["phase"] == "train"] if "phase" in trace.columns else trace


def styled(fig: go.Figure, title: str, x: str | None = None, y: str | None = None) -> go.Figure:
    """One look for all diagnostics figures: white template, title, axis labels."""
    fig.update_layout(template=TEMPLATE, title=title, legend_title_text="")
    if x:
        fig.update_xaxes(title_text=x)
    if y:
        fig.update_yaxes(title_text=y)
    return fig


def require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    """Raise a one-line error when ``frame`` lacks columns a function needs."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: frame lacks column(s) {missing}; has {list(frame.columns)}")


NOT_LEARNT_MARK = " (not learnt)"


def mark_not_learnt(labels, flags) -> list[str]:
    """Axis labels with ``NOT_LEARNT_MARK`` on the entries that rest on runs that did not learn."""
    return [f"{label}{NOT_LEARNT_MARK}" if flag else str(label) for label, flag in zip(labels, flags)]


def mark_steps_not_learnt(fig: go.Figure, steps, flags) -> None:
    """Waterfall steps: ``NOT_LEARNT_MARK`` on the x labels of those that rest on runs that did not learn."""
    if any(flags):
        fig.update_xaxes(tickmode="array", tickvals=list(steps), ticktext=mark_not_learnt(steps, flags))


def not_learnt_title(title: str, flags) -> str:
    """``title``, led by a warning when any entry rests on runs that did not learn (their bars show no effect)."""
    return f"Runs that did not learn are marked {NOT_LEARNT_MARK.strip()}: read no effect there. {title}" \
        if any(bool(f) for f in flags) else title
