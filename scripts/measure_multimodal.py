"""Measure the multimodal expert (success, left/right split) and the straight-to-goal baseline
over seeds 0..N-1: python scripts/measure_multimodal.py [N]."""

import sys
import time

import numpy as np

from sci_diffusion.envs.experts.multimodal import MultimodalReachExpert, StraightToGoalController
from sci_diffusion.envs.multimodal import MultimodalReachEnv


def run(policy, n, env):
    succ, modes, lens = 0, [], []
    for s in range(n):
        obs, _ = env.reset(seed=s)
        policy.reset(seed=s)
        modes.append(getattr(policy, "mode", "-"))
        steps = 0
        for steps in range(1, env.max_episode_steps + 1):  # noqa: B007 (read after the loop)
            obs, _reward, term, trunc, info = env.step(policy.act(obs, env))
            if term or trunc:
                break
        succ += info["is_success"]
        lens.append(steps)
    return succ, modes, lens


n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
env = MultimodalReachEnv()
t0 = time.time()
s, modes, lens = run(MultimodalReachExpert(), n, env)
print(
    f"expert: {s}/{n} success; left={modes.count('left')} right={modes.count('right')}; "
    f"steps mean={np.mean(lens):.1f} max={max(lens)}"
)
s, _, lens = run(StraightToGoalController(), n, env)
print(f"straight: {s}/{n} success; steps mean={np.mean(lens):.1f}")
print(f"time {time.time() - t0:.1f}s")
