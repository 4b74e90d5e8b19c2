"""Every fast path equals the exact path on the same inputs, within float tolerance (issue 16).

The exact references below are the straightforward formulations the fast paths replaced: max-pool after
GELU after Conv1d for the stem, ``normalise`` plus a separate bias tensor for attention (``force_explicit``),
and per-head host-side reductions for the hook statistics.
"""
import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cbat
from cbat.hooks import AttentionMeta, attention_stats, gate_stats, hook_points, state_stats
from cbat.layers import AttentionCore
from cbat.layers.stem import ConvStem
from cbat.train import TrainSettings, train
from cbat.losses import CBATLoss
from test_train_core import SMALL, Split, TinyDataset


# --- exact references ------------------------------------------------------------------------------
def reference_attention_stats(pattern, meta, far_bp):
    """The per-head statistics as first written: boolean indexing and a fresh distance matrix per call."""
    p = pattern.detach().float()
    q_anchor, k_anchor = meta.q_is_anchor, meta.k_is_anchor
    q_keep = ~q_anchor if (~q_anchor).any() else torch.ones_like(q_anchor)
    rows = p[:, :, q_keep]
    keyed = rows.sum(-1) > 0.5  # queries with no key (a window past the shorter sequence) are left out

    def mean(per_query):  # [B, H, Lq] -> [H] over the keyed queries
        return torch.stack([per_query[:, h][keyed[:, h]].mean() for h in range(per_query.shape[1])])

    plogp = torch.where(rows > 0, rows * rows.clamp_min(1e-30).log(), torch.zeros_like(rows))
    entropy = -plogp.sum(-1)
    nan = torch.full((p.shape[1],), float("nan"))
    stats = {"entropy": mean(entropy), "effective_tokens": mean(entropy.exp()),
             "topk_mass": mean(rows.topk(min(meta.topk, rows.shape[-1]), dim=-1).values.sum(-1)),
             "zero_fraction": mean((rows == 0).float().mean(-1)),
             "anchor_mass": mean(rows[..., k_anchor].sum(-1)) if k_anchor.any() else torch.zeros_like(nan)}
    if q_anchor.all() or k_anchor.all():
        return {**stats, "mean_distance_bp": nan, "far_mass": nan, "mass_beyond_window": nan}
    positioned = rows[..., ~k_anchor]
    distance = (meta.q_pos_bp[q_keep][:, None] - meta.k_pos_bp[~k_anchor][None, :]).abs()
    mass = positioned.sum(-1).clamp_min(1e-12)
    stats["mean_distance_bp"] = mean((positioned * distance).sum(-1) / mass)
    stats["far_mass"] = mean((positioned * (distance > far_bp)).sum(-1))
    stats["mass_beyond_window"] = nan if meta.window_bp is None else \
        mean((positioned * (distance > meta.window_bp)).sum(-1))
    return stats


def reference_gate_stats(value):
    v = value.detach().float()
    per_sample = v.flatten(1).mean(1)
    stats = {"mean": v.mean().item(), "std": v.std().item(),
             "frac_saturated": ((v < 0.05) | (v > 0.95)).float().mean().item(),
             "frac_low": (v < 0.05).float().mean().item(), "frac_high": (v > 0.95).float().mean().item(),
             "sample_var": per_sample.var().item()}
    counts = torch.histc(v, bins=10, min=0.0, max=1.0) / v.numel()
    return {**stats, **{f"hist_{i:02d}": c for i, c in enumerate(counts.tolist())}}


def reference_stem(stem, onehot):
    return F.max_pool1d(F.gelu(stem.conv(onehot)), stem.pool).transpose(1, 2)


def _onehot(batch, length, seed=0, n_run=None):
    gen = torch.Generator().manual_seed(seed)
    x = F.one_hot(torch.randint(0, 4, (batch, length), generator=gen), 4).float().transpose(1, 2).contiguous()
    if n_run is not None:
        x[:, :, n_run[0]:n_run[1]] = 0  # N bases: constant pre-activations, ties inside pool windows
    return x


