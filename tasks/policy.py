"""Policy tasks: ``multimodal``, ``reacher``, ``pusher``, ``metaworld`` — one class for all.

Data: demonstrations from ``task.data.demos`` (a folder written by ``sci-diffusion demos`` or
the npz importer) or, when that is null, collected from the scripted expert on first use into
the cache (``$SCI_DIFFUSION_CACHE`` or ``~/.cache/sci_diffusion``) and reused afterwards.
Method: ``policy=<name>`` (:mod:`sci_diffusion.policy.methods`: ``diffusion``, the default, or
``mse_bc``) and backbone ``model=<name>`` (:mod:`sci_diffusion.policy.backbones`: ``unet1d``,
``transformer``, ``mlp``); every method and backbone composes with every policy task, and the
task only calls the method's objective and prediction.
Evaluation: ``task.eval.episodes`` seeded episodes (seeds ``task.eval.seed + i``, disjoint from
the demonstration seeds) in lockstep batches of ``task.eval.n_envs``.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sci_diffusion.core import Denoiser, EuclideanSpace, make_schedule
from sci_diffusion.core.sampler_config import SamplerSettings
from sci_diffusion.envs.episodes import STATE_KEY
from sci_diffusion.envs.pixels import OBS_MODES, PixelSpec, make_env, pixel_spec
from sci_diffusion.io.cache import cache_dir
from sci_diffusion.io.errors import UserInputError
from sci_diffusion.io.files import write_json_atomic
from sci_diffusion.policy.backbones import backbone_names, build_backbone
from sci_diffusion.policy.frames import FrameStore
from sci_diffusion.policy.methods import PolicyMethod, build_method
from sci_diffusion.policy.network import PolicyNetwork, policy_network
from sci_diffusion.policy.normalize import LimitsNormalizer
from sci_diffusion.policy.policy import Policy
from sci_diffusion.policy.rollout import (
    chunk_latency_ms,
    episode_table,
    run_episodes,
    summarize,
    write_videos,
)
from sci_diffusion.policy.windows import Windows, make_windows

from .base import Batch, DataInfo, Task


class PolicyTask(Task):
    validation_status = "simulation only"
    intended_use = (
        "Research on diffusion policies from state or camera observations (task.obs) in "
        "MuJoCo simulation; comparing samplers, step counts and baselines."
    )
    limitations = (
        "Trained and evaluated in simulation only; never run on hardware without its own "
        "validation.",
        "Rendered, noise-free simulation images (no real camera noise, lighting or "
        "calibration); demonstrations from one scripted expert.",
    )
    conditioning = "observation history (n_obs_steps x obs_dim), normalized"
    sharded_evaluation = False  # episodes run in lockstep on one process

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        from sci_diffusion.envs.registry import get_task

        t = cfg.task
        self.env_task = get_task(str(t.env))
        self.env_name = t.get("env_name")
        self.method: PolicyMethod = build_method(cfg.policy)
        self.horizon, self.n_obs_steps = int(t.horizon), int(t.n_obs_steps)
        self.n_action_steps = int(t.n_action_steps)
        self.space = EuclideanSpace(make_schedule(t.diffusion.schedule))
        self.obs_mode = str(t.get("obs", "state"))
        if self.obs_mode not in OBS_MODES:
            raise UserInputError(f"task.obs={self.obs_mode!r} is not one of {', '.join(OBS_MODES)}")
        self.pixels: PixelSpec | None = None
        if self.obs_mode != "state":
            self.pixels = pixel_spec(self.env_task, list(t.get("cameras") or []),
                                     t.get("image_size"))  # fmt: skip
        self._frames: FrameStore | None = None
        self._demos: Any = None
        self._windows: Windows | None = None
        self._dims: tuple[int, int, np.ndarray, np.ndarray] | None = None

    # -- data ----------------------------------------------------------------------------
    def demos_dir(self) -> Path:
        d = self.cfg.task.data
        if d.get("demos"):
            return Path(str(d.demos))
        name = self.cfg.task.env + (f"-{self.env_name}" if self.env_name else "")
        version = f"expert{self.env_task.expert_version}"
        noise = self._action_noise()
        noisy = f"-noise{noise:g}" if noise > 0 else ""
        key = f"{name}-{version}-{int(d.episodes)}ep-seed{int(d.seed)}{noisy}"
        if self.pixels is not None:  # frames of these cameras at this size are part of the set
            key += f"-pixels-{'+'.join(self.pixels.cameras)}-{self.pixels.height}"
        return cache_dir() / "demos" / key

    def _action_noise(self) -> float:
        """DART noise σ of the demonstrations this task collects (0: none)."""
        return float(self.cfg.task.data.get("action_noise", 0.0))

    def demos(self) -> Any:
        """The validated demonstrations (collected with the expert on first use)."""
        if self._demos is None:
            from sci_diffusion.envs.demos import META_FILE, collect_demos, load_demos

            path, d = self.demos_dir(), self.cfg.task.data
            if not d.get("demos") and not (path / META_FILE).exists():
                progress = bool(d.get("progress", True))
                collect_demos(self.cfg.task.env, int(d.episodes), path, seed=int(d.seed),
                              env_name=self.env_name, progress=progress,
                              action_noise=self._action_noise(), pixels=self.pixels,
                              workers=int(d.get("workers", 0)))  # fmt: skip
            demos = load_demos(path)
            self._check_dims(path / META_FILE, demos.meta)
            self._check_cameras(path / META_FILE, demos.meta)
            self._demos = demos
        return self._demos

    def _check_dims(self, meta_path: Path, meta: dict[str, Any]) -> None:
        """A data set of another env (say an import without ``task=``) fails here, before
        anything is built or written, naming the file and the field."""
        from sci_diffusion.envs.demos import DemoFormatError

        obs_dim, action_dim, _, _ = self.env_dims()
        env = f"task {self.cfg.task.name} ({self.env_task.env_id})"
        for key, want in (("action_dim", action_dim), ("obs_dim", obs_dim)):
            if int(meta[key]) != want:
                raise DemoFormatError(
                    f"{meta_path}: {key}: {meta[key]}, but {env} has {want}; train on a data "
                    "set of this env (import it with task=... to have it checked)"
                )

    def _check_cameras(self, meta_path: Path, meta: dict[str, Any]) -> None:
        """A pixel policy needs its cameras at its frame size in the data set."""
        if self.pixels is None:
            return
        from sci_diffusion.envs.demos import DemoFormatError

        have = meta.get("cameras") or {}
        for name, shape in self.pixels.frame_shapes.items():
            if have.get(name) != shape:
                found = ", ".join(f"{k} {v}" for k, v in have.items()) or "no camera frames"
                raise DemoFormatError(
                    f"{meta_path}: cameras: task.obs={self.obs_mode} needs camera {name!r} at "
                    f"{shape}, the data set has {found}; collect it with these task.cameras/"
                    "task.image_size (leave task.data.demos empty) or choose its cameras"
                )

    def frames(self) -> FrameStore:
        """The demonstrations' camera frames, read lazily (pixel policies only)."""
        if self._frames is None:
            from sci_diffusion.envs.demos import DEMOS_FILE

            assert self.pixels is not None
            demos = self.demos()
            self._frames = FrameStore(self.demos_dir() / DEMOS_FILE, self.pixels.frame_shapes,
                                      [len(o) for o in demos.obs])  # fmt: skip
        return self._frames

    def windows(self) -> Windows:
        if self._windows is None:
            demos = self.demos()
            self._windows = make_windows(demos.obs, demos.actions, self.n_obs_steps, self.horizon)
            self.obs_normalizer = LimitsNormalizer(self._windows.obs.shape[1]).fit(
                self._windows.obs
            )
            self.action_normalizer = LimitsNormalizer(self._windows.actions.shape[1]).fit(
                self._windows.actions
            )
        return self._windows

    def env_dims(self) -> tuple[int, int, np.ndarray, np.ndarray]:
        """``(obs_dim, action_dim, action_low, action_high)`` read from the environment."""
        if self._dims is None:
            env = self.env_task.make_env(0, env_name=self.env_name)
            try:
                space = env.action_space
                self._dims = (int(np.prod(env.observation_space.shape)),
                              int(np.prod(space.shape)), np.asarray(space.low, np.float32),
                              np.asarray(space.high, np.float32))  # fmt: skip
            finally:
                env.close()
        return self._dims

    # -- model ---------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """The method's registered name (``cfg.policy.name``)."""
        return self.method.name

    def build_network(self) -> nn.Module:
        obs_dim, action_dim, _, _ = self.env_dims()
        encoder = self.build_encoder(obs_dim)
        cond_dim = obs_dim if encoder is None else int(encoder.out_dim)
        backbone = build_backbone(self.cfg.model, action_dim=action_dim, obs_dim=cond_dim,
                                  n_obs_steps=self.n_obs_steps, horizon=self.horizon)  # fmt: skip
        return PolicyNetwork(backbone, obs_dim, action_dim, encoder)

    def build_encoder(self, obs_dim: int) -> nn.Module | None:
        """The image encoder of a pixel policy (``task.vision``), None for state policies."""
        if self.pixels is None:
            return None
        from sci_diffusion.nets.vision import ObservationEncoder

        v = self.cfg.task.vision
        proprio = self.env_task.proprio if self.obs_mode == "pixels+proprio" else ()
        cameras = {name: tuple(shape) for name, shape in self.pixels.frame_shapes.items()}
        return ObservationEncoder(cameras, obs_dim, proprio, backbone=str(v.backbone),
                                  num_keypoints=int(v.keypoints),
                                  feature_dim=int(v.feature_dim), crop=float(v.crop))  # fmt: skip

    def prepare_network(self, net: nn.Module) -> None:
        """Fit the normalizers of a fresh network to the demonstrations."""
        self.windows()
        inner = policy_network(net)
        inner.obs_normalizer.load_state_dict(self.obs_normalizer.state_dict())
        inner.action_normalizer.load_state_dict(self.action_normalizer.state_dict())

    def denoiser(self, net: nn.Module) -> Denoiser:
        return Denoiser(net, self.space, prediction=self.cfg.task.diffusion.prediction)

    def objective(self, denoiser: Denoiser) -> Any:
        return self.method.objective(denoiser, self.cfg.task.diffusion)

    def data_info(self) -> DataInfo:
        demos, path = self.demos(), self.demos_dir()
        digest = hashlib.sha256((path / "demos.hdf5").read_bytes()).hexdigest()[:16]
        meta = demos.meta
        return DataInfo(
            name=f"{meta.get('env_id')} demonstrations ({meta.get('source', 'unknown source')})",
            size=len(demos),
            split=f"train: all {len(demos)} episodes, seeds {meta.get('seed_start')}.."
            f"{meta.get('seed_end')} ({len(self.windows())} windows); evaluation: fresh "
            f"episodes from seed {self.cfg.task.eval.seed}",
            fingerprint=digest,
            source=str(path),
        )

    def sample_batch(self, batch_size: int, generator: torch.Generator) -> Batch:
        windows = self.windows()
        index = torch.randint(0, len(windows), (batch_size,), generator=generator)
        obs, actions = windows.batch(index)
        cond: dict[str, Any] = {"obs": self.obs_normalizer.normalize(obs)}
        if self.pixels is not None:
            cond["images"] = self._frames_of(windows.obs_index[index])
        return Batch(self.action_normalizer.normalize(actions), cond=cond)

    def _frames_of(self, rows: Tensor) -> dict[str, Tensor]:
        """``{camera: uint8 (*rows.shape, H, W, 3)}`` for global observation rows."""
        frames = self.frames().read(rows.numpy())
        return {name: torch.from_numpy(f) for name, f in frames.items()}

    # -- evaluation ----------------------------------------------------------------------
    def policy(self, denoiser: Denoiser) -> Policy:
        _, _, low, high = self.env_dims()
        # the sampler settings are read once here, not on every planned chunk
        sampler = SamplerSettings.from_config(self.cfg.sampler)
        return Policy(policy_network(denoiser.net), denoiser, self.method, sampler,
                      self.n_obs_steps, self.horizon, self.n_action_steps, low, high)  # fmt: skip

    def generate(
        self, denoiser: Denoiser, n: int, generator: torch.Generator, device: torch.device
    ) -> dict[str, Tensor]:
        """Action chunks for the first ``n`` demonstration windows' observation histories."""
        windows = self.windows()
        index = torch.arange(min(n, len(windows)))
        obs, actions = windows.batch(index)
        history: Any = obs.numpy()
        if self.pixels is not None:
            frames = self.frames().read(windows.obs_index[index].numpy())
            history = {STATE_KEY: history, **frames}
        chunks = self.policy(denoiser).predict_chunk(history, generator)
        return {"obs": obs, "actions": torch.from_numpy(chunks), "demo_actions": actions}

    def score(self, samples: dict[str, Tensor], out_dir: Path) -> dict[str, Any]:
        """Offline check: mean squared error of sampled chunks against the demonstrated ones."""
        error = (samples["actions"] - samples["demo_actions"]).pow(2).mean()
        return {"n_chunks": int(samples["actions"].shape[0]),
                "action_mse_vs_demos": float(error), **self._method()}  # fmt: skip

    def evaluation_label(self) -> str:
        return self.method.evaluation_label(self.cfg.sampler) or super().evaluation_label()

    def _method(self) -> dict[str, Any]:
        return self.method.describe(self.cfg.sampler)

    def evaluate(
        self, denoiser: Denoiser, out_dir: Path, generator: torch.Generator, device: torch.device
    ) -> dict[str, Any]:
        """Seeded episodes, Wilson interval, chunk latency and a few videos into ``out_dir``."""
        e = self.cfg.task.eval
        policy = self.policy(denoiser)
        seeds = [int(e.seed) + i for i in range(int(e.episodes))]
        episodes = run_episodes(policy, self.env_task, seeds, generator, n_envs=int(e.n_envs),
                                env_name=self.env_name, env_seed=int(e.seed),
                                record=int(e.videos), workers=int(e.get("workers", 0)),
                                pixels=self.pixels)  # fmt: skip
        first_obs = self.first_observation(seeds[0])
        latency = chunk_latency_ms(policy, first_obs, generator, repeats=int(e.latency_repeats))
        out_dir.mkdir(parents=True, exist_ok=True)
        videos = write_videos(episodes, out_dir)
        write_json_atomic(out_dir / "episodes.json", episode_table(episodes))
        return {
            **summarize(episodes),
            **self._method(),
            "chunk_latency_ms": latency,
            "chunk_latency": "median wall time of one chunk at batch 1 "
            f"({e.latency_repeats} repeats, {torch.get_num_threads()} threads, {device})",
            "horizon": self.horizon,
            "n_obs_steps": self.n_obs_steps,
            "n_action_steps": self.n_action_steps,
            "observation_modality": self.obs_mode,
            "cameras": None if self.pixels is None else self.pixels.frame_shapes,
            "env_id": self.env_task.env_id,
            "env_name": self.env_name,
            "seeds": [seeds[0], seeds[-1]],
            "videos": videos,
        }

    def first_observation(self, seed: int) -> Any:
        """(To, Do): the history at the start of episode ``seed`` (first obs repeated); for
        pixel policies ``{"state": (To, Do), camera: uint8 (To, H, W, 3)}``."""
        env = make_env(self.cfg.task.env, 0, self.env_name, pixels=self.pixels)
        try:
            obs, _ = env.reset(seed=seed)
        finally:
            env.close()
        if isinstance(obs, dict):
            return {k: np.repeat(np.asarray(v)[None], self.n_obs_steps, axis=0)
                    for k, v in obs.items()}  # fmt: skip
        return np.repeat(np.asarray(obs, np.float32)[None], self.n_obs_steps, axis=0)

    def card_sections(self) -> dict[str, dict[str, Any]]:
        _, action_dim, low, high = self.env_dims()
        spec = self.env_task
        return {"policy": {
            "kind": self.method.name,
            "method": self.method.summary,
            "environment": spec.env_id + (f" ({self.env_name})" if self.env_name else ""),
            "action_space": f"{action_dim}-D box, low {low.tolist()}, high {high.tolist()}; "
                            "sampled chunks are un-normalized and clipped to these bounds",
            "observation": spec.observation,
            "observation_modality": self._modality_note(),
            "receding_horizon": f"plan {self.horizon} actions from the last {self.n_obs_steps} "
                                f"observations, execute {self.n_action_steps}, replan",
            "demonstrations": self._demonstrations_note(),
            "normalization": "min/max limits of the demonstrations onto [-1, 1], stored in the "
                             "checkpoint (obs_normalizer, action_normalizer buffers)",
            "validation_status": "simulation only: evaluated in MuJoCo; never validated on "
                                 "hardware",
            "simulator_gaps": spec.gaps,
            "failure_procedures": "a chunk with NaN/inf is never executed: the episode ends as a "
                                  "failure (non_finite_action) and is counted; out-of-range "
                                  "actions are clipped to the bounds",
        }}  # fmt: skip

    def _modality_note(self) -> str:
        """What the policy sees, for the model card."""
        if self.pixels is None:
            return "state: the observation vector above"
        v = self.cfg.task.vision
        cams = ", ".join(self.pixels.cameras)
        proprio = (f" plus state dimensions {list(self.env_task.proprio)} (proprioception)"
                   if self.obs_mode == "pixels+proprio" else " only (no state)")  # fmt: skip
        crop = (f"random crop {v.crop:g} of each side in training, centre crop at evaluation"
                if float(v.crop) < 1 else "no crop augmentation")  # fmt: skip
        return (f"{self.obs_mode}: camera(s) {cams} at {self.pixels.height}x{self.pixels.width} "
                f"RGB{proprio}; encoder {v.backbone} (GroupNorm) with {v.keypoints} "
                f"spatial-softmax keypoints -> {v.feature_dim} features per camera, trained end "
                f"to end; augmentation: {crop}")

    def _demonstrations_note(self) -> str:
        """Where the training data came from, for the model card."""
        meta = self.demos().meta
        noise = float(meta.get("action_noise", 0.0))
        rate = meta.get("expert_success_rate")
        text = (f"{meta.get('episodes', '?')} episodes from {meta.get('source', 'unknown')}, "
                "expert success " + ("unknown" if rate is None else f"{rate:.0%}"))  # fmt: skip
        if noise > 0:
            text += (f"; collected with DART noise sigma {noise:g} on the executed actions "
                     "(labels are the expert's clean actions)")  # fmt: skip
        return text


def __getattr__(name: str) -> Any:
    if name == "BACKBONES":
        warnings.warn("sci_diffusion.tasks.policy.BACKBONES is deprecated; use "
                      "sci_diffusion.policy.backbones (backbone_names, backbone_class)",
                      DeprecationWarning, stacklevel=2)  # fmt: skip
        from sci_diffusion.policy.backbones import backbone_class

        return {n: (backbone_class(n).__module__, backbone_class(n).__name__)
                for n in backbone_names()}  # fmt: skip
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
