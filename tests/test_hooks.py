import json
import math
from pathlib import Path

import pytest
import torch

import cbat
from cbat.hooks import AttentionMeta, HookPoint, attention_stats

from test_mechanisms import with_output_projections

GOLDEN = json.loads((Path(__file__).parent / "golden" / "hook_names.json").read_text())


def _inputs(batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    e = torch.nn.functional.one_hot(torch.randint(0, 4, (batch, 300), generator=gen), 4).float().transpose(1, 2)
    p = torch.nn.functional.one_hot(torch.randint(0, 4, (batch, 200), generator=gen), 4).float().transpose(1, 2)
    return e, p


@pytest.mark.parametrize("name", cbat.PRESETS)
def test_hook_names_per_preset_are_golden(name):
    model = cbat.build_model(cbat.preset(name))
    assert cbat.hook_names(model) == GOLDEN[name]
    with cbat.record(model) as trace:
        assert trace.names == GOLDEN[name]


def test_statistics_of_a_hand_made_attention_map():
    # 1 sample, 2 heads, 2 queries at 0 and 100 bp, 4 keys at 0, 100, 200, 1000 bp (the last one an anchor).
    pattern = torch.tensor([[[[0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]],
                             [[1.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0]]]])
    meta = AttentionMeta(q_pos_bp=torch.tensor([0.0, 100.0]), k_pos_bp=torch.tensor([0.0, 100.0, 200.0, 1000.0]),
                         q_is_anchor=torch.zeros(2, dtype=torch.bool),
                         k_is_anchor=torch.tensor([False, False, False, True]), window_bp=50.0, topk=2)
    stats = attention_stats(pattern, meta, far_bp=150.0)
    torch.testing.assert_close(stats["entropy"], torch.tensor([math.log(4), (0 + math.log(2)) / 2]))
    torch.testing.assert_close(stats["effective_tokens"], torch.tensor([4.0, (1 + 2) / 2]))
    torch.testing.assert_close(stats["topk_mass"], torch.tensor([0.5, 1.0]))
    torch.testing.assert_close(stats["anchor_mass"], torch.tensor([0.25, 0.0]))
    torch.testing.assert_close(stats["zero_fraction"], torch.tensor([0.0, (3 / 4 + 2 / 4) / 2]))
    # head 0, query at 0: mass 0.25 each at 0, 100, 200 bp -> mean 100; query at 100: 100, 0, 100 -> 200/3
    torch.testing.assert_close(stats["mean_distance_bp"], torch.tensor([(100 + 200 / 3) / 2, (0 + 50) / 2]))
    torch.testing.assert_close(stats["far_mass"], torch.tensor([0.25 / 2, 0.0]))
    torch.testing.assert_close(stats["mass_beyond_window"], torch.tensor([(0.5 + 0.5) / 2, 0.5 / 2]))


def test_summary_rows_cover_every_name_and_follow_sampling():
    model = with_output_projections(cbat.build_model(cbat.preset("cbat_v1"), seed=0))
    e, p = _inputs()
    with cbat.record(model, mode="summary", every=2) as trace:
        for _ in range(4):
            model(e, p).sum().backward()
            trace.log_scalar("loss.bce", 1.0)
            trace.next_step()
    summary = trace.summary()
    assert set(summary["name"]) == set(trace.names) | {"loss.bce"}
    assert sorted(summary["step"].unique()) == [0, 2]
    gates = summary.query("name == 'blocks.1.gate_attn.value' and statistic == 'frac_saturated'")["value"]
    assert len(gates) == 2 and gates.between(0, 1).all()
    hist = summary[summary.statistic.str.startswith("hist_") & (summary.name == "blocks.0.gate_ffn.value")]
    assert hist.groupby("step")["value"].sum().round(6).eq(1.0).all()
    grads = summary.query("statistic == 'l2'")
    assert (grads["value"] > 0).all() and set(grads["name"]) == {n for n in trace.names if n.endswith("grad_norm")}


def test_capture_keeps_only_the_chosen_names_and_few_samples():
    model = cbat.build_model(cbat.preset("baseline"), seed=0)
    with cbat.record(model, mode="capture", names=["blocks.0.cross_ep.attn.pattern"], max_samples=1) as trace:
        model(*_inputs(batch=3))
    assert list(trace.captured) == ["blocks.0.cross_ep.attn.pattern"]
    assert trace.captured["blocks.0.cross_ep.attn.pattern"][0].shape == (1, 4, 30, 20)


def test_off_mode_registers_nothing_and_keeps_nothing():
    model = cbat.build_model(cbat.preset("cbat_v2"), seed=0)
    with cbat.record(model, mode="off") as trace:
        assert all(not m._forward_hooks for m in model.modules())
        assert not any(isinstance(m, HookPoint) and m.active for m in model.modules())
        model(*_inputs()).sum().backward()
    assert trace.names == [] and trace.summary().empty and trace.captured == {}


def _hook_count(model):
    forward = sum(len(m._forward_hooks) for m in model.modules())
    grads = sum(len(p._post_accumulate_grad_hooks or {}) for p in model.parameters())
    active = sum(isinstance(m, HookPoint) and m.active for m in model.modules())
    return forward, grads, active


def test_hooks_are_removed_after_an_exception_inside_the_context():
    model = cbat.build_model(cbat.preset("cbat_v2"), seed=0)
    with pytest.raises(RuntimeError, match="boom"):
        with cbat.record(model, mode="capture") as trace:
            assert _hook_count(model)[0] > 0 and _hook_count(model)[1] > 0
            model(*_inputs())
            raise RuntimeError("boom")
    assert _hook_count(model) == (0, 0, 0)
    assert trace.captured  # what was recorded before the error stays readable


def test_unknown_names_and_modes_are_rejected():
    model = cbat.build_model(cbat.preset("baseline"))
    with pytest.raises(ValueError, match="match no hook point"):
        with cbat.record(model, names=["blocks.9.*"]):
            pass
    with pytest.raises(ValueError, match="record mode"):
        with cbat.record(model, mode="full"):
            pass


def test_unsampled_steps_run_the_fused_kernel_and_sampled_steps_materialise_the_pattern(monkeypatch):
    import cbat.layers.attention as attention

    fused_calls = []
    real_sdpa = attention.F.scaled_dot_product_attention
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention",
                        lambda *a, **k: fused_calls.append(1) or real_sdpa(*a, **k))
    model = cbat.build_model(cbat.preset("baseline"), seed=0)
    with cbat.record(model, mode="summary", every=2) as trace:
        for _ in range(2):
            model(*_inputs())
            trace.next_step()
    assert len(fused_calls) == 1  # step 1 only; step 0 was sampled and ran the explicit path
    assert set(trace.summary()["step"]) == {0}


