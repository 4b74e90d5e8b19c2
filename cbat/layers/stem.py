"""Per-side convolutional stem (one-hot bases -> tokens) and the position-wise feed-forward."""
import torch
from torch import nn


class ConvStem(nn.Module):
    """Conv1d over bases, GELU, then max-pool by ``pool``: token i covers bases [i*pool, (i+1)*pool)."""

    def __init__(self, d_model: int, kernel: int, pool: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, d_model, kernel, padding=kernel // 2)
        self.pool = nn.MaxPool1d(pool)
        self.act = nn.GELU()

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:  # [B, 4, L] -> [B, L // pool, D]
        return self.pool(self.act(self.conv(onehot))).transpose(1, 2)


class FeedForward(nn.Module):
    """Pre-norm position-wise MLP; returns the update (the caller adds it to the residual stream)."""

    def __init__(self, d_model: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.net = nn.Sequential(nn.Linear(d_model, mult * d_model), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mult * d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(x))
