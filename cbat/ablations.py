"""Variant sets for sweeps: the presets and single-factor ablations between the baseline and cbat_v2.

A *factor* is one mechanism switch of the log, i.e. a group of config fields. Its "on" values are read
from the ``cbat_v2`` preset and its "off" values from ``baseline``, so the ablations follow the presets
(data, not code). ``leave_one_out`` turns one factor off in cbat_v2 (``cbat_v2-<factor>``);
``add_one_in`` turns one factor on in the baseline (``baseline+<factor>``).

Factors that only make sense together are closed over ``REQUIRES``: concatenated anchors live inside the
joint ``[promoter, anchors, enhancer]`` attention, so adding ``anchors`` to the baseline also adds
``joint_attn`` (variant ``baseline+anchors`` changes both), and removing ``joint_attn`` from cbat_v2 also
removes ``anchors`` (variant ``cbat_v2-joint_attn`` changes both). Each variant lists the factors it
actually changed in ``Variant.factors``.

A *design* (``design``) runs many factors at once: a two-level fractional factorial from pyDOE3 (low =
baseline value, high = cbat_v2 value), so every run informs every main effect. Its alias structure
(``alias_groups``) says which effects the design cannot tell apart; ``REQUIRES`` is handled by nesting
(``Design``, ``coded``).
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

from cbat.config import PRESETS, CBATConfig, preset

BASELINE = "baseline"
FULL = "cbat_v2"

FACTORS: dict[str, tuple[str, ...]] = {
    "local": ("local", "ms_kernels"),
    "sparsity": ("sparsity", "temperature"),
    "direction": ("direction",),
    "anchors": ("n_anchors", "anchor_mode"),
    "gate": ("gate", "gate_min_temperature", "gate_residual"),
    "window": ("window_size", "mask_kind"),
    "pos_modulation": ("pos_modulation", "pos_modulation_freqs"),
    "joint_attn": ("block_recipe",),
    "depth": ("n_blocks",),
    "aux_sparsity": ("sparsity_loss_weight", "sparsity_target"),
    "aux_immax": ("immax_weight",),
    "aux_speculation": ("speculation_weight",),
}
REQUIRES: dict[str, tuple[str, ...]] = {"anchors": ("joint_attn",)}
VARIANT_SETS = ("presets", "leave_one_out", "add_one_in", "all")


@dataclass(frozen=True)
class Variant:
    """A named config in a sweep; ``factors`` are the mechanism switches it changed from its parent."""

    name: str
    config: CBATConfig
    parent: str = ""
    factors: tuple[str, ...] = ()


def _closure(factor: str, adding: bool) -> list[str]:
    """The factor plus those it needs (when adding) or those that need it (when removing)."""
    if adding:
        return [factor, *REQUIRES.get(factor, ())]
    return [factor, *(f for f, needs in REQUIRES.items() if factor in needs)]


def _switch(cfg: CBATConfig, source: CBATConfig, factors: Iterable[str], name: str) -> CBATConfig:
    values = {field: getattr(source, field) for factor in factors for field in FACTORS[factor]}
    return dataclasses.replace(cfg, name=name, **values)


def _single_factor(adding: bool) -> list[Variant]:
    """Every factor switched on its own: into the baseline (adding) or out of cbat_v2 (removing)."""
    full, base = preset(FULL), preset(BASELINE)
    start, donor, parent, sign = (base, full, BASELINE, "+") if adding else (full, base, FULL, "-")
    variants = []
    for factor in FACTORS:
        factors = _closure(factor, adding=adding)
        name = f"{parent}{sign}{factor}"
        variants.append(Variant(name, _switch(start, donor, factors, name), parent, tuple(factors)))
    return variants


def leave_one_out() -> list[Variant]:
    """cbat_v2 with one factor (and what depends on it) switched back to the baseline's value."""
    return _single_factor(adding=False)


def add_one_in() -> list[Variant]:
    """The baseline with one factor (and what it needs) switched to cbat_v2's value."""
    return _single_factor(adding=True)


def presets(include_no_cross: bool = False) -> list[Variant]:
    """baseline, cbat_v1, cbat_v2, cbat_v3 (and the no_cross control when asked)."""
    names = [n for n in PRESETS if include_no_cross or n != "no_cross"]
    return [Variant(n, preset(n)) for n in names]


def variant_set(name: str) -> list[Variant]:
    """One of ``VARIANT_SETS``; "all" = presets (with no_cross) + leave_one_out + add_one_in."""
    if name == "presets":
        return presets()
    if name == "leave_one_out":
        return leave_one_out()
    if name == "add_one_in":
        return add_one_in()
    if name == "all":
        return presets(include_no_cross=True) + leave_one_out() + add_one_in()
    raise ValueError(f"unknown variant set {name!r}; expected one of {list(VARIANT_SETS)}")


