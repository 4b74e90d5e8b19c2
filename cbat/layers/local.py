"""Local feature extractors: the v1 2-D reshape and the v2 multi-scale 1-D convolution pyramid."""
import math

import torch
import torch.nn.functional as F
from torch import nn


def grid_shape(length: int) -> tuple[int, int]:
    """The (height, width) image that ``Reshape2DConv`` folds a sequence of ``length`` tokens into."""
    width = math.ceil(math.sqrt(length))
    return math.ceil(length / width), width


def grid_index_map(length: int) -> torch.Tensor:
    """Row and column of every token on the grid, shape [length, 2] (row-major folding)."""
    _, width = grid_shape(length)
    idx = torch.arange(length)
    return torch.stack([idx // width, idx % width], dim=1)


class Reshape2DConv(nn.Module):
    """CBAT v1: fold [B, L, D] into an image [B, D, H, W] and apply a 3x3 conv.

    Tokens ``i`` and ``i + W`` become vertical grid neighbours although they are W tokens apart in 1-D:
    the invented neighbourhood the log blames for damaged semantics (hypothesis V1b).
    """

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(d_model, d_model, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, d = x.shape
        height, width = grid_shape(length)
        image = F.pad(x, (0, 0, 0, height * width - length)).transpose(1, 2).reshape(batch, d, height, width)
        out = self.conv(image).reshape(batch, d, height * width)[:, :, :length].transpose(1, 2)
        return x + F.gelu(out)


class MultiScaleConv(nn.Module):
    """CBAT v2: parallel 1-D convs (kernels 7, 15, 31 by default) fused by a linear map; keeps [B, L, D]."""

    def __init__(self, d_model: int, kernels: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(d_model, d_model, k, padding=k // 2) for k in kernels)
        self.fuse = nn.Linear(len(kernels) * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.transpose(1, 2)
        scales = torch.cat([conv(channels) for conv in self.convs], dim=1).transpose(1, 2)
        return x + self.fuse(F.gelu(scales))
