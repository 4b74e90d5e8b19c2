"""Score attributions against the planted truth of the synthetic benchmark.

Three figures, each computed per sequence side:

- **position recovery**: ROC-AUC and PR-AUC (average precision) of the per-base attribution magnitude
  (|attribution|: a motif can drive the logit either way through attention and gates), separating
  positions of planted *causal* motifs from pure background, per sequence and then averaged. Labels follow the
  tfomics ``interpretability_performance`` convention (Koo lab): a motif position is positive when the
  generating distribution carries information there (``2 + sum p log2 p > 0.01`` bits); positions of planted
  motifs below that, and decoy sites, are left out; everything else is background. Taking the magnitude follows
  the later tfomics code (``np.abs(np.sum(score, axis=2))``); ``absolute=False`` gives the signed variant.
- **motif identity**: the fraction of planted causal motifs whose top-scoring overlapping seqlet is matched to
  the right JASPAR matrix **or to a member of its family** (``family_ids`` of the seqlet table: matrices at least
  ``diagnostics.motifs.FAMILY_SIMILARITY`` similar to the match). Ids compare by base id, any version
  (``MA0139.1`` and ``MA0139.2`` are both CTCF's matrix). A PWM scan cannot tell near-identical matrices apart,
  so a family match counts as right; ``motif_exact_fraction`` gives the stricter figure beside it. A causal
  motif without an overlapping seqlet counts as a miss.
- **decoys vs causal**: each planted site's mean attribution magnitude per base (a mean, so motif length does
  not decide); ROC-AUC of causal (1) vs decoy (0) sites, and the two means. Decoys should score lower.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from cbat.data.motifs import get_motif

SIDES = ("enhancer", "promoter")
INFO_THRESHOLD = 0.01  # bits, the tfomics default


def site_information(motif_name: str, strand: str, strength: float = 1.0) -> np.ndarray:
    """Information (bits vs uniform) per position of the distribution a planted site was drawn from.

    Mirrors :func:`cbat.data.background.sample_sites`: each base is drawn from the JASPAR frequencies raised
    to ``strength`` and renormalised; ``-`` sites are reverse complemented, which reverses the positions.
    """
    probs = get_motif(motif_name).probs ** strength
    probs = probs / probs.sum(axis=1, keepdims=True)
    info = 2.0 + (probs * np.log2(probs + 1e-10)).sum(1)
    return info[::-1] if strand == "-" else info


def planted_labels(truth: pd.DataFrame, pair_indices, side: str, length: int) -> np.ndarray:
    """Per-base labels ``[n, length]``: 1 informative causal position, 0 pure background, -1 left out."""
    pair_indices = np.asarray(pair_indices)
    labels = np.zeros((len(pair_indices), length), dtype=np.int8)
    row_of = {int(p): i for i, p in enumerate(pair_indices)}
    planted = truth[(truth["side"] == side) & truth["pair_index"].isin(row_of)]
    for site in planted.itertuples():
        row, span = row_of[int(site.pair_index)], slice(int(site.start), int(site.end))
        if site.role != "causal":
            labels[row, span] = -1
            continue
        informative = site_information(site.motif_name, site.strand, getattr(site, "strength", 1.0))
        labels[row, span] = np.where(informative > INFO_THRESHOLD, 1, -1)[:int(site.end) - int(site.start)]
    return labels


def position_recovery(scores: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Per-sequence ROC-AUC and PR-AUC of ``scores`` at positive vs background positions.

    Sequences without a positive position are skipped.

    Returns
    -------
    DataFrame with ``row``, ``auroc``, ``auprc``, ``n_positive``.
    """
    rows = []
    for i, (score, label) in enumerate(zip(np.asarray(scores), labels)):
        keep = label >= 0
        y, s = label[keep], score[keep]
        if y.sum() == 0 or y.sum() == len(y):
            continue
        rows.append({"row": i, "auroc": roc_auc_score(y, s), "auprc": average_precision_score(y, s),
                     "n_positive": int(y.sum())})
    return pd.DataFrame(rows, columns=["row", "auroc", "auprc", "n_positive"])


