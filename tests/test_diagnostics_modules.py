"""Diagnostics modules on hand-made traces and tiny untrained models: the numbers they derive and the
figures they draw."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

import cbat
from cbat.hooks import AttentionMeta
from diagnostics import anchors, attention, calibration, gates, gradients, losses
from test_diagnostics_fakes import gate_trace, loss_trace
from test_diagnostics_fakes import trace_frame as frame
from test_mechanisms import with_output_projections


def one_hot(batch: int, length: int, seed: int) -> torch.Tensor:
    codes = torch.randint(0, 4, (batch, length), generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.one_hot(codes, 4).float().transpose(1, 2)


# --- gates ---------------------------------------------------------------------------------------------
def test_gate_saturation_late_exceeds_overall_for_a_ramp_and_early_noise_is_early():
    trace = gate_trace(0.8, steps=8)
    sat = gates.saturation(trace, tail=0.25)
    assert len(sat) == 2 and (sat["late"] > sat["overall"]).all()
    assert sat["late"].iloc[0] == pytest.approx(0.8 * (6 / 7 + 1) / 2)
    noise = gates.early_noise(trace, first_steps=2)
    assert (noise["early_sample_var"] > noise["late_sample_var"]).all()
    hist = gates.histogram(trace)
    assert set(hist["step"]) == {7} and hist.groupby("name")["share"].sum().round(6).eq(1.0).all()
    # the trainer's final evaluation forward (one step past the last, fully saturated here) is no training step:
    # it moved late saturation and was the histogram's "last step"
    final = trace[trace["step"] == 7].assign(step=8, value=lambda f: f["value"].where(
        f["statistic"] != "frac_saturated", 1.0))
    phased = pd.concat([trace.assign(phase="train"), final.assign(phase="final")], ignore_index=True)
    pd.testing.assert_frame_equal(gates.saturation(phased, tail=0.25), sat)
    pd.testing.assert_frame_equal(gates.early_noise(phased, first_steps=2), noise)
    assert set(gates.histogram(phased)["step"]) == {7}


def test_gate_kinds_compare_per_variant_with_seed_spread():
    stacked = pd.concat([gate_trace(s).assign(run_id=f"{v}{seed}", variant=v, seed=seed)
                         for v, s in (("v1", 0.6), ("v2", 0.1)) for seed in range(3)], ignore_index=True)
    table = gates.compare_kinds(gates.saturation(stacked), {"v1": "sigmoid", "v2": "temp_sigmoid"})
    row = table.set_index("variant")
    assert row.loc["v1", "gate_kind"] == "sigmoid" and row.loc["v1", "n_seeds"] == 3
    assert row.loc["v1", "late"] > row.loc["v2", "late"]
    figure = gates.saturation_figure(stacked)
    steps = {x for trace in figure.data for x in trace.x}
    phased = stacked.assign(phase=np.where(stacked["step"] == stacked["step"].max(), "final", "train"))
    # the trainer's final evaluation forward is no training step: it was drawn as the last one
    assert {x for trace in gates.saturation_figure(phased).data for x in trace.x} == steps - {stacked["step"].max()}
    assert isinstance(gates.histogram_figure(gates.histogram(stacked)), go.Figure)


# --- gradients -----------------------------------------------------------------------------------------
def test_block_decay_is_the_first_to_last_block_ratio():
    norms = {"head": 2.0, "blocks.2": 1.0, "blocks.1": 0.5, "blocks.0": 0.1, "stem_e": 0.05}
    trace = frame([(f"{g}.grad_norm", int(g.split(".")[1]) if g.startswith("blocks") else -1, "l2", -1, step, v)
                   for step in range(3) for g, v in norms.items()])
    decay = gradients.block_decay(trace)
    assert decay["n_blocks"].iloc[0] == 3
    assert decay["first_to_last"].iloc[0] == pytest.approx(0.1)
    assert decay["first_to_head"].iloc[0] == pytest.approx(0.05)
    two_runs = pd.concat([trace.assign(run_id="deep"),  # runs of other depths: each its own last block
                          trace[~trace["name"].str.startswith("blocks.2")].assign(run_id="shallow")])
    per_run = gradients.block_decay(two_runs).set_index("run_id")
    assert per_run.loc["deep", "n_blocks"] == 3 and per_run.loc["deep", "first_to_last"] == pytest.approx(0.1)
    assert per_run.loc["shallow", "n_blocks"] == 2 and per_run.loc["shallow", "first_to_last"] == pytest.approx(0.2)
    profile = gradients.depth_profile(trace)
    assert list(profile["group"]) == ["head", "blocks.2", "blocks.1", "blocks.0", "stem_e"]
    assert isinstance(gradients.depth_figure(profile), go.Figure)
    assert isinstance(gradients.grad_norm_figure(trace), go.Figure)


# --- losses --------------------------------------------------------------------------------------------
def test_loss_shares_use_weighted_terms_and_sum_to_one():
    trace = loss_trace({"bce": 0.5, "speculation": 1.5, "sparsity": 0.0}, {"speculation": -0.2, "sparsity": 0.3})
    table = losses.shares(trace).set_index("component")
    assert table["share"].sum() == pytest.approx(1.0)
    assert table.loc["speculation", "share"] == pytest.approx(0.75)
    assert table.loc["speculation", "frac_conflict"] == 1.0 and table.loc["sparsity", "frac_conflict"] == 0.0
    assert "total" not in table.index
    assert isinstance(losses.share_figure(trace), go.Figure)
    assert isinstance(losses.conflict_figure(table.reset_index()), go.Figure)


# --- calibration ---------------------------------------------------------------------------------------
def test_reliability_and_drift_show_an_upward_shift():
    rng = np.random.default_rng(0)
    probs = rng.uniform(0, 1, 4000)
    labels = (rng.uniform(0, 1, 4000) < probs).astype(int)
    calibrated = pd.DataFrame({"label": labels, "prob": probs})
    drifted = calibrated.assign(prob=np.clip(probs + 0.3, 0, 1))
    stacked = pd.concat([calibrated.assign(run_id="a", variant="cal", seed=0),
                         drifted.assign(run_id="b", variant="up", seed=0)], ignore_index=True)
    curve = calibration.reliability(stacked)
    gap = (curve["fraction_positive"] - curve["mean_predicted"]).groupby(curve["variant"]).mean()
    assert abs(gap["cal"]) < 0.05 and gap["up"] < -0.15
    runs = pd.DataFrame({"run_id": ["a", "b"], "variant": ["cal", "up"], "seed": 0, "mean_prob": [0.5, 0.8],
                         "base_rate": 0.5, "ece": [0.01, 0.3], "precision": [0.7, 0.55], "recall": [0.7, 0.95]})
    drift = calibration.drift_table(runs).set_index("variant")
    assert drift.loc["up", "drift"] == pytest.approx(0.3) and drift.loc["up", "recall_minus_precision"] > 0.3
    pr = calibration.pr_curve(stacked)
    assert pr["recall"].between(0, 1).all() and set(pr["variant"]) == {"cal", "up"}
    for fig in (calibration.reliability_figure(curve), calibration.drift_figure(drift.reset_index()),
                calibration.pr_figure(pr)):
        assert isinstance(fig, go.Figure)


# --- attention -----------------------------------------------------------------------------------------
def test_distance_profile_puts_mass_at_the_planted_offset():
    n = 12
    pattern = torch.zeros(1, 1, n, n)
    for i in range(n):
        pattern[0, 0, i, (i + 5) % n] = 1.0
    pos = torch.arange(n).float() * 10
    meta = AttentionMeta(pos, pos, torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool))
    profile = attention.profile_from_pattern(pattern, meta, bin_bp=10).set_index("distance_bp")["mass"]
    assert profile.sum() == pytest.approx(1.0)
    assert profile[50.0] == pytest.approx(7 / 12) and profile[70.0] == pytest.approx(5 / 12)


def test_decisive_distance_pairs_causal_sites_across_sides():
    truth = pd.DataFrame({"pair_index": [0, 0, 0, 1], "side": ["enhancer", "promoter", "enhancer", "enhancer"],
                          "start": [500, 40, 100, 10], "role": ["causal", "causal", "decoy", "decoy"]})
    gaps = attention.decisive_distance(truth)
    assert gaps.to_dict() == {0: 460}


@pytest.fixture(scope="module")
def batch():
    return one_hot(3, 200, 0), one_hot(3, 150, 1)


def test_hard_topk_gives_exactly_zero_gradient_outside_the_topk_and_soft_does_not(batch):
    base = cbat.preset("baseline", d_model=16, n_heads=2)
    hard_model = cbat.build_model(dataclasses.replace(base, sparsity="hard_topk", topk=3), seed=0)
    hard = attention.unselected_gradient(with_output_projections(hard_model), *batch).set_index("selected")
    soft_model = with_output_projections(cbat.build_model(base, seed=0))
    soft = attention.unselected_gradient(soft_model, *batch, topk=3).set_index("selected")
    assert hard.loc[False, "max_grad"] == 0.0 and hard.loc[False, "frac_zero_grad"] == 1.0
    assert hard.loc[True, "mean_grad"] > 0 and hard.loc[False, "mean_weight"] == 0.0
    assert soft.loc[False, "mean_grad"] > 0 and soft.loc[False, "frac_zero_grad"] < 0.01
    with pytest.raises(ValueError, match=r"no layer 'blocks.0.cross_ep.attn'; its cross-attention layers: none"):
        attention.unselected_gradient(cbat.build_model(cbat.preset("no_cross", d_model=16, n_heads=2)), *batch)
    table = pd.concat([hard.reset_index().assign(variant="hard"), soft.reset_index().assign(variant="soft")])
    assert isinstance(attention.gradient_figure(table), go.Figure)


def test_distance_profile_of_a_windowed_model_stops_at_the_window(batch):
    cfg = cbat.preset("baseline", d_model=16, n_heads=2, window_size=3)
    model = cbat.build_model(cfg, seed=0).train()
    profile = attention.distance_profile(model, *batch, bin_bp=10)
    assert model.training  # mode restored
    # 20 enhancer queries, 15 promoter keys: queries 18 and 19 have no key within 3 tokens and are left out, so
    # the mass of the 18 others sums to 1 (it read 18 / 20)
    assert profile["mass"].sum() == pytest.approx(1.0, abs=1e-5)
    assert profile.loc[profile["distance_bp"] > 30, "mass"].sum() == 0.0
    assert isinstance(attention.distance_figure(profile, window_bp=30, decisive_bp=250), go.Figure)


def test_attention_table_averages_the_last_steps_per_hook():
    rows = [("blocks.0.cross_ep.attn.pattern", 0, "effective_tokens", -1, step, float(step)) for step in range(8)]
    rows += [("blocks.0.cross_ep.attn.pattern", 0, "effective_tokens", 0, step, 99.0) for step in range(8)]
    table = attention.attention_table(frame(rows), tail=0.25)
    assert table["effective_tokens"].iloc[0] == pytest.approx(6.5)  # steps 6 and 7, head -1 only
    other = [("blocks.1.joint.attn.pattern", 1, "entropy", -1, step, 1.0) for step in range(8)]
    two = attention.attention_table(pd.concat([frame(rows).assign(run_id="a"), frame(other).assign(run_id="b")]))
    assert len(two) == 2  # one row per run and the hook it has (every combination was a row, mostly NaN)
    assert isinstance(attention.sparsity_figure(table.assign(entropy=1.0, topk_mass=0.5)), go.Figure)
    assert isinstance(attention.timeline_figure(frame(rows)), go.Figure)


# --- anchors -------------------------------------------------------------------------------------------
def test_anchor_usage_ratio_compares_mass_per_anchor_with_a_typical_key():
    rows = [("blocks.0.joint.attn.pattern", 0, stat, -1, step, value) for step in range(4)
            for stat, value in (("anchor_mass", 0.04), ("effective_tokens", 10.0))]
    rows += [("blocks.0.anchors.state", 0, "var_across_anchors", -1, step, 0.2) for step in range(4)]
    table = anchors.anchor_table(frame(rows), n_anchors=4)
    assert table["usage_ratio"].iloc[0] == pytest.approx(0.1)  # 0.01 per anchor vs 0.1 per attended key
    assert table["var_across_anchors"].iloc[0] == pytest.approx(0.2)
    assert isinstance(anchors.anchor_figure(table), go.Figure)
