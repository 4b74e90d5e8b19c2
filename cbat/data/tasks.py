"""The planted rules of the synthetic benchmark: which motifs go where, and when a pair loops.

Each task plans a promoter once (promoters are shared between pairs, as in real data) and then, for every
pair that uses it, plans the enhancer so the pair is positive or negative. Negatives carry the same kinds
of motifs as positives and break a cross-sequence rule, so no single sequence reveals the label.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cbat.data.motifs import CELL_LINE_TFS, ENHANCER_DECOYS, PROMOTER_DECOYS, compatible_partner, get_motif

TASKS = ("mixture", "grammar", "long_range", "diffuse", "sparse_strong")
# The causes a mixture draws its positives from, each tied to one hypothesis of the log (docs/benchmark.md)
CAUSES = ("long_range", "diffuse", "sparse_strong", "tf_pair")
DEFAULT_CAUSES = ("long_range", "diffuse", "sparse_strong")
# The cause of an easy negative: its enhancer lacks the decisive motif, so no planted rule is at stake and a
# per-sequence model can reject it. Per-cause metrics therefore score a cause's positives against its matched
# (hard) negatives only, which share the positives' motif content.
NO_CAUSE = "none"
STRONG, MEDIUM, WEAK = 4.0, 2.0, 1.0  # exponent on the PFM: 1 = plain JASPAR draw, larger = nearer consensus
WHOLE = (0.0, 1.0)
BP_PER_TOKEN = 10  # the model's conv stem pools 10 bp into one token; probe offsets are set in tokens
LOOPING_TF = "CTCF"  # the probes' looping factor on both sides (a 19-bp, high-information motif)
EASY_NEGATIVE_SHARE = 1 / 3  # probe negatives whose enhancer lacks the looping TF (the rest break placement)
# Share of the easy negatives the test set keeps, per task (1 where not listed). The rest are scaffolding
# (meta["scaffold"]): they stay in training and validation, where they are a model's first foothold, and every
# split leaves them out of test. In the mixture (two thirds tested) a quarter of the test negatives are then easy,
# so a per-sequence model's pooled test AUROC ceiling falls from about 0.67 to 0.625 (docs/benchmark.md; half
# tested would give 0.60 but left the windowed twin's H1 seeds at the edge of "not learnt"). A probe keeps them
# all: with one cause, a model blind to it (a window on long_range) shows that it learnt anything only on them,
# and the "did it learn" guard needs that to tell such a model from one that learnt nothing.
EASY_NEGATIVES_TESTED = {"mixture": 2 / 3}
# long_range: the promoter pair sits in slots 1-2 and enhancer sites at these token offsets from it. Every
# enhancer CTCF token is >= 17 tokens from every promoter CTCF token (copies and motif width included), so a
# 16-token window sees no CTCF pair, and >= 17 tokens from both promoter ends, so a truncated window cannot
# tell the enhancer site's absolute position (which differs between the classes) either.
LONG_RANGE_SLOT, LONG_RANGE_POSITIVE, LONG_RANGE_NEGATIVE = 1, (22, 24), (30, 32)


@dataclass(frozen=True)
class Site:
    """A motif to plant: either at a fixed ``start`` (bp) or in a free slot inside ``region`` (fractions of
    the sequence length)."""

    motif: str
    strand: str
    strength: float
    region: tuple[float, float] = WHOLE
    start: int | None = None


@dataclass
class EnhancerPlan:
    sites: list[Site]
    causal_enhancer: list[int] = field(default_factory=list)   # indices into sites
    causal_promoter: list[int] = field(default_factory=list)   # indices into the promoter's sites
    mechanism: str = "none"
    enhancer_upstream: bool | None = None  # None: either side of the promoter
    cause: str = ""  # the planted cause whose rule this pair follows (its matched negatives share it), NO_CAUSE
    # for an easy negative; empty: the task's own name


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


def _aligned_start(rng, anchor_bp: int, band: tuple[int, int], signed: bool, enhancer_len: int, width: int) -> int:
    """An enhancer start whose token offset from ``anchor_bp`` (promoter frame) lies in ``band``.

    ``signed``: offsets ``lo..hi`` only (enhancer later in the aligned frame); else either sign.
    """
    offsets = np.arange(band[0], band[1] + 1)
    if not signed:
        offsets = np.concatenate([offsets, -offsets[offsets > 0]])
    starts = anchor_bp + offsets * BP_PER_TOKEN
    starts = starts[(starts >= 0) & (starts + width <= enhancer_len)]
    if starts.size == 0:
        raise ValueError(f"synthetic: a {enhancer_len}-bp enhancer cannot hold a site at token offset {band} from "
                         f"promoter position {anchor_bp}; use longer enhancers")
    return int(rng.choice(starts))


def _context(rng, cell_line, pool) -> list[Site]:
    """Weak sites that carry no label: one TF of the cell line and one common decoy."""
    return [Site(str(rng.choice(CELL_LINE_TFS[cell_line])), _strand(rng), WEAK)] + _decoys(rng, pool, 1)


class PlacementTask:
    """``sparse_strong`` and ``long_range``: one CTCF pair whose *placement across the pair* decides the label.

    Every pair carries the same kind of content: the promoter a strong CTCF site, the enhancer a strong
    CTCF site, and both sides weak context sites (a TF of the cell line and a common decoy). Positives put
    the enhancer site at a token offset from the promoter site (in the model's aligned frame: enhancer
    token i vs promoter token j) inside ``positive_band``; hard negatives put the very same motifs at an
    offset inside ``negative_band``; easy negatives (a third) replace the enhancer CTCF with a decoy. A
    per-sequence model cannot see offsets across the pair, so it can only reject the easy negatives
    (AUROC ceiling about 0.67). ``copies`` repeats the pair with one shared offset.

    * ``sparse_strong``: one strong promoter site; positive |offset| <= 2 tokens, negative 12-30 tokens.
    * ``long_range``: the promoter site near the promoter's start; positive offset +22..+24 tokens, negative
      +30..+32: both beyond a 16-token window, so a windowed model sees neither, and both far enough from the
      promoter's ends that a window truncated there cannot reveal where the enhancer site sits.
    """

    def __init__(self, positive_band, negative_band, signed: bool, first_slot: int | None = None, copies: int = 1,
                 easy_negatives: float = EASY_NEGATIVE_SHARE) -> None:
        self.positive_band, self.negative_band, self.signed = positive_band, negative_band, signed
        self.first_slot, self.copies, self.easy_negatives = first_slot, copies, easy_negatives

    def plan_promoter(self, rng, cell_line, promoter_len):
        from cbat.data.background import SLOT_BP

        width = get_motif(LOOPING_TF).length
        # the key sites in consecutive slots (slot-aligned, so they never collide with context sites)
        n_key = self.copies
        lo, hi = 0, promoter_len // SLOT_BP - n_key
        if hi < lo:
            raise ValueError(f"synthetic: a {promoter_len}-bp promoter cannot hold {n_key} key sites; use longer "
                             "promoters or fewer copies")
        first = (int(rng.integers(lo, hi + 1)) if self.first_slot is None else self.first_slot) * SLOT_BP
        sites = [Site(LOOPING_TF, _strand(rng), STRONG,
                      start=first + k * SLOT_BP + int(rng.integers(0, SLOT_BP - width + 1))) for k in range(n_key)]
        return ([site.start for site in sites], n_key), sites + _context(rng, cell_line, PROMOTER_DECOYS)

    def plan_enhancer(self, rng, cell_line, state, label, enhancer_len) -> EnhancerPlan:
        anchors, n_key = state
        decoys = _context(rng, cell_line, ENHANCER_DECOYS)
        if not label and rng.random() < self.easy_negatives:
            return EnhancerPlan(_decoys(rng, ENHANCER_DECOYS, self.copies, STRONG) + decoys, cause=NO_CAUSE)
        band = self.positive_band if label else self.negative_band
        # one offset for all copies keeps the enhancer sites as far apart as the promoter's (no overlap)
        start = _aligned_start(rng, anchors[0], band, self.signed, enhancer_len - (anchors[-1] - anchors[0]),
                               get_motif(LOOPING_TF).length)
        sites = [Site(LOOPING_TF, _strand(rng), STRONG, start=start + a - anchors[0]) for a in anchors] + decoys
        if not label:
            return EnhancerPlan(sites)
        return EnhancerPlan(sites, list(range(self.copies)), list(range(n_key)), "placement")


class DiffuseTask(PlacementTask):
    """``diffuse``: the promoter holds a cluster of six weaker CTCF sites and, at least 15 tokens away, a
    pair of the same sites. Positives face the cluster centre, hard negatives the pair (0-3 tokens);
    easy negatives lack the enhancer CTCF. Near the enhancer site both classes show CTCF keys; only the
    attention mass summed over many keys (six against two) tells them apart, so a normaliser that keeps
    the top 2 keys per query outputs the same average in both classes.
    """

    CLUSTER, PAIR, GAP_SLOTS = 6, 2, 6

    def __init__(self, easy_negatives: float = EASY_NEGATIVE_SHARE) -> None:
        super().__init__((0, 3), (0, 3), signed=False, easy_negatives=easy_negatives)

    def plan_promoter(self, rng, cell_line, promoter_len):
        from cbat.data.background import SLOT_BP

        width = get_motif(LOOPING_TF).length
        n_slots = promoter_len // SLOT_BP
        needed = self.CLUSTER + self.PAIR + self.GAP_SLOTS
        if needed > n_slots - 2:
            raise ValueError(f"synthetic: a {promoter_len}-bp promoter cannot hold the diffuse cluster; expected "
                             f">= {(needed + 2) * SLOT_BP} bp")
        first = int(rng.integers(0, n_slots - 2 - needed + 1))
        cluster_first, pair_first = (first, first + self.CLUSTER + self.GAP_SLOTS) if rng.random() < 0.5 else \
            (first + self.PAIR + self.GAP_SLOTS, first)
        site = lambda slot: Site(LOOPING_TF, _strand(rng), MEDIUM,  # noqa: E731
                                 start=slot * SLOT_BP + int(rng.integers(0, SLOT_BP - width + 1)))
        cluster = [site(cluster_first + k) for k in range(self.CLUSTER)]
        pair = [site(pair_first + k) for k in range(self.PAIR)]
        centre = lambda sites: int(round(np.mean([x.start for x in sites])))  # noqa: E731
        state = (centre(cluster), centre(pair))
        return state, cluster + pair + _context(rng, cell_line, PROMOTER_DECOYS)

    def plan_enhancer(self, rng, cell_line, state, label, enhancer_len) -> EnhancerPlan:
        cluster_centre, pair_centre = state
        decoys = _context(rng, cell_line, ENHANCER_DECOYS)
        if not label and rng.random() < self.easy_negatives:
            return EnhancerPlan(_decoys(rng, ENHANCER_DECOYS, 1, STRONG) + decoys, cause=NO_CAUSE)
        anchor = cluster_centre if label else pair_centre
        start = _aligned_start(rng, anchor, self.positive_band, False, enhancer_len, get_motif(LOOPING_TF).length)
        sites = [Site(LOOPING_TF, _strand(rng), STRONG, start=start)] + decoys
        if not label:
            return EnhancerPlan(sites)
        return EnhancerPlan(sites, [0], list(range(self.CLUSTER)), "placement")


class GrammarTask:
    """``grammar``: the default mix of two cross-sequence rules.

    Both sequences carry one strong CTCF site, one cell-line TF site and a weak YY1 decoy. A positive pair
    satisfies exactly one rule: convergent CTCF (the upstream site on +, the downstream one on -; the
    simulated locus puts the enhancer on the side that makes the pair convergent) or a compatible TF pair.
    Negatives have tandem CTCF (same strand) and an incompatible TF pair.
    """

    def plan_promoter(self, rng, cell_line, promoter_len):
        tf = str(rng.choice(CELL_LINE_TFS[cell_line]))
        ctcf_strand = _strand(rng)
        sites = [Site("CTCF", ctcf_strand, STRONG), Site(tf, _strand(rng), MEDIUM), Site("YY1", _strand(rng), WEAK)]
        return (tf, ctcf_strand), sites

    def plan_enhancer(self, rng, cell_line, state, label, enhancer_len) -> EnhancerPlan:
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


class TfPairTask:
    """``tf_pair`` (a mixture cause): identity, not placement, decides. The promoter holds one strong TF site of
    its cell line, the enhancer one strong TF site of the same cell line: the compatible partner for positives,
    an incompatible TF for hard negatives. Both sides add two weak decoys. Every TF occurs on both sides in both
    classes, so each sequence alone says nothing; the model must relate the two identities across the pair.
    Easy negatives replace the enhancer TF with a strong decoy.
    """

    def __init__(self, easy_negatives: float = EASY_NEGATIVE_SHARE) -> None:
        self.easy_negatives = easy_negatives

    def plan_promoter(self, rng, cell_line, promoter_len):
        tf = str(rng.choice(CELL_LINE_TFS[cell_line]))
        return tf, [Site(tf, _strand(rng), STRONG)] + _decoys(rng, PROMOTER_DECOYS, 2)

    def plan_enhancer(self, rng, cell_line, state, label, enhancer_len) -> EnhancerPlan:
        if not label and rng.random() < self.easy_negatives:
            return EnhancerPlan(_decoys(rng, ENHANCER_DECOYS, 1, STRONG) + _decoys(rng, ENHANCER_DECOYS, 2),
                                cause=NO_CAUSE)
        tf = _enhancer_tf_for(cell_line, state) if label else _incompatible_enhancer_tf(rng, cell_line, state)
        sites = [Site(tf, _strand(rng), STRONG)] + _decoys(rng, ENHANCER_DECOYS, 2)
        return EnhancerPlan(sites, [0], [0], "tf_pair") if label else EnhancerPlan(sites)


class MixtureTask:
    """``mixture`` (the report's default): every promoter follows one planted cause, and so do all pairs that
    use it, so each positive has one recorded cause and its matched negatives (same motif content, placement or
    pairing broken) share that cause; easy negatives get ``NO_CAUSE``.

    Causes are dealt to promoters so that the share of *positives* per cause matches ``shares`` as closely as
    the promoters' positive counts allow (largest deficit first).
    """

    def __init__(self, shares: dict[str, float], copies: int, easy_negatives: float) -> None:
        self.shares = shares
        self.planners = {cause: _cause_planner(cause, copies, easy_negatives) for cause in shares}

    def deal_causes(self, positives_per_promoter: np.ndarray, rng) -> list[str]:
        causes, weights = list(self.shares), np.array(list(self.shares.values()), dtype=float)
        counts, dealt = np.zeros(len(causes)), [""] * len(positives_per_promoter)
        # promoters with most positives first, ties in random order, so the shares come out close
        order = np.lexsort((rng.random(len(positives_per_promoter)), -positives_per_promoter))
        for index in order:
            deficit = weights * (counts.sum() + positives_per_promoter[index]) - counts
            pick = int(np.argmax(deficit))
            counts[pick] += positives_per_promoter[index]
            dealt[index] = causes[pick]
        return dealt

    def plan_promoter(self, rng, cell_line, promoter_len, cause: str):
        state, sites = self.planners[cause].plan_promoter(rng, cell_line, promoter_len)
        return (cause, state), sites

    def plan_enhancer(self, rng, cell_line, state, label, enhancer_len) -> EnhancerPlan:
        cause, inner = state
        plan = self.planners[cause].plan_enhancer(rng, cell_line, inner, label, enhancer_len)
        plan.cause = plan.cause or cause
        if label:
            plan.mechanism = cause
        return plan


def _cause_planner(name: str, copies: int, easy_negatives: float = EASY_NEGATIVE_SHARE):
    planners = {
        "sparse_strong": lambda: PlacementTask((0, 2), (12, 30), signed=False, copies=copies,
                                               easy_negatives=easy_negatives),
        "long_range": lambda: PlacementTask(LONG_RANGE_POSITIVE, LONG_RANGE_NEGATIVE, signed=True,
                                            first_slot=LONG_RANGE_SLOT, copies=copies, easy_negatives=easy_negatives),
        "diffuse": lambda: DiffuseTask(easy_negatives),
        "tf_pair": lambda: TfPairTask(easy_negatives),
    }
    return planners[name]()


def make_task(name: str, copies: int = 1, shares: dict[str, float] | None = None,
              easy_negatives: float = EASY_NEGATIVE_SHARE):
    """The planner for a task name; ``copies`` repeats the decisive pair of sparse_strong / long_range (also
    inside a mixture); ``shares`` are the mixture's cause shares of positives; ``easy_negatives`` the share of
    negatives whose enhancer lacks the decisive motif."""
    if name == "grammar":
        return GrammarTask()
    if name == "mixture":
        return MixtureTask(shares or {cause: 1 / len(DEFAULT_CAUSES) for cause in DEFAULT_CAUSES}, copies,
                           easy_negatives)
    if name in TASKS:
        return _cause_planner(name, copies, easy_negatives)
    raise ValueError(f"unknown synthetic task {name!r}; expected one of {list(TASKS)}")