def site_scores(scores: np.ndarray, truth: pd.DataFrame, pair_indices, side: str) -> pd.DataFrame:
    """Every planted site of the attributed pairs on ``side`` with its mean attribution per base (``site_score``)."""
    pair_indices = np.asarray(pair_indices)
    row_of = {int(p): i for i, p in enumerate(pair_indices)}
    sites = truth[(truth["side"] == side) & truth["pair_index"].isin(row_of)].copy()
    sites["site_score"] = [float(scores[row_of[int(s.pair_index)], int(s.start):int(s.end)].mean())
                           for s in sites.itertuples()]
    return sites


def motif_identity(seqlets: pd.DataFrame, truth: pd.DataFrame, pair_indices) -> pd.DataFrame:
    """For each planted causal motif: the seqlet that covers it and whether that names the right matrix.

    ``seqlets`` is the table of :func:`diagnostics.motifs.annotate_seqlets` (``loop`` = pair index). The site's
    seqlet is the one overlapping it over the most bases (ties: the larger |score|), not the strongest of all
    that touch it: a neighbour's window that reaches a few bases into the site's flank names the neighbour.
    ``match`` is ``"exact"`` (same base id), ``"family"`` (the planted id is in the match's family), ``"wrong"``
    or ``"none"`` (the covering seqlet has no significant match, or no seqlet overlaps the site); ``correct``
    counts exact and family matches.
    """
    causal = truth[(truth["role"] == "causal") & truth["pair_index"].isin(set(map(int, pair_indices)))]
    rows = []
    for site in causal.itertuples():
        mine = seqlets[(seqlets["loop"] == site.pair_index) & (seqlets["side"] == site.side)
                       & (seqlets["start"] < site.end) & (seqlets["end"] > site.start)]
        top = None
        if len(mine):
            overlap = np.minimum(mine["end"], site.end) - np.maximum(mine["start"], site.start)
            order = np.lexsort((-mine["score"].abs().to_numpy(), -overlap.to_numpy()))
            top = mine.iloc[order[0]]
        match = "none"
        if top is not None and top["matched"]:
            family = {_base_id(i) for i in str(top.get("family_ids") or top["motif_id"]).split(";")}
            match = ("exact" if _base_id(top["motif_id"]) == _base_id(site.motif_id)
                     else "family" if _base_id(site.motif_id) in family else "wrong")
        rows.append({"pair_index": int(site.pair_index), "side": site.side, "motif_id": site.motif_id,
                     "motif_name": site.motif_name, "found": top is not None,
                     "seqlet_motif_id": top["motif_id"] if top is not None else None,
                     "seqlet_label": top.get("match_label") if top is not None else None,
                     "match": match, "correct": match in ("exact", "family")})
    return pd.DataFrame(rows, columns=["pair_index", "side", "motif_id", "motif_name", "found", "seqlet_motif_id",
                                       "seqlet_label", "match", "correct"])


def _base_id(motif_id: str) -> str:
    return str(motif_id).split(".")[0]