def test_records_on_one_hook_point_do_not_nest_and_bad_arguments_are_named():
    """An inner record's exit switched the outer one's hook points off without a word; names="blocks.0.*" was read
    as its characters; a config instead of a model, sample=2 and max_samples=0 failed deep inside or not at all."""
    model = cbat.build_model(cbat.preset("baseline", d_model=16, n_heads=2), seed=0)
    enhancer, promoter = torch.rand(1, 4, 200), torch.rand(1, 4, 100)
    with cbat.record(model, names=["*.pattern"]) as outer:
        with pytest.raises(ValueError, match=r"hook point\(s\) \['blocks.0.cross_ep.attn.pattern'\] are already "
                                             "recorded by an open record context"):
            with cbat.record(model, names=["blocks.0.*"]):
                pass
        with cbat.record(model, names="*.grad_norm") as inner:  # other points: fine, and a string is one pattern
            assert inner.names and all(n.endswith(".grad_norm") for n in inner.names)
        model(enhancer, promoter)
    assert len(outer.summary()) > 0  # the outer record still saw the forward after the inner one closed
    with cbat.record(model, names=["blocks.0.*"]):  # closed records leave the points free
        pass
    for kwargs, error in ((dict(model=cbat.preset("baseline")), "model is a CBATConfig; expected a torch.nn.Module"),
                          (dict(model=model, sample=2), r"sample=2; expected \(pairs, query_stride\)"),
                          (dict(model=model, mode="capture", max_samples=0), "max_samples=0; expected a positive")):
        with pytest.raises((TypeError, ValueError), match=error):
            with cbat.record(**kwargs):
                pass
