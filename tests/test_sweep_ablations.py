"""Variant sets: every mechanism switch is ablated both ways, each variant differs from its parent in
exactly the fields of its factors, and switches that only work together are grouped."""
import dataclasses
import json
from collections import Counter

import numpy as np
import pytest

import cbat
from cbat.ablations import FACTORS, add_one_in, leave_one_out, presets, resolve_variants
from cbat.sweep import QUICK_SEEDS, QUICK_WIDE_SEEDS, SweepSpec, quick_sweep_spec


def _changed_fields(a, b):
    return {f.name for f in dataclasses.fields(a) if f.name != "name" and getattr(a, f.name) != getattr(b, f.name)}


@pytest.mark.parametrize("variants, parent", [(leave_one_out, "cbat_v2"), (add_one_in, "baseline")])
def test_single_factor_variants_change_only_their_factors(variants, parent):
    built = variants()
    assert len(built) == len(FACTORS)
    for variant in built:
        fields = {f for factor in variant.factors for f in FACTORS[factor]}
        changed = _changed_fields(variant.config, cbat.preset(parent))
        assert changed and changed <= fields, variant.name
        assert variant.config.name == variant.name and variant.parent == parent


def test_concat_anchors_are_grouped_with_joint_attention():
    by_name = {v.name: v for v in leave_one_out() + add_one_in()}
    assert set(by_name["baseline+anchors"].factors) == {"anchors", "joint_attn"}
    assert "joint_attn" in by_name["baseline+anchors"].config.block_recipe
    assert set(by_name["cbat_v2-joint_attn"].factors) == {"joint_attn", "anchors"}
    assert by_name["cbat_v2-joint_attn"].config.n_anchors == 0


def test_resolve_variants_expands_sets_and_rejects_unknown_names():
    names = [v.name for v in resolve_variants(["presets", "cbat_v2-window", "baseline"])]
    assert names == ["baseline", "cbat_v1", "cbat_v2", "cbat_v3", "cbat_v2-window"]
    assert [v.name for v in presets(include_no_cross=True)][-1] == "no_cross"
    with pytest.raises(ValueError, match="unknown variant 'cbat_v9'"):
        resolve_variants(["cbat_v9"])


def test_a_variant_may_carry_its_own_seeds_and_the_quick_spec_uses_that():
    spec = SweepSpec(variants=["baseline", {"name": "few", "config": "baseline", "seeds": [7]}], seeds=[0, 1])
    assert [(r["variant"], r["seed"]) for r in spec.runs()] == [("baseline", 0), ("baseline", 1), ("few", 7)]
    with pytest.raises(ValueError, match="'seeds' must be a non-empty list of integers"):
        SweepSpec(variants=[{"name": "bad", "seeds": []}]).runs()
    quick = quick_sweep_spec()
    per_variant = Counter(run["variant"] for run in quick.runs())
    assert per_variant["cbat_v2"] == 3 and per_variant["no_cross"] == len(QUICK_SEEDS) == 4
    assert per_variant["baseline"] == per_variant["baseline+topk2"] == len(QUICK_WIDE_SEEDS) == 6
    # seeds asked for replace every variant's own, as cbat sweep --seeds and cbat report --seeds promise
    assert {run["seed"] for run in quick.with_seeds([9]).runs()} == {9}
    assert len(quick.with_seeds([9]).runs()) == len(per_variant)
    assert quick.data["task"] == "mixture" and quick.settings["warmup_epochs"] < quick.settings["epochs"]


@pytest.mark.parametrize("name", ["x/y", "../escape", "", "  ", "..", "a\\b", 3])
def test_a_variant_name_that_cannot_name_a_run_folder_is_refused(name):
    """'x/y' was trained into runs/x/y__s0__chrom and then left out of the table without a word; '../escape'
    wrote beside runs/; '' gave run ids '__s0__chrom'."""
    spec = SweepSpec(variants=[{"name": name, "config": "baseline"}], seeds=[0])
    with pytest.raises(ValueError, match="expected a non-empty name without '/'"):
        spec.variant_table()


def test_a_variant_config_that_is_no_preset_or_file_names_both():
    """An ablation name in 'config' (it names variants, not configs) read "config file not found"."""
    spec = SweepSpec(variants=[{"name": "w", "config": "baseline+window"}], seeds=[0])
    with pytest.raises(cbat.ConfigError,
                       match=r"baseline\+window: neither a preset \(baseline, .*\) nor a config file"):
        spec.variant_table()


def test_the_python_api_may_give_config_objects_and_numpy_or_range_seeds():
    """A CBATConfig in variants read "CBATConfig(...): neither a preset nor a config file" and seeds=np.arange(2)
    read "'seeds' must be a list"; both are what a notebook user has in hand."""
    small = dataclasses.replace(cbat.preset("baseline"), name="small", d_model=16)
    spec = SweepSpec(variants=[cbat.preset("baseline"), small, {"name": "two_heads", "config": small,
                                                                "overrides": {"n_heads": 2}}],
                     seeds=np.arange(2))
    assert spec.seeds == [0, 1] and all(type(s) is int for s in spec.seeds)
    table = spec.variant_table()
    assert table["small"]["config"] == small
    assert table["two_heads"]["config"] == dataclasses.replace(small, name="two_heads", n_heads=2)
    assert table["two_heads"]["parent"] == "small"
    resumed = SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict())))  # what sweep.json gives back
    assert {k: v["config"] for k, v in resumed.variant_table().items()} == {k: v["config"] for k, v in table.items()}
    assert SweepSpec(variants=["baseline"], seeds=range(3)).seeds == [0, 1, 2]
    with pytest.raises(ValueError, match="'variants' must be a list, got {'small': CBATConfig"):
        SweepSpec(variants={"small": small})
    with pytest.raises(ValueError, match="'config': expected a preset name, a YAML/JSON path, a CBATConfig"):
        SweepSpec(variants=[{"name": "x", "config": 3}]).variant_table()
