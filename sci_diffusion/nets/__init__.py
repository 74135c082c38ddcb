"""Denoiser networks: plain ``torch.nn.Module``s with typed, shape-documented ``forward``s."""

from .embeddings import SinusoidalTimeEmbedding
from .mlp import MLPDenoiser

__all__ = ["MLPDenoiser", "SinusoidalTimeEmbedding"]
