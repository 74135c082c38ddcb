"""The cache folder for data sets the package generates or converts (never downloads)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SCI_DIFFUSION_CACHE"


def cache_dir() -> Path:
    """The cache root: ``$SCI_DIFFUSION_CACHE`` (``~`` expanded) if set, else
    ``~/.cache/sci_diffusion``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sci_diffusion"
