"""Shared settings for tests that train small runs through the CLI or the trainer."""

from __future__ import annotations

import os

# A toy2d run small enough for seconds on 2 cores; checkpoints and logs at every step count.
SMALL_RUN = [
    "trainer.batch_size=64",
    "model.width=64",
    "model.depth=2",
    "task.data.size=2000",
    "task.eval.n_samples=500",
    "trainer.checkpoint_every=10",
    "trainer.progress=false",
    "trainer.log_every=1",
]


def subprocess_env() -> dict[str, str]:
    """The environment for child processes: no inherited torchrun variables, one OpenMP thread
    (2 shared cores: oversubscription stalls)."""
    drop = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["OMP_NUM_THREADS"] = "1"
    return env