def recovery_scores(scores: dict[str, np.ndarray], truth: pd.DataFrame, pair_indices,
                    seqlets: pd.DataFrame | None = None, absolute: bool = True) -> dict[str, float]:
    """All recovery figures for a set of attributed pairs, as one flat dict.

    Parameters
    ----------
    scores : dict
        ``{"enhancer": [n, Le], "promoter": [n, Lp]}`` per-base attributions, row i = ``pair_indices[i]``.
    truth : DataFrame
        The dataset's ``truth`` table (``pair_index`` indexes the dataset).
    pair_indices : array of int
        Dataset indices of the attributed pairs.
    seqlets : DataFrame, optional
        The annotated seqlet table; adds ``motif_id_fraction`` (exact or family match),
        ``motif_exact_fraction`` and ``seqlet_found_fraction``.
    absolute : bool
        Score positions and sites by |attribution| (default) or by the signed attribution.

    Returns
    -------
    dict
        ``{side}_auroc``, ``{side}_auprc``, ``{side}_n`` (sequences scored), ``auroc``/``auprc`` (both sides
        pooled over sequences), ``causal_vs_decoy_auroc``, ``causal_mean``, ``decoy_mean``,
        ``decoys_lower`` (1.0 when the decoy mean is below the causal mean), and the seqlet figures.
    """
    if truth is None:
        raise ValueError("recovery_scores: the dataset has no ground truth (only synthetic data carry one)")
    out: dict[str, float] = {}
    per_sequence, sites = [], []
    for side in SIDES:
        side_scores = np.abs(scores[side]) if absolute else np.asarray(scores[side])
        result = position_recovery(side_scores, planted_labels(truth, pair_indices, side, side_scores.shape[1]))
        out[f"{side}_auroc"], out[f"{side}_auprc"] = result["auroc"].mean(), result["auprc"].mean()
        out[f"{side}_n"] = float(len(result))
        per_sequence.append(result)
        sites.append(site_scores(side_scores, truth, pair_indices, side))
    pooled = pd.concat(per_sequence)
    out["auroc"], out["auprc"] = pooled["auroc"].mean(), pooled["auprc"].mean()
    sites = pd.concat(sites)
    is_causal = (sites["role"] == "causal").to_numpy()
    out["causal_mean"] = sites.loc[is_causal, "site_score"].mean()
    out["decoy_mean"] = sites.loc[~is_causal, "site_score"].mean()
    out["causal_vs_decoy_auroc"] = (roc_auc_score(is_causal, sites["site_score"])
                                    if 0 < is_causal.sum() < len(is_causal) else np.nan)
    # NaN, not a "no", when either mean is missing (no site scored: no loop, or no decoy in these pairs)
    out["decoys_lower"] = (float(out["decoy_mean"] < out["causal_mean"])
                           if np.isfinite(out["decoy_mean"]) and np.isfinite(out["causal_mean"]) else np.nan)
    if seqlets is not None:
        identity = motif_identity(seqlets, truth, pair_indices)
        out["motif_id_fraction"] = identity["correct"].mean() if len(identity) else np.nan
        out["motif_exact_fraction"] = (identity["match"] == "exact").mean() if len(identity) else np.nan
        out["seqlet_found_fraction"] = identity["found"].mean() if len(identity) else np.nan
    return {key: float(value) for key, value in out.items()}


POSITION_TARGET, MOTIF_TARGET = 0.85, 0.8  # a cause counts as recovered at both (issue 17's targets)
# Why a planted cause may not be recovered by attribution, per cause of the ``mixture`` benchmark.
CAUSE_NOTES = {
    "long_range": "placement decides: positives carry the same motifs as their negatives, only farther apart than "
                  "a local window sees, so attribution can point at the motifs but not at the distance that decides",
    "diffuse": "many weak sites share the logit: each scores little, so few pass the seqlet threshold, and weak "
               "sites rarely reach a significant PWM match",
    "sparse_strong": "one strong pair decides: a miss means the model did not learn these motifs",
    "tf_pair": "identity decides (a compatible TF pair): partners that JASPAR cannot tell apart blur the name",
}


def recovery_by_group(scores: dict[str, np.ndarray], truth: pd.DataFrame, pair_indices, groups,
                      seqlets: pd.DataFrame | None = None, scored=None, outcomes=None) -> pd.DataFrame:
    """:func:`recovery_scores` per group of pairs (a planted cause, else the task), with a verdict and a reason.

    Parameters
    ----------
    scores, truth, pair_indices, seqlets
        As in :func:`recovery_scores` (row i of ``scores`` is pair ``pair_indices[i]``).
    groups : array of str
        The group of each attributed pair (``meta["cause"]`` of the ``mixture`` benchmark, else ``meta["task"]``).
    scored : array of bool, optional
        Which pairs are scored (the true-positive loops); default all. A group with none scored gets a row with
        ``n_loops`` 0, no figures, ``recovered`` False and why, naming its loops' ``outcomes`` when given.

    Returns
    -------
    DataFrame
        One row per group: ``group``, ``n_loops``, the figures of :func:`recovery_scores`, ``recovered`` (position
        ROC-AUC >= ``POSITION_TARGET`` and, with seqlets, motif id or family for >= ``MOTIF_TARGET`` of causal
        motifs) and ``why`` (what fell short, and the cause's known reason) when it is not.
    """
    pair_indices, groups = np.asarray(pair_indices), np.asarray(groups)
    scored = np.ones(len(groups), bool) if scored is None else np.asarray(scored, bool)
    rows = []
    for group in sorted(set(groups)):
        mine = (groups == group) & scored
        if not mine.any():
            chosen = groups == group
            seen = (", ".join(f"{n} {o}" for o, n in pd.Series(np.asarray(outcomes)[chosen]).value_counts().items())
                    if outcomes is not None else f"{int(chosen.sum())}")
            rows.append({"group": group, "n_loops": 0, "recovered": False,
                         "why": f"no true-positive loop among its chosen loops ({seen}): nothing to score"})
            continue
        figures = recovery_scores({side: s[mine] for side, s in scores.items()}, truth, pair_indices[mine], seqlets)
        short = []
        if not figures["auroc"] >= POSITION_TARGET:
            short.append(f"position ROC-AUC {figures['auroc']:.2f} < {POSITION_TARGET}")
        if seqlets is not None and not figures["motif_id_fraction"] >= MOTIF_TARGET:
            short.append(f"right motif family for {figures['motif_id_fraction']:.0%} < {MOTIF_TARGET:.0%} of "
                         "causal motifs")
        why = "; ".join(short + ([CAUSE_NOTES[group]] if short and group in CAUSE_NOTES else []))
        rows.append({"group": group, "n_loops": int(mine.sum()), **figures, "recovered": not short, "why": why})
    return pd.DataFrame(rows)


