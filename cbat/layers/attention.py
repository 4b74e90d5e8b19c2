"""Attention: one core with pluggable normaliser, and the log's three uses of it.

``AttentionCore`` runs ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels on GPU) when
the normaliser is a (temperature) softmax, nobody listens to its pattern and the caller asks for no
entropy; else it materialises the weights, passes them through the ``pattern`` hook point and applies them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cbat.config import CBATConfig
from cbat.hooks import AttentionMeta, HookPoint
from cbat.layers.normalizers import normalise
from cbat.layers.position import PositionModulation, RotaryEmbedding, allowed_mask

_SDPA_NORMALISERS = ("softmax", "temp_softmax")


class AttentionCore(nn.Module):
    """Multi-head attention of queries ``xq`` over keys/values ``xkv``, positions in tokens."""

    def __init__(self, cfg: CBATConfig, sparsity: str, positional: bool) -> None:
        super().__init__()
        d, self.n_heads = cfg.d_model, cfg.n_heads
        self.head_dim = d // cfg.n_heads
        self.sparsity, self.temperature, self.topk = sparsity, cfg.temperature, cfg.topk
        self.window = cfg.window_size if positional else None
        self.mask_kind, self.bp_per_token = cfg.mask_kind, cfg.stem_pool
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.rope = RotaryEmbedding(self.head_dim, cfg.rope_base) if positional and cfg.rope else None
        self.modulation = (PositionModulation(cfg.n_heads, cfg.pos_modulation_freqs)
                           if positional and cfg.pos_modulation else None)
        self.pattern = HookPoint("pattern")
        self.force_explicit = False  # benchmarks and equivalence tests switch the fast path off

    def _split(self, x: torch.Tensor, proj: nn.Linear) -> torch.Tensor:
        batch, length, _ = x.shape
        return proj(x).view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, xq: torch.Tensor, xkv: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor,
                q_anchor: torch.Tensor, k_anchor: torch.Tensor,
                entropy: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``entropy``: when a list, this call appends its mean normalised attention entropy (with grad)."""
        q, k, v = self._split(xq, self.q_proj), self._split(xkv, self.k_proj), self._split(xkv, self.v_proj)
        if self.rope is not None:
            q, k = self.rope(q, k, q_pos, k_pos, q_anchor, k_anchor)
        allowed = allowed_mask(q_pos, k_pos, q_anchor, k_anchor, self.window, self.mask_kind)
        bias = None
        if self.modulation is not None:
            bias = self.modulation(q_pos, k_pos, ~(q_anchor[:, None] | k_anchor[None, :]))
        fast = (self.sparsity in _SDPA_NORMALISERS and not self.pattern.active and not self.force_explicit
                and entropy is None
                and (allowed is None or bool(allowed.any(-1).all())))
        if fast:
            out = self._sdpa(q, k, v, allowed, bias)
        else:
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
            if bias is not None:
                scores = scores + bias.to(scores.dtype)
            weights = normalise(scores, self.sparsity, allowed, self.temperature, self.topk)
            if entropy is not None:
                entropy.append(_normalised_entropy(weights, allowed))
            if self.pattern.active:
                weights = self.pattern(weights, meta=self._meta(q_pos, k_pos, q_anchor, k_anchor))
            out = weights @ v
        batch, _, length, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, -1))

    def _sdpa(self, q, k, v, allowed, bias) -> torch.Tensor:
        scale = 1.0 / math.sqrt(self.head_dim)
        if self.sparsity == "temp_softmax":
            scale /= self.temperature
            bias = None if bias is None else bias / self.temperature
        mask = allowed
        if bias is not None:
            mask = bias if allowed is None else bias.masked_fill(~allowed, float("-inf"))
            mask = mask.to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)

    def _meta(self, q_pos, k_pos, q_anchor, k_anchor) -> AttentionMeta:
        bp = float(self.bp_per_token)
        return AttentionMeta(q_pos_bp=q_pos.float() * bp, k_pos_bp=k_pos.float() * bp, q_is_anchor=q_anchor,
                             k_is_anchor=k_anchor, window_bp=None if self.window is None else self.window * bp,
                             topk=self.topk)


