"""One mechanism per module; the names of the log (RoPE_AdaptAttention, ...) are kept."""
from cbat.layers.attention import AnchorExchange, AttentionCore, RoPE_AdaptAttention, RoPE_CausalBlockAttention
from cbat.layers.gates import Gate
from cbat.layers.local import MultiScaleConv, Reshape2DConv, grid_index_map
from cbat.layers.normalizers import normalise
from cbat.layers.position import PositionModulation, RotaryEmbedding, allowed_mask
from cbat.layers.stem import ConvStem, FeedForward

__all__ = [
    "AnchorExchange", "AttentionCore", "ConvStem", "FeedForward", "Gate", "MultiScaleConv", "PositionModulation",
    "RoPE_AdaptAttention", "RoPE_CausalBlockAttention", "Reshape2DConv", "RotaryEmbedding", "allowed_mask",
    "grid_index_map", "normalise",
]
