"""``model=transformer``: action tokens attending to a time token and observation tokens."""

from sci_diffusion.nets.policy_transformer import PolicyTransformer as BACKBONE

__all__ = ["BACKBONE"]
