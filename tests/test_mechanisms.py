"""The defining properties of each mechanism (DESIGN section 3): the log's claims, pinned."""
import dataclasses

import pytest
import torch

import cbat
from cbat.layers import AttentionCore, Gate, Reshape2DConv, grid_index_map
from cbat.layers.attention import AnchorExchange, RoPE_AdaptAttention

E_LEN, P_LEN = 300, 200  # 30 and 20 tokens


def _onehot(batch, length, gen):
    idx = torch.randint(0, 4, (batch, length), generator=gen)
    return torch.nn.functional.one_hot(idx, 4).float().transpose(1, 2)


@pytest.fixture(scope="module")
def inputs():
    gen = torch.Generator().manual_seed(0)
    return _onehot(2, E_LEN, gen), _onehot(2, P_LEN, gen)


def with_output_projections(model, seed=0):
    """``model`` with every attention output projection drawn at random, as after some training: they start
    at zero, which would hide what flows back through the attention weights."""
    gen = torch.Generator().manual_seed(seed)
    for core in [m for m in model.modules() if isinstance(m, AttentionCore)]:
        with torch.no_grad():
            core.out_proj.weight.copy_(0.1 * torch.randn(core.out_proj.weight.shape, generator=gen))
    return model


def _core(sparsity, **changes):
    cfg = dataclasses.replace(cbat.preset("baseline"), sparsity=sparsity, rope=False, **changes)
    torch.manual_seed(0)
    return with_output_projections(AttentionCore(cfg, sparsity, positional=True))


def _key_grad(core, n_keys=12):
    """One query over ``n_keys`` keys: the weights and d(output)/d(key token) per key."""
    torch.manual_seed(1)
    xq, xkv = torch.randn(1, 1, 64), torch.randn(1, n_keys, 64, requires_grad=True)
    pos_q, pos_k = torch.zeros(1, dtype=torch.long), torch.arange(n_keys)
    no_q, no_k = torch.zeros(1, dtype=torch.bool), torch.zeros(n_keys, dtype=torch.bool)
    with cbat.record(core, mode="capture") as trace:
        core(xq, xkv, pos_q, pos_k, no_q, no_k).sum().backward()
    weights = trace.captured["pattern"][0][0].mean(0)[0]  # mean over heads, the one query
    return weights, xkv.grad[0].abs().sum(-1)


@pytest.mark.parametrize("name", ["baseline", "cbat_v1", "cbat_v2"])
def test_every_attention_update_starts_at_zero(name, inputs):
    """A fresh model's attention branches add nothing: the promoter cannot move the enhancer-side logit
    until training opens the output projections (the remedy for runs that stalled at chance)."""
    model = cbat.build_model(cbat.preset(name), seed=3)
    cores = [m for m in model.modules() if isinstance(m, AttentionCore)]
    assert cores and all(not core.out_proj.weight.any() and not core.out_proj.bias.any() for core in cores)
    x = torch.randn(2, 30, 64)
    pos = torch.arange(30)
    flags = torch.zeros(30, dtype=torch.bool)
    assert not cores[0](x, x, pos, pos, flags, flags).any()
    model.train()
    e, p = inputs
    model(e, p).sum().backward()
    assert all(core.out_proj.weight.grad.abs().sum() > 0 for core in cores)  # the first step opens them


def test_hard_topk_gives_unselected_keys_zero_weight_and_zero_gradient():
    core = _core("hard_topk", topk=3)
    core.n_heads, core.head_dim = 1, 64  # one head, so "selected" is one set of keys
    weights, grad = _key_grad(core)
    unselected = weights == 0
    assert int((~unselected).sum()) == 3
    assert torch.all(grad[unselected] == 0)
    assert torch.all(grad[~unselected] > 0)


@pytest.mark.parametrize("soft", ["temp_softmax", "softmax"])
def test_soft_sparsity_keeps_weight_and_gradient_on_every_key(soft):
    weights, grad = _key_grad(_core(soft, temperature=0.5))
    assert torch.all(weights > 0) and torch.all(grad > 0)


def test_reshape2d_makes_far_tokens_grid_neighbours():
    length = 36  # a 6 x 6 image
    rows_cols = grid_index_map(length)
    assert rows_cols[13].tolist() == [2, 1] and rows_cols[7].tolist() == [1, 1]  # 6 apart in 1-D, adjacent on grid
    torch.manual_seed(0)
    layer = Reshape2DConv(8)
    base = torch.zeros(1, length, 8)
    poked = base.clone()
    poked[0, 7] = 1.0
    changed = (layer(poked) - layer(base)).abs().sum(-1)[0] > 1e-7
    r, c = rows_cols[7]
    expected = {i for i, (ri, ci) in enumerate(rows_cols.tolist()) if abs(ri - r) <= 1 and abs(ci - c) <= 1}
    assert set(torch.nonzero(changed).flatten().tolist()) == expected
    assert 13 in expected and 1 in expected and 9 not in expected  # token 9 is near in 1-D, not on the grid


