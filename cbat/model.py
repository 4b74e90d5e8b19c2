"""The CBAT model zoo: one ``PRISMBackbone`` whose mechanisms are switched by ``CBATConfig``.

Data flow: per-side conv stem -> optional local extractor -> ``n_blocks`` blocks running
``cfg.block_recipe`` -> a head that pools only what crossed attention (the enhancer side for one-way
models, both sides for bidirectional ones, each side alone for the ``no_cross`` control) -> one logit.
No module object is called twice in a forward pass, so hook-based attribution stays valid.
"""
from __future__ import annotations

import torch
from torch import nn

from cbat.config import CBATConfig
from cbat.layers import (AnchorExchange, ConvStem, FeedForward, Gate, MultiScaleConv, Reshape2DConv,
                         RoPE_AdaptAttention, RoPE_CausalBlockAttention)


def _local_extractor(cfg: CBATConfig) -> nn.Module:
    if cfg.local == "ms_conv":
        return MultiScaleConv(cfg.d_model, cfg.ms_kernels)
    if cfg.local == "reshape2d":
        return Reshape2DConv(cfg.d_model)
    return nn.Identity()


class PRISMBlock(nn.Module):
    """One block: the steps of ``cfg.block_recipe`` in order, each a gated residual update."""

    def __init__(self, cfg: CBATConfig) -> None:
        super().__init__()
        self.cfg = cfg
        recipe = cfg.block_recipe
        gated = cfg.gate != "none"
        make_gate = lambda: Gate(cfg.d_model, cfg.gate, cfg.gate_min_temperature, cfg.gate_residual)  # noqa: E731
        if "joint_attn" in recipe:
            self.joint = RoPE_CausalBlockAttention(cfg)
            self.gate_joint = make_gate() if gated else None
        if "cross_attn" in recipe:
            if cfg.n_anchors and cfg.anchor_mode == "gather_broadcast":
                self.anchors = AnchorExchange(cfg)
            self.cross_ep = RoPE_AdaptAttention(cfg)
            self.cross_pe = RoPE_AdaptAttention(cfg) if cfg.bidirectional else None
            self.gate_attn = make_gate() if gated else None
        if "ffn" in recipe:
            self.ffn = FeedForward(cfg.d_model, cfg.ffn_mult, cfg.dropout)
            self.gate_ffn = make_gate() if gated else None
        # The promoter stream changes only where some step writes to it; otherwise it stays the stem output.
        self.updates_promoter = (cfg.bidirectional or "joint_attn" in recipe or cfg.interaction == "none"
                                 or (cfg.n_anchors > 0 and cfg.anchor_mode == "gather_broadcast"))

    @staticmethod
    def _residual(x: torch.Tensor, update: torch.Tensor, gate: Gate | None) -> torch.Tensor:
        return x + (update if gate is None else gate(x, update))

    def forward(self, x_e: torch.Tensor, x_p: torch.Tensor, bank: torch.Tensor | None,
                entropy: list[torch.Tensor] | None = None):
        n_p = x_p.shape[1]
        for step in self.cfg.block_recipe:
            if step == "joint_attn":
                concat_anchors = bank is not None and self.cfg.anchor_mode == "concat"
                parts = [x_p, bank.unsqueeze(0).expand(x_e.shape[0], -1, -1)] if concat_anchors else [x_p]
                combined = torch.cat(parts + [x_e], dim=1)
                n_a = bank.shape[0] if concat_anchors else 0
                combined = self._residual(combined, self.joint(combined, n_p, n_a), self.gate_joint)
                # Concatenated anchors are re-inserted from the bank in every block, as in the log.
                x_p, x_e = combined[:, :n_p], combined[:, n_p + n_a:]
            elif step == "cross_attn":
                if hasattr(self, "anchors"):
                    tokens = torch.cat([x_p, x_e], dim=1)
                    tokens = tokens + self.anchors(tokens, bank)
                    x_p, x_e = tokens[:, :n_p], tokens[:, n_p:]
                update_e = self.cross_ep(x_e, x_p, entropy)
                if self.cross_pe is not None:
                    both = torch.cat([x_p, x_e], dim=1)
                    both = self._residual(both, torch.cat([self.cross_pe(x_p, x_e, entropy), update_e], dim=1),
                                          self.gate_attn)
                    x_p, x_e = both[:, :n_p], both[:, n_p:]
                else:
                    x_e = self._residual(x_e, update_e, self.gate_attn)
            else:  # ffn
                if self.updates_promoter:
                    both = torch.cat([x_p, x_e], dim=1)
                    both = self._residual(both, self.ffn(both), self.gate_ffn)
                    x_p, x_e = both[:, :n_p], both[:, n_p:]
                else:
                    x_e = self._residual(x_e, self.ffn(x_e), self.gate_ffn)
        return x_e, x_p