def _normalised_entropy(weights: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """Mean row entropy divided by log(number of allowed keys): 1 = uniform, 0 = one key."""
    w = weights.float()
    entropy = -(w * w.clamp_min(1e-12).log()).sum(-1)
    n_keys = torch.full(w.shape[-2:-1], float(w.shape[-1]), device=w.device) if allowed is None \
        else allowed.sum(-1).float()
    return (entropy / n_keys.clamp_min(2.0).log()).mean()


def _positions(length: int, device: torch.device) -> torch.Tensor:
    return torch.arange(length, device=device)


def _no_anchor(length: int, device: torch.device) -> torch.Tensor:
    return torch.zeros(length, dtype=torch.bool, device=device)


class RoPE_AdaptAttention(nn.Module):  # noqa: N801 - the log's name
    """Cross attention with RoPE and the chosen (soft or hard) sparse normaliser.

    Queries come from one sequence and keys/values from the other, each at its own token index, so RoPE
    and the window act on the aligned offset i - j. ``cross_ep`` is E<-P (enhancer queries promoter).
    """

    def __init__(self, cfg: CBATConfig) -> None:
        super().__init__()
        self.norm_q, self.norm_kv = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = AttentionCore(cfg, cfg.sparsity, positional=True)

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor,
                entropy: list[torch.Tensor] | None = None) -> torch.Tensor:
        dev = x_q.device
        lq, lk = x_q.shape[1], x_kv.shape[1]
        return self.attn(self.norm_q(x_q), self.norm_kv(x_kv), _positions(lq, dev), _positions(lk, dev),
                         _no_anchor(lq, dev), _no_anchor(lk, dev), entropy)


class RoPE_CausalBlockAttention(nn.Module):  # noqa: N801 - the log's name
    """Self attention over the concatenation [promoter, anchors, enhancer] (the log's ``combined``).

    Positions are indices in that concatenation, so a window also limits how far promoter tokens reach
    into the enhancer. Anchors are exempt from the window (global tokens) and from RoPE.
    """

    def __init__(self, cfg: CBATConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.d_model)
        # Log: soft-sparse normalisers belong to the adaptive attention; this one is a plain softmax.
        self.attn = AttentionCore(cfg, "softmax", positional=True)

    def forward(self, combined: torch.Tensor, n_promoter: int, n_anchors: int) -> torch.Tensor:
        length, dev = combined.shape[1], combined.device
        is_anchor = _no_anchor(length, dev)
        is_anchor[n_promoter:n_promoter + n_anchors] = True
        pos = _positions(length, dev)
        x = self.norm(combined)
        return self.attn(x, x, pos, pos, is_anchor, is_anchor)


class AnchorExchange(nn.Module):
    """Inducing-point anchors (Set Transformer / Perceiver): anchors first read from every token
    (``gather``), then every token reads from the anchors (``broadcast``). Returns the token update."""

    def __init__(self, cfg: CBATConfig) -> None:
        super().__init__()
        self.norm_tokens, self.norm_anchors = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.gather = AttentionCore(cfg, "softmax", positional=False)
        self.broadcast = AttentionCore(cfg, "softmax", positional=False)
        self.state = HookPoint("state")

    def forward(self, tokens: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        batch, length, _ = tokens.shape
        n_anchors, dev = bank.shape[0], tokens.device
        anchors = bank.unsqueeze(0).expand(batch, -1, -1)
        x = self.norm_tokens(tokens)
        token_pos, anchor_pos = _positions(length, dev), torch.zeros(n_anchors, dtype=torch.long, device=dev)
        all_anchor = torch.ones(n_anchors, dtype=torch.bool, device=dev)
        gathered = anchors + self.gather(self.norm_anchors(anchors), x, anchor_pos, token_pos, all_anchor,
                                         _no_anchor(length, dev))
        gathered = self.state(gathered)
        return self.broadcast(x, gathered, token_pos, anchor_pos, _no_anchor(length, dev), all_anchor)
