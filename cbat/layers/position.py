"""Positions: rotary embeddings (RoPE), the log's explicit frequency position modulation, and window masks."""
import math

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """RoPE in the rotate-halves layout (HF LLaMA): dims i and i + d/2 form a rotating pair.

    Tokens flagged as anchors get the identity rotation: they have no sequence position.
    """

    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor,
                q_anchor: torch.Tensor, k_anchor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate queries and keys in one call (a module called twice would break hook-based attribution)."""
        return self.rotate(q, q_pos, q_anchor), self.rotate(k, k_pos, k_anchor)

    def rotate(self, x: torch.Tensor, positions: torch.Tensor, is_anchor: torch.Tensor) -> torch.Tensor:
        """x [B, H, L, dh]; positions [L] in tokens; is_anchor [L] bool."""
        angles = positions.float()[:, None] * self.inv_freq[None, :]
        angles = angles.masked_fill(is_anchor[:, None], 0.0)
        cos = torch.cat([angles.cos(), angles.cos()], -1).to(x.dtype)
        sin = torch.cat([angles.sin(), angles.sin()], -1).to(x.dtype)
        first, second = x.chunk(2, dim=-1)
        return x * cos + torch.cat([-second, first], -1) * sin


class PositionModulation(nn.Module):
    """The log's ``_position_modulation``: an additive score bias sum_f a[h, f] cos(w_f (i - j)).

    Frequencies are fixed and geometric; amplitudes are learned per head. It encodes relative position a
    second time beside RoPE, which is what hypothesis H4 questions.
    """

    def __init__(self, n_heads: int, n_freqs: int) -> None:
        super().__init__()
        self.register_buffer("freqs", math.pi / (2.0 ** torch.arange(n_freqs, dtype=torch.float32)), persistent=False)
        self.amplitude = nn.Parameter(0.1 * torch.randn(n_heads, n_freqs))

    def forward(self, q_pos: torch.Tensor, k_pos: torch.Tensor, positioned: torch.Tensor) -> torch.Tensor:
        """Bias [H, Lq, Lk]; zero wherever either token is an anchor (``positioned`` is [Lq, Lk] bool)."""
        delta = (q_pos.float()[:, None] - k_pos.float()[None, :])
        waves = torch.cos(delta[..., None] * self.freqs)  # [Lq, Lk, F]
        bias = torch.einsum("qkf,hf->hqk", waves, self.amplitude)
        return bias * positioned

    def features(self, q_pos: torch.Tensor, k_pos: torch.Tensor, q_positioned: torch.Tensor,
                 k_positioned: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Query features [H, Lq, 2F] and key features [Lk, 2F] whose products are the bias of ``forward``.

        cos(w (i - j)) = cos(w i) cos(w j) + sin(w i) sin(w j), so the bias is a rank-2F product; the angles
        are taken in float64 because w i grows with the position while w (i - j) does not.
        """
        def waves(pos, keep):
            angles = pos.double()[:, None] * self.freqs.double()
            return (torch.cat([angles.cos(), angles.sin()], -1) * keep[:, None]).float()

        amplitude = torch.cat([self.amplitude, self.amplitude], -1)  # [H, 2F]
        return amplitude[:, None, :] * waves(q_pos, q_positioned)[None], waves(k_pos, k_positioned)


def allowed_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, q_anchor: torch.Tensor, k_anchor: torch.Tensor,
                 window: int | None, kind: str) -> torch.Tensor | None:
    """Boolean [Lq, Lk] mask of which keys a query may attend to; None when everything is allowed.

    ``sliding``: |i - j| <= window; ``causal``: 0 <= i - j <= window; ``block``: same block of ``window``
    tokens. Anchors are global: they see and are seen by every token.
    """
    if window is None:
        return None
    delta = q_pos[:, None] - k_pos[None, :]
    if kind == "sliding":
        allowed = delta.abs() <= window
    elif kind == "causal":
        allowed = (delta >= 0) & (delta <= window)
    elif kind == "block":
        allowed = torch.div(q_pos, window, rounding_mode="floor")[:, None] == \
            torch.div(k_pos, window, rounding_mode="floor")[None, :]
    else:
        raise ValueError(f"unknown mask kind {kind!r}")
    return allowed | q_anchor[:, None] | k_anchor[None, :]