@pytest.mark.parametrize("kind", ["sliding", "causal", "block"])
def test_window_puts_exactly_zero_weight_outside(kind, inputs):
    cfg = dataclasses.replace(cbat.preset("cbat_v2"), window_size=4, mask_kind=kind)
    model = cbat.build_model(cfg, seed=0)
    with cbat.record(model, mode="capture", names=["blocks.0.*attn.pattern"]) as trace:
        model(*inputs)
    for name in ("blocks.0.joint.attn.pattern", "blocks.0.cross_ep.attn.pattern"):
        pattern, meta = trace.captured[name][0], trace.captured_meta[name]
        delta = (meta.q_pos_bp[:, None] - meta.k_pos_bp[None, :]) / model.bp_per_token
        if kind == "sliding":
            outside = delta.abs() > 4
        elif kind == "causal":
            outside = (delta < 0) | (delta > 4)
        else:
            outside = (meta.q_pos_bp[:, None] // 40) != (meta.k_pos_bp[None, :] // 40)
        outside &= ~(meta.q_is_anchor[:, None] | meta.k_is_anchor[None, :])
        assert outside.any()
        assert torch.all(pattern[..., outside] == 0), name
        inside = ~outside & ~meta.k_is_anchor[None, :]
        assert pattern[..., inside].sum() > 0


def test_bidirectional_has_two_paths_and_one_way_has_one(inputs):
    def paths(name):
        model = cbat.build_model(cbat.preset(name), seed=0)
        with cbat.record(model, mode="capture", names=["blocks.0.cross_*.attn.pattern"]) as trace:
            model(*inputs)
        return {k: tuple(v[0].shape[-2:]) for k, v in trace.captured.items()}

    assert paths("baseline") == {"blocks.0.cross_ep.attn.pattern": (30, 20)}  # E queries P
    assert paths("cbat_v2") == {"blocks.0.cross_ep.attn.pattern": (30, 20), "blocks.0.cross_pe.attn.pattern": (20, 30)}


def test_bidirectional_head_reads_the_promoter_side_only_through_attention(inputs):
    """One-way: the promoter reaches the logit only via cross attention (zero it and nothing flows)."""
    model = cbat.build_model(cbat.preset("baseline"), seed=0)
    promoter = inputs[1].clone().requires_grad_(True)
    for module in model.modules():
        if isinstance(module, RoPE_AdaptAttention):
            module.attn.v_proj.weight.data.zero_()
            module.attn.v_proj.bias.data.zero_()
    model(inputs[0], promoter).sum().backward()
    assert torch.all(promoter.grad == 0)


def test_concat_anchors_are_only_concatenated_and_gather_broadcast_reads_before_writing(inputs):
    v2 = cbat.build_model(cbat.preset("cbat_v2"), seed=0)
    assert not any(isinstance(m, AnchorExchange) for m in v2.modules())
    with cbat.record(v2, mode="summary", names=["blocks.0.joint.attn.pattern"]) as trace:
        v2(*inputs)
    anchor_mass = trace.summary().query("statistic == 'anchor_mass' and head == -1")["value"].item()
    assert 0 < anchor_mass < 1

    v3 = cbat.build_model(cbat.preset("cbat_v3"), seed=0)
    with cbat.record(v3, mode="capture", names=["blocks.0.anchors.*"]) as trace:
        v3(*inputs)
    names = list(trace.captured)  # insertion order is call order
    assert names.index("blocks.0.anchors.gather.pattern") < names.index("blocks.0.anchors.broadcast.pattern")
    shapes = {name: tuple(t[0].shape) for name, t in trace.captured.items()}
    n_anchors, n_tokens = cbat.preset("cbat_v3").n_anchors, 30 + 20
    assert shapes["blocks.0.anchors.gather.pattern"][-2:] == (n_anchors, n_tokens)  # anchors read all tokens
    assert shapes["blocks.0.anchors.broadcast.pattern"][-2:] == (n_tokens, n_anchors)  # tokens read anchors


def test_gate_temperature_never_below_half():
    torch.manual_seed(0)
    gate = Gate(8, "temp_sigmoid", min_temperature=0.5, residual=0.1)
    gate.temperature.data.fill_(0.01)
    assert gate.effective_temperature().item() == 0.5
    x, update = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    expected = (torch.sigmoid(gate.proj(x) / 0.5) + 0.1) * update
    torch.testing.assert_close(gate(x, update), expected)
    gate.temperature.data.fill_(3.0)
    assert gate.effective_temperature().item() == 3.0
