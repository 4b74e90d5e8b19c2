"""Per-side convolutional stem (one-hot bases -> tokens) and the position-wise feed-forward."""
import torch
import torch.nn.functional as F
from torch import nn


class ConvStem(nn.Module):
    """Conv1d over bases, GELU, then max-pool by ``pool``: token i covers bases [i*pool, (i+1)*pool).

    Computed as the same numbers in a cheaper order (profiled at 3000/2000 bp, where the stem was most of
    the baseline's step): the convolution is one matrix multiply that leaves [B, L, D] (the tokens'
    layout, no transposes), and GELU runs on the pooled tokens only. GELU falls, then rises (its minimum is
    near -0.75), so its maximum over a window is at the window's largest or smallest pre-activation; the
    gradient goes to that one base position, as max-pooling after GELU sends it.
    """

    def __init__(self, d_model: int, kernel: int, pool: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, d_model, kernel, padding=kernel // 2)  # holds the weights; see forward
        self.pool = pool
        self.act = nn.GELU()

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:  # [B, 4, L] -> [B, L // pool, D]
        batch, channels, length = onehot.shape
        (kernel,), (pad,) = self.conv.kernel_size, self.conv.padding
        n_tokens = (length + 2 * pad - kernel + 1) // self.pool
        span = n_tokens * self.pool  # conv outputs past the last whole token are dropped, as MaxPool1d does
        cols = F.pad(onehot, (pad, pad)).unfold(2, kernel, 1)[:, :, :span]  # [B, C, span, K]
        cols = cols.permute(0, 2, 1, 3).reshape(batch * span, channels * kernel)
        weight = self.conv.weight.reshape(self.conv.out_channels, -1)
        z = torch.addmm(self.conv.bias, cols, weight.t()).view(batch, span, -1)  # [B, span, D]
        with torch.no_grad():
            grid = z.detach().unsqueeze(1).permute(0, 3, 1, 2)  # [B, D, 1, span], channels-last in memory
            high, high_at = F.max_pool2d(grid, (1, self.pool), return_indices=True)
            low, low_at = F.max_pool2d(-grid, (1, self.pool), return_indices=True)
            at = torch.where(F.gelu(high) >= F.gelu(-low), high_at, low_at)
            at = at.squeeze(2).transpose(1, 2)  # [B, n_tokens, D], indices into span
        return self.act(z.gather(1, at))


class FeedForward(nn.Module):
    """Pre-norm position-wise MLP; returns the update (the caller adds it to the residual stream)."""

    def __init__(self, d_model: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.net = nn.Sequential(nn.Linear(d_model, mult * d_model), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mult * d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(x))
