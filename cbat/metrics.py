"""Evaluation metrics with scikit-learn: ranking, thresholded and calibration metrics, pooled, per cell line and
per planted cause, and the "did it learn" guard that every comparison checks first.

The decision threshold for precision, recall and F1 is 0.5 on the predicted probability by default: it is
the threshold a calibrated model would use, so recall inflation from upward probability drift (the log's
v1 story) shows up as high recall with low precision instead of being tuned away per variant.
"""
from __future__ import annotations

import itertools
import math
from typing import Optional, Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

DEFAULT_THRESHOLD = 0.5
METRIC_KEYS = ("aupr", "auroc", "precision", "recall", "f1", "threshold", "mean_prob", "base_rate", "ece",
               "n", "n_pos")
# The guard: a run whose test AUROC interval includes 0.5, or that predicts one class for at least this share of
# test pairs (when the labels are not that lopsided themselves), did not learn its task.
ONE_CLASS_SHARE = 0.95
LEARNT_LEVEL = 0.95
LEARNT_REPLICATES = 1000


# Below this many test pairs of either class the percentile bootstrap of AUROC does not hold its level (random
# scores passed the guard in 17 % of draws with 2 positives, 6 % with 5, 2.5-3 % from 15 on; nominal 2.5 %), so
# a one-sided rank permutation test (the Mann-Whitney statistic; exact over every split of the pairs when they
# are at most PERMUTATIONS, and valid with tied scores, where scipy's mannwhitneyu falls back to the normal
# approximation, and with one pair of a class, which scipy's permutation_test refuses) must agree as well.
SMALL_CLASS = 20
PERMUTATIONS = 9999