def resolve_variants(names: Iterable[str]) -> list[Variant]:
    """Expand set names (``VARIANT_SETS``), preset names and single ablation names, keeping order.

    Raises ``ValueError`` naming the unknown entry and what is available.
    """
    by_name = {v.name: v for v in variant_set("all")}
    out: dict[str, Variant] = {}
    for name in names:
        chosen = variant_set(name) if name in VARIANT_SETS else [by_name.get(name)]
        if chosen == [None]:
            raise ValueError(f"unknown variant {name!r}; expected a set {list(VARIANT_SETS)} or one of "
                             f"{sorted(by_name)}")
        for variant in chosen:
            out.setdefault(variant.name, variant)
    return list(out.values())


# --- designed ablations ------------------------------------------------------------------------------
DESIGN_KINDS = ("fractional",)
RESOLUTIONS = (3, 4, 5)
DESIGN_PREFIX = "design-r"


def _term(letters: str, factors: tuple[str, ...]) -> str:
    """A design-library term ("bk") named by factor ("sparsity:aux_sparsity")."""
    return ":".join(factors[ord(ch) - ord("a")] for ch in letters)


def alias_groups(matrix: np.ndarray, factors: tuple[str, ...], max_order: int = 2) -> list[list[str]]:
    """Alias groups of a two-level design from ``pyDOE3.fracfact_aliasing``, named by factor.

    Each group lists the main effects and interactions of order <= ``max_order`` that the design cannot tell
    apart (higher orders are dropped); groups left with a single term alias nothing and are omitted.
    """
    import pyDOE3  # here, not at module level: it loads scipy.stats (about 1 s), which `cbat --help` need not wait for

    alias_map, _ = pyDOE3.fracfact_aliasing(np.asarray(matrix))
    groups = []
    for group in alias_map:
        terms = [_term(t.strip(), factors) for t in group.split("=") if len(t.strip()) <= max_order]
        if len(terms) > 1:
            groups.append(terms)
    return groups


def resolution_of(matrix: np.ndarray, max_length: int = 6) -> Optional[int]:
    """Length of the shortest word of the defining relation (a product of columns constant over the runs);
    None when no word up to ``max_length`` letters exists."""
    matrix = np.asarray(matrix)
    for length in range(1, max_length + 1):
        for columns in itertools.combinations(range(matrix.shape[1]), length):
            if abs(np.prod(matrix[:, columns], axis=1).sum()) == matrix.shape[0]:
                return length
    return None


@dataclass(frozen=True)
class Design:
    """A two-level design over ``FACTORS``: row i is one run, -1 = the baseline's value, +1 = cbat_v2's.

    ``matrix`` is the design as built by pyDOE3; ``levels`` what each run really gets. They differ only where
    ``REQUIRES`` forbids a combination: concatenated anchors live inside joint attention, so a row with
    anchors high and joint_attn low runs without anchors. The anchors effect is therefore *nested*: it is
    estimated within joint_attn on (see ``model_matrix``), and joint_attn's effect is averaged over the
    anchor setting of its high half.
    """

    kind: str
    resolution: int
    foldover: bool
    factors: tuple[str, ...]
    matrix: np.ndarray
    aliases: tuple[tuple[str, ...], ...]
    overrides: dict = dataclasses.field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        width = len(str(len(self.matrix) - 1))
        return [f"{DESIGN_PREFIX}{i:0{width}d}" for i in range(len(self.matrix))]

    @property
    def levels(self) -> np.ndarray:
        """The realised levels: ``matrix`` with each ``REQUIRES`` factor forced low where what it needs is low."""
        levels = self.matrix.copy()
        col = {f: i for i, f in enumerate(self.factors)}
        for factor, needs in REQUIRES.items():
            for need in needs:
                levels[levels[:, col[need]] < 0, col[factor]] = -1
        return levels

    def variants(self) -> list[Variant]:
        """One variant per row: the baseline with the row's high factors switched to cbat_v2's values."""
        base, full = preset(BASELINE), preset(FULL)
        out = []
        for name, row in zip(self.names, self.levels):
            high = [f for f, level in zip(self.factors, row) if level > 0]
            cfg = dataclasses.replace(_switch(base, full, high, name), **self.overrides)
            out.append(Variant(name, cfg, BASELINE, tuple(high)))
        return out

    def to_dict(self) -> dict:
        return {"kind": self.kind, "resolution": self.resolution, "foldover": self.foldover,
                "factors": list(self.factors), "rows": self.names, "matrix": self.matrix.astype(int).tolist(),
                "levels": self.levels.astype(int).tolist(), "aliases": [" = ".join(g) for g in self.aliases],
                "overrides": dict(self.overrides)}

    @classmethod
    def from_dict(cls, data: dict) -> "Design":
        """The design stored in ``sweep.json`` (``to_dict``'s output)."""
        return cls(data["kind"], data["resolution"], data["foldover"], tuple(data["factors"]),
                   np.asarray(data["matrix"], dtype=float), tuple(tuple(g.split(" = ")) for g in data["aliases"]),
                   dict(data.get("overrides", {})))


