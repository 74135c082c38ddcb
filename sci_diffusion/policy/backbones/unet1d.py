"""``model=unet1d``: 1D temporal U-Net with FiLM conditioning on the time embedding and the
flattened observation history (Diffusion Policy's ConditionalUnet1D, CPU-sized)."""

from sci_diffusion.nets.unet1d import ConditionalUnet1D as BACKBONE

__all__ = ["BACKBONE"]
