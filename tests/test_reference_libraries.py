"""Our attention paths against reference implementations (tested against, not copied)."""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from entmax import entmax15, sparsemax
from rotary_embedding_torch import RotaryEmbedding as ReferenceRotary

import cbat
from cbat.layers import AttentionCore, RotaryEmbedding


def _core(**changes):
    cfg = dataclasses.replace(cbat.preset("baseline"), rope=False, **changes)
    torch.manual_seed(0)
    return AttentionCore(cfg, cfg.sparsity, positional=True)


def _run(core, lq=7, lk=9):
    torch.manual_seed(1)
    xq, xkv = torch.randn(2, lq, 64), torch.randn(2, lk, 64)
    out = core(xq, xkv, torch.arange(lq), torch.arange(lk), torch.zeros(lq, dtype=torch.bool),
               torch.zeros(lk, dtype=torch.bool))
    heads = lambda x, proj: proj(x).view(2, -1, core.n_heads, core.head_dim).transpose(1, 2)  # noqa: E731
    return out, heads(xq, core.q_proj), heads(xkv, core.k_proj), heads(xkv, core.v_proj)


def _merge(core, attended):
    return core.out_proj(attended.transpose(1, 2).reshape(2, attended.shape[2], -1))


@pytest.mark.parametrize("kind, reference", [("sparsemax", sparsemax), ("entmax15", entmax15)])
def test_sparse_paths_equal_the_entmax_package(kind, reference):
    core = _core(sparsity=kind, temperature=0.7)
    out, q, k, v = _run(core)
    weights = reference(q @ k.transpose(-1, -2) / math.sqrt(core.head_dim) / 0.7, dim=-1)
    assert (weights == 0).any()  # the comparison covers exact zeros
    torch.testing.assert_close(out, _merge(core, weights @ v))


@pytest.mark.parametrize("force_explicit", [True, False])
def test_softmax_path_equals_scaled_dot_product_attention(force_explicit):
    core = _core(sparsity="softmax")
    core.force_explicit = force_explicit
    out, q, k, v = _run(core)
    torch.testing.assert_close(out, _merge(core, F.scaled_dot_product_attention(q, k, v)))


def test_temperature_softmax_fast_path_equals_explicit_path_with_masks_and_modulation():
    cfg = dataclasses.replace(cbat.preset("cbat_v2"), window_size=3, temperature=0.6)
    torch.manual_seed(0)
    core = AttentionCore(cfg, "temp_softmax", positional=True)
    args = (torch.randn(2, 6, 64), torch.randn(2, 6, 64), torch.arange(6), torch.arange(6),
            torch.zeros(6, dtype=torch.bool), torch.zeros(6, dtype=torch.bool))
    fast = core(*args)
    core.force_explicit = True
    torch.testing.assert_close(fast, core(*args))


def test_rope_equals_rotary_embedding_torch_after_half_to_pair_permutation():
    head_dim, length = 16, 11
    ours = RotaryEmbedding(head_dim, base=10000.0)
    reference = ReferenceRotary(dim=head_dim)
    x = torch.randn(2, 3, length, head_dim)
    # Ours rotates pairs (i, i + d/2); the reference rotates interleaved pairs (2i, 2i + 1).
    half_to_pair = torch.stack([torch.arange(head_dim // 2), torch.arange(head_dim // 2) + head_dim // 2], 1).flatten()
    rotated = ours.rotate(x, torch.arange(length), torch.zeros(length, dtype=torch.bool))
    torch.testing.assert_close(rotated[..., half_to_pair], reference.rotate_queries_or_keys(x[..., half_to_pair]),
                               rtol=1e-5, atol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    rope = RotaryEmbedding(16, base=10000.0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    no_anchor = torch.zeros(1, dtype=torch.bool)

    def score(i, j):
        return (rope.rotate(q, torch.tensor([i]), no_anchor) * rope.rotate(k, torch.tensor([j]), no_anchor)).sum()

    torch.testing.assert_close(score(3, 1), score(40, 38))
    torch.testing.assert_close(score(0, 5), score(17, 22))
    assert not torch.isclose(score(3, 1), score(3, 2))