def design(kind: str = "fractional", resolution: int = 4, foldover: bool = False,
           overrides: Optional[dict] = None) -> Design:
    """A two-level fractional factorial over ``FACTORS`` (``pyDOE3.fracfact_by_res``).

    Parameters
    ----------
    kind : "fractional" (the only kind so far).
    resolution : 3 (main effects aliased with two-factor interactions; 16 runs for 12 factors), 4 (main
        effects clear of two-factor interactions; 32 runs) or 5 (two-factor interactions clear of each other).
        The built design's resolution is checked: for 12 factors pyDOE3 1.x cannot build V (it returns a
        64-run resolution IV design), so 5 is refused with that message.
    foldover : append the mirror image of every row (``pyDOE3.fold``): a resolution III design becomes IV
        (refused for IV and V, which hold every mirrored row already).
    overrides : config fields set in every row (e.g. ``{"d_model": 16}`` for a toy run); they must not be
        fields of a factor.
    """
    if kind not in DESIGN_KINDS:
        raise ValueError(f"design kind {kind!r}; expected one of {list(DESIGN_KINDS)}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution not in RESOLUTIONS:
        raise ValueError(f"design resolution {resolution!r}; expected one of {list(RESOLUTIONS)}")
    if not isinstance(foldover, bool):
        raise ValueError(f"design foldover {foldover!r}; expected true or false")
    if foldover and resolution != 3:  # a resolution IV+ design is its own mirror image: the runs would repeat
        raise ValueError(f"design foldover lifts resolution 3 to 4; a resolution {resolution} design already has "
                         "every mirrored row, so foldover would only repeat its runs")
    if overrides is not None and not isinstance(overrides, dict):
        raise ValueError(f"design overrides {overrides!r}; expected a mapping of config fields to values")
    overrides = dict(overrides or {})
    clash = sorted(set(overrides) & ({f for fields in FACTORS.values() for f in fields} | {"name"}))
    if clash:
        raise ValueError(f"design overrides {clash} are fields the design sets (a factor's, or the row's name)")
    CBATConfig.from_dict({**preset(BASELINE).to_dict(), **overrides}, "design overrides")  # unknown or bad fields
    import pyDOE3  # see alias_groups

    factors = tuple(FACTORS)
    matrix = np.asarray(pyDOE3.fracfact_by_res(len(factors), resolution), dtype=float)
    # pyDOE3 1.x returns 64 runs of resolution IV when asked for V with 12 factors: check, never trust.
    built = resolution_of(matrix) or len(factors) + 1
    if built < resolution:
        raise ValueError(f"pyDOE3.fracfact_by_res({len(factors)}, {resolution}) gives {len(matrix)} runs of "
                         f"resolution {built}, not {resolution}; ask for resolution {built} (or 3 with foldover)")
    if foldover:
        matrix = np.asarray(pyDOE3.fold(matrix), dtype=float)
    aliases = tuple(tuple(g) for g in alias_groups(matrix, factors))
    return Design(kind, resolution_of(matrix) or len(factors) + 1, foldover, factors, matrix, aliases, overrides)


def coded(levels: np.ndarray, factors: tuple[str, ...] = tuple(FACTORS)) -> np.ndarray:
    """Model columns of realised levels (runs x factors of -1/+1): low -0.5, high +0.5, so a least-squares
    coefficient is the effect high - low. A ``REQUIRES`` factor is nested: +-0.5 where what it needs is
    high, 0 elsewhere, so its coefficient is its effect within the factor it needs."""
    columns = np.asarray(levels, dtype=float) / 2
    col = {f: i for i, f in enumerate(factors)}
    for factor, needs in REQUIRES.items():
        if factor in col and all(n in col for n in needs):
            inside = np.all([levels[:, col[n]] > 0 for n in needs], axis=0)
            columns[:, col[factor]] = np.where(inside, columns[:, col[factor]], 0.0)
    return columns


def levels_of(config: dict) -> Optional[dict[str, int]]:
    """Each factor's level in a config (-1 the baseline's values, +1 cbat_v2's), or None when some factor
    holds neither (the config is no corner of the design space)."""
    low, high = preset(BASELINE).to_dict(), preset(FULL).to_dict()
    levels = {}
    for factor, fields in FACTORS.items():
        differ = [f for f in fields if low[f] != high[f]]
        if all(_same(config.get(f), high[f]) for f in differ):
            levels[factor] = 1
        elif all(_same(config.get(f), low[f]) for f in differ):
            levels[factor] = -1
        else:
            return None
    return levels


def _same(a, b) -> bool:
    """Equal after JSON round trips (tuples read back as lists)."""
    norm = lambda v: list(v) if isinstance(v, (list, tuple)) else v  # noqa: E731
    return norm(a) == norm(b)