def _grads(module):
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def _assert_same_grads(a, b, **tol):
    assert a.keys() == b.keys() and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=lambda m, n=name: f"{n}: {m}", **tol)


# --- stem ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel, pool, length", [(15, 10, 600), (14, 10, 403), (5, 4, 37)])
def test_stem_equals_conv_gelu_maxpool_with_gradients(kernel, pool, length):
    torch.manual_seed(0)
    stem = ConvStem(16, kernel, pool)
    x = _onehot(3, length, n_run=(3, 30)).requires_grad_()
    out = stem(x)
    weight = torch.randn_like(out)
    (out * weight).sum().backward()
    fast_grads, fast_input = _grads(stem), x.grad.clone()
    stem.zero_grad()
    x.grad = None
    ref = reference_stem(stem, x)
    (ref * weight).sum().backward()
    torch.testing.assert_close(out, ref)
    _assert_same_grads(fast_grads, _grads(stem), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast_input, x.grad)


def test_stem_picks_the_window_minimum_where_gelu_is_larger_there():
    # Pre-activations -3 and -0.75 in one window: GELU(-3) ~ -0.004 > GELU(-0.75) ~ -0.17, so the max of
    # GELU sits at the window's minimum, not its maximum.
    stem = ConvStem(1, 1, 2)
    with torch.no_grad():
        stem.conv.weight.fill_(1.0)
        stem.conv.bias.zero_()
    x = torch.zeros(1, 4, 2)
    x[0, 0] = torch.tensor([-3.0, -0.75])
    torch.testing.assert_close(stem(x), reference_stem(stem, x))
    torch.testing.assert_close(stem(x).squeeze(), F.gelu(torch.tensor(-3.0)))


# --- attention -----------------------------------------------------------------------------------
def _v2_core(window=3):
    cfg = dataclasses.replace(cbat.preset("cbat_v2"), d_model=32, n_heads=2, window_size=window, temperature=0.6)
    torch.manual_seed(0)
    core = AttentionCore(cfg, "temp_softmax", positional=True)
    with torch.no_grad():
        core.modulation.amplitude.mul_(10)  # a bias large enough to matter
    return core


def _joint_args(n_p=5, n_a=2, n_e=7):
    """A joint-attention layout [promoter, anchors, enhancer] with anchors exempt from window and RoPE."""
    length = n_p + n_a + n_e
    anchor = torch.zeros(length, dtype=torch.bool)
    anchor[n_p:n_p + n_a] = True
    torch.manual_seed(1)
    x = torch.randn(2, length, 32)
    return (x, x.clone(), torch.arange(length), torch.arange(length), anchor, anchor)


def _cross_args(lq=12, lk=5):
    """Cross attention with more queries than keys: with a window of 3, queries 9.. have no allowed key."""
    torch.manual_seed(2)
    return (torch.randn(2, lq, 32), torch.randn(2, lk, 32), torch.arange(lq), torch.arange(lk),
            torch.zeros(lq, dtype=torch.bool), torch.zeros(lk, dtype=torch.bool))


def _forward_backward(core, args, explicit, track=False):
    core.force_explicit = explicit
    core.zero_grad()
    inputs = [a.clone().requires_grad_() if a.is_floating_point() else a for a in args]
    collected = [] if track else None
    out = core(*inputs, entropy=collected)
    loss = (out * torch.linspace(-1, 1, out.shape[-1])).sum()
    entropy = collected[0] if track else None
    if entropy is not None:
        loss = loss + 5 * entropy
    loss.backward()
    return out.detach(), entropy, _grads(core), [a.grad for a in inputs if a.is_floating_point()]


