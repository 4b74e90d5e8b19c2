"""The distance-only baseline: logistic regression on log genomic distance, no sequence at all.

Within a cell type, distance alone is competitive with TargetFinder (BENGI, Moore et al. 2020), so a
sequence model on data with coordinates means something only when it beats this. Beside
:mod:`cbat.data.propensity`, the other no-sequence baseline.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from cbat.data.dataset import EPIDataset
from cbat.data.loaders import canonical_chrom
from cbat.data.propensity import ranking_on_test

_LOCI = ("enhancer_start", "enhancer_end", "promoter_start", "promoter_end")


def genomic_distance(ds: EPIDataset) -> Optional[np.ndarray]:
    """Enhancer-centre to promoter-centre distance (bp) per pair, or None when the data carry no coordinates.

    Coordinates come from ``meta`` (coordinate loaders and the synthetic benchmark fill
    ``enhancer_start/end, promoter_start/end``); failing those, a published distance column
    (``enhancer_distance_to_promoter``) is used. Pairs on different chromosomes get the largest distance seen.
    """
    meta = ds.meta
    if all(c in meta.columns for c in _LOCI):
        loci = {c: pd.to_numeric(meta[c], errors="coerce").to_numpy(dtype=np.float64) for c in _LOCI}
        distance = np.abs((loci["enhancer_start"] + loci["enhancer_end"]) / 2
                          - (loci["promoter_start"] + loci["promoter_end"]) / 2)
        if {"enhancer_chrom", "promoter_chrom"} <= set(meta.columns):
            # compared in one spelling: " chr1" (a space after a comma) or "1" is chr1
            trans = canonical_chrom(meta["enhancer_chrom"]) != canonical_chrom(meta["promoter_chrom"])
            distance[trans] = distance[~trans].max() if (~trans).any() else 0.0
        return distance
    if "enhancer_distance_to_promoter" in meta.columns:
        return np.abs(pd.to_numeric(meta["enhancer_distance_to_promoter"], errors="coerce").to_numpy(dtype=np.float64))
    return None


def distance_scores(ds: EPIDataset, train, test) -> np.ndarray:
    """Score test pairs by a logistic regression on ``log1p(distance)`` fitted to the training pairs.

    Raises ValueError when the data carry no coordinates or training holds a single class.
    """
    distance = genomic_distance(ds)
    if distance is None:
        raise ValueError("distance baseline: the data carry no coordinates (meta needs enhancer_start/end and "
                         "promoter_start/end, or enhancer_distance_to_promoter)")
    train, test = np.asarray(train), np.asarray(test)
    y = ds.labels[train]
    if y.min() == y.max():
        raise ValueError("distance baseline: the training pairs hold a single class")
    feature = np.log1p(distance)[:, None]
    centre, scale = feature[train].mean(), feature[train].std() or 1.0
    model = LogisticRegression().fit((feature[train] - centre) / scale, y)
    return model.predict_proba((feature[test] - centre) / scale)[:, 1]


def distance_baseline(ds: EPIDataset, split) -> dict[str, float]:
    """AUROC and AUPR of the distance-only model on ``split.test`` trained on ``split.train``."""
    return ranking_on_test("distance_baseline", ds.labels[split.test], distance_scores(ds, split.train, split.test))
