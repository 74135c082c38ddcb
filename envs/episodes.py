"""The one episode loop: expert demonstrations, policy evaluation and expert measurements.

:func:`play_episodes` runs one episode per seed (``env.reset(seed=s)``) of an
:class:`~sci_diffusion.envs.registry.EnvTask`, judged by the task's one
:class:`~sci_diffusion.envs.experts.success.SuccessRule`. Its users:

* demonstration collection (:func:`sci_diffusion.envs.demos.collect_demos`): one env, an
  :class:`ExpertActor`, ``record=True``, optional DART ``action_noise`` and videos;
* policy evaluation (:func:`sci_diffusion.policy.rollout.run_episodes`): ``n_envs`` envs in
  lockstep, an actor that plans for all running episodes in one batched network call;
* ``scripts/measure_experts.py`` and ``scripts/measure_multimodal.py``.

Where the envs live: ``workers=0`` steps them one after the other in this process
(:class:`~sci_diffusion.envs.vector.LocalEnvs`); ``workers=k`` puts them in ``k`` worker
processes (:class:`~sci_diffusion.envs.vector.VectorEnvs`: one message per worker per step,
physics and rendering concurrent), with bitwise the same episodes. The actor always runs here,
once per step for the whole batch; an actor that needs the env objects (``needs_envs``, e.g.
:class:`ExpertActor`) can only run with ``workers=0`` — demonstration collection shards its
seeds over processes instead (``collect_demos(workers=k)``).

Lockstep: the seeds are taken in batches of ``n_envs``; all episodes of a batch reset
together, and at every step the actor is called once for all episodes still running. A
finished episode waits (it is not reset) until its batch is done, so every episode is exactly
the one its seed defines, whatever ``n_envs`` (Meta-World included: ``make_metaworld_env``
lets the reset seed pick the MT1 setup).

A step of episode ``k``: the actor's action ``a`` (its row for ``k``); a row with NaN/inf is
never sent to the env, the episode ends at once as a failure (``failure =
"non_finite_action"``); with ``action_noise = σ > 0`` the env executes ``clip(a + σ · (high −
low) / 2 · ε)``, ε ~ N(0, I) from a generator seeded by ``[seed, 0xDA27]`` (DART), while the
recorded action stays ``a``. The episode ends on ``terminated``, ``truncated`` or after
``max_steps`` actions; its success follows the task's rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sci_diffusion.io.errors import UserInputError
from sci_diffusion.io.progress import Progress

from .vector import LocalEnvs, SlotStep, StepRequest, VectorEnvs

STATE_KEY = "state"
"""Key of the state vector in a dict observation (:mod:`sci_diffusion.envs.pixels`)."""

__all__ = [
    "NOISE_SALT",
    "Actor",
    "Episode",
    "ExpertActor",
    "FunctionActor",
    "check_action_noise",
    "check_workers",
    "observation_copy",
    "play_episodes",
    "state_of",
]

NOISE_SALT = 0xDA27
"""Mixed into the episode seed for the DART action-noise generator."""


@dataclass
class Episode:
    """One finished episode.

    ``obs`` (T+1 float32 observations), ``actions`` (T clean actions, float32) and ``rewards``
    (T floats) are kept only with ``record=True``; ``frames`` only for rendered episodes.
    """

    seed: int
    success: bool = False
    episode_return: float = 0.0
    length: int = 0
    failure: str | None = None
    frames: list[np.ndarray] | None = field(default=None, repr=False)
    final_success: bool = False
    """The rule's check on the state after the last step (equals ``success`` for last-step
    rules)."""
    first_success_step: int | None = None
    """Any-step rules: index t of the first action a_t after which the check held."""
    final_distance: float | None = None
    """The rule's distance after the last step, when the rule has one."""
    obs: list[np.ndarray] | None = field(default=None, repr=False)
    actions: list[np.ndarray] | None = field(default=None, repr=False)
    rewards: list[float] | None = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        """The recorded arrays as a demonstration record: ``obs`` (T+1, D) float32,
        ``actions`` (T, A) float32, ``rewards`` (T,) float32, ``success``, ``seed``; with
        dict observations (:mod:`sci_diffusion.envs.pixels`) also ``images``
        ``{camera: uint8 (T+1, H, W, 3)}``, ``obs`` then being their ``"state"`` rows."""
        if self.obs is None or self.actions is None or self.rewards is None:
            raise ValueError("the episode was not recorded (play_episodes(record=True))")
        images: dict[str, np.ndarray] = {}
        states = self.obs
        if self.obs and isinstance(self.obs[0], dict):
            states = [o[STATE_KEY] for o in self.obs]
            images = {k: np.stack([o[k] for o in self.obs]) for k in self.obs[0] if k != STATE_KEY}
        return {
            **({"images": images} if images else {}),
            "obs": np.stack(states),
            "actions": np.stack(self.actions).astype(np.float32),
            "rewards": np.asarray(self.rewards, dtype=np.float32),
            "success": bool(self.success),
            "seed": int(self.seed),
        }


