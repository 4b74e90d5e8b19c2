"""Calibration diagnostics (hypothesis V1d, the log's v1 recall inflation).

An upward drift of all predicted probabilities shows as mean predicted probability above the base rate,
a reliability curve below the diagonal, a large ECE and recall far above precision at the threshold.
Per-run metrics come from the sweep records; curves come from the test predictions.
"""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve

from diagnostics.figures import require_columns, run_keys, styled

DRIFT_COLUMNS = ["mean_prob", "base_rate", "ece", "precision", "recall"]


def drift_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run: mean predicted probability, base rate, ``drift`` (their difference), ECE, precision,
    recall and ``recall_minus_precision`` (from ``Sweep.runs`` or any frame with those metric columns)."""
    require_columns(runs, ["run_id", "variant", "seed"] + DRIFT_COLUMNS, "drift_table")
    out = runs[["run_id", "variant", "seed"] + DRIFT_COLUMNS].copy()
    out["drift"] = out["mean_prob"] - out["base_rate"]
    out["recall_minus_precision"] = out["recall"] - out["precision"]
    return out.reset_index(drop=True)


def _per_run(predictions: pd.DataFrame, compute) -> pd.DataFrame:
    require_columns(predictions, ["label", "prob"], "calibration")
    keys = run_keys(predictions)
    if not keys:
        return compute(predictions)
    frames = [compute(group).assign(**dict(zip(keys, key if isinstance(key, tuple) else (key,))))
              for key, group in predictions.groupby(keys, sort=True)]
    out = pd.concat(frames, ignore_index=True)
    return out[keys + [c for c in out.columns if c not in keys]]


def reliability(predictions: pd.DataFrame, n_bins: int = 10) -> pd.DataFrame:
    """Reliability curve per run (scikit-learn ``calibration_curve``, uniform bins): mean predicted
    probability and observed positive fraction per non-empty bin."""
    def compute(frame: pd.DataFrame) -> pd.DataFrame:
        observed, predicted = calibration_curve(frame["label"], frame["prob"], n_bins=n_bins, strategy="uniform")
        return pd.DataFrame({"mean_predicted": predicted, "fraction_positive": observed})
    return _per_run(predictions, compute)


def pr_curve(predictions: pd.DataFrame) -> pd.DataFrame:
    """Precision/recall trade-off per run (scikit-learn ``precision_recall_curve``)."""
    def compute(frame: pd.DataFrame) -> pd.DataFrame:
        precision, recall, thresholds = precision_recall_curve(frame["label"], frame["prob"])
        return pd.DataFrame({"threshold": list(thresholds) + [1.0], "precision": precision, "recall": recall})
    return _per_run(predictions, compute)


def reliability_figure(curve: pd.DataFrame) -> go.Figure:
    """Reliability diagram; points below the diagonal are over-confident positives (upward drift)."""
    color = "variant" if "variant" in curve.columns else None
    fig = px.line(curve, x="mean_predicted", y="fraction_positive", color=color, markers=True,
                  line_group="run_id" if "run_id" in curve.columns else None)
    fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "grey"})
    return styled(fig, "Reliability: observed positive rate vs mean predicted probability",
                  "mean predicted probability", "fraction positive")


def drift_figure(drift: pd.DataFrame) -> go.Figure:
    """Mean predicted probability minus base rate per variant and seed (output of ``drift_table``)."""
    fig = px.strip(drift, x="variant", y="drift", color="variant", hover_data=["seed", "ece", "recall", "precision"])
    fig.add_hline(y=0, line_dash="dot")
    return styled(fig, "Upward drift: mean predicted probability minus base rate", "variant", "drift")


def pr_figure(curve: pd.DataFrame) -> go.Figure:
    """Precision-recall curves (output of ``pr_curve``)."""
    color = "variant" if "variant" in curve.columns else None
    fig = px.line(curve, x="recall", y="precision", color=color,
                  line_group="run_id" if "run_id" in curve.columns else None)
    return styled(fig, "Precision / recall trade-off", "recall", "precision")