@pytest.mark.parametrize("args", [_joint_args(), _cross_args(lq=8, lk=9)], ids=["joint_with_anchors", "cross"])
def test_fused_kernel_with_folded_modulation_equals_the_explicit_bias(args):
    core = _v2_core()
    assert core.modulation is not None
    fast, ref = (_forward_backward(core, args, explicit) for explicit in (False, True))
    torch.testing.assert_close(fast[0], ref[0])
    _assert_same_grads(fast[2], ref[2], rtol=1e-4, atol=1e-5)
    for a, b in zip(fast[3], ref[3]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("used", ["both", "weights", "entropy"])
def test_weights_and_entropy_node_equals_autograd_of_softmax_and_entropy(used):
    from cbat.layers.attention import _weights_and_entropy
    scores = torch.randn(2, 3, 40, 50, dtype=torch.float64).mul(30).float()
    scores[..., 30:] = -1e9  # masked keys, as the additive mask leaves them
    scores[0, 0, 0] = -1e9  # a row with no allowed key
    fast_in, exact_in = scores.clone().requires_grad_(), scores.double().requires_grad_()
    fast_w, fast_h = _weights_and_entropy(fast_in)
    exact_w = exact_in.softmax(-1)
    exact_h = -(exact_w * exact_w.clamp_min(1e-300).log()).sum(-1)
    torch.testing.assert_close(fast_w, exact_w.float())
    torch.testing.assert_close(fast_h, exact_h.float(), rtol=1e-5, atol=1e-5)
    assert (fast_w[1, :, :, 30:] == 0).all()  # masked keys get exactly no weight
    grad_w, grad_h = torch.randn_like(exact_w), torch.randn_like(exact_h)

    def loss(w, h):  # an output left out of the loss gets no gradient at all (None, materialised as zeros)
        return sum([(w * grad_w).sum()] * (used != "entropy") + [(h * grad_h).sum()] * (used != "weights"))

    loss(fast_w.double(), fast_h.double()).backward()
    loss(exact_w, exact_h).backward()
    torch.testing.assert_close(fast_in.grad.double(), exact_in.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("args", [_joint_args(), _cross_args()], ids=["joint_with_anchors", "cross_empty_rows"])
def test_weights_path_and_its_entropy_equal_normalise_and_the_exact_entropy(args):
    core = _v2_core()
    names = ["attn.pattern"]
    module = torch.nn.ModuleDict({"attn": core})
    runs = []
    for explicit in (False, True):
        with cbat.record(module, mode="capture", names=names, max_samples=2) as trace:
            runs.append((_forward_backward(core, args, explicit, track=True),
                         trace.captured["attn.pattern"][0], trace.summary()))
    (fast, fast_pattern, fast_rows), (ref, ref_pattern, ref_rows) = runs
    torch.testing.assert_close(fast[0], ref[0])
    torch.testing.assert_close(fast[1], ref[1])  # the sparsity loss's input
    torch.testing.assert_close(fast_pattern, ref_pattern)
    _assert_same_grads(fast[2], ref[2], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast_rows["value"], ref_rows["value"], rtol=1e-4, atol=1e-6)
    if args[2].shape[0] > args[3].shape[0] + 3:
        assert (fast_pattern[:, :, -1] == 0).all()  # a query with no allowed key gets no weight


def test_sampled_pattern_of_the_weights_path_is_the_slice_of_the_whole_one_with_keyless_rows_zeroed():
    core, args = _v2_core(), _cross_args(lq=14)
    module = torch.nn.ModuleDict({"attn": core})
    patterns = []
    for sample in (None, (1, 2)):  # the sparsity loss's entropy sends the softmax core down the weights path
        with cbat.record(module, mode="capture", names=["attn.pattern"], max_samples=2, sample=sample) as trace:
            _forward_backward(core, args, explicit=False, track=True)
        patterns.append(trace.captured["attn.pattern"][0])
    whole, sampled = patterns
    torch.testing.assert_close(sampled, whole[:1, :, ::2])
    assert (sampled[:, :, -1] == 0).all() and (sampled[:, :, 0] > 0).any()  # query 12 has no key, query 0 has


def test_whole_cbat_v2_training_loss_and_gradients_equal_the_reference_paths():
    cfg = cbat.preset("cbat_v2", **SMALL)
    e, p, labels = _onehot(3, 300, seed=1), _onehot(3, 200, seed=2), torch.tensor([0.0, 1.0, 1.0])
    results = []
    for explicit in (False, True):
        model = cbat.build_model(cfg, seed=0).train()
        for module in model.modules():
            if isinstance(module, AttentionCore):
                module.force_explicit = explicit
        aux = {}
        parts = CBATLoss(cfg, positive_rate=0.5)(model(e, p, aux=aux), labels, aux)
        parts["total"].backward()
        results.append(({k: v.detach() for k, v in parts.items()}, _grads(model)))
    assert "sparsity" in results[0][0]
    for name in results[0][0]:
        torch.testing.assert_close(results[0][0][name], results[1][0][name])
    _assert_same_grads(results[0][1], results[1][1], rtol=1e-4, atol=1e-5)


# --- hook statistics -----------------------------------------------------------------------------
def _pattern(batch, heads, lq, lk, seed, zeros=True):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(batch, heads, lq, lk, generator=gen) * 3
    if zeros:
        scores = scores.masked_fill(torch.rand(batch, heads, lq, lk, generator=gen) < 0.3, float("-inf"))
        scores[..., 0] = 0.0  # every row keeps one key
    return scores.softmax(-1)


def _meta(lq, lk, q_anchor=(), k_anchor=(), window_bp=40.0):
    qa, ka = torch.zeros(lq, dtype=torch.bool), torch.zeros(lk, dtype=torch.bool)
    qa[list(q_anchor)], ka[list(k_anchor)] = True, True
    return AttentionMeta(q_pos_bp=torch.arange(lq) * 10.0, k_pos_bp=torch.arange(lk) * 10.0 + 5.0,
                         q_is_anchor=qa, k_is_anchor=ka, window_bp=window_bp, topk=3)


@pytest.mark.parametrize("meta", [
    _meta(9, 9, q_anchor=(3, 4), k_anchor=(3, 4)),  # joint attention: anchors among tokens
    _meta(7, 11, window_bp=None),  # cross attention, no window
    _meta(2, 11, q_anchor=(0, 1)),  # anchor gather: every query an anchor
    _meta(11, 2, k_anchor=(0, 1)),  # anchor broadcast: every key an anchor
], ids=["joint", "cross", "gather", "broadcast"])
def test_attention_stats_equal_the_exact_reference(meta):
    pattern = _pattern(3, 2, len(meta.q_pos_bp), len(meta.k_pos_bp), seed=len(meta.q_pos_bp))
    for _ in range(2):  # the second call reads the layout cached on the meta
        fast = attention_stats(pattern, meta, far_bp=30.0)
        ref = reference_attention_stats(pattern, meta, far_bp=30.0)
        assert fast.keys() == ref.keys()
        for name in ref:
            torch.testing.assert_close(fast[name], ref[name], equal_nan=True, msg=lambda m, n=name: f"{n}: {m}")
    assert meta.cache  # the distance matrices were built once and kept


def test_queries_without_keys_do_not_count_in_the_attention_statistics():
    """A window past the shorter sequence leaves queries no key (an all-zero row); each counted as one effective
    token with no top-k mass, so cbat_v2 at 3000/2000 bp read effective tokens 18.4 for 25.2 and a hard top-k
    map's top-k mass 0.80 for 1.0."""
    meta = _meta(7, 11, window_bp=20.0)
    pattern = _pattern(3, 2, 7, 11, seed=1)
    keyless = pattern.clone()
    keyless[:, :, 5:] = 0.0  # the last two queries have no key
    fast, ref = attention_stats(keyless, meta, far_bp=30.0), reference_attention_stats(keyless, meta, far_bp=30.0)
    for name in ref:
        torch.testing.assert_close(fast[name], ref[name], equal_nan=True, msg=lambda m, n=name: f"{n}: {m}")
    kept = attention_stats(pattern[:, :, :5].contiguous(), _meta(5, 11, window_bp=20.0), far_bp=30.0)
    for name in ("entropy", "effective_tokens", "topk_mass", "zero_fraction", "mean_distance_bp"):
        torch.testing.assert_close(fast[name], kept[name], msg=lambda m, n=name: f"{n}: {m}")  # as if absent


def test_gate_and_state_stats_equal_the_exact_reference():
    value = torch.rand(4, 6, 8) ** 3
    fast, ref = gate_stats(value), reference_gate_stats(value)
    assert fast.keys() == ref.keys()
    np.testing.assert_allclose([fast[k] for k in ref], [ref[k] for k in ref], rtol=1e-5, atol=1e-7)
    state = torch.randn(2, 4, 8)
    assert state_stats(state) == pytest.approx({"norm": state.norm(dim=-1).mean().item(),
                                                "var_across_anchors": state.var(dim=1).mean().item()})


def test_summary_rows_equal_reference_statistics_of_the_captured_tensors():
    model = cbat.build_model(cbat.preset("cbat_v2", **SMALL), seed=0)
    e, p = _onehot(2, 300), _onehot(2, 200, seed=1)
    with cbat.record(model, mode="capture", max_samples=2) as trace:
        model(e, p).sum().backward()
    rows = trace.summary().set_index(["name", "statistic", "head"])["value"]
    for name, tensors in trace.captured.items():
        kind = rows.loc[name].index.get_level_values("statistic")
        if name in trace.captured_meta:
            stats = reference_attention_stats(tensors[0], trace.captured_meta[name], far_bp=500.0)
            for stat, per_head in stats.items():
                expected = per_head.tolist()
                got = [rows[(name, stat, h)] for h in range(len(expected))]
                np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6, err_msg=f"{name} {stat}")
                np.testing.assert_allclose(rows[(name, stat, -1)], np.nanmean(expected) if not
                                           np.isnan(expected).all() else np.nan, rtol=1e-4, atol=1e-6)
        elif "hist_00" in set(kind):
            for stat, value in reference_gate_stats(tensors[0]).items():
                assert rows[(name, stat, -1)] == pytest.approx(value, rel=1e-4, abs=1e-6), (name, stat)
    groups = cbat.hooks.grad_groups(model)
    for group, params in groups.items():
        expected = math.sqrt(sum(float(q.grad.pow(2).sum()) for q in params if q.grad is not None))
        assert rows[(f"{group}.grad_norm", "l2", -1)] == pytest.approx(expected, rel=1e-5)


def test_recorded_steps_read_back_once_per_step_and_never_per_head(monkeypatch):
    model = cbat.build_model(cbat.preset("cbat_v2", **SMALL), seed=0)
    e, p = _onehot(2, 300), _onehot(2, 200, seed=1)
    with cbat.record(model, mode="summary") as trace:
        model(e, p).sum().backward()  # first step: layouts are built (one host read each) and cached
        trace.next_step()
        calls = []

        def counting(name, real):
            def method(self, *args, **kwargs):
                calls.append(name)
                return real(self, *args, **kwargs)
            return method
        for name in ("item", "tolist", "__bool__", "__float__", "cpu"):
            monkeypatch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
        model(e, p).sum().backward()
        during_step = list(calls)
        trace.next_step()
        monkeypatch.undo()
    assert during_step == []
    assert calls == ["cpu", "tolist"]  # one transfer for the whole step
    assert set(trace.summary()["step"]) == {0, 1}


# --- compiled model ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("preset", ["baseline", "cbat_v2"])
def test_compiled_training_equals_eager(monkeypatch, preset):
    # Inductor's C++ code generation takes minutes on the 2-core CI machine, so the graph capture
    # (graph breaks, guards on the hook flags, hooks inside the compiled forward) is checked with the
    # aot_eager backend; benchmarks/bench_model.py --compile times the default backend.
    real_compile = torch.compile
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model, **k: compiled.append(model) or
                        real_compile(model, backend="aot_eager", **k))
    ds = TinyDataset(n=32)
    cfg = cbat.preset(preset, **SMALL)
    settings = dict(epochs=1, batch_size=8, hook_every=2, progress=False, device="cpu", num_threads=1)
    eager = train(cfg, ds, Split(len(ds)), TrainSettings(**settings), seed=0)
    assert not compiled
    fast = train(cfg, ds, Split(len(ds)), TrainSettings(**settings, compile=True), seed=0)
    assert len(compiled) == 1
    np.testing.assert_allclose(fast.predictions["logit"], eager.predictions["logit"], rtol=1e-4, atol=1e-5)
    merged = fast.trace.merge(eager.trace, on=["name", "statistic", "head", "step", "phase"])
    assert len(merged) == len(eager.trace) > 0
    # Hook statistics include cosines of near-orthogonal gradients, where float reordering shows most.
    np.testing.assert_allclose(merged["value_x"], merged["value_y"], rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_compiled_training_captures_its_graphs_once_not_per_step(monkeypatch):
    """The graphs of a compiled run do not grow with its steps: recorded steps run eagerly and no guard reads a
    step counter or a cache that misses under tracing (each recompiled up to dynamo's limit; cbat_v2's attention
    layers, split by the hooks, then exhausted it and torch 2.13 failed explaining the recompilation)."""
    from torch._dynamo.utils import counters

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **k: real_compile(model, backend="aot_eager", **k))
    ds, cfg = TinyDataset(n=32), cbat.preset("cbat_v2", **SMALL)
    graphs = []
    for epochs in (1, 3):
        torch._dynamo.reset()
        counters.clear()
        train(cfg, ds, Split(len(ds)), TrainSettings(epochs=epochs, batch_size=8, hook_every=3, progress=False,
                                                     device="cpu", num_threads=1, compile=True), seed=0)
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[0] == graphs[1] > 0