class Actor:
    """Acts for all running episodes of a lockstep batch at once.

    ``reset(slot, seed, obs)`` is called when the episode in env ``slot`` starts (after
    ``env.reset(seed=seed)`` returned ``obs``). ``act(step, slots, obs, envs)`` is called once
    per step with the running episodes' slots, raw observations and envs (same order) and
    returns their actions, ``(len(slots), action_dim)``; ``step`` counts the batch's steps from
    0. With the envs in worker processes (``play_episodes(workers>=1)``) ``envs`` holds None
    per slot; an actor that needs the env objects says so with ``needs_envs = True`` and is
    refused there.
    """

    needs_envs: bool = False
    """Whether :meth:`act` reads the env objects (then only ``workers=0`` can run it)."""

    def reset(self, slot: int, seed: int, obs: Any) -> None:
        """Start of the episode in ``slot`` (nothing by default)."""

    def act(self, step: int, slots: list[int], obs: list[Any], envs: list[Any]) -> np.ndarray:
        raise NotImplementedError


class ExpertActor(Actor):
    """Scripted experts, one per env slot: ``expert.reset(seed)`` at each episode start,
    ``expert.act(obs, env)`` per running episode (cast to float32).

    ``check=True`` holds the experts to their contract (:class:`~.experts.base.Expert`): every
    action float32, of the action space's shape, inside its bounds (``AssertionError``
    otherwise)."""

    needs_envs = True  # expert.act(obs, env), and check reads env.action_space

    def __init__(self, experts: Sequence[Any], check: bool = False) -> None:
        self.experts, self.check = list(experts), check

    @classmethod
    def for_task(cls, task: Any, n_envs: int = 1, env_name: str | None = None,
                 check: bool = False) -> ExpertActor:  # fmt: skip
        """``n_envs`` fresh experts of ``task`` (``task.make_expert(env_name=...)``)."""
        return cls([task.make_expert(env_name=env_name) for _ in range(n_envs)], check)

    def reset(self, slot: int, seed: int, obs: Any) -> None:
        self.experts[slot].reset(seed)  # experts act on the state (never on the frames)

    def act(self, step: int, slots: list[int], obs: list[Any], envs: list[Any]) -> np.ndarray:
        actions = [self.experts[k].act(state_of(o), env)
                   for k, o, env in zip(slots, obs, envs, strict=True)]  # fmt: skip
        if self.check:
            for action, env in zip(actions, envs, strict=True):
                _check_expert_action(action, env.action_space)
        return np.stack([np.asarray(action, dtype=np.float32) for action in actions])


def _check_expert_action(action: Any, space: Any) -> None:
    dtype, shape = getattr(action, "dtype", type(action)), np.shape(action)
    if dtype != np.float32 or shape != tuple(space.shape):
        raise ValueError(f"expert action must be float32 of shape {space.shape}, got {dtype} "
                         f"{shape}")  # fmt: skip
    if not (np.all(action >= space.low) and np.all(action <= space.high)):
        raise ValueError(f"expert action {action} outside [{space.low}, {space.high}]")


class FunctionActor(Actor):
    """A stateless batched act function: ``fn(obs)`` with ``obs`` the running episodes' raw
    observations stacked as float32 ``(B, obs_dim)``, returning ``(B, action_dim)``."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.fn = fn

    def act(self, step: int, slots: list[int], obs: list[Any], envs: list[Any]) -> np.ndarray:
        return np.asarray(self.fn(np.stack([np.asarray(o, dtype=np.float32) for o in obs])))


def check_action_noise(action_noise: float) -> None:
    """:class:`UserInputError` unless ``action_noise >= 0`` (NaN refused)."""
    if not action_noise >= 0:  # also refuses NaN
        raise UserInputError(
            f"action_noise must be >= 0 (and not NaN), got {action_noise}; "
            "pass action_noise=0 for clean expert actions"
        )


def check_workers(workers: Any) -> None:
    """:class:`UserInputError` unless ``workers`` is an integer >= 0 (0: this process)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise UserInputError(f"workers must be an integer >= 0 (0: this process), got "
                             f"{workers!r}")  # fmt: skip


