"""An oracle that knows the planted rules and reads them back from sequence with JASPAR PWM scans.

It shows that the benchmark's labels are recoverable from the bases (a ceiling for any model), without
peeking at ``truth``: motif identity, strand, position and counts all come from the scan.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cbat.data.dataset import EPIDataset
from cbat.data.encoding import onehot
from cbat.data.motifs import CELL_LINE_TFS, compatible_partner, get_motif
from cbat.data.tasks import BP_PER_TOKEN, make_task

HIT_FRACTION = 0.7  # a window is a hit when its score reaches this share of the motif's best possible score


def scan(codes: np.ndarray, names) -> np.ndarray:
    """Relative PWM scores ``[N, n_motifs, 2 strands, positions]`` (1 = consensus) of every motif."""
    pwms = [get_motif(n).log_odds() for n in names]
    width = max(p.shape[0] for p in pwms)
    weight = torch.zeros(2 * len(pwms), 4, width)
    scale = torch.zeros(2 * len(pwms))
    for k, pwm in enumerate(pwms):
        pwm_t = torch.tensor(pwm.T, dtype=torch.float32)  # [4, L]
        weight[2 * k, :, :pwm.shape[0]] = pwm_t
        weight[2 * k + 1, :, :pwm.shape[0]] = pwm_t.flip(0).flip(1)  # reverse complement (ACGT -> TGCA, reversed)
        scale[2 * k:2 * k + 2] = float(pwm.max(axis=1).sum())
    with torch.no_grad():
        scores = F.conv1d(onehot(codes), weight) / scale[None, :, None]
    return scores.view(len(codes), len(pwms), 2, -1).numpy()


def oracle_scores(ds: EPIDataset) -> np.ndarray:
    """Score each pair of a synthetic dataset by the planted rule of its task, read from sequence only."""
    task = str(ds.meta["task"].iloc[0])
    scores = np.zeros(len(ds))
    for cell in ds.cell_lines:
        rows = np.flatnonzero(ds.meta["cell_line"].to_numpy() == cell)
        tfs = list(CELL_LINE_TFS[cell])
        partners = [tfs.index(compatible_partner(cell, tf)) for tf in tfs]
        e_scan, p_scan = scan(ds.enhancer[rows], tfs + ["CTCF"]), scan(ds.promoter[rows], tfs + ["CTCF"])
        e_best, p_best = e_scan.max(-1), p_scan.max(-1)  # [n, motifs, strands]
        if task == "grammar":
            tf_pair = p_best[:, :-1].max(-1).argmax(-1) == np.array(partners)[e_best[:, :-1].max(-1).argmax(-1)]
            opposite = e_best[:, -1].argmax(-1) != p_best[:, -1].argmax(-1)
            scores[rows] = np.maximum(tf_pair, opposite)
        else:
            scores[rows] = _placement_scores(task, e_scan[:, :-1], p_scan[:, :-1], partners)
    return scores


def _placement_scores(task, e_scan, p_scan, partners) -> np.ndarray:
    """Enhancer site strength, minus 1 when its offset to the partner's site (or cluster) is off the band."""
    planner = make_task(task)
    n = len(e_scan)
    e_strand_best = e_scan.max(2)                       # [n, motifs, positions]
    e_tf = e_strand_best.max(-1).argmax(-1)
    e_score = e_strand_best.max(-1).max(-1)
    e_pos = e_strand_best[np.arange(n), e_tf].argmax(-1)
    partner_track = p_scan.max(2)[np.arange(n), np.array(partners)[e_tf]]  # [n, positions]
    if planner.cluster > 1:
        hits = partner_track >= HIT_FRACTION
        positions = np.arange(partner_track.shape[1])
        p_pos = (hits * positions).sum(-1) / np.maximum(hits.sum(-1), 1)
    else:
        p_pos = partner_track.argmax(-1)
    offset = (e_pos - p_pos) / BP_PER_TOKEN
    offset = offset if planner.signed else np.abs(offset)
    lo, hi = planner.positive_band
    return e_score - 1.0 * ~((offset >= lo - 1) & (offset <= hi + 1))
