"""The interface every scripted expert implements."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Expert(Protocol):
    """A scripted policy. Experts may read privileged simulator state through ``env``
    (the gymnasium env, possibly wrapped: use ``env.unwrapped``)."""

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode (experts with random choices, e.g. which side to pass an
        obstacle, draw them here from ``seed``)."""

    def act(self, obs: np.ndarray, env: Any) -> np.ndarray:
        """The action for observation ``obs``, inside the env's action bounds, float32."""
