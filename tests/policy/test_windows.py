import numpy as np
import pytest
import torch

from sci_diffusion.policy.windows import make_windows


def _episode(steps: int, base: float) -> tuple[np.ndarray, np.ndarray]:
    obs = base + np.arange(steps + 1, dtype=np.float32)[:, None]  # obs k == base + k
    actions = base + 0.5 + np.arange(steps, dtype=np.float32)[:, None]
    return obs, actions


def test_every_step_gives_one_window_with_edge_padding():
    (o1, a1), (o2, a2) = _episode(5, 0.0), _episode(3, 100.0)
    w = make_windows([o1, o2], [a1, a2], n_obs_steps=2, horizon=4)
    assert len(w) == 5 + 3
    obs, act = w.batch(torch.arange(len(w)))
    assert obs.shape == (8, 2, 1) and act.shape == (8, 4, 1)
    # Step 0: the history repeats the first observation.
    assert obs[0, :, 0].tolist() == [0.0, 0.0]
    # Step 4 of episode 1: actions 4, then the last action repeated.
    assert act[4, :, 0].tolist() == [4.5, 4.5, 4.5, 4.5]
    # Episode 2 never mixes with episode 1.
    assert obs[5, :, 0].tolist() == [100.0, 100.0]
    assert act[6, :, 0].tolist() == [101.5, 102.5, 102.5, 102.5]
    assert obs[7, :, 0].tolist() == [101.0, 102.0]


def test_bad_arguments_are_refused():
    o, a = _episode(3, 0.0)
    with pytest.raises(ValueError, match=">= 1"):
        make_windows([o], [a], n_obs_steps=0, horizon=4)
    with pytest.raises(ValueError, match="same positive number"):
        make_windows([o], [], n_obs_steps=1, horizon=4)
    with pytest.raises(ValueError, match="observations"):
        make_windows([o[:1]], [a], n_obs_steps=1, horizon=4)
