"""Deprecated location: use :mod:`sci_diffusion.core.sampler_config` (moved in 0.2 so that the
domains can run a configured sampler without importing the trainer)."""

import warnings

from sci_diffusion.core.sampler_config import *  # noqa: F403
from sci_diffusion.core.sampler_config import __all__  # noqa: F401

warnings.warn(
    "sci_diffusion.train.sampling moved to sci_diffusion.core.sampler_config; update the import",
    DeprecationWarning,
    stacklevel=2,
)
