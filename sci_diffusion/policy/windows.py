"""Training windows cut from demonstration episodes.

A window at step ``t`` of an episode pairs the observation history ``obs[t-To+1 .. t]`` with
the action chunk ``actions[t .. t+H-1]``. Indices before the first observation repeat the
first one and indices past the last action repeat the last one (edge padding, as Diffusion
Policy does), so every step of every episode yields one window. Windows are stored as index
arrays into the concatenated episodes: a batch is two gathers, no copies per window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class Windows:
    """All windows of a data set.

    Attributes:
        obs: (total_obs, Do) float32, every episode's observations concatenated.
        actions: (total_actions, Da) float32, every episode's actions concatenated.
        obs_index: (W, To) int64 rows of ``obs`` forming each window's history.
        action_index: (W, H) int64 rows of ``actions`` forming each window's chunk.
    """

    obs: Tensor
    actions: Tensor
    obs_index: Tensor
    action_index: Tensor

    def __len__(self) -> int:
        return int(self.obs_index.shape[0])

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Windows ``index`` (B,) -> (obs history (B, To, Do), action chunk (B, H, Da))."""
        return self.obs[self.obs_index[index]], self.actions[self.action_index[index]]


def make_windows(
    episode_obs: Sequence[np.ndarray],
    episode_actions: Sequence[np.ndarray],
    n_obs_steps: int,
    horizon: int,
) -> Windows:
    """Cut every episode into windows (see the module docstring).

    Args:
        episode_obs: per episode (T_i + 1 or T_i, Do): observation ``k`` precedes action ``k``.
        episode_actions: per episode (T_i, Da).
        n_obs_steps: To >= 1, observations per history.
        horizon: H >= 1, actions per chunk.
    """
    if n_obs_steps < 1 or horizon < 1:
        raise ValueError(f"n_obs_steps and horizon must be >= 1, got {n_obs_steps}, {horizon}")
    if len(episode_obs) != len(episode_actions) or not episode_actions:
        raise ValueError("need the same positive number of observation and action episodes")
    obs_rows, act_rows, obs_parts, act_parts = [], [], [], []
    obs_base = act_base = 0
    for obs, actions in zip(episode_obs, episode_actions, strict=True):
        steps = len(actions)
        if steps == 0 or len(obs) < steps:
            raise ValueError(f"episode with {len(obs)} observations and {steps} actions")
        t = np.arange(steps)[:, None]
        history = np.clip(t + np.arange(-n_obs_steps + 1, 1), 0, None)
        chunk = np.clip(t + np.arange(horizon), None, steps - 1)
        obs_rows.append(history + obs_base)
        act_rows.append(chunk + act_base)
        obs_parts.append(np.asarray(obs, dtype=np.float32))
        act_parts.append(np.asarray(actions, dtype=np.float32))
        obs_base += len(obs)
        act_base += steps
    return Windows(
        obs=torch.from_numpy(np.concatenate(obs_parts)),
        actions=torch.from_numpy(np.concatenate(act_parts)),
        obs_index=torch.from_numpy(np.concatenate(obs_rows)).long(),
        action_index=torch.from_numpy(np.concatenate(act_rows)).long(),
    )