def check_probabilities(labels, probs, what: str = "probabilities") -> tuple[np.ndarray, np.ndarray]:
    """``labels`` as int and ``probs`` as float arrays of the same 1-D shape, probabilities in [0, 1] without NaN;
    else a one-line ValueError naming ``what``."""
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=float)
    if labels.shape != probs.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and {what} {probs.shape} must be 1-D and equally long")
    if probs.size and (np.isnan(probs).any() or probs.min() < 0 or probs.max() > 1):
        raise ValueError(f"{what} must lie in [0, 1] and contain no NaN")
    return labels.astype(int), probs


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> float:
    """ECE over ``n_bins`` equal-width probability bins: sum_b (n_b / n) * |mean prob_b - positive rate_b|."""
    labels, probs = check_probabilities(labels, probs)
    if labels.size == 0:
        return math.nan
    bins = np.minimum((probs * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    prob_sums = np.bincount(bins, weights=probs, minlength=n_bins)
    label_sums = np.bincount(bins, weights=labels, minlength=n_bins)
    filled = counts > 0
    gap = np.abs(prob_sums[filled] - label_sums[filled]) / counts[filled]
    return float((gap * counts[filled]).sum() / labels.size)


def binary_metrics(labels: Sequence[int], probs: Sequence[float],
                   threshold: float = DEFAULT_THRESHOLD) -> dict[str, float]:
    """All keys of ``METRIC_KEYS`` for one group. Ranking and threshold metrics (precision, recall, F1) are NaN
    when only one class is present: on a cause's easy negatives alone, recall has nothing to recall."""
    labels, probs = check_probabilities(labels, probs)
    both_classes = labels.size > 0 and 0 < labels.sum() < labels.size
    predicted = (probs >= threshold).astype(int)
    return {
        "aupr": float(average_precision_score(labels, probs)) if both_classes else math.nan,
        "auroc": float(roc_auc_score(labels, probs)) if both_classes else math.nan,
        "precision": float(precision_score(labels, predicted, zero_division=0)) if both_classes else math.nan,
        "recall": float(recall_score(labels, predicted, zero_division=0)) if both_classes else math.nan,
        "f1": float(f1_score(labels, predicted, zero_division=0)) if both_classes else math.nan,
        "threshold": float(threshold),
        "mean_prob": float(probs.mean()) if probs.size else math.nan,
        "base_rate": float(labels.mean()) if labels.size else math.nan,
        "ece": expected_calibration_error(labels, probs),
        "n": int(labels.size),
        "n_pos": int(labels.sum()),
    }


def evaluate(labels: Sequence[int], probs: Sequence[float], cell_lines: Optional[Sequence[str]] = None,
             threshold: float = DEFAULT_THRESHOLD, causes: Optional[Sequence[str]] = None) -> dict:
    """Metrics pooled over all pairs, per cell line and per planted cause.

    Returns
    -------
    dict
        ``{"pooled": {...}, "per_cell_line": {cell_line: {...}}, "per_cause": {cause: {...}}}`` with the keys of
        ``METRIC_KEYS``. For a held-out cell line split the test set is that cell line, so its entry is the
        "unseen" score. A cause's entry scores the positives of that cause against the negatives planted as its
        matched negatives (``meta["cause"]`` of the synthetic benchmark); it is empty without ``causes``.
    """
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=float)
    out = {"pooled": binary_metrics(labels, probs, threshold), "per_cell_line": {}, "per_cause": {}}
    for key, groups in (("per_cell_line", cell_lines), ("per_cause", causes)):
        if groups is not None:
            groups = np.asarray(groups).astype(str)
            for name in sorted(set(groups)):
                chosen = groups == name
                out[key][name] = binary_metrics(labels[chosen], probs[chosen], threshold)
    return out


# Replicates scored per chunk of the count matrix (replicates x pairs): about 32 MB of float64 at a time, so tens
# of thousands of test pairs (real data) resample without holding every replicate at once.
CHUNK_CELLS = 4_000_000


class RankedScores:
    """One run's scores sorted once, so the ranking metrics of many resamples cost a weighted pass each instead
    of a sort. A resample is the same pairs with integer weights (how often each was drawn), and AUROC and
    average precision with those weights equal the metrics of the resampled arrays: tied scores form one group
    (one threshold), as in ``sklearn.metrics.roc_auc_score`` / ``average_precision_score``."""

    def __init__(self, labels: np.ndarray, probs: np.ndarray) -> None:
        labels, probs = check_probabilities(labels, probs, "RankedScores: probabilities")
        self.order = np.argsort(-probs, kind="mergesort")
        self.group_starts = np.r_[0, np.flatnonzero(np.diff(probs[self.order])) + 1]
        self.positive = (labels[self.order] == 1).astype(float)

    def scores(self, weights: np.ndarray, metric: str) -> np.ndarray:
        """``metric`` ("auroc" or "aupr") under each row of ``weights`` ([n_resamples, n_pairs] counts, pairs in
        the order given to the constructor); NaN for a resample with one class."""
        w = np.asarray(weights, dtype=float)
        if w.ndim != 2 or w.shape[1] != self.order.size or (w < 0).any():
            raise ValueError(f"RankedScores.scores: weights of shape {w.shape}; expected [n_resamples, "
                             f"{self.order.size}] counts >= 0")
        w = w[:, self.order]
        pos = np.add.reduceat(w * self.positive, self.group_starts, axis=1)  # per tie group, highest score first
        neg = np.add.reduceat(w, self.group_starts, axis=1) - pos
        total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            if metric == "auroc":  # Mann-Whitney: negatives scored lower, ties counted half
                below = total_neg[:, None] - np.cumsum(neg, axis=1)
                out = (pos * (below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)
            elif metric == "aupr":  # sum over thresholds of (recall step) x precision
                true_pos = np.cumsum(pos, axis=1)
                seen = true_pos + np.cumsum(neg, axis=1)
                precision = np.divide(true_pos, seen, out=np.zeros_like(true_pos), where=seen > 0)
                out = (pos * precision).sum(axis=1) / total_pos
            else:
                raise ValueError(f"RankedScores: metric {metric!r}; expected 'auroc' or 'aupr'")
        out[(total_pos == 0) | (total_neg == 0)] = np.nan
        return out


def auroc_interval(labels: Sequence[int], probs: Sequence[float], level: float = LEARNT_LEVEL,
                   n_boot: int = LEARNT_REPLICATES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of AUROC, resampling positives and negatives separately (seeded).

    Each replicate's AUROC comes from ``RankedScores`` (the draw's counts as weights), so thousands of
    replicates of thousands of test pairs cost well under a second; replicates are drawn a chunk at a time, so
    memory stays at ``CHUNK_CELLS`` draws whatever the number of test pairs.
    """
    labels, probs = check_probabilities(labels, probs, "auroc_interval: probabilities")
    if not 0 < level < 1 or n_boot < 1:
        raise ValueError(f"auroc_interval: level {level} and n_boot {n_boot}; expected a level in (0, 1) and at "
                         "least one replicate")
    pos, neg = probs[labels == 1], probs[labels == 0]
    if pos.size == 0 or neg.size == 0:
        return math.nan, math.nan
    pos_rng, neg_rng = np.random.default_rng(seed).spawn(2)  # one stream per class: chunking changes no draw
    ranked = RankedScores(np.r_[np.ones(pos.size), np.zeros(neg.size)], np.r_[pos, neg])
    chunk = max(1, CHUNK_CELLS // (pos.size + neg.size))
    aucs = []
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        aucs.append(ranked.scores(np.hstack([draw_counts(pos_rng.integers(0, pos.size, (rows, pos.size)), pos.size),
                                             draw_counts(neg_rng.integers(0, neg.size, (rows, neg.size)), neg.size)]),
                                  "auroc"))
    tail = (1 - level) / 2
    low, high = np.quantile(np.concatenate(aucs), [tail, 1 - tail])
    return float(low), float(high)


def draw_counts(draws: np.ndarray, n: int) -> np.ndarray:
    """How often each of ``n`` items was drawn, per row of ``draws`` ([n_resamples, k] indices)."""
    rows = draws.shape[0]
    flat = draws + n * np.arange(rows)[:, None]
    return np.bincount(flat.ravel(), minlength=rows * n).reshape(rows, n)


def rank_permutation_p(labels: np.ndarray, probs: np.ndarray, seed: int = 0) -> float:
    """One-sided p of "positives rank above negatives": the positives' sum of average ranks (the Mann-Whitney
    statistic) against its permutation distribution, exact over every split of the pairs when there are at most
    ``PERMUTATIONS``, else from that many seeded random splits (p = (1 + hits) / (1 + splits)); valid with ties."""
    ranks = rankdata(probs)
    n, n_pos = labels.size, int(labels.sum())
    observed, total = ranks[labels == 1].sum(), ranks.sum()
    size = min(n_pos, n - n_pos)  # draw the smaller class; the positives' sum follows from it

    def positive_sums(chosen_sums: np.ndarray) -> np.ndarray:
        return chosen_sums if size == n_pos else total - chosen_sums

    if math.comb(n, size) <= PERMUTATIONS:
        sums = positive_sums(np.array([ranks[list(c)].sum() for c in itertools.combinations(range(n), size)]))
        return float(np.mean(sums >= observed - 1e-9))
    picks = np.argpartition(np.random.default_rng(seed).random((PERMUTATIONS, n)), size, axis=1)[:, :size]
    sums = positive_sums(ranks[picks].sum(axis=1))
    return float((1 + np.sum(sums >= observed - 1e-9)) / (1 + PERMUTATIONS))


def learnt(labels: Sequence[int], probs: Sequence[float], threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Did a run learn its task? The guard every comparison and verdict checks before it reads a difference.

    Not learnt when the 95 % bootstrap interval of test AUROC includes 0.5 (no ranking beyond chance), or when
    the model predicts one class for at least 95 % of test pairs although the labels are less lopsided than that
    (a one-class predictor; on data with >= 95 % of one class only the AUROC interval can tell). With fewer than
    ``SMALL_CLASS`` test pairs of a class a one-sided rank permutation test (AUROC > 0.5 at the interval's tail
    level, ``rank_permutation_p``) must also reject chance: the bootstrap alone passes random scores too often
    there.

    Returns
    -------
    dict
        ``learnt`` (bool), ``reason`` (empty when learnt), ``auroc``, ``auroc_low``, ``auroc_high``,
        ``one_class_share`` (share of test pairs in the most predicted class), ``label_majority_share``.
    """
    labels, probs = check_probabilities(labels, probs)
    low, high = auroc_interval(labels, probs)
    predicted_positive = float((probs >= threshold).mean()) if probs.size else math.nan
    one_class = max(predicted_positive, 1 - predicted_positive)
    majority = float(max(labels.mean(), 1 - labels.mean())) if labels.size else math.nan
    reasons = []
    if math.isnan(low):
        reasons.append("the test set holds one class only, so AUROC is undefined")
    elif low <= 0.5 <= high:
        reasons.append(f"test AUROC interval [{low:.3f}, {high:.3f}] includes 0.5")
    elif high < 0.5:
        reasons.append(f"test AUROC interval [{low:.3f}, {high:.3f}] lies below 0.5")
    else:
        n_pos = int(labels.sum())
        fewest, name = min((n_pos, "positives"), (labels.size - n_pos, "negatives"))
        if fewest < SMALL_CLASS:
            p = rank_permutation_p(labels, probs)
            tail = (1 - LEARNT_LEVEL) / 2
            if p >= tail:
                reasons.append(f"only {fewest} test {name}: rank permutation p {p:.3f} >= {tail:g} (AUROC > 0.5 "
                               "not shown)")
    if one_class >= ONE_CLASS_SHARE and majority < ONE_CLASS_SHARE:
        label = "positive" if predicted_positive >= 0.5 else "negative"
        reasons.append(f"predicts {label} for {one_class:.0%} of test pairs")
    both = labels.size and 0 < labels.sum() < labels.size
    return {"learnt": not reasons, "reason": "; ".join(reasons),
            "auroc": float(roc_auc_score(labels, probs)) if both else math.nan,
            "auroc_low": low, "auroc_high": high, "one_class_share": one_class, "label_majority_share": majority}
