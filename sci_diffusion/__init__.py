"""sci_diffusion: diffusion models for science and robotics.

``sci_diffusion.core`` is the torch-only denoising core; import it alone in your own pipeline.
"""

__version__ = "0.1.0"
