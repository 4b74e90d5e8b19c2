"""Attention: one core with pluggable normaliser, and the log's three uses of it.

``AttentionCore`` runs ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels on GPU) when
the normaliser is a (temperature) softmax, nobody listens to its pattern and the caller asks for no
entropy; else it materialises the weights, passes them through the ``pattern`` hook point and applies them.
The position modulation's learnt bias enters the fused kernel as extra query/key features (it is a
sum of cosines of i - j, hence low rank), so the kernel sees a boolean mask that needs no gradient.
"""
from __future__ import annotations

import functools
import math
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from cbat.config import CBATConfig
from cbat.hooks import AttentionMeta, HookPoint
from cbat.layers.normalizers import _MASKED, normalise
from cbat.layers.position import PositionModulation, RotaryEmbedding, allowed_mask

_SDPA_NORMALISERS = ("softmax", "temp_softmax")
# Normalisers whose output depends on a temperature, and what each runs as under ``temperature_override``:
# a plain softmax runs as temp_softmax (identical at T = 1); hard_topk has no temperature.
TEMPERED = {"softmax": "temp_softmax", "temp_softmax": "temp_softmax", "sparsemax": "sparsemax",
            "entmax15": "entmax15"}


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
        # Every attention update starts at zero (zero-initialised output projection, as in SkipInit and
        # ReZero). From a random projection, the near-uniform attention of a fresh model adds an almost
        # constant vector to every token; in some seeds it grew until the head's LayerNorm drowned the
        # sequence signal and the run sat at chance for all its epochs (baseline seed 3 of the quick report).
        nn.init.zeros_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)
        self.rope = RotaryEmbedding(self.head_dim, cfg.rope_base) if positional and cfg.rope else None
        self.modulation = (PositionModulation(cfg.n_heads, cfg.pos_modulation_freqs)
                           if positional and cfg.pos_modulation else None)
        self.pattern = HookPoint("pattern")
        self.force_explicit = False  # benchmarks and equivalence tests switch the fast path off
        self._layouts: list[tuple[tuple, dict]] = []  # mask and meta per position layout, reused
        self.override: Optional[tuple[str, float]] = None  # (sparsity, temperature), set by temperature_override

    def normaliser(self) -> tuple[str, float]:
        """The (sparsity, temperature) this forward uses: the override when one is active, else as built."""
        return self.override or (self.sparsity, self.temperature)

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
        layout = self._layout(q_pos, k_pos, q_anchor, k_anchor)
        allowed = layout["allowed"]
        sparsity, temperature = self.normaliser()
        if sparsity in _SDPA_NORMALISERS and not self.force_explicit:
            scale = 1.0 / math.sqrt(self.head_dim)
            if sparsity == "temp_softmax":
                scale /= temperature
            q, k = self._fold_bias(q, k, q_pos, k_pos, q_anchor, k_anchor)
            sampled = self.pattern.active and self.pattern.sample is not None
            if (sampled or not self.pattern.active) and entropy is None and layout["every_row_has_key"]:
                # The CPU flash kernel wants one head size: pad the values to the widened queries and keys.
                widened = F.pad(v, (0, q.shape[-1] - v.shape[-1])) if q.shape[-1] != v.shape[-1] else v
                out = F.scaled_dot_product_attention(q, k, widened, attn_mask=allowed,
                                                     scale=scale)[..., :self.head_dim]
                if sampled:  # the recorder reads a sample: its weights alone, off the gradient path
                    pairs, stride = self.pattern.sample
                    mask = layout["additive_mask"]
                    with torch.no_grad():
                        weights = _scores(q[:pairs, :, ::stride], k[:pairs], scale,
                                          mask[::stride] if mask.dim() else mask).softmax(-1)
                    self.pattern(weights.to(v.dtype), meta=self._meta(layout, q_pos, k_pos, q_anchor, k_anchor,
                                                                       stride))
            else:
                # The weights are needed (hooks, sparsity loss). The mask is added inside the score matmul;
                # rows with no allowed key are zeroed after it.
                scores = _scores(q, k, scale, layout["additive_mask"])
                if entropy is not None:
                    weights, row_entropy = _weights_and_entropy(scores)
                    entropy.append((row_entropy * layout["row_scale"]).mean())
                else:
                    weights = scores.softmax(-1)
                weights = weights.to(v.dtype)
                if self.pattern.active:
                    self._record(weights, layout, q_pos, k_pos, q_anchor, k_anchor, zero_keyless=True)
                out = weights @ v
                if not layout["every_row_has_key"]:  # such rows get no weight, as in ``normalise``
                    out = out * layout["row_has_key"][:, None].to(out.dtype)
        else:  # the reference path: any normaliser, the bias as its own tensor
            bias = None
            if self.modulation is not None:
                bias = self.modulation(q_pos, k_pos, ~(q_anchor[:, None] | k_anchor[None, :]))
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
            if bias is not None:
                scores = scores + bias.to(scores.dtype)
            weights = normalise(scores, sparsity, allowed, temperature, self.topk)
            if entropy is not None:
                entropy.append(_normalised_entropy(weights, allowed))
            if self.pattern.active:
                self._record(weights, layout, q_pos, k_pos, q_anchor, k_anchor)
            out = weights @ v
        batch, _, length, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, -1))

    def _fold_bias(self, q, k, q_pos, k_pos, q_anchor, k_anchor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the position modulation's features so that scale * (q . k) includes its bias (a sum of
        cosines of i - j, hence rank 2F); ``scale`` is 1/sqrt(head_dim) (/ temperature), so the query side
        carries sqrt(head_dim). Unchanged without modulation."""
        if self.modulation is None:
            return q, k
        q_extra, k_extra = self.modulation.features(q_pos, k_pos, ~q_anchor, ~k_anchor)
        batch = q.shape[0]
        q = torch.cat([q, (q_extra * math.sqrt(self.head_dim)).to(q.dtype).expand(batch, -1, -1, -1)], -1)
        k = torch.cat([k, k_extra.to(k.dtype).expand(batch, self.n_heads, -1, -1)], -1)
        return q, k

    def _layout(self, q_pos, k_pos, q_anchor, k_anchor) -> dict:
        """Mask, its row facts and (lazily) the hook meta of one position layout, built once and reused.

        Positions come from the cached helpers below, so the same tensors recur every step; holding them in
        the key keeps their ids unique. This also keeps the host read of "does every row have a key" to
        once per layout. Under ``torch.compile`` nothing is cached: dynamo traces the position helpers into
        fresh tensors, so every step would miss, grow the list and recompile on its length; the traced graph
        holds the layout instead.
        """
        key = (q_pos, k_pos, q_anchor, k_anchor)
        compiling = torch.compiler.is_compiling()
        for cached_key, layout in () if compiling else self._layouts:
            if all(a is b for a, b in zip(cached_key, key)):
                return layout
        allowed = allowed_mask(q_pos, k_pos, q_anchor, k_anchor, self.window, self.mask_kind)
        n_keys = torch.full((len(q_pos),), float(len(k_pos)), device=q_pos.device) if allowed is None \
            else allowed.sum(-1).float()
        row_has_key = (n_keys > 0).float()
        # compiled: no host read (a graph break); a masked layout then takes the path that zeroes keyless rows
        every_row_has_key = allowed is None or (not compiling and bool(row_has_key.all()))
        layout = {"allowed": allowed, "every_row_has_key": every_row_has_key, "row_has_key": row_has_key,
                  # mean normalised entropy: per-row 1 / log(number of allowed keys), 0 on rows with none
                  "row_scale": row_has_key / n_keys.clamp_min(2.0).log(),
                  "additive_mask": torch.zeros((), device=q_pos.device) if allowed is None else
                  torch.zeros(allowed.shape, device=allowed.device).masked_fill(~allowed, _MASKED),
                  "meta": {}}
        if not compiling:
            self._layouts = [(key, layout)] + self._layouts[:7]
        return layout

    def _record(self, weights, layout, q_pos, k_pos, q_anchor, k_anchor, zero_keyless: bool = False) -> None:
        """Hand the weights to the hook point: all of them, or the sample the recorder asked for.
        ``zero_keyless``: rows with no allowed key get no weight, as in ``normalise``; done here on what is
        handed over (the trainer's sample), not on the whole [B, H, Lq, Lk] map, whose output is zeroed anyway."""
        sample = self.pattern.sample
        stride = sample[1] if sample else 1
        if sample is not None:
            weights = weights[: sample[0], :, ::stride].detach()
        if zero_keyless and not layout["every_row_has_key"]:
            weights = weights * layout["row_has_key"][::stride, None].to(weights.dtype)
        self.pattern(weights, meta=self._meta(layout, q_pos, k_pos, q_anchor, k_anchor, stride))

    def _meta(self, layout, q_pos, k_pos, q_anchor, k_anchor, stride: int = 1) -> AttentionMeta:
        # One meta per layout and query stride: the hooks cache the distance matrices they derive on it.
        if stride not in layout["meta"]:
            bp = float(self.bp_per_token)
            layout["meta"][stride] = AttentionMeta(
                q_pos_bp=q_pos[::stride].float() * bp, k_pos_bp=k_pos.float() * bp, q_is_anchor=q_anchor[::stride],
                k_is_anchor=k_anchor, window_bp=None if self.window is None else self.window * bp, topk=self.topk)
        return layout["meta"][stride]


class _WeightsAndEntropy(torch.autograd.Function):
    """Softmax weights and each row's entropy from float32 scores in one autograd node.

    Autograd of ``log_softmax``, ``exp`` and ``-(w * log w).sum()`` makes about twelve passes over the
    [B, H, Lq, Lk] map; the profile of a cbat_v2 step at 3000/2000 bp put those elementwise passes at a fifth of
    the step. With c = scores - row max, log w = c - log Z and Z = 1 / max w, so H = -log(max w) - sum w c
    (no elementwise log). The entropy's gradient folds into the softmax's: with upstream gradients gW (weights)
    and gH (entropy), d/dscores = softmax_backward(gW - gH * c, w), because sum w = 1 cancels every per-row
    term. Centring keeps a row with no allowed key (all -1e9, uniform weights) free of float32 cancellation;
    masked scores in other rows get weight exactly 0. ``softmax`` is also free of torch's slow CPU ``exp`` path
    for masked scores.
    """

    @staticmethod
    def forward(ctx, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = scores.softmax(-1)
        centred = scores - scores.amax(-1, keepdim=True)
        ctx.save_for_backward(centred, weights)
        return weights, -weights.amax(-1).log() - torch.linalg.vecdot(weights, centred)

    @staticmethod
    def backward(ctx, grad_weights: torch.Tensor, grad_entropy: torch.Tensor) -> torch.Tensor:
        centred, weights = ctx.saved_tensors  # an unused output's gradient arrives as zeros
        combined = torch.addcmul(grad_weights, centred, grad_entropy.unsqueeze(-1), value=-1)
        return torch._softmax_backward_data(combined, weights, -1, weights.dtype)


_weights_and_entropy = _WeightsAndEntropy.apply


def _scores(q: torch.Tensor, k: torch.Tensor, scale: float, additive_mask: torch.Tensor) -> torch.Tensor:
    """Attention scores [B, H, Lq, Lk] in float32, the mask added inside the score matmul."""
    batch, heads, n_q, width = q.shape
    scores = torch.baddbmm(additive_mask.to(q.dtype), (q * scale).reshape(batch * heads, n_q, width),
                           k.reshape(batch * heads, -1, width).transpose(1, 2))
    return scores.view(batch, heads, n_q, -1).float()


def _normalised_entropy(weights: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """Mean row entropy divided by log(number of allowed keys): 1 = uniform, 0 = one key."""
    w = weights.float()
    entropy = -(w * w.clamp_min(1e-12).log()).sum(-1)
    n_keys = torch.full(w.shape[-2:-1], float(w.shape[-1]), device=w.device) if allowed is None \
        else allowed.sum(-1).float()
    return (entropy / n_keys.clamp_min(2.0).log()).mean()


@functools.lru_cache(maxsize=64)
def _anchor_flags(length: int, start: int, count: int, device: torch.device) -> torch.Tensor:
    """[length] bool, True on ``count`` anchors from ``start``; cached per layout and device, never mutated."""
    with torch.inference_mode(False):  # a tensor made inside inference mode could not be reused in training
        flags = torch.zeros(length, dtype=torch.bool, device=device)
        flags[start:start + count] = True
    return flags


@functools.lru_cache(maxsize=64)
def _positions(length: int, device: torch.device) -> torch.Tensor:
    with torch.inference_mode(False):
        return torch.arange(length, device=device)


def _no_anchor(length: int, device: torch.device) -> torch.Tensor:
    return _anchor_flags(length, 0, 0, device)


@functools.lru_cache(maxsize=64)
def _anchor_positions(count: int, device: torch.device) -> torch.Tensor:
    with torch.inference_mode(False):
        return torch.zeros(count, dtype=torch.long, device=device)


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
        is_anchor = _anchor_flags(length, n_promoter, n_anchors, dev)
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
        token_pos, anchor_pos = _positions(length, dev), _anchor_positions(n_anchors, dev)
        all_anchor = _anchor_flags(n_anchors, 0, n_anchors, dev)
        gathered = anchors + self.gather(self.norm_anchors(anchors), x, anchor_pos, token_pos, all_anchor,
                                         _no_anchor(length, dev))
        gathered = self.state(gathered)
        return self.broadcast(x, gathered, token_pos, anchor_pos, _no_anchor(length, dev), all_anchor)


def tempered_cores(model: nn.Module) -> list[AttentionCore]:
    """The adaptive cross-attention cores of ``model`` whose normaliser has a temperature."""
    return [m.attn for m in model.modules() if isinstance(m, RoPE_AdaptAttention) and m.attn.sparsity in TEMPERED]


@contextmanager
def temperature_override(model: nn.Module, temperature: Optional[float]) -> Iterator[list[AttentionCore]]:
    """Run the tempered cores of ``model`` at ``temperature`` inside the block (None: as trained).

    Nothing the model was built with changes: each core gets an ``override`` that its forward reads, and
    the previous override comes back on exit, also after an error. Yields the cores acted on (empty for
    hard top-k models, whose selection has no temperature).
    """
    if temperature is not None and not temperature > 0:
        raise ValueError(f"temperature {temperature!r}; expected a positive number")
    cores = [] if temperature is None else tempered_cores(model)
    previous = [core.override for core in cores]
    try:
        for core in cores:
            core.override = (TEMPERED[core.sparsity], float(temperature))
        yield cores
    finally:
        for core, before in zip(cores, previous):
            core.override = before