class PoolingHead(nn.Module):
    """Mean and max pooling of each pooled side, concatenated, then a small MLP to one logit."""

    def __init__(self, d_model: int, n_sides: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(2 * d_model * n_sides, d_model), nn.GELU(), nn.Linear(d_model, 1))

    def forward(self, sides: list[torch.Tensor]) -> torch.Tensor:
        pooled = []
        for x in sides:
            x = self.norm(x) if len(sides) == 1 else x
            pooled += [x.mean(1), x.amax(1)]
        return self.mlp(torch.cat(pooled, dim=-1)).squeeze(-1)


class PRISMBackbone(nn.Module):
    """The whole CBAT model: ``forward(enhancer [B,4,Le], promoter [B,4,Lp]) -> logits [B]``."""

    def __init__(self, cfg: CBATConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.bp_per_token = cfg.stem_pool
        self.stem_e = ConvStem(cfg.d_model, cfg.stem_kernel, cfg.stem_pool)
        self.stem_p = ConvStem(cfg.d_model, cfg.stem_kernel, cfg.stem_pool)
        self.local_e, self.local_p = _local_extractor(cfg), _local_extractor(cfg)
        self.anchor_bank = nn.Parameter(0.02 * torch.randn(cfg.n_anchors, cfg.d_model)) if cfg.n_anchors else None
        self.blocks = nn.ModuleList(PRISMBlock(cfg) for _ in range(cfg.n_blocks))
        self.pooled_sides = 1 if (cfg.uses_cross and not cfg.bidirectional) else 2
        self.head = PoolingHead(cfg.d_model, self.pooled_sides)

    def forward(self, enhancer: torch.Tensor, promoter: torch.Tensor, aux: dict | None = None) -> torch.Tensor:
        """Logits [B]. With ``aux`` (a dict) the forward also reports, under ``aux["attention_entropy"]``,
        the mean normalised entropy of the adaptive cross attentions (1 = uniform, 0 = one key; with grad,
        the sparsity loss's input), absent when no adaptive attention ran. Asking for it switches those
        attentions to their explicit (slower) path."""
        _check_input("enhancer", enhancer, self.bp_per_token)
        _check_input("promoter", promoter, self.bp_per_token)
        if enhancer.shape[0] != promoter.shape[0]:
            raise ValueError(f"enhancer batch {enhancer.shape[0]} != promoter batch {promoter.shape[0]}")
        x_e = self.local_e(self.stem_e(enhancer))
        x_p = self.local_p(self.stem_p(promoter))
        entropy: list[torch.Tensor] | None = [] if aux is not None else None
        for block in self.blocks:
            x_e, x_p = block(x_e, x_p, self.anchor_bank, entropy)
        if entropy:
            aux["attention_entropy"] = torch.stack(entropy).mean()
        return self.head([x_e] if self.pooled_sides == 1 else [x_e, x_p])


def _check_input(name: str, x: torch.Tensor, min_length: int) -> None:
    if not torch.is_tensor(x) or x.dim() != 3 or x.shape[1] != 4:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{name}: expected a float one-hot tensor [batch, 4, length], got {shape}")
    if x.shape[2] < min_length:
        raise ValueError(f"{name}: length {x.shape[2]} bp is shorter than one token ({min_length} bp)")


def build_model(cfg: CBATConfig, seed: int | None = None) -> PRISMBackbone:
    """Build the model for ``cfg``; with ``seed`` the initial weights are reproducible."""
    if not isinstance(cfg, CBATConfig):
        hint = f"cbat.preset({cfg!r})" if isinstance(cfg, str) else "cbat.preset('baseline')"
        raise TypeError(f"build_model: expected a CBATConfig (e.g. {hint}), got {type(cfg).__name__}")
    if seed is None:
        return PRISMBackbone(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PRISMBackbone(cfg)