def test_compile_setting_must_be_a_bool():
    with pytest.raises(ValueError, match="'compile'.*true or false"):
        TrainSettings(compile="yes")



@pytest.mark.parametrize("overrides", [{}, {"sparsity": "hard_topk", "topk": 2}, "cbat_v2"],
                         ids=["softmax", "hard_topk", "cbat_v2"])
def test_sampled_recording_reads_the_exact_statistics_of_its_sample_and_leaves_the_output_alone(overrides):
    """``record(sample=(pairs, stride))`` (what the trainer uses): the statistics equal the exact ones of the
    first ``pairs`` pairs and every ``stride``-th query of the full maps, and the model's output is the one it
    gives with recording off."""
    cfg = cbat.preset("cbat_v2", **SMALL) if overrides == "cbat_v2" else cbat.preset("baseline", **overrides, **SMALL)
    model = cbat.build_model(cfg, seed=0).eval()
    e, p = _onehot(4, 300, seed=1), _onehot(4, 200, seed=2)
    with torch.no_grad():
        off = model(e, p)
        with cbat.record(model, mode="capture", max_samples=4) as full:
            model(e, p)
        with cbat.record(model, mode="summary", sample=(2, 3)) as sampled:
            out = model(e, p)
    torch.testing.assert_close(out, off, rtol=0, atol=0)
    rows = sampled.summary()
    patterns = [n for n in full.captured if n.endswith("pattern")]
    assert patterns
    for name in patterns:
        meta = full.captured_meta[name]
        strided = AttentionMeta(q_pos_bp=meta.q_pos_bp[::3], k_pos_bp=meta.k_pos_bp, q_is_anchor=meta.q_is_anchor[::3],
                                k_is_anchor=meta.k_is_anchor, window_bp=meta.window_bp, topk=meta.topk)
        expected = reference_attention_stats(full.captured[name][0][:2, :, ::3], strided, far_bp=500.0)
        got = rows[(rows["name"] == name) & (rows["head"] >= 0)]
        for stat, values in expected.items():
            measured = got[got["statistic"] == stat].sort_values("head")["value"].to_numpy()
            np.testing.assert_allclose(measured, values.numpy(), rtol=1e-4, atol=1e-6, equal_nan=True,
                                       err_msg=f"{name} {stat}")
    gates = [n for n, point in hook_points(model) if point.kind == "gate"]
    assert bool(gates) == (overrides == "cbat_v2")
    for name in gates:  # gates read the first 2 pairs
        expected = gate_stats(full.captured[name][0][:2])
        got = rows[rows["name"] == name].set_index("statistic")["value"]
        for stat, value in expected.items():
            assert got[stat] == pytest.approx(value, rel=1e-4, abs=1e-6), f"{name} {stat}"