class _Noise:
    """DART noise of one episode: σ times half the action range, seeded by the episode seed."""

    def __init__(self, space: Any, seed: int, action_noise: float) -> None:
        self.low, self.high = space.low, space.high
        self.scale = action_noise * (self.high - self.low) / 2
        self.rng = np.random.default_rng([seed, NOISE_SALT])

    def __call__(self, action: np.ndarray) -> np.ndarray:
        jitter = self.scale * self.rng.standard_normal(action.shape)
        return np.clip(action + jitter, self.low, self.high).astype(np.float32)


def play_episodes(
    task: Any,
    actor: Actor,
    seeds: Sequence[int],
    *,
    n_envs: int = 1,
    envs: Sequence[Any] | VectorEnvs | None = None,
    env_name: str | None = None,
    env_seed: int = 0,
    max_steps: int | None = None,
    render: int = 0,
    record: bool = False,
    action_noise: float = 0.0,
    progress: bool = False,
    desc: str = "episodes",
    pixels: Any = None,
    workers: int = 0,
) -> list[Episode]:
    """Run one episode per seed, in order, and return them (see the module docstring).

    Args:
        task: an :class:`~sci_diffusion.envs.registry.EnvTask` (``make_env``, ``max_steps``,
            ``success``); with ``workers >= 1`` a registered one (the workers look it up by
            ``task.name``).
        actor: acts for all running episodes in one call per step (:class:`Actor`).
        seeds: the episodes' reset seeds.
        n_envs: environments stepped in lockstep (made with ``task.make_env``, closed at the
            end); ignored when ``envs`` is given.
        envs: already-made environments to use instead (left open): a list of env objects
            (in-process), or an open :class:`~sci_diffusion.envs.vector.VectorEnvs` (its
            workers, kept for the next call; ``workers`` and ``pixels`` are then ignored, and
            ``render > 0`` needs it made with ``render_mode="rgb_array"``).
        env_name: Meta-World task name (``task.needs_env_name`` only).
        env_seed: construction seed of the envs (Meta-World's MT1 task set).
        max_steps: horizon in actions (default ``task.max_steps``).
        render: the first ``render`` episodes keep their frames (the envs render ``rgb_array``).
        record: keep every episode's observations, clean actions and rewards.
        action_noise: DART noise σ, in units of half the action range (0: none).
        progress: show progress over episodes (:mod:`sci_diffusion.io.progress`).
        desc: the progress label.
        pixels: a :class:`~sci_diffusion.envs.pixels.PixelSpec`: the envs made here return dict
            observations ``{"state": (obs_dim,), camera: uint8 (H, W, 3)}``
            (:class:`~sci_diffusion.envs.pixels.PixelObservations`); ignored when ``envs`` is
            given.
        workers: 0: the envs step in this process; ``k >= 1``: in ``k`` worker processes
            (capped at the number of envs), same episodes. Refused for an actor with
            ``needs_envs``.
    """
    check_action_noise(action_noise)
    check_workers(workers)
    remote = isinstance(envs, VectorEnvs) or (envs is None and workers > 0)
    if remote and actor.needs_envs:
        raise UserInputError(
            f"{type(actor).__name__} needs the env objects (needs_envs; an expert acts with "
            "expert.act(obs, env)), which live in worker processes with workers >= 1; run it "
            "with workers=0, or shard the seeds over processes (collect_demos(..., workers=k))"
        )
    seeds = [int(s) for s in seeds]
    max_steps = task.max_steps if max_steps is None else int(max_steps)
    mode = "rgb_array" if render > 0 else None
    count = max(1, min(n_envs, len(seeds)))
    own = envs is None
    slots: LocalEnvs | VectorEnvs
    if isinstance(envs, VectorEnvs):
        slots = envs
    elif not own:
        slots = LocalEnvs(list(envs), task.success)
    elif workers > 0:
        slots = VectorEnvs.for_task(_registered_name(task), count, workers, env_seed=env_seed,
                                    env_name=env_name, render_mode=mode, pixels=pixels)  # fmt: skip
    else:
        made = []
        try:
            for _ in range(count):
                env = task.make_env(env_seed, render_mode=mode, env_name=env_name)
                made.append(env if pixels is None else _with_pixels(env, pixels))
        except BaseException:
            for env in made:
                env.close()
            raise
        slots = LocalEnvs(made, task.success)
    episodes: list[Episode] = []
    bar = Progress(len(seeds), desc, unit="ep", enabled=progress)
    try:
        for start in range(0, len(seeds), len(slots)):
            batch = [Episode(seed) for seed in seeds[start : start + len(slots)]]
            for k, ep in enumerate(batch):
                if start + k < render:
                    ep.frames = []
                if record:
                    ep.obs, ep.actions, ep.rewards = [], [], []
            _play_batch(task, actor, slots, batch, max_steps, action_noise, bar)
            episodes += batch
            bar.set_postfix(success=f"{sum(ep.success for ep in episodes)}/{len(episodes)}")
    finally:
        bar.close()
        if own:
            if isinstance(slots, VectorEnvs):
                slots.close()
            else:
                for env in slots.envs:
                    env.close()
    return episodes


