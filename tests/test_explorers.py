"""The explorers' widget callbacks, driven directly: each selection changes the figure it should, and the
temperature what-if changes soft attention, leaves hard top-k alone and restores the trained model."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import cbat
from cbat.explorers import AttentionExplorer, GateExplorer
from cbat.layers.attention import temperature_override, tempered_cores
from cbat.report import STATIC_ENV
from test_report_support import tiny_sweep


def random_pair(n: int = 3, enhancer_len: int = 300, promoter_len: int = 200, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    def onehot(length):
        return torch.nn.functional.one_hot(torch.randint(0, 4, (n, length), generator=gen), 4).float().transpose(1, 2)
    return onehot(enhancer_len), onehot(promoter_len)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    return tiny_sweep(tmp_path_factory)


@pytest.fixture(scope="module")
def v2_explorer():
    return AttentionExplorer(cbat.build_model(cbat.preset("cbat_v2"), seed=0), *random_pair())


# --- gates -------------------------------------------------------------------------------------------
def bars(figure):
    return {t.name: np.asarray(t.y) for t in figure.data if t.type == "bar"}


def test_gate_selection_moves_the_step_and_keeps_histograms_normalised(sweep_dir):
    explorer = GateExplorer(sweep_dir)
    assert [r.split("__")[0] for r in explorer.run_ids] == ["cbat_v1", "cbat_v2"]
    steps = explorer.steps(explorer.run_id)
    last = explorer.select()
    assert explorer.step == steps[-1] and last.layout.shapes[0].x0 == steps[-1]
    first = explorer.select(step=steps[0] + 0.4)  # snaps to the nearest recorded step
    assert explorer.step == steps[0] and first.layout.shapes[0].x0 == steps[0]
    for figure in (first, last):
        shares = bars(figure)
        assert shares and all(abs(v.sum() - 1) < 1e-6 for v in shares.values())  # every gate's values binned
    assert all(name.startswith(f"blocks.{explorer.block}.gate_") for name in bars(first))


def test_gate_run_and_block_switches(sweep_dir):
    explorer = GateExplorer(sweep_dir)
    v2 = explorer.run_ids[1]
    explorer.select(block=1)
    figure = explorer.select(run_id=v2)
    assert explorer.run_id == v2 and v2 in figure.layout.title.text
    assert explorer.block in explorer.blocks(v2)
    assert "blocks.0.gate_joint.value" in bars(explorer.select(block=0))  # v2's recipe has a joint-attention gate
    with pytest.raises(ValueError, match="not a gated finished run"):
        explorer.select(run_id="baseline__s0__chrom")
    compared = explorer.compare(explorer.run_ids)
    assert [a.text for a in compared.layout.annotations] == explorer.run_ids
    assert explorer.first_runs(["cbat_v2"]) == [v2]
    # a sweep whose gated variants are not the named ones (a design, a gate twin): its first gated variants
    # stand in, so the notebook's comparison does not fail on compare([])
    assert explorer.first_runs(["baseline+deep_gates", "design-r00"]) == explorer.run_ids


def test_gate_widget_controls_call_the_explorer(sweep_dir):
    explorer = GateExplorer(sweep_dir)
    explorer.widget()
    controls = explorer.controls
    controls["step"].value = controls["step"].options[0]
    assert explorer.step == controls["step"].options[0]
    assert explorer.figure.layout.shapes[0].x0 == explorer.step
    controls["step"].value = controls["step"].options[-1]
    controls["run"].value = explorer.run_ids[1]
    assert explorer.run_id == explorer.run_ids[1]
    assert list(controls["step"].options) == explorer.steps(explorer.run_ids[1])
    assert explorer.step == controls["step"].value == explorer.steps(explorer.run_ids[1])[-1]  # it reset to the first
    with pytest.raises(ValueError, match="compare: block 7 is not a gated block of"):
        explorer.compare(explorer.run_ids, block=7)


# --- attention ---------------------------------------------------------------------------------------
def heatmap(figure):
    return np.asarray(next(t for t in figure.data if t.type == "heatmap").z)


def mean_entropy(explorer, name):
    stats = explorer.statistics()
    return stats.query("name == @name and statistic == 'entropy' and head == -1")["value"].item()


def test_attention_selection_changes_the_map(v2_explorer):
    explorer = v2_explorer
    assert explorer.name.endswith("cross_ep.attn.pattern")
    sample0 = heatmap(explorer.select(sample=0, head=-1))
    rows = sample0.sum(1)
    assert np.allclose(rows, 1, atol=1e-4)  # every query's weights sum to one
    assert not np.allclose(heatmap(explorer.select(sample=1)), sample0)
    # the entropy panel at "mean over heads" averages the heads' entropies, as statistics() does (it showed the
    # head-averaged map's own entropy, which is higher)
    panel = next(t for t in explorer.select(sample=0, head=-1).data if t.name == "entropy")
    one = AttentionExplorer(explorer.model, explorer.enhancer[:1], explorer.promoter[:1], explorer.name_patterns)
    expected = one.statistics().query("name == @explorer.name and statistic == 'entropy' and head == -1")["value"]
    assert float(np.mean(panel.y)) == pytest.approx(expected.item(), rel=1e-4)  # statistics of sample 0 alone
    head0 = heatmap(explorer.select(head=0))
    assert not np.allclose(head0, heatmap(explorer.select(head=1)))
    other = next(n for n in explorer.names if n != explorer.name)
    explorer.select(name=other)
    assert explorer.name == other
    with pytest.raises(ValueError, match="sample 9"):
        explorer.select(sample=9)


def test_temperature_what_if_flattens_soft_attention_and_restores(v2_explorer):
    explorer = v2_explorer
    name = next(n for n in explorer.names if ".cross_ep." in n)
    trained = explorer.patterns[name].clone()
    base = mean_entropy(explorer, name)
    explorer.set_temperature(4.0)
    hot = mean_entropy(explorer, name)
    explorer.set_temperature(0.25)
    cold = mean_entropy(explorer, name)
    assert cold < base < hot
    explorer.set_temperature(None)
    assert torch.equal(explorer.patterns[name], trained)
    cfg = explorer.model.cfg
    assert all((c.sparsity, c.temperature, c.override) == (cfg.sparsity, cfg.temperature, None)
               for c in explorer.tempered_cores())  # the what-if never edits the model
    assert explorer.figure.layout.title.text.endswith("as trained")


def test_temperature_override_is_scoped_and_restored_after_errors():
    model = cbat.build_model(cbat.preset("cbat_v2"), seed=0)
    cores = tempered_cores(model)
    assert cores and all(c.override is None for c in cores)
    with pytest.raises(RuntimeError, match="inside"):
        with temperature_override(model, 3.0) as acted:
            assert acted == cores and all(c.normaliser() == ("temp_softmax", 3.0) for c in cores)
            with temperature_override(model, 0.5):
                assert all(c.normaliser()[1] == 0.5 for c in cores)
            assert all(c.normaliser()[1] == 3.0 for c in cores)  # the outer override comes back
            raise RuntimeError("inside")
    assert all(c.override is None and c.normaliser() == ("temp_softmax", c.temperature) for c in cores)
    with pytest.raises(ValueError, match="positive"):
        with temperature_override(model, -1.0):
            pass


def test_temperature_what_if_converts_plain_softmax_and_leaves_hard_topk():
    enhancer, promoter = random_pair(2)
    baseline = AttentionExplorer(cbat.build_model(cbat.preset("baseline"), seed=0), enhancer, promoter)
    table = baseline.temperature_sweep([0.5, 2.0])
    assert table["entropy"].is_monotonic_increasing and table["entropy"].iloc[-1] > table["entropy"].iloc[0]
    assert [c.sparsity for c in baseline.tempered_cores()] == ["softmax"]  # restored after the what-if
    v1 = AttentionExplorer(cbat.build_model(cbat.preset("cbat_v1"), seed=0), enhancer, promoter)
    assert v1.tempered_cores() == []
    flat = v1.temperature_sweep([0.5, 2.0]).groupby("name")["entropy"].agg(np.ptp)
    assert (flat < 1e-6).all()
    with pytest.raises(ValueError, match="positive"):
        v1.set_temperature(0)
    assert not v1.temperature_applies and "no effect: hard top-k" in v1.set_temperature(2.0).layout.title.text


def test_controls_say_what_they_cannot_do():
    enhancer, promoter = random_pair(2)
    v1 = AttentionExplorer(cbat.build_model(cbat.preset("cbat_v1"), seed=0), enhancer, promoter)
    v1.widget()
    slider = v1.controls["temperature"]
    assert slider.disabled and slider.description == "what-if temperature"
    assert slider.style.description_width == "initial"  # the label is not cut off
    v2 = AttentionExplorer(cbat.build_model(cbat.preset("cbat_v2"), seed=0), enhancer, promoter)
    v2.widget()
    assert not v2.controls["temperature"].disabled
    figure = v2.select(name=next(n for n in v2.names if ".cross_ep." in n))
    assert any("no anchor keys" in a.text for a in figure.layout.annotations)  # cross attention has none
    joint = next((n for n in v2.names if ".joint" in n), None)
    if joint is not None and v2.metas[joint].k_is_anchor.any():
        assert not any("no anchor keys" in a.text for a in v2.select(name=joint).layout.annotations)
    # cbat_v3's gather/broadcast anchors: the gather's queries are the anchors (it said "only the joint attention
    # has anchors" on neither hook and showed the gather's anchor mass 0 without a word)
    v3 = AttentionExplorer(cbat.build_model(cbat.preset("cbat_v3"), seed=0), enhancer, promoter)
    gather = v3.select(name=next(n for n in v3.names if "anchors.gather" in n))
    assert any("the anchors are this hook's queries" in a.text for a in gather.layout.annotations)
    broadcast = v3.select(name=next(n for n in v3.names if "anchors.broadcast" in n))
    assert not any("no anchor keys" in a.text for a in broadcast.layout.annotations)
    # joint attention only: no cross attention for the what-if, no anchors; it read "hard top-k" and "anchors are
    # keys only in the joint attention" on the joint hook itself
    cfg = dataclasses.replace(cbat.preset("baseline", d_model=16, n_heads=2), block_recipe=("joint_attn", "ffn"))
    joint_only = AttentionExplorer(cbat.build_model(cfg, seed=0), enhancer, promoter)
    joint_only.widget()
    assert joint_only.controls["temperature"].disabled and "which this model lacks" in joint_only.no_temperature
    figure = joint_only.set_temperature(2.0)
    assert "no effect: the what-if acts on adaptive cross attention" in figure.layout.title.text
    assert any("this model has no anchors" in a.text for a in figure.layout.annotations)
    assert v1.no_temperature == "hard top-k has no temperature" and v2.no_temperature == ""
    with pytest.raises(ValueError, match=r"this model has no attention \(e.g. the no_cross control\)"):
        AttentionExplorer(cbat.build_model(cbat.preset("no_cross"), seed=0), enhancer, promoter)


def slider_states(figure):
    """Per slider step, the traces it shows."""
    steps = figure.layout.sliders[0].steps
    return [[figure.data[i] for i, shown in enumerate(step.args[0]["visible"]) if shown] for step in steps]


def test_static_figures_hold_precomputed_states_for_the_report(sweep_dir, v2_explorer, monkeypatch):
    gate = GateExplorer(sweep_dir)
    static = gate.static_figure()
    states = slider_states(static)
    assert [s.label for s in static.layout.sliders[0].steps] == [str(s) for s in gate.steps(gate.run_id)]
    first_bars = [t.y for t in states[0] if t.type == "bar"]
    last_bars = [t.y for t in states[-1] if t.type == "bar"]
    assert not all(np.allclose(a, b) for a, b in zip(first_bars, last_bars))  # histograms move with the step
    assert gate.step == gate.steps(gate.run_id)[-1]  # the selection is restored
    explorer = v2_explorer
    explorer.select(name=next(n for n in explorer.names if ".cross_ep." in n))
    static = explorer.static_figure([0.5, 4.0])
    maps = [np.asarray(next(t for t in s if t.type == "heatmap").z) for s in slider_states(static)]
    assert len(maps) == 3 and not np.allclose(maps[0], maps[2])
    assert explorer.temperature is None
    monkeypatch.setenv(STATIC_ENV, "1")
    shown = explorer.show([2.0])
    assert shown.layout.sliders and shown.layout.meta["caption"]
    monkeypatch.delenv(STATIC_ENV)
    assert type(explorer.show()).__name__ == "VBox"


def test_attention_widget_temperature_slider_recomputes(v2_explorer):
    explorer = v2_explorer
    explorer.select(name=next(n for n in explorer.names if ".cross_ep." in n))
    explorer.widget()
    before = heatmap(explorer.figure)
    trained = cbat.preset("cbat_v2").temperature
    assert explorer.trained_temperature == trained != 1.0
    assert explorer.controls["temperature"].value == pytest.approx(trained, rel=0.02)  # it read 1.0 as trained
    explorer.controls["temperature"].value = 5.0
    assert explorer.temperature == pytest.approx(5.0)
    assert not np.allclose(heatmap(explorer.figure), before)
    explorer.controls["reset"].click()  # back to the map as trained
    assert explorer.temperature is None and np.allclose(heatmap(explorer.figure), before)
    explorer.controls["temperature"].value = 5.0
    explorer.controls["sample"].value = 2
    assert explorer.sample == 2
    explorer.set_temperature(None)


def test_from_run_explores_the_top_scoring_test_pairs(sweep_dir):
    explorer = AttentionExplorer.from_run(sweep_dir, "cbat_v2__s0__chrom", n_samples=2)
    assert explorer.run_id == "cbat_v2__s0__chrom"
    assert all(p.shape[0] == 2 for p in explorer.patterns.values())
    with pytest.raises(ValueError, match="not a finished run with attention"):
        AttentionExplorer.from_run(sweep_dir, "nope", n_samples=2)
