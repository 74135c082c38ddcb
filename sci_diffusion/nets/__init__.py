"""Denoiser networks: plain ``torch.nn.Module``s with typed, shape-documented ``forward``s."""

from .embeddings import SinusoidalTimeEmbedding
from .mlp import MLPDenoiser
from .policy_mlp import PolicyMLP
from .policy_transformer import PolicyTransformer
from .unet1d import ConditionalUnet1D

__all__ = [
    "ConditionalUnet1D",
    "MLPDenoiser",
    "PolicyMLP",
    "PolicyTransformer",
    "SinusoidalTimeEmbedding",
]
