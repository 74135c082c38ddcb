"""Measure the multimodal expert (success, left/right split) and the straight-to-goal baseline
over seeds 0..N-1: python scripts/measure_multimodal.py [N].

Episodes run through the one episode loop (``sci_diffusion.envs.episodes``) and are judged by
the task's success rule, as demonstration collection and policy evaluation do."""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from sci_diffusion.envs.episodes import Episode, ExpertActor, play_episodes
from sci_diffusion.envs.experts.multimodal import MultimodalReachExpert, StraightToGoalController
from sci_diffusion.envs.registry import get_task


def run(controller: Any, n: int) -> list[Episode]:
    """``controller`` (expert interface) on seeds 0..n-1 of task ``multimodal``."""
    return play_episodes(get_task("multimodal"), ExpertActor([controller]), range(n),
                         progress=True, desc=f"{type(controller).__name__}")  # fmt: skip


def expert_mode(seed: int) -> str:
    """The side the expert picks for episode ``seed`` (a function of the seed alone)."""
    expert = MultimodalReachExpert()
    expert.reset(seed)
    return expert.mode


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    n = int(argv[0]) if argv else 200
    t0 = time.time()
    played = run(MultimodalReachExpert(), n)
    modes = [expert_mode(ep.seed) for ep in played]
    lens = [ep.length for ep in played]
    print(
        f"expert: {sum(ep.success for ep in played)}/{n} success; left={modes.count('left')} "
        f"right={modes.count('right')}; steps mean={np.mean(lens):.1f} max={max(lens)}"
    )
    played = run(StraightToGoalController(), n)
    lens = [ep.length for ep in played]
    print(f"straight: {sum(ep.success for ep in played)}/{n} success; "
          f"steps mean={np.mean(lens):.1f}")  # fmt: skip
    print(f"time {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
