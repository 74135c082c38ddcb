"""Meta-World experts: thin wrappers around the package's own scripted policies.

Meta-World ships a hand-written policy for every v3 task in ``metaworld.policies``, named after
the task: ``push-v3`` → ``SawyerPushV3Policy``, ``button-press-topdown-v3`` →
``SawyerButtonPressTopdownV3Policy``. :class:`MetaWorldExpert` looks the class up by that rule
(no hand-kept table, so every task the installed package has a policy for works).

Success is the env's own ``info["success"]`` (a float 0/1 computed by each task's
``evaluate_state`` from the observation after every step). The package's definitions for the
tasks measured in ``scripts/measure_experts.py`` (metaworld 3.1.1):

* ``reach-v3``: hand (TCP) within 0.05 m of the goal.
* ``push-v3``: puck within ``TARGET_RADIUS`` = 0.05 m of the goal.
* ``pick-place-v3``: object within 0.07 m of the (3-D) goal.
* ``drawer-open-v3``: drawer handle within 0.03 m of its fully-open position.
* ``door-open-v3``: door handle x within 0.08 m of the target x.
* ``button-press-topdown-v3``: button within 0.024 m of its fully-pressed position.

The Meta-World benchmark convention, used here, is that an episode counts as a success when
``info["success"]`` is true at *any* step within ``max_path_length`` (500 steps); the env does
not terminate on success (``terminate_on_success=False`` for MT1), so the state after success
keeps evolving until truncation.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = ["MetaWorldExpert", "available_metaworld_experts", "make_metaworld_env", "policy_name"]


def policy_name(env_name: str) -> str:
    """The ``metaworld.policies`` class name for a task: ``"pick-place-v3"`` →
    ``"SawyerPickPlaceV3Policy"`` (each ``-``-separated word capitalised, ``vN`` → ``VN``)."""
    words = [w for w in re.split(r"[-_]", env_name.strip()) if w]
    return "Sawyer" + "".join(w[:1].upper() + w[1:] for w in words) + "Policy"


def _policy_classes() -> dict[str, type]:
    """Every scripted policy class the installed ``metaworld.policies`` exports, by class name."""
    import metaworld.policies as mp

    names = getattr(mp, "__all__", None) or [n for n in dir(mp) if n.endswith("Policy")]
    return {n: getattr(mp, n) for n in names if n.startswith("Sawyer") and hasattr(mp, n)}


def available_metaworld_experts() -> list[str]:
    """Task names (``"push-v3"``, …) that have a scripted policy in the installed package."""
    out = []
    for cls_name in _policy_classes():
        core = cls_name[len("Sawyer") : -len("Policy")]
        # "PickPlaceV3" -> "pick-place-v3"
        out.append(re.sub(r"(?<!^)(?=[A-Z])", "-", core).lower())
    return sorted(out)


class MetaWorldExpert:
    """The Meta-World scripted policy for ``env_name`` behind the :class:`Expert` interface.

    The policies are deterministic functions of the observation (39-D, goal-observable MT1
    observation: hand xyz in m, gripper opening, object poses, goal xyz in m). Actions are 4-D:
    end-effector displacement command (x, y, z, each in [-1, 1], scaled by the env's
    ``action_scale`` = 0.01 m per unit) and gripper effort in [-1, 1].
    """

    def __init__(self, env_name: str) -> None:
        classes = _policy_classes()
        cls_name = policy_name(env_name)
        if cls_name not in classes:
            raise ValueError(
                f"no Meta-World scripted policy for {env_name!r} (looked for {cls_name}); "
                f"available: {', '.join(available_metaworld_experts())}"
            )
        self.env_name = env_name
        self.policy = classes[cls_name]()

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset: the scripted policies are stateless and deterministic."""

    def act(self, obs: np.ndarray, env: Any) -> np.ndarray:
        """The policy's action for ``obs``, clipped to ``env.action_space``, float32."""
        action = np.asarray(self.policy.get_action(np.asarray(obs, dtype=np.float64)))
        space = env.action_space
        return np.clip(action, space.low, space.high).astype(np.float32)


def make_metaworld_env(env_name: str, seed: int | None = None, **kwargs: Any) -> Any:
    """A single Meta-World MT1 env for ``env_name`` (``gymnasium.make("Meta-World/MT1", …)``).

    ``seed`` fixes the task's set of 50 goal/object configurations (``metaworld._N_GOALS``) and
    the RNG that picks one of them at every reset; ``env.reset(seed=...)`` then fixes the rest
    of the episode's initial state. Episodes are truncated at the task's ``max_path_length``
    (500 steps for every v3 task). Extra ``kwargs`` go to ``gymnasium.make`` (e.g.
    ``render_mode``).
    """
    import gymnasium as gym
    import metaworld  # noqa: F401  (registers the Meta-World/* env ids)

    if policy_name(env_name) not in _policy_classes():
        # Same message as MetaWorldExpert: this module only makes envs it has experts for.
        MetaWorldExpert(env_name)
    return gym.make("Meta-World/MT1", env_name=env_name, seed=seed, **kwargs)
