"""``synthetic()``: the embedded EPI benchmark built from real JASPAR motifs, with ground truth.

See ``docs/benchmark.md`` for the generative model. Deterministic from ``seed``; cached on disk by its
parameters (``$CBAT_CACHE``, default ``~/.cache/cbat-lab``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from cbat.data import cache
from cbat.data.background import background, place, plant
from cbat.data.dataset import EPIDataset
from cbat.data.loci import assign_promoters, enhancer_centres, promoter_loci
from cbat.data.motifs import CELL_LINE_TFS, MOTIF_IDS, get_motif
from cbat.data.tasks import (CAUSES, DEFAULT_CAUSES, EASY_NEGATIVE_SHARE, EASY_NEGATIVES_TESTED, NO_CAUSE,
                             TASKS, MixtureTask, make_task)

GENERATOR_VERSION = 10  # bump when the generated data change for the same parameters
# long_range puts enhancer sites up to ~41 tokens into the pair's frame and keeps them >= 17 tokens from the
# promoter's end: (enhancer, promoter) bp; a mixture needs them when long_range is one of its causes
MIN_LONG_RANGE_LEN = (600, 600)
# with one pair, small models need ~16 epochs at 1500-2000 pairs; with two copies about 10
DEFAULT_COPIES = {"long_range": 2, "sparse_strong": 2, "mixture": 2}
SCAFFOLD_STREAM = 1  # the scaffold draw's random stream beside the data's own seed
HELD_OUT_STREAM = 2  # the held-out draw's seed stream: its promoters and enhancers share nothing with the pairs'


def synthetic(task: str = "mixture", n_pairs: int = 2000, seed: int = 0, enhancer_len: int = 600,
              promoter_len: int = 600, positive_fraction: float = 0.5, cell_lines=None, cache_dir=None,
              use_cache: bool = True, copies: int | None = None,
              cause_shares: dict[str, float] | None = None, easy_negatives: float | None = None,
              easy_negatives_tested: float | None = None, held_out_pairs: int = 0) -> EPIDataset:
    """Generate (or read from cache) a synthetic enhancer-promoter benchmark.

    Parameters
    ----------
    task : {"mixture", "grammar", "long_range", "diffuse", "sparse_strong"}
        ``mixture`` (the report's default) draws each positive from one planted cause (long-range placement,
        a diffuse cluster, a strong sparse pair, a compatible TF pair) with matched negatives per cause;
        ``grammar`` mixes convergent CTCF and compatible TF pairs; the others are probes that isolate one
        hypothesis each (see ``docs/benchmark.md``).
    n_pairs : int
        Number of pairs.
    seed : int
        Same seed and parameters give identical data.
    enhancer_len, promoter_len : int
        Sequence lengths in bp (CPU default 600/600; paper scale 3000/2000).
    positive_fraction : float
        Share of positives: 0.5 for 1:1, about 0.048 for the field's 1:20.
    cell_lines : sequence of str, optional
        Subset of ``GM12878, K562, Stomach, NHEK``; all by default.
    cache_dir : path, optional
        Cache folder; default ``$CBAT_CACHE`` or ``~/.cache/cbat-lab``.
    use_cache : bool
        Read and write the cache.
    copies : int, optional
        ``sparse_strong`` / ``long_range`` (also as mixture causes): how many times the decisive CTCF pair is
        repeated with the same placement. More copies give a stronger signal for small models and few epochs.
        Default: 2.
    cause_shares : dict, optional
        ``mixture`` only: share of positives per cause, a subset of ``long_range, diffuse, sparse_strong,
        tf_pair`` (normalised to sum 1). Default: equal shares of ``DEFAULT_CAUSES`` (``tf_pair`` is left out:
        no preset learnt it at the quick size, see ``docs/benchmark.md``).
    easy_negatives : float, optional
        Probes and mixture: share of negatives whose enhancer lacks the decisive motif (a strong decoy instead).
        They give a model a first foothold (learn the motif, then its placement or partner); a per-sequence
        model can reject them. Default: 1/3 (with fewer, a baseline at the quick size did not learn at all;
        ``docs/benchmark.md``).
    easy_negatives_tested : float, optional
        Probes and mixture: share of the easy negatives the test set keeps. The others are marked
        ``meta["scaffold"]``: they stay in training and validation (the foothold), and every split leaves them out
        of the test set, where a per-sequence model could score on them alone. A per-sequence model's test AUROC
        ceiling is about 0.5 plus half the easy share of the test negatives: 0.625 with the mixture's default
        (a quarter of the test negatives easy), 0.67 with every easy negative tested. Default: 2/3 for the
        mixture, 1 for the probes (with one cause, a model blind to it shows that it learnt anything only on the
        easy negatives, which the "did it learn" guard then needs to see).
    held_out_pairs : int
        An independent draw of this many pairs by the same rules (promoters, enhancers and backgrounds of their
        own, from a seed stream beside ``seed``), appended after the ``n_pairs`` pairs and marked
        ``meta["held_out"]``: every split puts them in the test set only (``cbat.data.split``), so no run trains
        or validates on them and the first ``n_pairs`` pairs, and every split of them, stay as without it. A
        test set of a few hundred pairs from a few held-out promoters ranks a model by which promoters it
        happens to get right; thousands of fresh pairs measure the rules it learnt (``docs/benchmark.md``).
        Default 0.

    Returns
    -------
    EPIDataset
        With ``truth`` listing every planted motif (role ``causal`` or ``decoy``) and ``meta`` holding the
        simulated loci (``chrom``, ``enhancer_start`` ...), the ``mechanism`` that made a positive positive,
        the ``cause`` whose rule the pair follows (a negative: the cause it is a matched negative of; the task
        name outside a mixture; ``none`` for an easy negative), the ``task`` and ``scaffold`` (True for the easy
        negatives kept out of every test set) and, with ``held_out_pairs``, ``held_out``.
    """
    cell_lines = tuple(CELL_LINE_TFS) if cell_lines is None else tuple(cell_lines)
    _validate(task, n_pairs, enhancer_len, promoter_len, positive_fraction, cell_lines)
    copies = DEFAULT_COPIES.get(task, 1) if copies is None else copies
    if int(copies) < 1:
        raise ValueError(f"synthetic: copies is {copies}; expected 1 or more")
    params = dict(task=task, n_pairs=int(n_pairs), seed=int(seed), enhancer_len=int(enhancer_len),
                  promoter_len=int(promoter_len), positive_fraction=float(positive_fraction),
                  cell_lines=list(cell_lines), copies=int(copies), version=GENERATOR_VERSION)
    if task == "mixture":
        params["cause_shares"] = _cause_shares(cause_shares)
    elif cause_shares is not None:
        raise ValueError(f"synthetic: cause_shares applies to task 'mixture' only, not {task!r}")
    if task == "long_range" or "long_range" in params.get("cause_shares", {}):
        if enhancer_len < MIN_LONG_RANGE_LEN[0] or promoter_len < MIN_LONG_RANGE_LEN[1]:
            raise ValueError(f"synthetic: long_range places enhancer sites 220-320 bp from a promoter site near the "
                             f"promoter's start and away from its end; lengths {enhancer_len}/{promoter_len} bp are "
                             f"too short, expected >= {MIN_LONG_RANGE_LEN[0]}/{MIN_LONG_RANGE_LEN[1]}")
    if task != "grammar":
        params["easy_negatives"] = EASY_NEGATIVE_SHARE if easy_negatives is None else float(easy_negatives)
        if not 0 <= params["easy_negatives"] < 1:
            raise ValueError(f"synthetic: easy_negatives is {easy_negatives!r}; expected a share in [0, 1)")
        params["easy_negatives_tested"] = (EASY_NEGATIVES_TESTED.get(task, 1.0) if easy_negatives_tested is None
                                           else float(easy_negatives_tested))
        if not 0 <= params["easy_negatives_tested"] <= 1:
            raise ValueError(f"synthetic: easy_negatives_tested is {easy_negatives_tested!r}; expected a share in "
                             "[0, 1]")
    elif easy_negatives is not None or easy_negatives_tested is not None:
        raise ValueError("synthetic: easy_negatives and easy_negatives_tested apply to the probes and the mixture, "
                         "not to 'grammar'")
    if isinstance(held_out_pairs, bool) or not isinstance(held_out_pairs, (int, np.integer)) or held_out_pairs < 0:
        raise ValueError(f"synthetic: held_out_pairs is {held_out_pairs!r}; expected a whole number >= 0")
    if held_out_pairs:  # only when asked, so the cache keys of data without them stay as they were
        params["held_out_pairs"] = int(held_out_pairs)
    path = cache.cache_path(cache.cache_root(cache_dir), f"synthetic-{task}", params)
    if use_cache and path.exists():
        cached = cache.load(path)
        if cached is not None:
            return cached
    draw = {k: v for k, v in params.items() if k not in ("version", "held_out_pairs")}
    ds = _generate(**draw)
    if held_out_pairs:
        ds = _with_held_out(ds, draw, int(held_out_pairs))
    if use_cache:
        cache.save(ds, path)
    return ds


def _validate(task, n_pairs, enhancer_len, promoter_len, positive_fraction, cell_lines) -> None:
    if task not in TASKS:
        raise ValueError(f"synthetic: task {task!r} is unknown; expected one of {list(TASKS)}")
    if int(n_pairs) < 2:
        raise ValueError(f"synthetic: n_pairs is {n_pairs}; expected at least 2")
    if not 0 < positive_fraction < 1:
        raise ValueError(f"synthetic: positive_fraction is {positive_fraction}; expected a value in (0, 1)")
    if enhancer_len < 300 or promoter_len < 200:
        raise ValueError(f"synthetic: lengths {enhancer_len}/{promoter_len} bp are too short; expected "
                         "enhancer_len >= 300 and promoter_len >= 200")
    if task != "grammar" and enhancer_len < promoter_len:  # the placement probes' sites sit anywhere in that frame
        raise ValueError(f"synthetic: task {task!r} places enhancer sites at token offsets from promoter sites, in "
                         f"the promoter's aligned frame; lengths {enhancer_len}/{promoter_len} bp: expected "
                         "enhancer_len >= promoter_len")
    unknown = sorted(set(cell_lines) - set(CELL_LINE_TFS))
    if unknown or not cell_lines:
        raise ValueError(f"synthetic: cell_lines {list(cell_lines)} invalid; expected a non-empty subset of "
                         f"{list(CELL_LINE_TFS)}")


def _cause_shares(shares) -> dict[str, float]:
    """Validated mixture shares, normalised to sum 1, in the order of ``CAUSES``."""
    shares = {cause: 1.0 for cause in DEFAULT_CAUSES} if shares is None else dict(shares)
    unknown = sorted(set(shares) - set(CAUSES))
    if unknown or not shares:
        raise ValueError(f"synthetic: cause_shares names {unknown or 'nothing'}; expected a non-empty subset of "
                         f"{list(CAUSES)}")
    bad = {cause: share for cause, share in shares.items() if not float(share) > 0}
    if bad:
        raise ValueError(f"synthetic: cause_shares {bad} must be positive")
    total = sum(float(v) for v in shares.values())
    return {cause: float(shares[cause]) / total for cause in CAUSES if cause in shares}


def _generate(task, n_pairs, seed, enhancer_len, promoter_len, positive_fraction, cell_lines, copies,
              cause_shares=None, easy_negatives=EASY_NEGATIVE_SHARE,
              easy_negatives_tested=1.0) -> EPIDataset:
    rng = np.random.default_rng(seed)
    planner = make_task(task, copies, cause_shares, easy_negatives)
    pair_cell = np.array(cell_lines)[rng.permutation(n_pairs) % len(cell_lines)]
    labels = np.zeros(n_pairs, dtype=np.int64)
    labels[rng.permutation(n_pairs)[:int(round(n_pairs * positive_fraction))]] = 1
    promoter_of_pair = np.empty(n_pairs, dtype=np.int64)
    promoter_cell, promoter_state, promoter_sites = [], [], []
    for cell in cell_lines:
        members = np.flatnonzero(pair_cell == cell)
        local, n_promoters = assign_promoters(rng, labels[members])
        promoter_of_pair[members] = local + len(promoter_cell)
        causes = ([None] * n_promoters if not isinstance(planner, MixtureTask) else
                  planner.deal_causes(np.bincount(local[labels[members] == 1], minlength=n_promoters), rng))
        for cause in causes:
            state, sites = (planner.plan_promoter(rng, cell, promoter_len) if cause is None
                            else planner.plan_promoter(rng, cell, promoter_len, cause))
            promoter_cell.append(cell)
            promoter_state.append(state)
            promoter_sites.append(sites)

    plans = [planner.plan_enhancer(rng, str(pair_cell[i]), promoter_state[promoter_of_pair[i]], labels[i], enhancer_len)
             for i in range(n_pairs)]
    promoters = _build_side(rng, promoter_sites, promoter_len, "promoter")
    enhancers = _build_side(rng, [plan.sites for plan in plans], enhancer_len, "enhancer")
    meta = _meta(rng, task, seed, pair_cell, promoter_of_pair, plans, enhancer_len, promoter_len)
    meta["scaffold"] = _scaffold(seed, meta["cause"].to_numpy() == NO_CAUSE, easy_negatives_tested)
    truth = _truth(plans, promoter_sites, promoter_of_pair, promoters[1], enhancers[1])
    return EPIDataset(enhancers[0], promoters[0][promoter_of_pair], labels, meta, truth)


def _with_held_out(ds: EPIDataset, draw: dict, n_held: int) -> EPIDataset:
    """``ds`` (generated from ``draw``, ``_generate``'s arguments) followed by ``n_held`` pairs drawn alike from the
    held-out seed stream: pair ids ``<task>-s<seed>-held-*`` and truth rows that point at the appended pairs."""
    seed, n = draw["seed"], len(ds)
    held_seed = int(np.random.SeedSequence([seed, HELD_OUT_STREAM]).generate_state(1)[0])
    held = _generate(**{**draw, "n_pairs": n_held, "seed": held_seed})
    held.meta["pair_id"] = [f"{draw['task']}-s{seed}-held-{i:06d}" for i in range(len(held))]
    meta = pd.concat([ds.meta.assign(held_out=False), held.meta.assign(held_out=True)], ignore_index=True)
    truth = pd.concat([ds.truth, held.truth.assign(pair_index=held.truth["pair_index"] + n)], ignore_index=True)
    return EPIDataset(np.concatenate([ds.enhancer, held.enhancer]), np.concatenate([ds.promoter, held.promoter]),
                      np.concatenate([ds.labels, held.labels]), meta, truth)


def _build_side(rng, site_lists, length, side):
    """Background sequences with their planted sites; returns (codes, starts per sequence)."""
    seqs = background(rng, len(site_lists), length, side)
    starts = [place(rng, sites, length, f"synthetic {side}") for sites in site_lists]
    flat = [site for sites in site_lists for site in sites]
    owner = np.repeat(np.arange(len(site_lists)), [len(sites) for sites in site_lists])
    plant(rng, seqs, owner, np.array([s.motif for s in flat]), np.array([s.strand for s in flat]),
          np.array([s.strength for s in flat]), np.concatenate(starts))
    return seqs, starts


def _meta(rng, task, seed, pair_cell, promoter_of_pair, plans, enhancer_len, promoter_len) -> pd.DataFrame:
    chrom, tss = promoter_loci(rng, promoter_of_pair.max() + 1)
    upstream = np.array([rng.random() < 0.5 if p.enhancer_upstream is None else p.enhancer_upstream
                         for p in plans])
    pair_tss = tss[promoter_of_pair]
    centre = enhancer_centres(rng, pair_tss, upstream)
    e_start, p_start = centre - enhancer_len // 2, pair_tss - promoter_len // 2
    pair_chrom = chrom[promoter_of_pair]
    locus = lambda c, s, n: [f"{a}:{b}-{b + n}" for a, b in zip(c, s)]  # noqa: E731
    return pd.DataFrame({
        # task and seed in the id: tables of two generations can share a folder without their ids colliding
        "pair_id": [f"{task}-s{seed}-{i:06d}" for i in range(len(plans))],
        "cell_line": pair_cell, "chrom": pair_chrom,
        "enhancer_id": locus(pair_chrom, e_start, enhancer_len),
        "promoter_id": locus(pair_chrom, p_start, promoter_len),
        "enhancer_start": e_start, "enhancer_end": e_start + enhancer_len,
        "promoter_start": p_start, "promoter_end": p_start + promoter_len,
        "mechanism": [p.mechanism for p in plans], "cause": [p.cause or task for p in plans], "task": task,
    })


def _scaffold(seed: int, easy: np.ndarray, tested: float) -> np.ndarray:
    """Which easy negatives are scaffolding: all but ``round(tested * n_easy)`` of them, drawn from a stream of
    their own so that the rest of the data stay as they are for every ``tested``."""
    scaffold = np.zeros(easy.size, dtype=bool)
    easy_at = np.flatnonzero(easy)
    n_scaffold = easy_at.size - int(round(tested * easy_at.size))
    scaffold[np.random.default_rng([seed, SCAFFOLD_STREAM]).permutation(easy_at)[:n_scaffold]] = True
    return scaffold


def _truth(plans, promoter_sites, promoter_of_pair, promoter_starts, enhancer_starts) -> pd.DataFrame:
    rows = []
    for i, plan in enumerate(plans):
        prom = promoter_of_pair[i]
        for side, sites, starts, causal in (
                ("enhancer", plan.sites, enhancer_starts[i], set(plan.causal_enhancer)),
                ("promoter", promoter_sites[prom], promoter_starts[prom], set(plan.causal_promoter))):
            for k, (site, start) in enumerate(zip(sites, starts)):
                rows.append((i, side, MOTIF_IDS[site.motif], site.motif, int(start), site.strand,
                             "causal" if k in causal else "decoy", site.strength))
    truth = pd.DataFrame(rows, columns=["pair_index", "side", "motif_id", "motif_name", "start", "strand", "role",
                                        "strength"])
    truth.insert(5, "end", truth["start"] + truth["motif_name"].map(lambda m: get_motif(m).length))
    return truth
