"""Shared settings for tests that train small runs through the CLI or the trainer."""

from __future__ import annotations

import os
from typing import Any

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


def detour_actions(obs: Any) -> Any:
    """A scripted multimodal actor, batched ``(B, 6) -> (B, 2)``: pass the block on the right,
    then go to the goal (episodes succeed early, at different steps, so finished ones wait for
    the rest of their lockstep batch)."""
    import numpy as np

    pos, vel, goal = obs[:, :2], obs[:, 2:4], obs[:, 4:6]
    around = (pos[:, 1] < 0.08) & (pos[:, 0] < 0.3)
    target = np.where(around[:, None], np.array([0.4, 0.1], np.float32), goal)
    return np.clip(10 * (target - pos) - 0.5 * vel, -1, 1)


def train_in_private_cache(tmp_path_factory: Any, overrides: list[str], name: str) -> Any:
    """Generator for module-scoped fixtures (``yield from``): train ``overrides`` into a fresh
    run directory ``name`` with a private data cache and one torch thread, yield the run
    directory, restore both afterwards."""
    import pytest
    import torch

    from sci_diffusion.config import compose
    from sci_diffusion.train.trainer import train

    mp = pytest.MonkeyPatch()
    mp.setenv("SCI_DIFFUSION_CACHE", str(tmp_path_factory.mktemp("cache")))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg, _ = compose(overrides)
        run_dir = tmp_path_factory.mktemp(name)
        train(cfg, run_dir)
        yield run_dir
    finally:
        torch.set_num_threads(threads)
        mp.undo()


def small_egnn(node_features: int, edge_features: int, edges: str, dtype: Any, **kw: Any) -> Any:
    """A 3-layer, 16-wide EGNN (seeded) whose coordinate heads are re-initialised so positions
    really move: the network the EGNN tests (plain torch and PyG) compare and probe."""
    import torch

    from sci_diffusion.nets.egnn import EGNN

    torch.manual_seed(0)
    config: dict[str, Any] = {
        "hidden": 16, "n_layers": 3, "edge_features": edge_features, "edge_out_features": 3, **kw
    }  # fmt: skip
    net = EGNN(node_features, 4, edges=edges, **config).to(dtype)
    for layer in net.layers:  # undo the near-zero init
        torch.nn.init.normal_(layer.coord[-1].weight, std=0.5)
    return net.eval()
