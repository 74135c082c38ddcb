"""Denoiser networks: plain ``torch.nn.Module``s with typed, shape-documented ``forward``s."""

from .egnn import EGNN, EGNNLayer, EGNNOutput
from .embeddings import SinusoidalTimeEmbedding
from .equivariance import assert_equivariant, equivariance_errors
from .graph_transformer import GraphDenoiserNet, GraphTransformer, graph_denoiser
from .mlp import MLPDenoiser
from .policy_mlp import PolicyMLP
from .policy_transformer import PolicyTransformer
from .unet1d import ConditionalUnet1D

__all__ = [
    "EGNN",
    "ConditionalUnet1D",
    "EGNNLayer",
    "EGNNOutput",
    "GraphDenoiserNet",
    "GraphTransformer",
    "MLPDenoiser",
    "PolicyMLP",
    "PolicyTransformer",
    "SinusoidalTimeEmbedding",
    "assert_equivariant",
    "equivariance_errors",
    "graph_denoiser",
]
