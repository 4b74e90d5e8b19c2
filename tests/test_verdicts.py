"""Verdict rules on hand-made sweeps where the truth is set by construction (no training)."""
from __future__ import annotations

import dataclasses

import pandas as pd
import plotly.graph_objects as go
import pytest

import cbat
from diagnostics.ablation import effect, waterfall, waterfall_figure
from diagnostics.io import load_sweep
from diagnostics.verdicts import CLAIMS, COLUMNS, assess, contrasts
from test_diagnostics_fakes import gate_trace, loss_trace, probs_with_noise, trace_frame, write_sweep

BASE = cbat.preset("baseline")
N_BOOT = 30  # clear-cut effects; cbat.stats pays sklearn validation per replicate


def attention_trace(effective_tokens: float) -> pd.DataFrame:
    rows = [("blocks.0.cross_ep.attn.pattern", 0, stat, -1, step, value)
            for step in range(4) for stat, value in (("effective_tokens", effective_tokens), ("entropy", 1.0),
                                                     ("topk_mass", 0.5), ("mean_distance_bp", 100.0))]
    return trace_frame(rows)


def by_variant(**noise: float):
    makers = {v: probs_with_noise(n) for v, n in noise.items()}
    return lambda variant, seed: makers[variant](variant, seed)


def verdict_of(path, hid, **kwargs):
    table = assess(path, hypotheses=[hid], probes=False, n_boot=N_BOOT, **kwargs).table
    return table.set_index("id").loc[hid]


@pytest.fixture(scope="module")
def sparse_sweep(tmp_path_factory):
    """A sparsemax twin of the baseline that ranks worse and attends to fewer tokens."""
    variants = {"baseline": BASE, "sparse": dataclasses.replace(BASE, sparsity="sparsemax")}
    tokens = {"baseline": 20.0, "sparse": 3.0}
    return write_sweep(tmp_path_factory.mktemp("h2"), variants, [0, 1, 2], by_variant(baseline=0.2, sparse=2.0),
                       lambda v, s: attention_trace(tokens[v]))


def test_h2_supported_when_the_sparse_twin_trails(sparse_sweep):
    row = verdict_of(sparse_sweep, "H2")
    assert row.verdict == "supported"
    assert "ΔAUPR(sparse − baseline)" in row.evidence and "effective tokens" in row.evidence
    assert any(ch.isdigit() for ch in row.evidence)
    assert len(row.run_ids) == 6


def test_h2_inconclusive_when_no_difference_and_with_too_few_seeds(tmp_path):
    variants = {"baseline": BASE, "sparse": dataclasses.replace(BASE, sparsity="sparsemax")}
    tokens = {"baseline": 20.0, "sparse": 3.0}
    same = write_sweep(tmp_path / "same", variants, [0, 1, 2], by_variant(baseline=0.5, sparse=0.5),
                       lambda v, s: attention_trace(tokens[v]))
    row = verdict_of(same, "H2")
    assert row.verdict == "inconclusive" and "intervals span 0" in row.evidence
    few = write_sweep(tmp_path / "few", variants, [0, 1], by_variant(baseline=0.2, sparse=2.0),
                      lambda v, s: attention_trace(tokens[v]))
    row = verdict_of(few, "H2")
    assert row.verdict == "inconclusive" and "only 2 paired seed(s), need 3" in row.evidence


def test_h2_not_supported_when_the_variant_is_not_sparser(tmp_path):
    variants = {"baseline": BASE, "sparse": dataclasses.replace(BASE, sparsity="sparsemax")}
    path = write_sweep(tmp_path / "s", variants, [0, 1, 2], by_variant(baseline=0.2, sparse=2.0),
                       lambda v, s: attention_trace(20.0))
    assert verdict_of(path, "H2").verdict == "not supported"


def test_contrasts_need_configs_that_differ_only_in_the_mechanism(tmp_path):
    variants = {"global": BASE, "window": dataclasses.replace(BASE, window_size=4),
                "window_deep": dataclasses.replace(BASE, window_size=4, n_blocks=2)}
    sweep = load_sweep(write_sweep(tmp_path / "s", variants, [0], probs_with_noise(0.5)))
    found = contrasts(sweep, ("window_size", "mask_kind"), lambda c: c["window_size"] is not None,
                      lambda c: c["window_size"] is None)
    assert found == [("window", "global")]


def test_h1_follows_the_interval_and_prefers_the_long_range_task(tmp_path):
    variants = {"global": BASE, "window": dataclasses.replace(BASE, window_size=4)}
    path = write_sweep(tmp_path / "s", variants, [0, 1, 2], by_variant(**{"global": 0.2, "window": 2.0}),
                       task="long_range")
    row = verdict_of(path, "H1")
    assert row.verdict == "supported" and row.task == "long_range"
    assert "window 40 bp" in row.evidence and "probe skipped" in row.evidence
    better = write_sweep(tmp_path / "b", variants, [0, 1, 2], by_variant(**{"global": 2.0, "window": 0.2}))
    assert verdict_of(better, "H1").verdict == "not supported"


