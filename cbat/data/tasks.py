"""The planted rules of the synthetic benchmark: which motifs go where, and when a pair loops.

Each task plans a promoter once (promoters are shared between pairs, as in real data) and then, for every
pair that uses it, plans the enhancer so the pair is positive or negative. Negatives carry the same kinds
and numbers of motifs as positives and only break the cross-sequence rule, so no single sequence (and no
bag of motifs pooled per sequence) reveals the label without relating the two sequences.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cbat.data.motifs import CELL_LINE_TFS, ENHANCER_DECOYS, PROMOTER_DECOYS, compatible_partner

TASKS = ("grammar", "long_range", "diffuse", "sparse_strong")
STRONG, MEDIUM, WEAK = 4.0, 2.0, 1.0  # exponent on the PFM: 1 = plain JASPAR draw, larger = nearer consensus
WHOLE = (0.0, 1.0)
# long_range: enhancer sites in its last 35 %, promoter sites in its first 35 %; at 600/400 bp the aligned
# token offset is then >= 25 tokens (250 bp), beyond a 16-token window; at 3000/2000 bp >= 125 tokens.
FAR_ENHANCER, FAR_PROMOTER = (0.65, 1.0), (0.0, 0.35)


@dataclass(frozen=True)
class Site:
    """A motif to plant: ``region`` is the allowed (start, end) as fractions of the sequence length."""

    motif: str
    strand: str
    strength: float
    region: tuple[float, float] = WHOLE


@dataclass
class EnhancerPlan:
    sites: list[Site]
    causal_enhancer: list[int] = field(default_factory=list)   # indices into sites
    causal_promoter: list[int] = field(default_factory=list)   # indices into the promoter's sites
    mechanism: str = "none"
    enhancer_upstream: bool | None = None  # None: either side of the promoter


def _strand(rng: np.random.Generator) -> str:
    return "+" if rng.random() < 0.5 else "-"


def _decoys(rng, pool, n, strength=WEAK) -> list[Site]:
    return [Site(str(rng.choice(pool)), _strand(rng), strength) for _ in range(n)]


def _enhancer_tf_for(cell_line: str, promoter_tf: str) -> str:
    """The enhancer TF compatible with ``promoter_tf`` (inverse of the cyclic pairing)."""
    tfs = CELL_LINE_TFS[cell_line]
    return tfs[(tfs.index(promoter_tf) - 1) % len(tfs)]


def _incompatible_enhancer_tf(rng, cell_line: str, promoter_tf: str) -> str:
    tfs = [tf for tf in CELL_LINE_TFS[cell_line] if compatible_partner(cell_line, tf) != promoter_tf]
    return str(rng.choice(tfs))


class PairTask:
    """``sparse_strong`` (and, with far regions, ``long_range``): one strong compatible TF pair decides.

    Promoter: one strong site of a cell-line TF Y plus two weak promoter decoys. Enhancer: one strong site
    of TF X plus two weak enhancer decoys; positive iff X is Y's compatible partner in that cell line,
    negative with another TF of the same vocabulary.
    """

    def __init__(self, far: bool) -> None:
        self.enhancer_region, self.promoter_region = (FAR_ENHANCER, FAR_PROMOTER) if far else (WHOLE, WHOLE)

    def plan_promoter(self, rng, cell_line):
        tf = str(rng.choice(CELL_LINE_TFS[cell_line]))
        return tf, [Site(tf, _strand(rng), STRONG, self.promoter_region)] + _decoys(rng, PROMOTER_DECOYS, 2)

    def plan_enhancer(self, rng, cell_line, promoter_tf, label) -> EnhancerPlan:
        tf = _enhancer_tf_for(cell_line, promoter_tf) if label else _incompatible_enhancer_tf(rng, cell_line,
                                                                                                promoter_tf)
        sites = [Site(tf, _strand(rng), STRONG, self.enhancer_region)] + _decoys(rng, ENHANCER_DECOYS, 2)
        return EnhancerPlan(sites, [0] if label else [], [0] if label else [], "tf_pair" if label else "none")


class DiffuseTask:
    """``diffuse``: many weak sites add up.

    Promoter: weak sites of every TF of the cell line, a dominant TF Y with 6-7 copies and the others with
    2-3 copies each. Enhancer: two sites of TF X plus two decoys; positive iff X's partner is the dominant Y
    (6-7 weak compatible sites), negative when X's partner has only 2-3. A normaliser that keeps only the
    top 2-3 keys per query sees the same evidence in both classes.
    """

    def plan_promoter(self, rng, cell_line):
        tfs = CELL_LINE_TFS[cell_line]
        dominant = str(rng.choice(tfs))
        sites = []
        for tf in tfs:
            copies = rng.integers(6, 8) if tf == dominant else rng.integers(2, 4)
            sites += [Site(tf, _strand(rng), WEAK) for _ in range(copies)]
        return (dominant, sites), sites

    def plan_enhancer(self, rng, cell_line, state, label) -> EnhancerPlan:
        dominant, promoter_sites = state
        tf = _enhancer_tf_for(cell_line, dominant) if label else _incompatible_enhancer_tf(rng, cell_line, dominant)
        sites = [Site(tf, _strand(rng), MEDIUM) for _ in range(2)] + _decoys(rng, ENHANCER_DECOYS, 2)
        if not label:
            return EnhancerPlan(sites)
        causal_promoter = [i for i, s in enumerate(promoter_sites) if s.motif == dominant]
        return EnhancerPlan(sites, [0, 1], causal_promoter, "weak_sum")


class GrammarTask:
    """``grammar``: the default mix of two cross-sequence rules.

    Both sequences carry one strong CTCF site, one cell-line TF site and a weak YY1 decoy. A positive pair
    satisfies exactly one rule: convergent CTCF (the upstream site on +, the downstream one on -; the
    simulated locus puts the enhancer on the side that makes the pair convergent) or a compatible TF pair.
    Negatives have tandem CTCF (same strand) and an incompatible TF pair.
    """

    def plan_promoter(self, rng, cell_line):
        tf = str(rng.choice(CELL_LINE_TFS[cell_line]))
        ctcf_strand = _strand(rng)
        sites = [Site("CTCF", ctcf_strand, STRONG), Site(tf, _strand(rng), MEDIUM), Site("YY1", _strand(rng), WEAK)]
        return (tf, ctcf_strand), sites

    def plan_enhancer(self, rng, cell_line, state, label) -> EnhancerPlan:
        promoter_tf, promoter_strand = state
        mechanism = str(rng.choice(["ctcf_convergent", "tf_pair"])) if label else "none"
        convergent = mechanism == "ctcf_convergent"
        opposite = "+" if promoter_strand == "-" else "-"
        tf = (_enhancer_tf_for(cell_line, promoter_tf) if mechanism == "tf_pair"
              else _incompatible_enhancer_tf(rng, cell_line, promoter_tf))
        sites = [Site("CTCF", opposite if convergent else promoter_strand, STRONG), Site(tf, _strand(rng), MEDIUM),
                 Site("YY1", _strand(rng), WEAK)]
        causal = {"ctcf_convergent": [0], "tf_pair": [1]}.get(mechanism, [])
        # Convergent: the upstream CTCF points downstream (+). Enhancer on + => enhancer is upstream.
        upstream = (opposite == "+") if convergent else None
        return EnhancerPlan(sites, causal, list(causal), mechanism, upstream)


def make_task(name: str):
    """The planner for a task name."""
    planners = {"grammar": GrammarTask, "long_range": lambda: PairTask(far=True),
                "sparse_strong": lambda: PairTask(far=False), "diffuse": DiffuseTask}
    if name not in planners:
        raise ValueError(f"unknown synthetic task {name!r}; expected one of {list(TASKS)}")
    return planners[name]()
