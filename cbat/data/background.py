"""Background DNA and motif planting for the synthetic benchmark (vectorised over sequences).

Backgrounds are independent bases with a GC content typical of each side: enhancers AT-leaning
(GC 0.42) with CpG depleted the way methylated DNA is (most C of a CpG mutated to T), promoters GC-rich
(GC 0.62) with CpG left intact, as in CpG-island promoters.
"""
from __future__ import annotations

import numpy as np

from cbat.data.encoding import reverse_complement
from cbat.data.motifs import get_motif

SLOT_BP = 25  # motifs are planted in disjoint 25-bp slots at a random offset inside the slot
_GC = {"enhancer": 0.42, "promoter": 0.62}
_CPG_KEPT = {"enhancer": 0.25, "promoter": 1.0}


def background(rng: np.random.Generator, n: int, length: int, side: str) -> np.ndarray:
    """``[n, length]`` uint8 base codes (A, C, G, T = 0..3) with the side's composition."""
    gc = _GC[side]
    probs = np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])
    codes = np.searchsorted(np.cumsum(probs), rng.random((n, length)), side="right").astype(np.uint8)
    codes = np.minimum(codes, 3)
    if _CPG_KEPT[side] < 1.0:
        cpg = (codes[:, :-1] == 1) & (codes[:, 1:] == 2)
        mutate = cpg & (rng.random(cpg.shape) >= _CPG_KEPT[side])
        codes[:, :-1][mutate] = 3  # C -> T (deamination of methylated C)
    return codes


def sample_sites(rng: np.random.Generator, motif_name: str, strength: float, strands: np.ndarray) -> np.ndarray:
    """Draw ``len(strands)`` instances of a motif as codes ``[n, motif length]``.

    Each position is drawn from the JASPAR frequencies raised to ``strength`` and renormalised: 1 is a
    plain draw from the PFM (often far from consensus), larger values give sites closer to consensus.
    Sites on the ``-`` strand are reverse complemented.
    """
    probs = get_motif(motif_name).probs ** strength
    probs /= probs.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(probs, axis=1)
    draws = rng.random((len(strands), probs.shape[0], 1))
    codes = np.minimum((draws > cumulative[None]).sum(-1), 3).astype(np.uint8)
    minus = np.asarray(strands) == "-"
    codes[minus] = reverse_complement(codes[minus])
    return codes


def place(rng: np.random.Generator, sites, length: int, where: str) -> np.ndarray:
    """Start positions (bp) for ``sites`` in one sequence: disjoint slots inside each site's region."""
    n_slots = length // SLOT_BP
    taken = np.zeros(n_slots + 1, dtype=bool)
    starts = np.empty(len(sites), dtype=np.int64)
    for i, site in enumerate(sites):
        if site.start is not None:  # fixed sites first: they block every slot they overlap
            starts[i] = site.start
            taken[site.start // SLOT_BP:(site.start + get_motif(site.motif).length - 1) // SLOT_BP + 1] = True
    # Then the most constrained regions, so unconstrained sites cannot take their slots.
    free_sites = [i for i, site in enumerate(sites) if site.start is None]
    for i in sorted(free_sites, key=lambda i: sites[i].region[1] - sites[i].region[0]):
        site = sites[i]
        lo, hi = int(np.ceil(site.region[0] * n_slots)), int(np.floor(site.region[1] * n_slots))
        free = np.flatnonzero(~taken[lo:hi]) + lo
        if free.size == 0:
            raise ValueError(f"{where}: no free {SLOT_BP}-bp slot for {site.motif} in a {length}-bp sequence; "
                             "use longer sequences")
        slot = int(rng.choice(free))
        taken[slot] = True
        width = get_motif(site.motif).length
        starts[i] = slot * SLOT_BP + rng.integers(0, SLOT_BP - width + 1)
    return starts


def plant(rng: np.random.Generator, seqs: np.ndarray, owner: np.ndarray, motifs: np.ndarray, strands: np.ndarray,
          strengths: np.ndarray, starts: np.ndarray) -> None:
    """Write sampled motif instances into ``seqs`` in place, one vectorised draw per (motif, strength)."""
    keys = np.char.add(motifs.astype(str), np.char.add("|", strengths.astype(str)))
    for key in np.unique(keys):
        rows = np.flatnonzero(keys == key)
        name = motifs[rows[0]]
        codes = sample_sites(rng, name, float(strengths[rows[0]]), strands[rows])
        columns = starts[rows, None] + np.arange(codes.shape[1])
        seqs[owner[rows, None], columns] = codes
