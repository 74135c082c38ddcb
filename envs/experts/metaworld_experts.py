"""Meta-World experts: thin wrappers around the package's own scripted policies.

**Task names come from Meta-World itself**: :func:`metaworld_env_names` is the key list of the
installed package's registry of v3 environments (``metaworld.env_dict.ALL_V3_ENVIRONMENTS``,
the 50 tasks of MT50, the names ``gymnasium.make("Meta-World/MT1", env_name=...)`` accepts).

**Experts are matched to tasks by one rule**: Meta-World ships a hand-written policy for every
v3 task in ``metaworld.policies``, named after the task: ``push-v3`` → ``SawyerPushV3Policy``,
``button-press-topdown-v3`` → ``SawyerButtonPressTopdownV3Policy`` (:func:`policy_name`: each
``-``-separated word capitalised, ``Sawyer`` before, ``Policy`` after). The one task whose
policy the package names differently is listed in :data:`POLICY_NAME_EXCEPTIONS`
(``peg-insert-side-v3`` → ``SawyerPegInsertionSideV3Policy``); a test checks that with it every
registered v3 environment gets a policy class and every policy class an environment.

Success is the env's own ``info["success"]`` (a float 0/1 computed by each task's
``evaluate_state`` from the observation after every step). The package's definitions for some
tasks (metaworld 3.1.1):

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

import difflib
import re
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = [
    "POLICY_NAME_EXCEPTIONS",
    "TASK_SALT",
    "MetaWorldExpert",
    "available_metaworld_experts",
    "check_metaworld_env_name",
    "env_name_for_policy",
    "make_metaworld_env",
    "metaworld_env_names",
    "policy_name",
]

POLICY_NAME_EXCEPTIONS: dict[str, str] = {
    "peg-insert-side-v3": "SawyerPegInsertionSideV3Policy",
}
"""Tasks whose ``metaworld.policies`` class the naming rule of :func:`policy_name` does not
give (the package's names differ); task name → class name."""


def _rule_name(env_name: str) -> str:
    words = [w for w in re.split(r"[-_]", env_name.strip()) if w]
    return "Sawyer" + "".join(w[:1].upper() + w[1:] for w in words) + "Policy"


def policy_name(env_name: str) -> str:
    """The ``metaworld.policies`` class name for a task: ``"pick-place-v3"`` →
    ``"SawyerPickPlaceV3Policy"`` (each ``-``-separated word capitalised, ``vN`` → ``VN``),
    except for the tasks of :data:`POLICY_NAME_EXCEPTIONS`."""
    name = env_name.strip()
    return POLICY_NAME_EXCEPTIONS.get(name) or _rule_name(name)


def env_name_for_policy(cls_name: str) -> str:
    """The task name a ``metaworld.policies`` class is for (the inverse of
    :func:`policy_name`): ``"SawyerPickPlaceV3Policy"`` → ``"pick-place-v3"``."""
    for env_name, exception in POLICY_NAME_EXCEPTIONS.items():
        if exception == cls_name:
            return env_name
    core = cls_name.removeprefix("Sawyer").removesuffix("Policy")
    return re.sub(r"(?<!^)(?=[A-Z])", "-", core).lower()  # "PickPlaceV3" -> "pick-place-v3"


@lru_cache(maxsize=1)
def metaworld_env_names() -> tuple[str, ...]:
    """Every v3 task name the installed Meta-World registers, in its own order
    (``metaworld.env_dict.ALL_V3_ENVIRONMENTS``: the 50 tasks of MT50)."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return tuple(ALL_V3_ENVIRONMENTS)


def _policy_classes() -> dict[str, type]:
    """Every scripted policy class the installed ``metaworld.policies`` exports, by class name."""
    import metaworld.policies as mp

    names = getattr(mp, "__all__", None) or [n for n in dir(mp) if n.endswith("Policy")]
    return {n: getattr(mp, n) for n in names if n.startswith("Sawyer") and hasattr(mp, n)}


def available_metaworld_experts() -> list[str]:
    """Registered task names (``"push-v3"``, …) that have a scripted policy in the installed
    package (all 50 for metaworld 3.1.1), sorted."""
    classes = _policy_classes()
    return sorted(n for n in metaworld_env_names() if policy_name(n) in classes)


def check_metaworld_env_name(env_name: str) -> str:
    """``env_name`` if Meta-World registers a v3 environment of that name; otherwise
    ``ValueError`` naming the closest registered names and listing all of them."""
    names = metaworld_env_names()
    if env_name in names:
        return env_name
    close = difflib.get_close_matches(str(env_name), names, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ValueError(f"Meta-World has no environment {env_name!r}{hint}; its {len(names)} "
                     f"v3 environments: {', '.join(names)}")  # fmt: skip


class MetaWorldExpert:
    """The Meta-World scripted policy for ``env_name`` behind the :class:`Expert` interface.

    The policies are deterministic functions of the observation (39-D, goal-observable MT1
    observation: hand xyz in m, gripper opening, object poses, goal xyz in m). Actions are 4-D:
    end-effector displacement command (x, y, z, each in [-1, 1], scaled by the env's
    ``action_scale`` = 0.01 m per unit) and gripper effort in [-1, 1].
    """

    def __init__(self, env_name: str) -> None:
        check_metaworld_env_name(env_name)
        classes = _policy_classes()
        cls_name = policy_name(env_name)
        if cls_name not in classes:
            raise ValueError(
                f"the installed metaworld has no scripted policy for {env_name!r} (looked for "
                f"{cls_name}); tasks with one: {', '.join(available_metaworld_experts())}"
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


TASK_SALT = 0x3D7A5
"""Mixed into the reset seed for the generator that picks an episode's MT1 configuration."""


def _task_selector(env: Any) -> Any:
    """The wrapper in ``env``'s chain that holds the MT1 task list and picks one per reset."""
    while env is not None:
        if hasattr(env, "tasks") and hasattr(env, "toggle_sample_tasks_on_reset"):
            return env
        env = getattr(env, "env", None)
    raise TypeError("no Meta-World task-selection wrapper in this env")


@lru_cache(maxsize=1)
def _seeded_task_wrapper() -> type:
    """The ``SeededTaskWrapper`` class (defined on first use: gymnasium is imported lazily)."""
    import gymnasium as gym

    class SeededTaskWrapper(gym.Wrapper):
        """``reset(seed=s)`` sets the MT1 configuration ``tasks[i]``, ``i`` drawn from a
        generator seeded by ``[s, TASK_SALT]``, so an episode is the one its seed defines,
        whatever resets its env saw before and however many envs run in lockstep. A reset
        without a seed keeps Meta-World's own draw from the env's generator."""

        def __init__(self, env: Any) -> None:
            super().__init__(env)
            self.selector = _task_selector(env)
            self.task_index: int | None = None

        def reset(self, *, seed: int | None = None, options: dict | None = None) -> Any:
            self.selector.toggle_sample_tasks_on_reset(seed is None)
            self.task_index = None
            if seed is not None:
                tasks = self.selector.tasks
                self.task_index = int(np.random.default_rng([int(seed), TASK_SALT])
                                      .integers(len(tasks)))  # fmt: skip
                self.unwrapped.set_task(tasks[self.task_index])
            return self.env.reset(seed=seed, options=options)

    return SeededTaskWrapper


def make_metaworld_env(env_name: str, seed: int | None = None, *, task_from_seed: bool = True,
                       **kwargs: Any) -> Any:  # fmt: skip
    """A single Meta-World MT1 env for ``env_name`` (``gymnasium.make("Meta-World/MT1", …)``).

    ``seed`` fixes the task's set of 50 goal/object configurations (``metaworld._N_GOALS``).
    With ``task_from_seed`` (the default) ``env.reset(seed=s)`` picks the episode's
    configuration from ``s`` alone (``SeededTaskWrapper``; 50 seeds cover about 32 of the 50).
    Without it Meta-World's own wrapper draws the configuration from the env's generator
    *before* the reset seed applies, so an episode depends on the env's earlier resets, and
    envs built with the same ``seed`` and reset together in lockstep all get the same
    configuration (a 25-env evaluation of 50 episodes saw 2 configurations).
    Episodes are truncated at the task's ``max_path_length`` (500 steps for every v3 task).
    Extra ``kwargs`` go to ``gymnasium.make`` (e.g. ``render_mode``). An unknown ``env_name``
    raises ``ValueError`` listing the registered names (:func:`check_metaworld_env_name`).
    """
    import gymnasium as gym
    import metaworld  # noqa: F401  (registers the Meta-World/* env ids)

    check_metaworld_env_name(env_name)
    env = gym.make("Meta-World/MT1", env_name=env_name, seed=seed, **kwargs)
    return _seeded_task_wrapper()(env) if task_from_seed else env