# --- a small scored model ------------------------------------------------------------------------

def seed_stems_with_motifs(model, motif_names, scale: float = 0.5) -> None:
    """Start both convolution stems of a ``PRISMBackbone`` from JASPAR PWMs (in place).

    Channel ``2k`` holds motif k's log-odds and channel ``2k + 1`` its reverse complement, cropped to the most
    informative ``stem_kernel`` columns, with a bias that lets only good matches through the GELU. Filters
    found from scratch on a pair rule (no single sequence predicts the label) take far longer than a CPU
    test allows; seeded filters leave the model to learn the interaction, which is what attribution explains.
    """
    import torch

    from cbat.data.motifs import get_motif

    kernel = model.stem_e.conv.kernel_size[0]
    if 2 * len(motif_names) > model.stem_e.conv.out_channels:
        raise ValueError(f"{len(motif_names)} motifs need {2 * len(motif_names)} stem channels; "
                         f"the model has {model.stem_e.conv.out_channels}")
    with torch.no_grad():
        for stem in (model.stem_e, model.stem_p):
            for k, name in enumerate(motif_names):
                probs = get_motif(name).probs  # [width, 4]
                log_odds = np.log2(probs / 0.25).T
                if log_odds.shape[1] > kernel:
                    info = (probs * np.log2(probs / 0.25)).sum(1)
                    first = int(np.argmax(np.convolve(info, np.ones(kernel), "valid")))
                    log_odds = log_odds[:, first:first + kernel]
                weights = np.zeros((4, kernel))
                offset = (kernel - log_odds.shape[1]) // 2
                weights[:, offset:offset + log_odds.shape[1]] = log_odds
                for channel, matrix in ((2 * k, weights), (2 * k + 1, weights[::-1, ::-1])):
                    stem.conv.weight[channel] = torch.tensor(scale * matrix.copy(), dtype=stem.conv.weight.dtype)
                    stem.conv.bias[channel] = -0.6 * scale * matrix.max(0).sum()


def train_probe_model(dataset, train_index, cfg=None, epochs: int = 3, lr: float = 3e-3, batch_size: int = 32,
                      seed: int = 0, seed_motifs: bool = True):
    """A small CBAT model trained (AdamW + BCE) on ``dataset`` for attribution scoring.

    With ``seed_motifs`` the stems start from the PWMs of the motifs planted in ``dataset``
    (:func:`seed_stems_with_motifs`); without, the model starts from scratch as a sweep's does. Everything is
    trained. Deterministic for a seed on CPU.

    Parameters
    ----------
    dataset : cbat.data.EPIDataset
        A synthetic dataset (its ``truth`` names the motifs to seed).
    train_index : array of int
        Pairs to train on.
    cfg : cbat.CBATConfig, optional
        Default: the baseline preset with ``d_model=32``.

    Returns
    -------
    torch.nn.Module in eval mode.
    """
    import dataclasses

    import torch

    import cbat

    cfg = cfg if cfg is not None else dataclasses.replace(cbat.preset("baseline"), d_model=32)
    model = cbat.build_model(cfg, seed=seed)
    names = sorted(set(dataset.truth["motif_name"])) if dataset.truth is not None else []
    if seed_motifs:
        seed_stems_with_motifs(model, names[:cfg.d_model // 2])
    labels = torch.tensor(dataset.labels, dtype=torch.float32)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(epochs):
        for batch in np.array_split(rng.permutation(train_index), max(1, len(train_index) // batch_size)):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(*dataset.onehot(batch)), labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()
