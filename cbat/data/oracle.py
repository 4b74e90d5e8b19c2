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
from cbat.data.tasks import BP_PER_TOKEN, LOOPING_TF, NO_CAUSE, make_task

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
    """Score each pair of a synthetic dataset by the planted rule of its task, read from sequence only.

    In a ``mixture`` each pair is scored by the rule of its ``meta["cause"]`` (which rule applies is given;
    whether it holds is read from the bases), so the score ranks pairs within a cause.
    """
    task = str(ds.meta["task"].iloc[0])
    if task == "mixture":
        scores = np.zeros(len(ds))
        causes = ds.meta["cause"].to_numpy()
        for cause in np.unique(causes):
            rows = np.flatnonzero(causes == cause)
            # an easy negative follows no rule; the placement scan still finds its enhancer lacks the CTCF site
            rule = "sparse_strong" if cause == NO_CAUSE else str(cause)
            scores[rows] = _rule_scores(rule, ds.subset(rows))
        return scores
    return _rule_scores(task, ds)


def _rule_scores(rule: str, ds: EPIDataset) -> np.ndarray:
    if rule == "tf_pair":
        return _tf_pair_scores(ds)
    if rule != "grammar":
        return _placement_scores(rule, scan(ds.enhancer, [LOOPING_TF])[:, 0], scan(ds.promoter, [LOOPING_TF])[:, 0])
    scores = np.zeros(len(ds))
    for cell in ds.cell_lines:
        rows = np.flatnonzero(ds.meta["cell_line"].to_numpy() == cell)
        tfs = list(CELL_LINE_TFS[cell])
        e_best = scan(ds.enhancer[rows], tfs + ["CTCF"]).max(-1)  # [n, motifs, strands]
        p_best = scan(ds.promoter[rows], tfs + ["CTCF"]).max(-1)
        tf_rule = _compatibility(cell, e_best[:, :-1].max(-1), p_best[:, :-1].max(-1))
        # CTCF rule: positive when the two sides' strand preferences are opposite
        ctcf_rule = (e_best[:, -1, 0] - e_best[:, -1, 1]) * (p_best[:, -1, 1] - p_best[:, -1, 0])
        scores[rows] = np.maximum(tf_rule, ctcf_rule)
    return scores


def _compatibility(cell: str, e_tf: np.ndarray, p_tf: np.ndarray) -> np.ndarray:
    """How much better the best compatible (enhancer TF, promoter TF) pair scores than the best incompatible
    one; ``e_tf``/``p_tf`` are best relative scores ``[n, TF]`` in the order of the cell line's vocabulary."""
    tfs = list(CELL_LINE_TFS[cell])
    partners = np.array([tfs.index(compatible_partner(cell, tf)) for tf in tfs])
    pair = np.minimum(e_tf[:, :, None], p_tf[:, None, :])  # [n, enhancer TF, promoter TF]
    compatible = np.zeros((len(tfs), len(tfs)), dtype=bool)
    compatible[np.arange(len(tfs)), partners] = True
    return pair[:, compatible].max(-1) - pair[:, ~compatible].max(-1)


def _tf_pair_scores(ds: EPIDataset) -> np.ndarray:
    scores = np.zeros(len(ds))
    for cell in ds.cell_lines:
        rows = np.flatnonzero(ds.meta["cell_line"].to_numpy() == cell)
        tfs = list(CELL_LINE_TFS[cell])
        best = lambda codes: scan(codes, tfs).max(-1).max(-1)  # noqa: E731 - [n, TF], best strand and position
        scores[rows] = _compatibility(cell, best(ds.enhancer[rows]), best(ds.promoter[rows]))
    return scores


def _placement_scores(task, e_scan, p_scan) -> np.ndarray:
    """Enhancer site strength, minus 1 when its offset to the promoter site (or cluster) is off the band."""
    planner = make_task(task)  # bands and cluster size do not depend on copies
    e_track, p_track = e_scan.max(1), p_scan.max(1)  # best strand, [n, positions]
    e_pos = e_track.argmax(-1)
    if task == "diffuse":
        # diffuse: how many weaker promoter hits lie within 8 tokens of the enhancer site
        hits = p_track >= HIT_FRACTION
        near = np.abs(np.arange(p_track.shape[1])[None] - e_pos[:, None]) <= 8 * BP_PER_TOKEN
        return e_track.max(-1) + (hits & near).sum(-1)
    # any pair of strong hits (one per copy and side) whose aligned offset lies in the positive band
    e_hits, p_hits = e_track >= HIT_FRACTION, p_track >= HIT_FRACTION
    lo, hi = planner.positive_band
    e_at, p_at = np.arange(e_track.shape[1]), np.arange(p_track.shape[1])
    in_band = np.zeros(len(e_track), dtype=bool)
    for i in range(len(e_track)):
        offset = (e_at[e_hits[i]][:, None] - p_at[p_hits[i]][None]) / BP_PER_TOKEN
        offset = offset if planner.signed else np.abs(offset)
        in_band[i] = ((offset >= lo - 1) & (offset <= hi + 1)).any()
    return e_track.max(-1) - 1.0 * ~in_band
