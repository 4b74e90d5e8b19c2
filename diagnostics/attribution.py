"""Attribution of predicted loops: loop selection, Captum IG with dinucleotide-shuffled references, checks.

Every attribution explains the **logit** of ``model(enhancer, promoter)`` with both inputs attributed at once
(Captum receives the tuple ``(enhancer, promoter)``). The default is Integrated Gradients whose reference is a
dinucleotide shuffle of the input (an Altschul-Erikson Eulerian shuffle), averaged over several shuffles, with
the steps chosen per loop: doubled from 50 until Captum's convergence delta is below 0.05 logit units (up to
800). Saliency and in-silico mutagenesis (ISM) are cross-checks: ISM at every seqlet base and a background
sample of every attributed loop, and a flag where IG disagrees with ISM but saliency agrees. DeepLIFT is
deliberately not offered as a default: its rescale rules are unreliable through softmax attention, products and
gates (Captum issues 519 and 1085).

Attributions come back as arrays ``[n_loops, 4, length]`` per side. ``per_position`` turns them into one score
per base (the sum over channels, which keeps IG's completeness), placed on the observed base by
``project_observed``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from captum.attr import IntegratedGradients, Saliency
from tqdm.auto import tqdm

from cbat.data.encoding import ONEHOT_TABLE
from cbat.data.tasks import NO_CAUSE
from cbat.metrics import DEFAULT_THRESHOLD
from diagnostics.motifs import MAX_SEQLETS

DELTA_THRESHOLD = 0.05  # |IG convergence delta| in logit units above which a loop is flagged
MAX_STEPS = 800  # cap of the adaptive doubling: 50 -> 100 -> 200 -> 400 -> 800
MIN_AGREEMENT = 0.3  # Pearson with ISM below which a method "disagrees"


# --- loops ---------------------------------------------------------------------------------------

def select_loops(predictions: pd.DataFrame, top: int = 10, by: str | None = "auto",
                 threshold: float | None = None) -> pd.DataFrame:
    """Pick predicted loops: the highest-probability pairs, per cell line, per planted cause, or pooled.

    Parameters
    ----------
    predictions : DataFrame
        Columns ``pair_index``, ``prob`` (and ``cell_line``, ``label``, ``logit`` when available), as in a run's
        ``predictions.parquet``.
    top : int
        Loops kept per group (or in total when ``by`` is None).
    by : "auto", "cell_line", "cause" or None
        Rank within each cell line; within each planted cause (the ``cause`` column of the synthetic benchmark:
        the top pairs among each cause's positives and its matched negatives, so every cause is scored, not only
        those the model is most confident about; easy negatives of no cause are left out); or over all pairs.
        "auto": per cause when the predictions carry planted causes, else per cell line.
    threshold : float, optional
        Keep only pairs with ``prob >= threshold`` (predicted loops); ``top`` still caps the count. It is also
        the decision threshold of ``outcome`` (default ``cbat.metrics.DEFAULT_THRESHOLD``, 0.5).

    Returns
    -------
    DataFrame
        The chosen rows sorted by group and rank, with ``rank`` (1 = most confident within its group) and ``outcome``:
        ``"TP"``/``"FP"`` for pairs at or above the decision threshold and ``"FN"``/``"TN"`` below it (a group
        with fewer confident pairs than ``top`` reaches below it) when labels are known, else ``"predicted"`` /
        ``"not predicted"``.
    """
    missing = {"pair_index", "prob"} - set(predictions.columns)
    if missing:
        raise ValueError(f"predictions: missing column(s) {sorted(missing)}; expected pair_index and prob")
    if top < 1:
        raise ValueError(f"top: expected a positive number of loops, got {top}")
    if by not in ("auto", "cell_line", "cause", None):
        raise ValueError(f"by: expected 'auto', 'cell_line', 'cause' or None, got {by!r}")
    if by == "auto":
        planted = "cause" in predictions and bool((predictions["cause"] != NO_CAUSE).any())
        by = "cause" if planted else "cell_line"
    if by == "cause" and "cause" not in predictions:
        raise ValueError("predictions: by='cause' needs a cause column (the synthetic benchmark's planted causes)")
    table = predictions.copy()
    if "cell_line" not in table:
        table["cell_line"] = "all"
    if by == "cause":
        table = table[table["cause"] != NO_CAUSE]
    if threshold is not None:
        table = table[table["prob"] >= threshold]
    table = table.sort_values(["prob", "pair_index"], ascending=[False, True], kind="stable")
    groups = table.groupby(by, sort=True) if by else [("all", table)]
    chosen = []
    for _, group in groups:
        group = group.head(top).copy()
        group["rank"] = np.arange(1, len(group) + 1)
        chosen.append(group)
    if not chosen:
        return table.assign(rank=pd.Series(dtype=int), outcome=pd.Series(dtype=str))
    out = pd.concat(chosen, ignore_index=True)
    called = out["prob"].to_numpy() >= (DEFAULT_THRESHOLD if threshold is None else threshold)
    if "label" in out:
        positive = out["label"].astype(int).to_numpy() == 1
        out["outcome"] = np.where(called, np.where(positive, "TP", "FP"), np.where(positive, "FN", "TN"))
    else:
        out["outcome"] = np.where(called, "predicted", "not predicted")
    return out


def predict(model: torch.nn.Module, enhancer: torch.Tensor, promoter: torch.Tensor,
            batch_size: int = 64) -> np.ndarray:
    """Logits of ``model`` on one-hot inputs, batched, in eval mode (mode and device restored after)."""
    with _evaluating(model) as device, torch.no_grad():
        out = [model(enhancer[i:i + batch_size].to(device), promoter[i:i + batch_size].to(device)).float().cpu()
               for i in range(0, len(enhancer), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


# --- sequences -----------------------------------------------------------------------------------

def onehot_to_codes(onehot: np.ndarray | torch.Tensor) -> np.ndarray:
    """``[..., 4, L]`` one-hot -> uint8 codes ``[..., L]`` of :mod:`cbat.data.encoding` (IUPAC rows kept).

    Each column maps to the nearest row of the encoding's one-hot table, so ``N`` (0.25 each) and ambiguity
    codes round-trip exactly through :func:`codes_to_onehot`.
    """
    x = onehot.detach().cpu().numpy() if torch.is_tensor(onehot) else np.asarray(onehot)
    columns = np.moveaxis(x, -2, -1)[..., None, :]  # [..., L, 1, 4]
    return ((columns - ONEHOT_TABLE) ** 2).sum(-1).argmin(-1).astype(np.uint8)


def codes_to_onehot(codes: np.ndarray) -> np.ndarray:
    """uint8 codes ``[..., L]`` -> float32 one-hot ``[..., 4, L]`` (the encoding's documented rule)."""
    return np.moveaxis(ONEHOT_TABLE[np.asarray(codes)], -1, -2)


def dinucleotide_shuffle(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random sequence with exactly the dinucleotide counts of ``codes`` (Altschul & Erikson 1985).

    The sequence is an Eulerian path in the multigraph whose vertices are symbols and whose edges are its
    dinucleotides. Following Altschul & Erikson (and uShuffle, Jiang et al. 2008): draw a random arborescence of
    "last exits" towards the final symbol (Wilson's loop-erased random walk over edge instances), shuffle every
    other exit, then walk. First and last symbol and every dinucleotide count are preserved.

    Parameters
    ----------
    codes : ndarray of int, shape (L,)
        Symbol codes (any small non-negative integers, e.g. those of :mod:`cbat.data.encoding`).
    rng : numpy.random.Generator
        Source of randomness; the same seed gives the same shuffle.

    Returns
    -------
    ndarray, shape (L,)
    """
    codes = np.asarray(codes)
    if codes.ndim != 1:
        raise ValueError(f"dinucleotide_shuffle: expected one sequence of codes [L], got shape {codes.shape}")
    if len(codes) < 3:
        return codes.copy()
    exits = {int(s): list(codes[1:][codes[:-1] == s]) for s in np.unique(codes[:-1])}
    last_symbol = int(codes[-1])
    # Wilson's algorithm: a uniformly random spanning arborescence rooted at the last symbol.
    in_tree, last_exit = {last_symbol}, {}
    for start in exits:
        vertex, path_next = start, {}
        while vertex not in in_tree:
            path_next[vertex] = int(rng.integers(len(exits[vertex])))
            vertex = int(exits[vertex][path_next[vertex]])
        vertex = start
        while vertex not in in_tree:
            in_tree.add(vertex)
            last_exit[vertex] = path_next[vertex]
            vertex = int(exits[vertex][path_next[vertex]])
    order = {}
    for vertex, targets in exits.items():
        targets = list(targets)
        fixed = targets.pop(last_exit[vertex]) if vertex in last_exit else None
        targets = [targets[i] for i in rng.permutation(len(targets))]
        order[vertex] = targets + ([fixed] if fixed is not None else [])
    out = np.empty_like(codes)
    out[0] = codes[0]
    cursor = {vertex: 0 for vertex in order}
    for i in range(1, len(codes)):
        vertex = int(out[i - 1])
        out[i] = order[vertex][cursor[vertex]]
        cursor[vertex] += 1
    return out


def shuffled_references(onehot: torch.Tensor, n_shuffles: int, seed: int = 0, keys=None) -> torch.Tensor:
    """Dinucleotide-shuffled references for each sequence: ``[B, 4, L]`` -> ``[B * n_shuffles, 4, L]``.

    Rows ``b * n_shuffles ... (b + 1) * n_shuffles - 1`` are the shuffles of sequence ``b``, drawn from a stream
    of their own seeded by ``(seed, keys[b])`` (``keys``: e.g. pair indices; default the positions), so a loop's
    references do not depend on which other loops are attributed with it.
    """
    codes = onehot_to_codes(onehot)
    keys = np.arange(len(codes)) if keys is None else np.asarray(keys, dtype=np.int64)
    if len(keys) != len(codes):
        raise ValueError(f"keys: {len(keys)} for {len(codes)} sequences")
    shuffles = []
    for seq, key in zip(codes, keys):
        rng = np.random.default_rng([seed, int(key)])
        shuffles += [dinucleotide_shuffle(seq, rng) for _ in range(n_shuffles)]
    return torch.from_numpy(codes_to_onehot(np.stack(shuffles))).to(onehot.dtype)


# --- attribution ---------------------------------------------------------------------------------

@dataclass
class Attribution:
    """Attributions of a batch of loops on the logit.

    Attributes
    ----------
    enhancer, promoter : ndarray, shape (n, 4, L)
        Attribution per base and channel (IG averaged over references, or saliency x input).
    delta : ndarray, shape (n,) or None
        IG convergence delta of the averaged attribution: sum(attribution) - (logit - mean reference logit).
    logit, reference_logit : ndarray, shape (n,) or None
        The input's logit and the mean logit of its references.
    steps : ndarray of int, shape (n,) or None
        IG steps each loop was integrated with (adaptive IG doubles them until the delta is small).
    method : str
    """

    enhancer: np.ndarray
    promoter: np.ndarray
    delta: np.ndarray | None = None
    logit: np.ndarray | None = None
    reference_logit: np.ndarray | None = None
    steps: np.ndarray | None = None
    method: str = "integrated_gradients"

    def convergence_table(self, delta_threshold: float = DELTA_THRESHOLD) -> pd.DataFrame:
        """Per loop: steps, logit, reference logit, delta, relative delta and ``flagged`` (|delta| > threshold).

        The relative delta divides by |logit - reference logit|, the total IG must explain.
        """
        if self.delta is None:
            raise ValueError(f"{self.method} has no convergence delta; only integrated gradients report one")
        gap = np.abs(self.logit - self.reference_logit)
        steps = self.steps if self.steps is not None else np.full(len(self.delta), -1)
        return pd.DataFrame({"steps": steps, "logit": self.logit, "reference_logit": self.reference_logit,
                             "delta": self.delta, "relative_delta": np.abs(self.delta) / np.maximum(gap, 1e-6),
                             "flagged": np.abs(self.delta) > delta_threshold})


@contextlib.contextmanager
def _evaluating(model: torch.nn.Module):
    """Eval mode for the duration; the previous train/eval flags of every module are restored on exit."""
    modes = [(module, module.training) for module in model.modules()]
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    model.eval()
    try:
        yield device
    finally:
        for module, mode in modes:
            module.train(mode)


def integrated_gradients(model: torch.nn.Module, enhancer: torch.Tensor, promoter: torch.Tensor,
                         n_shuffles: int = 10, n_steps: int = 50, internal_batch_size: int | None = 64,
                         seed: int = 0, batch_loops: int = 4, progress: bool = True,
                         delta_threshold: float | None = DELTA_THRESHOLD, max_steps: int = MAX_STEPS,
                         references: str = "shuffle", keys=None) -> Attribution:
    """Integrated Gradients on the logit against dinucleotide-shuffled references, both inputs at once, converged.

    Each loop is attributed against ``n_shuffles`` shuffled references (both sides shuffled, each keeping its
    own dinucleotide counts); the attributions are averaged over references. Steps adapt per loop: a loop whose
    |convergence delta| exceeds ``delta_threshold`` is integrated again with twice the steps (same references),
    until it is below or the next doubling would pass ``max_steps``. Attribution, delta and steps are per loop.

    Parameters
    ----------
    model : torch.nn.Module
        ``model(enhancer, promoter) -> logits [B]``. Put in eval mode while attributing; its modes are
        restored afterwards and it is not moved.
    enhancer, promoter : Tensor, shape (n, 4, Le), (n, 4, Lp)
        Float one-hot loops (on any device; they are moved to the model's device).
    n_shuffles : int
        References per loop.
    n_steps : int
        Gauss-Legendre steps of the first integration (the only one when ``delta_threshold`` is None).
    internal_batch_size : int, optional
        Forward/backward batch inside Captum; bounds memory (activations of ``internal_batch_size`` pairs)
        whatever the number of steps.
    seed : int
        Seed of the shuffles.
    keys : array of int, optional
        One per loop (``explain_loops`` passes the pair indices): each loop's shuffles come from ``(seed, key)``,
        so its attribution is the same whichever loops are attributed beside it (default: the positions).
    batch_loops : int
        Loops per Captum call (each call holds ``batch_loops * n_shuffles`` input rows).
    progress : bool
        Show a tqdm bar on stderr.
    delta_threshold : float or None
        Target |delta| in logit units; None integrates once with ``n_steps``.
    max_steps : int
        Cap of the doubling (a loop still above the threshold there stays flagged).
    references : str
        ``"shuffle"`` (dinucleotide shuffles, the default) or ``"uniform"`` (every base 0.25, one reference: the
        comparison the benchmark makes when IG and ISM disagree).

    Returns
    -------
    Attribution
    """
    _check_pair(enhancer, promoter)
    if n_shuffles < 1 or n_steps < 1:
        raise ValueError(f"n_shuffles ({n_shuffles}) and n_steps ({n_steps}) must be positive")
    if references == "uniform":
        n_shuffles = 1
        ref_e, ref_p = torch.full_like(enhancer, 0.25), torch.full_like(promoter, 0.25)
    elif references == "shuffle":
        ref_e = shuffled_references(enhancer, n_shuffles, seed, keys)
        ref_p = shuffled_references(promoter, n_shuffles, seed + 1, keys)
    else:
        raise ValueError(f"references: expected 'shuffle' or 'uniform', got {references!r}")
    n = len(enhancer)
    attr_e, attr_p = np.zeros(enhancer.shape, np.float32), np.zeros(promoter.shape, np.float32)
    deltas, steps = np.zeros(n, np.float32), np.zeros(n, np.int64)
    with _evaluating(model) as device, tqdm(total=n, desc="integrated gradients", disable=not progress) as bar:
        ig = IntegratedGradients(model)
        for lo in range(0, n, batch_loops):
            pending, current = np.arange(lo, min(lo + batch_loops, n)), n_steps
            while len(pending):
                rows = (pending[:, None] * n_shuffles + np.arange(n_shuffles)).ravel()
                inputs = tuple(x[pending].repeat_interleave(n_shuffles, 0).to(device) for x in (enhancer, promoter))
                baselines = (ref_e[rows].to(device), ref_p[rows].to(device))
                (a_e, a_p), delta = ig.attribute(inputs, baselines=baselines, n_steps=current,
                                                 internal_batch_size=internal_batch_size,
                                                 return_convergence_delta=True)
                k = len(pending)
                attr_e[pending] = a_e.detach().float().cpu().view(k, n_shuffles, *a_e.shape[1:]).mean(1).numpy()
                attr_p[pending] = a_p.detach().float().cpu().view(k, n_shuffles, *a_p.shape[1:]).mean(1).numpy()
                deltas[pending] = delta.detach().float().cpu().view(k, n_shuffles).mean(1).numpy()
                steps[pending] = current
                if delta_threshold is None or 2 * current > max_steps:
                    break
                pending, current = pending[np.abs(deltas[pending]) > delta_threshold], 2 * current
            bar.update(min(lo + batch_loops, n) - lo)
    with torch.no_grad():
        logits = predict(model, enhancer, promoter)
        ref_logits = predict(model, ref_e, ref_p).reshape(n, n_shuffles).mean(1)
    return Attribution(attr_e, attr_p, deltas, logits, ref_logits, steps)


def saliency(model: torch.nn.Module, enhancer: torch.Tensor, promoter: torch.Tensor,
             batch_size: int = 64) -> Attribution:
    """Gradient of the logit times the input (signed), both inputs at once, via Captum ``Saliency``."""
    _check_pair(enhancer, promoter)
    parts_e, parts_p = [], []
    with _evaluating(model) as device:
        method = Saliency(model)
        for lo in range(0, len(enhancer), batch_size):
            inputs = tuple(x[lo:lo + batch_size].to(device).requires_grad_() for x in (enhancer, promoter))
            g_e, g_p = method.attribute(inputs, abs=False)
            parts_e.append((g_e * inputs[0]).detach().float().cpu())
            parts_p.append((g_p * inputs[1]).detach().float().cpu())
    return Attribution(torch.cat(parts_e).numpy(), torch.cat(parts_p).numpy(), method="saliency")


def in_silico_mutagenesis(model: torch.nn.Module, enhancer: torch.Tensor, promoter: torch.Tensor,
                          positions: dict[str, list] | None = None, batch_size: int = 256
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Per-position ISM importance of the observed base: logit(observed) - mean logit(three substitutions).

    Each position costs three forwards, so a full track costs ``3 * (Le + Lp)`` per loop; ``positions`` limits
    it to chosen bases (e.g. :func:`ism_positions`: the seqlets and a background sample).

    Parameters
    ----------
    positions : dict, optional
        ``{"enhancer": [array of positions per loop], "promoter": [...]}``; default every position.

    Returns
    -------
    (ndarray (n, Le), ndarray (n, Lp))
        NaN at positions not mutated.
    """
    _check_pair(enhancer, promoter)
    out_e, out_p = [], []
    with _evaluating(model) as device, torch.no_grad():
        for i, (e, p) in enumerate(zip(enhancer, promoter)):
            e, p = e.to(device), p.to(device)
            reference = model(e[None], p[None]).float().item()
            where = {side: (np.arange(x.shape[1]) if positions is None else np.asarray(positions[side][i], int))
                     for side, x in (("enhancer", e), ("promoter", p))}
            out_e.append(_ism_track(lambda x: model(x, p.expand(len(x), -1, -1)), e, where["enhancer"], reference,
                                    batch_size))
            out_p.append(_ism_track(lambda x: model(e.expand(len(x), -1, -1), x), p, where["promoter"], reference,
                                    batch_size))
    return np.stack(out_e), np.stack(out_p)


def _ism_track(forward, onehot: torch.Tensor, where: np.ndarray, reference: float, batch_size: int) -> np.ndarray:
    """``reference`` minus the mean logit over the three single-base substitutions at each position of ``where``
    in one ``[4, L]`` sequence; NaN elsewhere."""
    track = np.full(onehot.shape[1], np.nan)
    if len(where) == 0:
        return track
    observed = onehot[:, where].argmax(0).cpu().numpy()
    alternatives = np.array([[b for b in range(4) if b != o] for o in observed]).ravel()
    positions = torch.from_numpy(np.repeat(where, 3)).to(onehot.device)
    alternatives = torch.from_numpy(alternatives).to(onehot.device)
    logits = []
    for lo in range(0, len(positions), batch_size):
        pos, alt = positions[lo:lo + batch_size], alternatives[lo:lo + batch_size]
        mutants = onehot.expand(len(pos), -1, -1).clone()
        rows = torch.arange(len(pos), device=onehot.device)
        mutants[rows, :, pos] = 0.0
        mutants[rows, alt, pos] = 1.0
        logits.append(forward(mutants).float().cpu())
    track[where] = reference - torch.cat(logits).view(len(where), 3).mean(1).numpy()
    return track


def ism_positions(seqlets: pd.DataFrame, pair_indices, lengths: dict[str, int], n_background: int = 50,
                  seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Bases to mutate per loop and side: every base of its seqlets plus ``n_background`` others drawn at random.

    The background sample lets the agreement see whether the attribution is quiet where mutations do nothing.

    Parameters
    ----------
    seqlets : DataFrame
        The seqlet table (``loop`` = pair index, ``side``, ``start``, ``end``).
    pair_indices : array of int
        The loops in the order of the attribution arrays.
    lengths : dict
        ``{"enhancer": Le, "promoter": Lp}``.
    """
    out: dict[str, list[np.ndarray]] = {side: [] for side in lengths}
    for pair_index in pair_indices:
        for side_number, (side, length) in enumerate(lengths.items()):
            rng = np.random.default_rng([seed, int(pair_index), side_number])  # whichever loops are beside it
            mine = seqlets[(seqlets["loop"] == pair_index) & (seqlets["side"] == side)]
            inside = np.zeros(length, bool)
            for seqlet in mine.itertuples():
                inside[seqlet.start:seqlet.end] = True
            outside = np.flatnonzero(~inside)
            sample = rng.choice(outside, size=min(n_background, len(outside)), replace=False)
            out[side].append(np.sort(np.concatenate([np.flatnonzero(inside), sample])))
    return out


def ism_agreement(attribution: Attribution, ism: tuple[np.ndarray, np.ndarray],
                  loops: np.ndarray | None = None) -> pd.DataFrame:
    """Pearson and Spearman correlation between per-position attribution and ISM, per loop and side, over the
    positions ISM covers (not NaN); ``n_positions`` says how many."""
    rows = []
    for side, attr, ref in (("enhancer", attribution.enhancer, ism[0]), ("promoter", attribution.promoter, ism[1])):
        scores = per_position(attr[:len(ref)])
        for i, (a, m) in enumerate(zip(scores, ref)):
            keep = ~np.isnan(m)
            series_a, series_m = pd.Series(a[keep]), pd.Series(m[keep])
            rows.append({"loop": i if loops is None else loops[i], "side": side, "n_positions": int(keep.sum()),
                         "pearson": series_a.corr(series_m), "spearman": series_a.corr(series_m, method="spearman")})
    return pd.DataFrame(rows, columns=["loop", "side", "n_positions", "pearson", "spearman"])


def ism_flags(checks: pd.DataFrame, min_agreement: float = MIN_AGREEMENT) -> pd.DataFrame:
    """Per loop and side: IG-ISM and saliency-ISM Pearson, and ``ism_flag`` when IG disagrees with ISM (below
    ``min_agreement``) where saliency agrees (at or above it): the sign of a path effect (a saturating gate or
    pooling) that IG spreads over bases which single substitutions do not move.

    Parameters
    ----------
    checks : DataFrame
        :func:`ism_agreement` rows of both methods with a ``method`` column (``integrated_gradients``,
        ``saliency``).
    """
    wide = checks.pivot_table(index=["loop", "side"], columns="method", values="pearson", dropna=False)
    wide = wide.reindex(columns=["integrated_gradients", "saliency"]).reset_index()
    wide.columns.name = None
    wide = wide.rename(columns={"integrated_gradients": "ig_ism_r", "saliency": "saliency_ism_r"})
    ig, sal = wide["ig_ism_r"].fillna(0.0), wide["saliency_ism_r"].fillna(0.0)  # no variation = no agreement
    wide["ism_flag"] = (ig < min_agreement) & (sal >= min_agreement)
    return wide


# --- projections ---------------------------------------------------------------------------------

def per_position(attr: np.ndarray) -> np.ndarray:
    """One score per base: the sum over channels ``[..., 4, L] -> [..., L]`` (keeps IG's completeness)."""
    return np.asarray(attr).sum(axis=-2)


def project_observed(attr: np.ndarray, onehot: np.ndarray | torch.Tensor) -> np.ndarray:
    """Place each base's score on the observed base: ``per_position(attr) x one-hot`` (``[..., 4, L]``)."""
    x = onehot.detach().cpu().numpy() if torch.is_tensor(onehot) else np.asarray(onehot)
    return per_position(attr)[..., None, :] * x


def _check_pair(enhancer: torch.Tensor, promoter: torch.Tensor) -> None:
    for name, x in (("enhancer", enhancer), ("promoter", promoter)):
        if not torch.is_tensor(x) or x.dim() != 3 or x.shape[1] != 4:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"{name}: expected a float one-hot tensor [loops, 4, length], got {shape}")
    if len(enhancer) != len(promoter):
        raise ValueError(f"enhancer has {len(enhancer)} loops but promoter has {len(promoter)}")


# --- the whole analysis --------------------------------------------------------------------------

@dataclass
class LoopReport:
    """Everything ``explain_loops`` computed for a set of loops (tables are tidy DataFrames).

    Attributes
    ----------
    loops : loops with their convergence figures (``steps``, ``delta``, ``relative_delta``, ``flagged``).
    attribution : the IG attribution, rows in the order of ``loops``.
    onehot : ``{"enhancer": [n, 4, Le], "promoter": [n, 4, Lp]}`` inputs of the loops.
    seqlets : the seqlet/motif table (``diagnostics.motifs.SEQLET_COLUMNS``).
    motif_summary, motif_pairs : per cell line aggregates.
    ism : agreement of IG and of Saliency with in-silico mutagenesis, per loop, side and method.
    trust : per loop and side, how far to trust it: convergence, ISM agreement and flag, top motif with family.
    recovery : planted-motif recovery figures on true-positive loops (synthetic data only) or None.
    recovery_groups : the same per planted cause (``meta["cause"]``) or task, with a verdict and reason, or None.
    truth : the planted motifs of these loops or None.
    """

    loops: pd.DataFrame
    attribution: Attribution
    onehot: dict[str, np.ndarray]
    seqlets: pd.DataFrame
    motif_summary: pd.DataFrame
    motif_pairs: pd.DataFrame
    ism: pd.DataFrame
    trust: pd.DataFrame
    recovery: dict[str, float] | None = None
    recovery_groups: pd.DataFrame | None = None
    truth: pd.DataFrame | None = None

    def scores(self) -> dict[str, np.ndarray]:
        """Per-base attribution ``{side: [n, L]}``."""
        return {"enhancer": per_position(self.attribution.enhancer),
                "promoter": per_position(self.attribution.promoter)}

    def contributions(self) -> dict[str, np.ndarray]:
        """Attribution on the observed bases ``{side: [n, 4, L]}`` (for logos)."""
        return {"enhancer": project_observed(self.attribution.enhancer, self.onehot["enhancer"]),
                "promoter": project_observed(self.attribution.promoter, self.onehot["promoter"])}

    def summary_lines(self) -> list[str]:
        """One line per loop and side for a terminal: convergence, agreement with ISM, top motif and family."""
        lines = []
        for row in self.trust.itertuples():
            converged = f"converged at {row.steps} steps" if not row.flagged else f"NOT converged at {row.steps} steps"
            ism = ("ISM not checked" if pd.isna(row.ig_ism_r) and pd.isna(row.saliency_ism_r) else
                   f"IG~ISM r={row.ig_ism_r:.2f}, saliency~ISM r={row.saliency_ism_r:.2f}"
                   + (" DISAGREES" if row.ism_flag else ""))
            lines.append(f"loop {row.loop} {row.side:8s} {converged} (|delta| {abs(row.delta):.3f}); {ism}; "
                         f"top motif: {row.top_motif if isinstance(row.top_motif, str) else 'none matched'}")
        return lines


def trust_table(loops: pd.DataFrame, seqlets: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """Per loop and side: ``steps``, ``delta``, ``flagged`` (not converged), ``ig_ism_r``, ``saliency_ism_r``,
    ``ism_flag`` and ``top_motif`` (the strongest matched seqlet's label with its family)."""
    matched = seqlets[seqlets["matched"]]
    top = (matched.loc[matched["score"].abs().sort_values(ascending=False).index]
           .drop_duplicates(["loop", "side"])[["loop", "side", "match_label"]].rename(
               columns={"match_label": "top_motif"}))
    base = loops[["pair_index", "outcome", "steps", "delta", "flagged"]].rename(columns={"pair_index": "loop"})
    table = base.merge(pd.DataFrame({"side": ["enhancer", "promoter"]}), how="cross")
    if len(flags):
        table = table.merge(flags.astype({"loop": int}), on=["loop", "side"], how="left")
    else:
        table = table.assign(ig_ism_r=np.nan, saliency_ism_r=np.nan, ism_flag=False)
    table = table.merge(top.astype({"loop": int}), on=["loop", "side"], how="left")
    table["ism_flag"] = table["ism_flag"].fillna(False).astype(bool)
    return table[["loop", "side", "outcome", "steps", "delta", "flagged", "ig_ism_r", "saliency_ism_r", "ism_flag",
                  "top_motif"]]


def explain_loops(model: torch.nn.Module, dataset, loops: pd.DataFrame, motif_db=None, n_shuffles: int = 10,
                  n_steps: int = 50, internal_batch_size: int | None = 64, n_ism: int | None = None,
                  delta_threshold: float = DELTA_THRESHOLD, max_steps: int = MAX_STEPS, seed: int = 0,
                  seqlet_width: int = 15, seqlet_z: float = 3.0, max_seqlets: int = MAX_SEQLETS, ism_background: int = 50,
                  min_agreement: float = MIN_AGREEMENT, progress: bool = True) -> LoopReport:
    """Attribute the chosen loops and annotate them: converged IG, seqlets, JASPAR motifs with families, ISM check.

    Parameters
    ----------
    model : torch.nn.Module
        A trained ``model(enhancer, promoter) -> logits``.
    dataset : cbat.data.EPIDataset
        The pairs; ``loops.pair_index`` indexes it. With ``dataset.truth`` the recovery figures are computed on
        the true-positive loops (called loops when the predictions carried no labels), per ``meta["cause"]``
        (else per task); a cause whose chosen loops hold no true positive gets a row that says so.
    loops : DataFrame
        From :func:`select_loops`, or any table of distinct whole-number ``pair_index`` values (their
        ``outcome`` is then read from the dataset's labels and the attributed logit).
    motif_db : diagnostics.motifs.MotifDB, optional
        Motifs to match seqlets against; default JASPAR CORE vertebrates of the pinned release.
    n_ism : int, optional
        Loops (the first ones) checked by in-silico mutagenesis at their seqlets and ``ism_background`` random
        other bases per side, against IG and saliency; default every loop, 0 none.
    min_agreement : float
        Pearson with ISM below which a method disagrees (:func:`ism_flags`).
    Other parameters are those of :func:`integrated_gradients` and :func:`diagnostics.motifs.call_seqlets`.

    Returns
    -------
    LoopReport
    """
    from diagnostics import motifs, recovery

    if "pair_index" not in loops:
        raise ValueError("loops: no pair_index column; expected the dataset indices of the loops (select_loops)")
    raw = pd.to_numeric(loops["pair_index"], errors="coerce").to_numpy(dtype=float)
    if len(raw) == 0:
        raise ValueError("explain_loops: no loops selected (check --top / the threshold)")
    if not np.all(np.isfinite(raw) & (raw == np.round(raw))):
        raise ValueError(f"loops: pair_index {loops['pair_index'].tolist()[:5]}...: expected whole numbers")
    index = raw.astype(int)
    if index.min() < 0 or index.max() >= len(dataset):
        raise ValueError(f"loops: pair_index outside the dataset (0..{len(dataset) - 1})")
    values, counts = np.unique(index, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"loops: pair_index {values[counts > 1][:5].tolist()} given more than once; each loop is "
                         "attributed once")
    enhancer, promoter = dataset.onehot(index)
    attribution = integrated_gradients(model, enhancer, promoter, n_shuffles, n_steps, internal_batch_size, seed,
                                       progress=progress, delta_threshold=delta_threshold, max_steps=max_steps,
                                       keys=index)
    convergence = attribution.convergence_table(delta_threshold)
    # the attributed logit replaces the predicted one (same model, same inputs)
    loops = pd.concat([loops.drop(columns=["logit"], errors="ignore").reset_index(drop=True), convergence], axis=1)
    # which pair each loop is, beyond its index: the pair id and both elements (loci for coordinate data)
    identity = dataset.meta.iloc[index][["pair_id", "enhancer_id", "promoter_id", "cell_line"]].reset_index(drop=True)
    loops = loops.join(identity[[c for c in identity.columns if c not in loops.columns]])
    if "prob" not in loops:  # loops chosen by hand: the attributed model's probability
        loops["prob"] = 1.0 / (1.0 + np.exp(-loops["logit"].to_numpy(dtype=float)))
    if "outcome" not in loops:  # loops chosen by hand: the labels are known, the call is the attributed logit's
        called, positive = loops["logit"].to_numpy() >= 0, dataset.labels[index] == 1  # logit 0 = probability 0.5
        loops["outcome"] = np.where(called, np.where(positive, "TP", "FP"), np.where(positive, "FN", "TN"))
    motif_db = motif_db if motif_db is not None else motifs.MotifDB.from_jaspar()
    scores = {"enhancer": per_position(attribution.enhancer), "promoter": per_position(attribution.promoter)}
    codes = {"enhancer": dataset.enhancer[index], "promoter": dataset.promoter[index]}
    seqlets = motifs.annotate_seqlets(scores, codes, loops, motif_db, seqlet_width, seqlet_z, max_seqlets)
    n_ism = len(index) if n_ism is None else min(n_ism, len(index))
    checks = []
    if n_ism > 0:
        where = ism_positions(seqlets, index[:n_ism], {"enhancer": enhancer.shape[2], "promoter": promoter.shape[2]},
                              ism_background, seed)
        ism = in_silico_mutagenesis(model, enhancer[:n_ism], promoter[:n_ism], where)
        sal = saliency(model, enhancer[:n_ism], promoter[:n_ism])
        for name, method in (("integrated_gradients", attribution), ("saliency", sal)):
            checks.append(ism_agreement(method, ism, index[:n_ism]).assign(method=name))
    ism_table = pd.concat(checks, ignore_index=True) if checks else pd.DataFrame(
        columns=["loop", "side", "n_positions", "pearson", "spearman", "method"])
    flags = ism_flags(ism_table, min_agreement) if checks else pd.DataFrame()
    trust = trust_table(loops, seqlets, flags)
    truth = scores_truth = groups = None
    if dataset.truth is not None:
        truth = dataset.truth[dataset.truth["pair_index"].isin(index)]
        scored = loops["outcome"].isin(["TP", "predicted"]).to_numpy()  # true positives (called loops if unlabelled)
        mine = {side: s[scored] for side, s in scores.items()}
        scores_truth = recovery.recovery_scores(mine, dataset.truth, index[scored], seqlets)
        column = "cause" if "cause" in dataset.meta else "task" if "task" in dataset.meta else None
        labels = dataset.meta[column].to_numpy()[index] if column else np.full(len(index), "all")
        groups = recovery.recovery_by_group(scores, dataset.truth, index, labels, seqlets, scored=scored,
                                            outcomes=loops["outcome"].to_numpy())
    return LoopReport(loops, attribution, {"enhancer": enhancer.numpy(), "promoter": promoter.numpy()}, seqlets,
                      motifs.motif_summary(seqlets), motifs.motif_pairs(seqlets), ism_table, trust, scores_truth,
                      groups, truth)


def load_run(path, device: str = "cpu", data: dict | None = None):
    """Model, dataset and predictions of a trained run, for attribution.

    Parameters
    ----------
    path : str or Path
        A run folder of a sweep (``model.pt``, ``predictions.parquet``; the data spec comes from the
        sweep's ``sweep.json`` two levels up) or a bare ``model.pt`` checkpoint.
    device : str
        Where the model goes: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:<i>"``.
    data : dict, optional
        A data spec (``{"task": ..., ...}`` or ``{"path": ...}``) that replaces the run's own data; the run's
        predictions then do not apply and every pair is scored.

    Returns
    -------
    (model, dataset, predictions DataFrame[pair_index, cell_line, label, logit, prob, and cause on the synthetic
    benchmark])
    """
    from pathlib import Path

    from cbat import rundir
    from cbat.sweep import load_data, sweep_data
    from cbat.train import TrainSettings, load_checkpoint, predictions_table

    device = TrainSettings(device=device).resolved_device()  # a device the machine lacks: one line, up front
    path = Path(path)
    if path.is_dir():
        checkpoint, folder = rundir.run_file(path, "checkpoint"), path
    elif path.is_file():
        checkpoint, folder = path, path.parent  # a run's own model.pt still finds its sweep
    else:
        raise FileNotFoundError(f"{path}: neither a run folder nor a checkpoint file")
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no model.pt in this run folder")
    model, _ = load_checkpoint(checkpoint, device)  # a file that is no checkpoint fails here, naming itself
    content = rundir.read_spec(folder.parent.parent)  # a run folder sits in <sweep_dir>/runs/
    spec = content.get("spec", {}).get("data") if content is not None else None
    if data is None and not isinstance(spec, dict):
        raise ValueError(f"{path}: no data spec (a checkpoint outside a sweep, or a sweep.json without one); "
                         "pass the data explicitly")
    if data is None:  # the run's own test predictions: scoring every pair would explain training pairs too
        predictions = rundir.run_file(folder, "predictions")
        if not predictions.is_file():
            raise FileNotFoundError(f"{predictions}: not found; a finished run writes its test predictions there "
                                    "(pass the data explicitly to score every pair of other data)")
        return model, sweep_data(folder.parent.parent), rundir.read_parquet(predictions)
    dataset = load_data(dict(data))
    index = np.arange(len(dataset))
    logits = predict(model, *dataset.onehot(index))
    return model, dataset, predictions_table(dataset, index, logits)  # as a run writes it, cause included


def choose_run(sweep, tolerance: float = 0.005) -> tuple[str, str]:
    """The run of a sweep to explain, and why: among finished runs that learnt their task, those whose
    validation AUPR is within ``tolerance`` of the best, the one with the fewest parameters (the simplest model
    that ranks as well as the best; Breiman's one-standard-error rule in spirit, and the cheapest to attribute).
    The test split plays no part, so the choice does not peek at the figures it will be judged by.

    Parameters
    ----------
    sweep : a sweep folder or ``diagnostics.io.Sweep``.
    tolerance : validation AUPR below the best that still counts as "as good".

    Returns
    -------
    (run_id, one-line reason). Without a learnt run it picks among all finished runs and says so.
    """
    import cbat
    from diagnostics.io import load_sweep

    sweep = load_sweep(sweep)
    finished = sweep.ok()
    if finished.empty:
        raise ValueError(f"{sweep.path}: no finished run to explain")
    learnt = finished[finished["learnt"].astype(bool)] if "learnt" in finished else finished
    pool = learnt if len(learnt) else finished
    val_aupr = pool["run_id"].map(lambda r: sweep.records[r]["metrics"]["val"]["pooled"]["aupr"])
    # the seeds of a variant share its config: one model built per variant to count its parameters
    params = {v: sum(p.numel() for p in cbat.build_model(cbat.CBATConfig.from_dict(sweep.variant_config(v)))
                     .parameters()) for v in pool["variant"].unique()}
    table = pool.assign(val_aupr=val_aupr.astype(float), params=pool["variant"].map(params))
    if table["val_aupr"].isna().all():
        raise ValueError(f"{sweep.path}: no finished run has a validation AUPR (a validation split with one class or "
                         "none), so none can be chosen; name the run with --run <sweep>/runs/<run_id>")
    best = table["val_aupr"].max()
    near = table[table["val_aupr"] >= best - tolerance].sort_values(["params", "val_aupr", "run_id"],
                                                                       ascending=[True, False, True])
    chosen = near.iloc[0]
    reason = (f"validation AUPR {chosen.val_aupr:.3f} (best {best:.3f}, tolerance {tolerance:g}) with "
              f"{int(chosen.params):,} parameters, the fewest of the {len(near)} runs within the tolerance")
    if not len(learnt):
        reason += "; no run learnt its task, so this explains a model at chance"
    return str(chosen.run_id), reason