def test_missing_contrast_is_inconclusive_with_the_reason(sparse_sweep):
    row = verdict_of(sparse_sweep, "H4")
    assert row.verdict == "inconclusive" and "the sweep lacks a pos_modulation variant" in row.evidence


def test_h6_needs_a_dominant_share_and_a_conflicting_gradient(tmp_path):
    variants = {"baseline": BASE, "aux": dataclasses.replace(BASE, speculation_weight=20.0)}
    heavy = write_sweep(tmp_path / "heavy", variants, [0, 1, 2], by_variant(baseline=0.5, aux=0.5),
                        lambda v, s: loss_trace({"bce": 0.6, "speculation": 3.0}, {"speculation": -0.4}))
    row = verdict_of(heavy, "H6")
    assert row.verdict == "supported" and "share 0.83" in row.evidence and "-0.40" in row.evidence
    light = write_sweep(tmp_path / "light", variants, [0, 1, 2], by_variant(baseline=0.5, aux=0.5),
                        lambda v, s: loss_trace({"bce": 0.6, "speculation": 0.05}, {"speculation": -0.4}))
    assert verdict_of(light, "H6").verdict == "not supported"
    aligned = write_sweep(tmp_path / "aligned", variants, [0, 1, 2], by_variant(baseline=0.5, aux=0.5),
                          lambda v, s: loss_trace({"bce": 0.6, "speculation": 3.0}, {"speculation": 0.4}))
    row = verdict_of(aligned, "H6")
    assert row.verdict == "inconclusive" and "Δ" in row.evidence
    assert "neither a conflicting (competing) gradient" in row.evidence


def test_v1c_reads_late_saturation_of_sigmoid_gates(tmp_path):
    variants = {"v1": dataclasses.replace(BASE, gate="sigmoid"), "v2": dataclasses.replace(BASE, gate="temp_sigmoid")}
    sat = {"v1": 0.6, "v2": 0.05}
    path = write_sweep(tmp_path / "s", variants, [0, 1, 2], probs_with_noise(0.5), lambda v, s: gate_trace(sat[v]))
    row = verdict_of(path, "V1c")
    assert row.verdict == "supported" and "v1 (sigmoid)" in row.evidence and "v2 (temp_sigmoid)" in row.evidence
    calm = write_sweep(tmp_path / "c", variants, [0, 1, 2], probs_with_noise(0.5), lambda v, s: gate_trace(0.05))
    assert verdict_of(calm, "V1c").verdict == "not supported"


def test_v1d_finds_upward_drift_with_recall_inflation(tmp_path):
    variants = {"baseline": BASE, "cbat_v1": cbat.preset("cbat_v1")}
    base, drifted = probs_with_noise(0.5), probs_with_noise(0.5, shift=2.5)
    path = write_sweep(tmp_path / "s", variants, [0, 1, 2],
                       lambda v, s: drifted(v, s) if v == "cbat_v1" else base(v, s))
    row = verdict_of(path, "V1d")
    assert row.verdict == "supported" and "Δrecall(cbat_v1 − baseline) = +" in row.evidence


def test_assess_returns_every_hypothesis_and_the_waterfall(tmp_path):
    names = ["baseline", "cbat_v2", "baseline+window", "cbat_v2-window"]
    from cbat.ablations import add_one_in, leave_one_out
    configs = {v.name: v.config for v in add_one_in() + leave_one_out() if v.name in names}
    configs.update(baseline=BASE, cbat_v2=cbat.preset("cbat_v2"))
    noise = {"baseline": 0.3, "cbat_v2": 0.6, "baseline+window": 1.0, "cbat_v2-window": 0.3}
    path = write_sweep(tmp_path / "s", configs, [0, 1, 2], by_variant(**noise), task="long_range")
    table, figures = assess(path, probes=False, n_boot=N_BOOT)
    assert list(table.columns) == COLUMNS and list(table["id"]) == list(CLAIMS)
    assert set(table["verdict"]) <= {"supported", "not supported", "inconclusive"}
    assert table.set_index("id").loc["H1", "verdict"] == "supported"  # baseline+window vs baseline
    assert "ablation.waterfall" in figures and all(isinstance(f, go.Figure) for f in figures.values())
    steps = waterfall(path, n_boot=N_BOOT)
    assert list(steps["step"]) == ["baseline", "window", "interactions", "cbat_v2"]
    window = steps.set_index("step").loc["window"]
    assert window.add_one_in < 0 and window.add_ci_high < 0 and window.leave_one_out < 0
    total = effect(path, "cbat_v2", "baseline", n_boot=N_BOOT)
    assert steps["add_one_in"].iloc[1:3].sum() == pytest.approx(total.mean_diff)
    assert isinstance(waterfall_figure(steps), go.Figure)
