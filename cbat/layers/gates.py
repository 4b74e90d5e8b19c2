"""Gates on residual updates: the v1 plain sigmoid and the v2 temperature sigmoid with a small residual."""
import torch
from torch import nn

from cbat.hooks import HookPoint


class Gate(nn.Module):
    """``gate(x, update)`` returns the gated update.

    sigmoid: g = sigmoid(W x), out = g * update (can saturate at 0 or 1: hypothesis V1c).
    temp_sigmoid: g = sigmoid(W x / T) with T = temperature.clamp_min(min_temperature) and
    out = (g + residual) * update, so a closed gate still passes a small share of the update.
    The gate values pass through ``self.value`` (hook point ``...gate_*.value``).
    """

    def __init__(self, d_model: int, kind: str, min_temperature: float, residual: float) -> None:
        super().__init__()
        self.kind, self.min_temperature, self.residual = kind, min_temperature, residual
        self.proj = nn.Linear(d_model, d_model)
        if kind == "temp_sigmoid":
            self.temperature = nn.Parameter(torch.tensor(1.0))
        self.value = HookPoint("gate")

    def effective_temperature(self) -> torch.Tensor:
        if self.kind != "temp_sigmoid":
            return torch.tensor(1.0)
        return self.temperature.clamp_min(self.min_temperature)

    def forward(self, x: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        logits = self.proj(x)
        if self.kind == "temp_sigmoid":
            g = self.value(torch.sigmoid(logits / self.effective_temperature()))
            return (g + self.residual) * update
        return self.value(torch.sigmoid(logits)) * update
