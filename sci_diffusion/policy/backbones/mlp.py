"""``model=mlp``: residual MLP over the flattened chunk, conditioned on time and the
observation history (for small state-based tasks)."""

from sci_diffusion.nets.policy_mlp import PolicyMLP as BACKBONE

__all__ = ["BACKBONE"]
