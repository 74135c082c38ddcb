"""Deprecated location: use :mod:`sci_diffusion.io.rundir` (moved in 0.2 so that every layer can
use it without importing the trainer)."""

import warnings

from sci_diffusion.io.rundir import *  # noqa: F403
from sci_diffusion.io.rundir import __all__  # noqa: F401

warnings.warn(
    "sci_diffusion.train.rundir moved to sci_diffusion.io.rundir; update the import",
    DeprecationWarning,
    stacklevel=2,
)
