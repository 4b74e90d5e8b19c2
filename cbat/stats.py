"""Statistics against the baseline: paired bootstrap over test pairs and seeds.

For a variant and a metric, the effect is the mean over seeds of ``metric(variant) - metric(baseline)``,
both scored on the same test pairs with the same seed. Its confidence interval comes from a two-level
bootstrap: each replicate draws seeds with replacement and one resample of test pairs (shared by
variant and baseline, and by all seeds, since every run sees the same test pairs), so both the pair
sampling and the seed-to-seed spread enter the interval. A variant "beats" or "trails" the baseline only
when the interval excludes zero; otherwise the verdict is "no clear difference".
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import f1_score, precision_score, recall_score

from cbat import rundir
from cbat.metrics import DEFAULT_THRESHOLD, expected_calibration_error

LOWER_IS_BETTER = {"ece"}


def _thresholded(score: Callable) -> Callable:
    return lambda y, p: score(y, p >= DEFAULT_THRESHOLD, zero_division=0)


# The bootstrap scores thousands of resamples, so the two ranking metrics are computed directly (same
# definitions as scikit-learn's average_precision_score and roc_auc_score, about 20x faster; a test pins
# the agreement).
def average_precision(labels: np.ndarray, probs: np.ndarray) -> float:
    """Sum over distinct thresholds of (recall step) x precision, as ``sklearn.metrics.average_precision_score``."""
    order = np.argsort(-probs, kind="mergesort")
    labels, probs = labels[order], probs[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(probs)), labels.size - 1]
    true_pos = np.cumsum(labels)[last_of_tie]
    precision = true_pos / (last_of_tie + 1)
    recall = true_pos / true_pos[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mann-Whitney U with average ranks for ties, as ``sklearn.metrics.roc_auc_score``."""
    ranks = rankdata(probs)
    n_pos = labels.sum()
    n_neg = labels.size - n_pos
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "aupr": average_precision,
    "auroc": roc_auc,
    "f1": _thresholded(f1_score),
    "precision": _thresholded(precision_score),
    "recall": _thresholded(recall_score),
    "ece": expected_calibration_error,
}


def _score(metric: str, labels: np.ndarray, probs: np.ndarray) -> float:
    if metric in ("aupr", "auroc") and (labels.min() == labels.max()):
        return np.nan  # a resample with one class has no ranking metric
    return float(METRICS[metric](labels, probs))


def paired_bootstrap(labels: np.ndarray, baseline: np.ndarray, variant: np.ndarray, metric: str = "aupr",
                     n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean paired difference (variant - baseline) across seeds with a bootstrap confidence interval.

    Parameters
    ----------
    labels : [n_pairs] test labels (the same pairs for every seed).
    baseline, variant : [n_seeds, n_pairs] predicted probabilities; row s of both comes from seed s.
    metric : a key of ``METRICS``.
    n_boot, level, seed : bootstrap replicates, interval level and the bootstrap's own RNG seed.

    Returns
    -------
    dict
        ``mean_diff``, ``ci_low``, ``ci_high``, ``baseline_mean``, ``variant_mean``, ``n_seeds``, ``n_pairs``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}; expected one of {sorted(METRICS)}")
    labels = np.asarray(labels).astype(int)
    baseline, variant = np.atleast_2d(baseline).astype(float), np.atleast_2d(variant).astype(float)
    if baseline.shape != variant.shape or baseline.shape[1] != labels.size:
        raise ValueError(f"baseline {baseline.shape} and variant {variant.shape} must both be "
                         f"[n_seeds, {labels.size}]")
    n_seeds, n_pairs = baseline.shape
    base_scores = np.array([_score(metric, labels, b) for b in baseline])
    var_scores = np.array([_score(metric, labels, v) for v in variant])
    rng = np.random.default_rng(seed)
    replicates = np.empty(n_boot)
    for b in range(n_boot):
        seeds = rng.integers(0, n_seeds, n_seeds)
        pairs = rng.integers(0, n_pairs, n_pairs)
        y = labels[pairs]
        diffs = [_score(metric, y, variant[s, pairs]) - _score(metric, y, baseline[s, pairs]) for s in seeds]
        replicates[b] = np.nanmean(diffs) if not np.all(np.isnan(diffs)) else np.nan
    tail = (1 - level) / 2
    low, high = np.nanquantile(replicates, [tail, 1 - tail])
    return {"mean_diff": float(np.mean(var_scores - base_scores)), "ci_low": float(low), "ci_high": float(high),
            "baseline_mean": float(np.mean(base_scores)), "variant_mean": float(np.mean(var_scores)),
            "n_seeds": n_seeds, "n_pairs": n_pairs}


def verdict(metric: str, ci_low: float, ci_high: float) -> str:
    """"beats" / "trails" when the interval excludes zero (direction by metric), else "no clear difference"."""
    if not (ci_low > 0 or ci_high < 0):
        return "no clear difference"
    better = ci_low > 0 if metric not in LOWER_IS_BETTER else ci_high < 0
    return "beats" if better else "trails"


def _predictions(sweep_dir: Path, records: list[dict]) -> dict[tuple, pd.DataFrame]:
    out = {}
    for rec in records:
        path = rundir.run_dir(sweep_dir, rec["run_id"]) / rec["paths"]["predictions"]
        out[(rec["variant"], rec["split"], rec["seed"])] = rundir.read_parquet(path).set_index("pair_index")
    return out


def compare_to_baseline(sweep_dir: str | Path, baseline: str = "baseline",
                        metrics: Sequence[str] = ("aupr", "auroc", "f1", "ece"), n_boot: int = 1000,
                        level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Every variant of a sweep against ``baseline``, per split and metric (paired over seeds and pairs).

    Returns
    -------
    DataFrame
        variant, split, metric, n_seeds, n_pairs, baseline_mean, variant_mean, mean_diff, ci_low, ci_high,
        verdict. Only seeds where both runs finished "ok" are paired; pairs are those all of them scored.
    """
    sweep_dir = Path(sweep_dir)
    records = [r for r in rundir.read_records(sweep_dir) if r["status"] == "ok"]
    if not any(r["variant"] == baseline for r in records):
        raise ValueError(f"{sweep_dir}: no finished run of the baseline variant {baseline!r}")
    predictions = _predictions(sweep_dir, records)
    rows = []
    variants = list(dict.fromkeys(r["variant"] for r in records if r["variant"] != baseline))
    splits = list(dict.fromkeys(r["split"] for r in records))
    for variant in variants:
        for split in splits:
            seeds = sorted(s for (v, sp, s) in predictions if v == variant and sp == split
                           and (baseline, split, s) in predictions)
            if not seeds:
                continue
            frames = [predictions[(who, split, s)] for s in seeds for who in (baseline, variant)]
            common = frames[0].index
            for frame in frames[1:]:
                common = common.intersection(frame.index)
            labels = frames[0].loc[common, "label"].to_numpy()
            base = np.stack([predictions[(baseline, split, s)].loc[common, "prob"].to_numpy() for s in seeds])
            var = np.stack([predictions[(variant, split, s)].loc[common, "prob"].to_numpy() for s in seeds])
            for metric in metrics:
                result = paired_bootstrap(labels, base, var, metric, n_boot, level, seed)
                rows.append({"variant": variant, "split": split, "metric": metric, **result,
                             "verdict": verdict(metric, result["ci_low"], result["ci_high"])})
    columns = ["variant", "split", "metric", "n_seeds", "n_pairs", "baseline_mean", "variant_mean", "mean_diff",
               "ci_low", "ci_high", "verdict"]
    return pd.DataFrame(rows, columns=columns)
