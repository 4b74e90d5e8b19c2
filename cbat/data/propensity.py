"""The propensity-only baseline (Mao, Kostka & Chikina 2018): no interaction, only each element's own
positive rate in training. High scores under a random pair split and chance under a chromosome split are
the signature of pair leakage."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from cbat.data.dataset import EPIDataset


def propensity_scores(ds: EPIDataset, train, test, keys=("enhancer_id", "promoter_id"),
                      prior_weight: float = 1.0) -> np.ndarray:
    """Score test pairs by the training positive rate of their enhancer and promoter.

    Parameters
    ----------
    ds : EPIDataset
        Any dataset with ``enhancer_id`` / ``promoter_id`` in ``meta`` (loaders fill them from loci or a
        sequence hash, so identical sequences share an id).
    train, test : array of int
        Pair indices.
    keys : tuple of str
        Meta columns whose propensities are averaged.
    prior_weight : float
        Pseudo-count pulling rare elements toward the training base rate; unseen elements get the base rate.

    Returns
    -------
    numpy.ndarray
        One score per test pair.
    """
    train, test = np.asarray(train), np.asarray(test)
    y = ds.labels[train].astype(float)
    base = y.mean() if y.size else 0.5
    scores = np.zeros(len(test))
    for key in keys:
        table = ds.meta[key].iloc[train].to_frame("element").assign(y=y).groupby("element")["y"].agg(["sum", "count"])
        rate = (table["sum"] + prior_weight * base) / (table["count"] + prior_weight)
        scores += ds.meta[key].iloc[test].map(rate).fillna(base).to_numpy(dtype=float)
    return scores / len(keys)


def propensity_baseline(ds: EPIDataset, split) -> dict[str, float]:
    """AUROC and AUPR of the propensity-only model on ``split.test`` trained on ``split.train``."""
    return ranking_on_test("propensity_baseline", ds.labels[split.test], propensity_scores(ds, split.train, split.test))


def ranking_on_test(name: str, labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUROC and AUPR of a no-sequence baseline's test scores (one error message for every baseline)."""
    if labels.min() == labels.max():
        raise ValueError(f"{name}: the test set holds a single class; AUROC is undefined")
    return {"auroc": float(roc_auc_score(labels, scores)), "aupr": float(average_precision_score(labels, scores))}