def _registered_name(task: Any) -> str:
    """``task.name``, checked to be the registry's task of that name (worker processes build
    their envs and rules from the registry)."""
    from .registry import ENV_TASKS

    name = getattr(task, "name", None)
    known = ENV_TASKS.get(name) if isinstance(name, str) else None
    if known is None or known.make_env is not task.make_env or known.success is not task.success:
        raise UserInputError(
            f"workers >= 1 needs a registered task (one of {', '.join(ENV_TASKS)}, as "
            f"get_task returns it): worker processes rebuild env and success rule from its name; "
            f"got {task!r:.80}; use workers=0 for other tasks"
        )
    return name


def _with_pixels(env: Any, pixels: Any) -> Any:
    from .pixels import PixelObservations

    return PixelObservations(env, pixels)


def _play_batch(
    task: Any,
    actor: Actor,
    slots: LocalEnvs | VectorEnvs,
    episodes: list[Episode],
    max_steps: int,
    action_noise: float,
    bar: Progress,
) -> None:
    """Play ``episodes`` (at most ``len(slots)``) in lockstep, filling them in place: one
    ``slots.step`` per step for the running episodes only."""
    rule = task.success
    starts = slots.reset([(k, ep.seed, ep.frames is not None) for k, ep in enumerate(episodes)])
    obs: list[Any] = []
    noise: list[_Noise | None] = []
    for k, (ep, (o, frame)) in enumerate(zip(episodes, starts, strict=True)):
        actor.reset(k, ep.seed, o)
        obs.append(o)
        noise.append(_Noise(slots.action_space(k), ep.seed, action_noise)
                     if action_noise > 0 else None)  # fmt: skip
        if ep.obs is not None:
            ep.obs.append(observation_copy(o))
        if ep.frames is not None:
            ep.frames.append(frame)
    running = list(range(len(episodes)))
    for step in range(max_steps):
        if not running:
            break
        actions = actor.act(step, running, [obs[k] for k in running], slots.actor_envs(running))
        finished, clean, requests = [], {}, []
        for k, action in zip(running, actions, strict=True):
            ep = episodes[k]
            if not np.isfinite(action).all():
                ep.failure = "non_finite_action"
                finished.append(k)
                continue
            executed = action if noise[k] is None else noise[k](action)
            clean[k] = action
            requests.append(StepRequest(k, executed, ep.frames is not None,
                                        ep.length + 1 >= max_steps))  # fmt: skip
        for request, result in zip(requests, slots.step(requests), strict=True):
            k = request.slot
            obs[k] = result.obs
            if _record_step(rule, episodes[k], clean[k], result):
                finished.append(k)
        bar.update(len(finished))
        running = [k for k in running if k not in finished]
    bar.update(len(running))  # none left unless max_steps < 1


def _record_step(rule: Any, ep: Episode, action: np.ndarray, result: SlotStep) -> bool:
    """Add one step's outcome to ``ep``; whether the episode ended (then judged: the rule's
    check and distance on the state after its last step)."""
    ep.episode_return += float(result.reward)
    ep.length += 1
    if ep.obs is not None:
        ep.obs.append(observation_copy(result.obs))
        ep.actions.append(action)
        ep.rewards.append(float(result.reward))
    if ep.frames is not None:
        ep.frames.append(result.frame)
    if rule.any_step and not ep.success and result.success:
        ep.success, ep.first_success_step = True, ep.length - 1
    if result.done:
        ep.final_success = bool(result.success)
        ep.success = (ep.success or ep.final_success) if rule.any_step else ep.final_success
        ep.final_distance = result.distance
    return result.done


def state_of(obs: Any) -> Any:
    """The state vector of an observation (a dict observation's ``"state"``)."""
    return obs[STATE_KEY] if isinstance(obs, dict) else obs


def observation_copy(obs: Any) -> Any:
    """A recorded observation: the vector as float32, or a dict observation with its state as
    float32 (camera frames kept as they are: fresh uint8 arrays, never written to again)."""
    if isinstance(obs, dict):
        return {k: np.asarray(v, dtype=np.float32) if k == STATE_KEY else v
                for k, v in obs.items()}  # fmt: skip
    return np.asarray(obs, dtype=np.float32)
