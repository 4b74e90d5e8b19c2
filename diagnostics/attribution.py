"""Attribution of predicted loops: loop selection, Captum IG with dinucleotide-shuffled references, checks.

Every attribution explains the **logit** of ``model(enhancer, promoter)`` with both inputs attributed at once
(Captum receives the tuple ``(enhancer, promoter)``). The default is Integrated Gradients whose reference is a
dinucleotide shuffle of the input (an Altschul-Erikson Eulerian shuffle), averaged over several shuffles;
Saliency and in-silico mutagenesis (ISM) are cross-checks. DeepLIFT is deliberately not offered as a default:
its rescale rules are unreliable through softmax attention, products and gates (Captum issues 519 and 1085).

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



# --- loops ---------------------------------------------------------------------------------------

def select_loops(predictions: pd.DataFrame, top: int = 10, per_cell_line: bool = True,
                 threshold: float | None = None) -> pd.DataFrame:
    """Pick predicted loops: the highest-probability pairs, per cell line or pooled.

    Parameters
    ----------
    predictions : DataFrame
        Columns ``pair_index``, ``prob`` (and ``cell_line``, ``label``, ``logit`` when available), as in a run's
        ``predictions.parquet``.
    top : int
        Loops kept per cell line (or in total when ``per_cell_line`` is False).
    per_cell_line : bool
        Rank within each cell line.
    threshold : float, optional
        Keep only pairs with ``prob >= threshold`` (predicted loops); ``top`` still caps the count.

    Returns
    -------
    DataFrame
        The chosen rows sorted by cell line and rank, with ``rank`` (1 = most confident) and ``outcome``
        (``"TP"``/``"FP"`` when labels are known, else ``"predicted"``).
    """
    missing = {"pair_index", "prob"} - set(predictions.columns)
    if missing:
        raise ValueError(f"predictions: missing column(s) {sorted(missing)}; expected pair_index and prob")
    if top < 1:
        raise ValueError(f"top: expected a positive number of loops, got {top}")
    table = predictions.copy()
    if "cell_line" not in table:
        table["cell_line"] = "all"
    if threshold is not None:
        table = table[table["prob"] >= threshold]
    table = table.sort_values(["prob", "pair_index"], ascending=[False, True], kind="stable")
    groups = table.groupby("cell_line", sort=True) if per_cell_line else [("all", table)]
    chosen = []
    for _, group in groups:
        group = group.head(top).copy()
        group["rank"] = np.arange(1, len(group) + 1)
        chosen.append(group)
    if not chosen:
        return table.assign(rank=pd.Series(dtype=int), outcome=pd.Series(dtype=str))
    out = pd.concat(chosen, ignore_index=True)
    if "label" in out:
        out["outcome"] = np.where(out["label"].astype(int) == 1, "TP", "FP")
    else:
        out["outcome"] = "predicted"
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


def shuffled_references(onehot: torch.Tensor, n_shuffles: int, seed: int = 0) -> torch.Tensor:
    """Dinucleotide-shuffled references for each sequence: ``[B, 4, L]`` -> ``[B * n_shuffles, 4, L]``.

    Rows ``b * n_shuffles ... (b + 1) * n_shuffles - 1`` are the shuffles of sequence ``b``.
    """
    rng = np.random.default_rng(seed)
    codes = onehot_to_codes(onehot)
    shuffles = np.stack([dinucleotide_shuffle(seq, rng) for seq in codes for _ in range(n_shuffles)])
    return torch.from_numpy(codes_to_onehot(shuffles)).to(onehot.dtype)


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
    method : str
    """

    enhancer: np.ndarray
    promoter: np.ndarray
    delta: np.ndarray | None = None
    logit: np.ndarray | None = None
    reference_logit: np.ndarray | None = None
    method: str = "integrated_gradients"

    def convergence_table(self, delta_threshold: float = 0.05) -> pd.DataFrame:
        """Per loop: logit, reference logit, delta, relative delta and ``flagged`` (|delta| > threshold).

        The relative delta divides by |logit - reference logit|, the total IG must explain.
        """
        if self.delta is None:
            raise ValueError(f"{self.method} has no convergence delta; only integrated gradients report one")
        gap = np.abs(self.logit - self.reference_logit)
        return pd.DataFrame({"logit": self.logit, "reference_logit": self.reference_logit, "delta": self.delta,
                             "relative_delta": np.abs(self.delta) / np.maximum(gap, 1e-6),
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
                         seed: int = 0, batch_loops: int = 4, progress: bool = True) -> Attribution:
    """Integrated Gradients on the logit against dinucleotide-shuffled references, both inputs at once.

    Each loop is attributed against ``n_shuffles`` shuffled references (both sides shuffled, each keeping its
    own dinucleotide counts); the attributions are averaged over references. Attribution and delta are per loop.

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
        Riemann/Gauss-Legendre steps of IG.
    internal_batch_size : int, optional
        Forward/backward batch inside Captum; bounds memory (activations of ``internal_batch_size`` pairs).
    seed : int
        Seed of the shuffles.
    batch_loops : int
        Loops per Captum call (each call holds ``batch_loops * n_shuffles`` input rows).
    progress : bool
        Show a tqdm bar on stderr.

    Returns
    -------
    Attribution
    """
    _check_pair(enhancer, promoter)
    if n_shuffles < 1 or n_steps < 1:
        raise ValueError(f"n_shuffles ({n_shuffles}) and n_steps ({n_steps}) must be positive")
    ref_e = shuffled_references(enhancer, n_shuffles, seed)
    ref_p = shuffled_references(promoter, n_shuffles, seed + 1)
    attr_e, attr_p, deltas, logits, ref_logits = [], [], [], [], []
    with _evaluating(model) as device:
        ig = IntegratedGradients(model)
        for lo in tqdm(range(0, len(enhancer), batch_loops), desc="integrated gradients", disable=not progress):
            hi = min(lo + batch_loops, len(enhancer))
            rows = slice(lo * n_shuffles, hi * n_shuffles)
            inputs = tuple(x[lo:hi].repeat_interleave(n_shuffles, 0).to(device) for x in (enhancer, promoter))
            baselines = (ref_e[rows].to(device), ref_p[rows].to(device))
            (a_e, a_p), delta = ig.attribute(inputs, baselines=baselines, n_steps=n_steps,
                                             internal_batch_size=internal_batch_size,
                                             return_convergence_delta=True)
            with torch.no_grad():
                ref_logit = model(*baselines).float().cpu()
                logit = model(inputs[0][::n_shuffles], inputs[1][::n_shuffles]).float().cpu()
            k = hi - lo
            attr_e.append(a_e.detach().float().cpu().view(k, n_shuffles, *a_e.shape[1:]).mean(1))
            attr_p.append(a_p.detach().float().cpu().view(k, n_shuffles, *a_p.shape[1:]).mean(1))
            deltas.append(delta.detach().float().cpu().view(k, n_shuffles).mean(1))
            ref_logits.append(ref_logit.view(k, n_shuffles).mean(1))
            logits.append(logit)
    return Attribution(torch.cat(attr_e).numpy(), torch.cat(attr_p).numpy(), torch.cat(deltas).numpy(),
                       torch.cat(logits).numpy(), torch.cat(ref_logits).numpy())


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
                          batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-position ISM importance of the observed base: logit(observed) - mean logit(three substitutions).

    Costs ``3 * (Le + Lp)`` forwards per loop, so use it on a few loops as a check of the gradient methods.

    Returns
    -------
    (ndarray (n, Le), ndarray (n, Lp))
    """
    _check_pair(enhancer, promoter)
    out_e, out_p = [], []
    with _evaluating(model) as device, torch.no_grad():
        for e, p in zip(enhancer, promoter):
            e, p = e.to(device), p.to(device)
            reference = model(e[None], p[None]).float().item()
            out_e.append(reference - _mutant_logits(lambda x: model(x, p.expand(len(x), -1, -1)), e, batch_size))
            out_p.append(reference - _mutant_logits(lambda x: model(e.expand(len(x), -1, -1), x), p, batch_size))
    return np.stack(out_e), np.stack(out_p)


def _mutant_logits(forward, onehot: torch.Tensor, batch_size: int) -> np.ndarray:
    """Mean logit over the three single-base substitutions at each position of one ``[4, L]`` sequence."""
    length = onehot.shape[1]
    observed = onehot.argmax(0)
    positions = torch.arange(length, device=onehot.device).repeat_interleave(3)
    alternatives = torch.stack([torch.tensor([b for b in range(4) if b != int(o)]) for o in observed.cpu()])
    alternatives = alternatives.reshape(-1).to(onehot.device)
    logits = []
    for lo in range(0, len(positions), batch_size):
        pos, alt = positions[lo:lo + batch_size], alternatives[lo:lo + batch_size]
        mutants = onehot.expand(len(pos), -1, -1).clone()
        rows = torch.arange(len(pos), device=onehot.device)
        mutants[rows, :, pos] = 0.0
        mutants[rows, alt, pos] = 1.0
        logits.append(forward(mutants).float().cpu())
    return torch.cat(logits).view(length, 3).mean(1).numpy()


def ism_agreement(attribution: Attribution, ism: tuple[np.ndarray, np.ndarray],
                  loops: np.ndarray | None = None) -> pd.DataFrame:
    """Pearson and Spearman correlation between per-position attribution and ISM, per loop and side."""
    rows = []
    for side, attr, ref in (("enhancer", attribution.enhancer, ism[0]), ("promoter", attribution.promoter, ism[1])):
        scores = per_position(attr[:len(ref)])
        for i, (a, m) in enumerate(zip(scores, ref)):
            series_a, series_m = pd.Series(a), pd.Series(m)
            rows.append({"loop": i if loops is None else loops[i], "side": side,
                         "pearson": series_a.corr(series_m), "spearman": series_a.corr(series_m, method="spearman")})
    return pd.DataFrame(rows)


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
    loops : loops with their convergence figures (``delta``, ``relative_delta``, ``flagged``).
    attribution : the IG attribution, rows in the order of ``loops``.
    onehot : ``{"enhancer": [n, 4, Le], "promoter": [n, 4, Lp]}`` inputs of the loops.
    seqlets : the seqlet/motif table (``diagnostics.motifs.SEQLET_COLUMNS``).
    motif_summary, motif_pairs : per cell line aggregates.
    ism : agreement of IG and of Saliency with in-silico mutagenesis on the first loops.
    recovery : planted-motif recovery figures (synthetic data only) or None.
    truth : the planted motifs of these loops or None.
    """

    loops: pd.DataFrame
    attribution: Attribution
    onehot: dict[str, np.ndarray]
    seqlets: pd.DataFrame
    motif_summary: pd.DataFrame
    motif_pairs: pd.DataFrame
    ism: pd.DataFrame
    recovery: dict[str, float] | None = None
    truth: pd.DataFrame | None = None

    def scores(self) -> dict[str, np.ndarray]:
        """Per-base attribution ``{side: [n, L]}``."""
        return {"enhancer": per_position(self.attribution.enhancer), "promoter": per_position(self.attribution.promoter)}

    def contributions(self) -> dict[str, np.ndarray]:
        """Attribution on the observed bases ``{side: [n, 4, L]}`` (for logos)."""
        return {"enhancer": project_observed(self.attribution.enhancer, self.onehot["enhancer"]),
                "promoter": project_observed(self.attribution.promoter, self.onehot["promoter"])}


def explain_loops(model: torch.nn.Module, dataset, loops: pd.DataFrame, motif_db=None, n_shuffles: int = 10,
                  n_steps: int = 50, internal_batch_size: int | None = 64, n_ism: int = 2,
                  delta_threshold: float = 0.05, seed: int = 0, seqlet_width: int = 15, seqlet_z: float = 3.0,
                  max_seqlets: int = 5, progress: bool = True) -> LoopReport:
    """Attribute the chosen loops and annotate them: IG, convergence flags, ISM check, seqlets, JASPAR motifs.

    Parameters
    ----------
    model : torch.nn.Module
        A trained ``model(enhancer, promoter) -> logits``.
    dataset : cbat.data.EPIDataset
        The pairs; ``loops.pair_index`` indexes it. With ``dataset.truth`` the recovery figures are computed.
    loops : DataFrame
        From :func:`select_loops`.
    motif_db : diagnostics.motifs.MotifDB, optional
        Motifs to match seqlets against; default the latest JASPAR CORE vertebrates bundled with pyjaspar.
    n_ism : int
        Loops (the first ones) that also get Saliency and in-silico mutagenesis for comparison.
    Other parameters are those of :func:`integrated_gradients` and :func:`diagnostics.motifs.call_seqlets`.

    Returns
    -------
    LoopReport
    """
    from diagnostics import motifs, recovery

    index = loops["pair_index"].to_numpy(dtype=int)
    if len(index) == 0:
        raise ValueError("explain_loops: no loops selected (check --top / the threshold)")
    if index.min() < 0 or index.max() >= len(dataset):
        raise ValueError(f"loops: pair_index outside the dataset (0..{len(dataset) - 1})")
    enhancer, promoter = dataset.onehot(index)
    attribution = integrated_gradients(model, enhancer, promoter, n_shuffles, n_steps, internal_batch_size, seed,
                                       progress=progress)
    convergence = attribution.convergence_table(delta_threshold)
    # the attributed logit replaces the predicted one (same model, same inputs)
    loops = pd.concat([loops.drop(columns=["logit"], errors="ignore").reset_index(drop=True), convergence], axis=1)
    checks = []
    if n_ism > 0:
        ism = in_silico_mutagenesis(model, enhancer[:n_ism], promoter[:n_ism])
        sal = saliency(model, enhancer[:n_ism], promoter[:n_ism])
        for name, method in (("integrated_gradients", attribution), ("saliency", sal)):
            checks.append(ism_agreement(method, ism, index[:n_ism]).assign(method=name))
    ism_table = pd.concat(checks, ignore_index=True) if checks else pd.DataFrame(
        columns=["loop", "side", "pearson", "spearman", "method"])
    motif_db = motif_db if motif_db is not None else motifs.MotifDB.from_jaspar()
    scores = {"enhancer": per_position(attribution.enhancer), "promoter": per_position(attribution.promoter)}
    codes = {"enhancer": dataset.enhancer[index], "promoter": dataset.promoter[index]}
    seqlets = motifs.annotate_seqlets(scores, codes, loops, motif_db, seqlet_width, seqlet_z, max_seqlets)
    truth = scores_truth = None
    if dataset.truth is not None:
        truth = dataset.truth[dataset.truth["pair_index"].isin(index)]
        scores_truth = recovery.recovery_scores(scores, dataset.truth, index, seqlets)
    return LoopReport(loops, attribution, {"enhancer": enhancer.numpy(), "promoter": promoter.numpy()}, seqlets,
                      motifs.motif_summary(seqlets), motifs.motif_pairs(seqlets), ism_table, scores_truth, truth)


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
    (model, dataset, predictions DataFrame[pair_index, cell_line, label, logit, prob])
    """
    from pathlib import Path

    from cbat import rundir
    from cbat.sweep import load_data
    from cbat.train import load_checkpoint

    path = Path(path)
    if path.is_dir():
        checkpoint, spec = rundir.run_file(path, "checkpoint"), None
        content = rundir.read_spec(path.parent.parent)  # the run folder sits in <sweep_dir>/runs/
        if content is not None:
            spec = content.get("spec", {}).get("data")
    elif path.is_file():
        checkpoint, spec = path, None
    else:
        raise FileNotFoundError(f"{path}: neither a run folder nor a checkpoint file")
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no model.pt in this run folder")
    if data is None and not isinstance(spec, dict):
        raise ValueError(f"{path}: no data spec in the sweep's sweep.json; pass the data explicitly")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, _ = load_checkpoint(checkpoint, device)
    dataset = load_data(dict(data if data is not None else spec))
    if data is None and rundir.run_file(path, "predictions").is_file():
        return model, dataset, rundir.read_parquet(rundir.run_file(path, "predictions"))
    index = np.arange(len(dataset))
    logits = predict(model, *dataset.onehot(index))
    predictions = pd.DataFrame({"pair_index": index, "cell_line": dataset.meta["cell_line"].to_numpy(),
                                "label": dataset.labels, "logit": logits, "prob": 1 / (1 + np.exp(-logits))})
    return model, dataset, predictions
