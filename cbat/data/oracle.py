"""An oracle that knows the planted rules and reads them back from sequence with JASPAR PWM scans.

It shows that the benchmark's labels are recoverable from the bases (a ceiling for any model), without
peeking at ``truth``: motif identity, strand and counts all come from the scan.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cbat.data.dataset import EPIDataset
from cbat.data.encoding import onehot
from cbat.data.motifs import CELL_LINE_TFS, compatible_partner, get_motif

HIT_FRACTION = 0.7  # a window is a hit when its score reaches this share of the motif's best possible score


def scan(codes: np.ndarray, names) -> tuple[np.ndarray, np.ndarray]:
    """Relative PWM scores of every motif on both strands.

    Returns
    -------
    best : numpy.ndarray
        ``[N, n_motifs, 2]`` best relative score (1 = consensus) on the + and - strand.
    hits : numpy.ndarray
        ``[N, n_motifs]`` number of windows (either strand) scoring at least ``HIT_FRACTION``.
    """
    pwms = [get_motif(n).log_odds() for n in names]
    width = max(p.shape[0] for p in pwms)
    weight = torch.zeros(2 * len(pwms), 4, width)
    scale = torch.zeros(2 * len(pwms))
    for k, pwm in enumerate(pwms):
        pwm_t = torch.tensor(pwm.T, dtype=torch.float32)  # [4, L]
        weight[2 * k, :, :pwm.shape[0]] = pwm_t
        weight[2 * k + 1, :, :pwm.shape[0]] = pwm_t.flip(0).flip(1)  # reverse complement: ACGT -> TGCA, reversed
        scale[2 * k:2 * k + 2] = float(pwm.max(axis=1).sum())
    with torch.no_grad():
        scores = F.conv1d(onehot(codes), weight) / scale[None, :, None]
    scores = scores.view(len(codes), len(pwms), 2, -1)
    best = scores.amax(-1).numpy()
    hits = (scores >= HIT_FRACTION).sum((-1, -2)).numpy()
    return best, hits


def oracle_scores(ds: EPIDataset) -> np.ndarray:
    """Score each pair of a synthetic dataset by the planted rule of its task, read from sequence only."""
    task = str(ds.meta["task"].iloc[0])
    scores = np.zeros(len(ds))
    for cell in ds.cell_lines:
        rows = np.flatnonzero(ds.meta["cell_line"].to_numpy() == cell)
        tfs = list(CELL_LINE_TFS[cell])
        e_best, _ = scan(ds.enhancer[rows], tfs + ["CTCF"])
        p_best, p_hits = scan(ds.promoter[rows], tfs + ["CTCF"])
        e_tf = e_best[:, :-1].max(-1).argmax(-1)
        partner = np.array([tfs.index(compatible_partner(cell, tf)) for tf in tfs])[e_tf]
        if task == "diffuse":
            # how many compatible weak sites the promoter holds for the enhancer's TF, against the others
            share = p_hits[np.arange(len(rows)), partner] / np.maximum(p_hits[:, :-1].sum(-1), 1)
            scores[rows] = share
            continue
        # the best compatible pair: both of its sites must score well
        partners = [tfs.index(compatible_partner(cell, tf)) for tf in tfs]
        tf_pair = np.minimum(e_best[:, :-1].max(-1), p_best[:, partners].max(-1)).max(-1)
        if task == "grammar":
            tf_pair = (p_best[:, :-1].max(-1).argmax(-1) == partner).astype(float)
            opposite = e_best[:, -1].argmax(-1) != p_best[:, -1].argmax(-1)
            tf_pair = np.maximum(tf_pair, opposite)
        scores[rows] = tf_pair
    return scores
