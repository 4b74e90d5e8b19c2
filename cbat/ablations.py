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
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable

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
