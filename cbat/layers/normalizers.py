"""Attention normalisers: softmax, hard top-k, temperature softmax, sparsemax and entmax-1.5.

All take raw scores [..., Lk] and a boolean ``allowed`` mask broadcastable to them, and return weights
that are exactly zero where a key is not allowed (and, for hard top-k, where it is not selected), so
those keys get zero output and zero gradient. Sparse normalisers come from the ``entmax`` package and
run in float32 (its bisection/sort is unreliable in half precision).
"""
import torch
from entmax import entmax15, sparsemax

# Finite fill for masked scores: exp() underflows to exactly 0 in float32 and sort-based sparse maps stay
# free of inf - inf.
_MASKED = -1e9


def normalise(scores: torch.Tensor, kind: str, allowed: torch.Tensor | None = None, temperature: float = 1.0,
              topk: int = 8) -> torch.Tensor:
    dtype = scores.dtype
    scores = scores.float()
    if kind in ("temp_softmax", "sparsemax", "entmax15"):
        scores = scores / temperature
    keep = allowed if allowed is not None else torch.ones_like(scores, dtype=torch.bool)
    keep = keep.expand_as(scores)
    if kind == "hard_topk":
        k = min(topk, scores.shape[-1])
        ranked = scores.masked_fill(~keep, _MASKED).topk(k, dim=-1).indices
        keep = keep & torch.zeros_like(keep).scatter(-1, ranked, True)
    masked = scores.masked_fill(~keep, _MASKED)
    if kind in ("softmax", "temp_softmax", "hard_topk"):
        weights = masked.softmax(-1)
    elif kind == "sparsemax":
        weights = sparsemax(masked, dim=-1)
    elif kind == "entmax15":
        weights = entmax15(masked, dim=-1)
    else:
        raise ValueError(f"unknown attention normaliser {kind!r}")
    # Rows with no allowed key would otherwise spread uniformly over masked keys; multiplying by the mask
    # also makes the zero exact for the gradient.
    return (weights * keep).to(dtype)
