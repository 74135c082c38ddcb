"""Demonstration data sets: roll scripted experts, store them in HDF5, load and validate them.

Output of :func:`collect_demos` / :func:`import_npz_folder` (one directory):

``demos.hdf5``  (format version :data:`FORMAT_VERSION` = 1; plain numeric arrays only, never
pickled objects)::

    /                       attrs: format_version (int64), env_id (str), num_episodes (int64)
    /episodes/<i>           one group per episode, <i> = 000000, 000001, ... (zero padded, 6)
        attrs: seed (int64; -1 when unknown, e.g. imported), success (bool),
               length (int64, T = number of actions)
        obs      float32 (T+1, obs_dim) — observations o_0..o_T, the last one after the final
                 step (imported files may hold only T: o_0..o_{T-1})
        actions  float32 (T, action_dim) — a_t taken in o_t
        rewards  float32 (T,) — r_t received after a_t
        images/<camera>   optional, uint8 (T+1 or T — the rows of obs, H, W, C): camera
                 frames aligned with obs (frame k shows o_k); gzip-compressed, one chunk per
                 frame. Files written before images existed have none and still load.

Per-episode groups (rather than robomimic/zarr-style concatenated arrays with an
``episode_ends`` index) keep every episode self-describing and make a truncated or edited file
fail loudly on the episode it affects.

``meta.json``: ``format_version``, ``env_id``, ``task``, ``env_name``, ``episodes``,
``successes``, ``expert_success_rate``, ``obs_dim``, ``action_dim``, ``action_low``,
``action_high``, ``max_steps``, ``seed_start``, ``seed_end`` (inclusive), ``total_steps``,
``mean_length``, ``videos``, ``source``, ``action_noise`` (σ of the DART noise the executed
actions carried; 0: none), ``fps`` (control rate, env steps per second; optional),
``cameras`` (``{camera: [H, W, C]}``, only when the episodes hold images), ``date`` (UTC
ISO 8601), ``versions`` (sci_diffusion, numpy, h5py, gymnasium, mujoco, metaworld when
used), ``collect_seconds``.

Both files (and any videos) are written to a temporary file in ``out_dir`` and renamed into
place; if anything fails, temporaries are removed and no new output is left behind.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from sci_diffusion.envs.episodes import (
    ExpertActor,
    check_action_noise,
    check_workers,
    play_episodes,
)
from sci_diffusion.io.errors import UserInputError
from sci_diffusion.io.files import publish, temp_path
from sci_diffusion.io.video import VIDEO_FPS, encode_video, write_video  # noqa: F401 (old names)

__all__ = [
    "DEMOS_FILE",
    "FORMAT_VERSION",
    "META_FILE",
    "DemoFormatError",
    "Demos",
    "collect_demos",
    "import_npz_folder",
    "load_demos",
    "rollout",
]

FORMAT_VERSION = 1
"""Version of the on-disk layout described in the module docstring."""

IMAGE_GZIP_LEVEL = 4
"""gzip level of ``images/<camera>`` (1 fast .. 9 small)."""

DEMOS_FILE = "demos.hdf5"
META_FILE = "meta.json"


class DemoFormatError(UserInputError):
    """A demonstration directory is missing, truncated or inconsistent (message: file, problem,
    fix)."""


@dataclass
class Demos:
    """A loaded, validated demonstration set (per-episode numpy arrays + ``meta.json``)."""

    obs: list[np.ndarray]
    """float32 ``(T+1 or T, obs_dim)`` per episode."""
    actions: list[np.ndarray]
    """float32 ``(T, action_dim)`` per episode."""
    rewards: list[np.ndarray]
    """float32 ``(T,)`` per episode."""
    success: np.ndarray
    """bool ``(episodes,)``."""
    seeds: np.ndarray
    """int64 ``(episodes,)``; -1 where unknown."""
    lengths: np.ndarray
    """int64 ``(episodes,)``: number of actions per episode."""
    meta: dict[str, Any] = field(default_factory=dict)
    images: list[dict[str, np.ndarray]] = field(default_factory=list)
    """Per episode ``{camera: uint8 (rows of obs, H, W, C)}``; filled only by
    ``load_demos(..., images=True)`` (empty otherwise, and for sets without cameras)."""

    def __len__(self) -> int:
        return len(self.actions)


# -- helpers --------------------------------------------------------------------------------


def _versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in ("sci_diffusion", "numpy", "h5py", "gymnasium", "mujoco", *extra):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    if out["sci_diffusion"] is None:
        import sci_diffusion

        out["sci_diffusion"] = getattr(sci_diffusion, "__version__", None)
    return out


def _write_json_tmp(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _write_hdf5(path: Path, episodes: list[dict[str, Any]], env_id: str) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        f.attrs["env_id"] = env_id
        f.attrs["num_episodes"] = np.int64(len(episodes))
        group = f.create_group("episodes")
        for i, ep in enumerate(episodes):
            g = group.create_group(f"{i:06d}")
            g.create_dataset("obs", data=np.asarray(ep["obs"], dtype=np.float32))
            g.create_dataset("actions", data=np.asarray(ep["actions"], dtype=np.float32))
            g.create_dataset("rewards", data=np.asarray(ep["rewards"], dtype=np.float32))
            for camera, frames in (ep.get("images") or {}).items():
                frames = np.asarray(frames, dtype=np.uint8)
                g.create_dataset(
                    f"images/{camera}",
                    data=frames,
                    chunks=(1, *frames.shape[1:]),
                    compression="gzip",
                    compression_opts=IMAGE_GZIP_LEVEL,
                )
            g.attrs["seed"] = np.int64(ep["seed"])
            g.attrs["success"] = bool(ep["success"])
            g.attrs["length"] = np.int64(len(ep["actions"]))


def _write_dataset(
    out_dir: Path,
    episodes: list[dict[str, Any]],
    meta: dict[str, Any],
    videos: list[tuple[str, list[np.ndarray]]] = (),
) -> None:
    """Write videos, ``demos.hdf5`` and ``meta.json`` all-or-nothing (temps, then renames).

    Episodes may carry ``images`` (``{camera: uint8 (rows of obs, H, W, C)}``, the same cameras
    and frame shapes in every episode); ``meta["cameras"]`` is then set from them."""
    cameras = _cameras(episodes)
    if cameras:
        meta["cameras"] = cameras
    out_dir.mkdir(parents=True, exist_ok=True)
    temps: list[tuple[Path, Path]] = []
    try:
        for name, frames in videos:
            with temp_path(out_dir, name) as tmp:
                temps.append((tmp, out_dir / encode_video(tmp, frames, name)))
        meta["videos"] = [dst.name for _, dst in temps]
        with temp_path(out_dir, DEMOS_FILE) as tmp:
            temps.append((tmp, out_dir / DEMOS_FILE))
            _write_hdf5(tmp, episodes, meta["env_id"])
        with temp_path(out_dir, META_FILE) as tmp:
            temps.append((tmp, out_dir / META_FILE))
            _write_json_tmp(tmp, meta)
        for tmp, dst in temps:  # meta.json last: its presence marks a complete data set
            publish(tmp, dst)
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise


def _cameras(episodes: list[dict[str, Any]]) -> dict[str, list[int]]:
    """``{camera: [H, W, C]}`` of the episodes' images ({} without); ``ValueError`` when
    episodes disagree or frames do not line up with the observations."""
    first = (episodes[0].get("images") or {}) if episodes else {}
    cameras = {name: list(np.shape(frames)[1:]) for name, frames in first.items()}
    for i, ep in enumerate(episodes):
        images = ep.get("images") or {}
        if sorted(images) != sorted(cameras):
            raise ValueError(f"episode {i} has cameras {sorted(images)}, episode 0 "
                             f"{sorted(cameras)}")  # fmt: skip
        for name, frames in images.items():
            shape = np.shape(frames)
            if list(shape[1:]) != cameras[name] or len(shape) != 4:
                raise ValueError(f"episode {i} camera {name!r}: frames {shape}, expected "
                                 f"(N, {', '.join(map(str, cameras[name]))})")  # fmt: skip
            if shape[0] != len(ep["obs"]):
                raise ValueError(f"episode {i} camera {name!r}: {shape[0]} frames for "
                                 f"{len(ep['obs'])} observations")  # fmt: skip
    return cameras


# -- collection ---------------------------------------------------------------------------------


def rollout(
    env: Any,
    expert: Any,
    task: Any,
    seed: int,
    frames: list[np.ndarray] | None = None,
    action_noise: float = 0.0,
) -> dict[str, Any]:
    """Run one expert episode from ``env.reset(seed=seed)`` through the episode loop
    (:func:`~sci_diffusion.envs.episodes.play_episodes`).

    ``action_noise = σ > 0`` injects noise the DART way (Laskey et al., CoRL 2017): the env
    executes ``clip(a* + σ · (high − low) / 2 · ε)``, ε ~ N(0, I) seeded by ``seed``, while the
    recorded label stays the expert's clean action ``a*``. The data then cover the states just
    off the expert's path together with the expert's correction there, which is what a cloned
    policy needs once its own small errors take it off that path.

    Returns ``{"obs" (T+1, D) float32, "actions" (T, A) float32, "rewards" (T,) float32,
    "success" bool, "seed" int}``; appends rendered frames to ``frames`` when given.
    """
    (episode,) = play_episodes(task, ExpertActor([expert]), [seed], envs=[env],
                               render=int(frames is not None), record=True,
                               action_noise=action_noise)  # fmt: skip
    if frames is not None:
        frames.extend(episode.frames or [])
    return episode.record()


def collect_demos(
    task: str,
    episodes: int,
    out_dir: Path,
    seed: int = 0,
    env_name: str | None = None,
    render: int = 0,
    progress: bool = True,
    action_noise: float = 0.0,
    images: bool = False,
    pixels: Any = None,
    workers: int = 0,
) -> dict:
    """Roll the scripted expert of ``task`` for ``episodes`` episodes (reset seeds ``seed``,
    ``seed + 1``, ...) and write ``out_dir/demos.hdf5`` + ``out_dir/meta.json``.

    Every episode is kept, failed ones included (``success`` records the outcome). ``render=k``
    also writes videos ``episode_000000.mp4`` (or ``.gif``) of the first ``k`` episodes.
    ``action_noise`` > 0 perturbs the executed actions and keeps the clean expert labels (see
    :func:`rollout`); ``meta.json`` records it. ``images=True`` stores every episode's rendered
    frames (camera ``render``, the env's ``rgb_array``; one frame per observation) in
    ``demos.hdf5`` (see the module docstring). ``pixels`` (a
    :class:`~sci_diffusion.envs.pixels.PixelSpec`) instead stores the frames of its cameras,
    rendered with the software-rendering settings at its size, one per observation
    (``images/<camera>``; what ``task.obs=pixels`` trains on).
    ``workers=k >= 1`` collects in ``k`` worker processes: the seeds are cut into contiguous
    shards (about four per worker), each shard played whole by the in-process loop with its
    own env and expert (the expert needs the env object, so the envs cannot be remote to one
    expert loop), the episodes merged back in seed order: the same data set as ``workers=0``
    (this process), only sooner.
    Returns the meta dictionary written to ``meta.json``.
    """
    from sci_diffusion.envs.registry import DEFAULT_METAWORLD_ENV, get_task

    spec = get_task(task)
    if episodes < 1:
        raise UserInputError(f"episodes must be >= 1, got {episodes}; pass episodes=<N>")
    if render < 0 or render > episodes:
        raise UserInputError(
            f"render must be in [0, episodes={episodes}], got {render}; "
            "render=k films the first k episodes"
        )
    check_action_noise(action_noise)
    if spec.needs_env_name and env_name is None:
        env_name = DEFAULT_METAWORLD_ENV
    out_dir = Path(out_dir)
    start = time.perf_counter()
    filmed = episodes if images else render
    check_workers(workers)
    seeds = list(range(seed, seed + episodes))
    desc = f"demos {task}"
    if workers == 0:
        played, space, dt = _collect_shard(task, seeds, seed, env_name, filmed, pixels,
                                           action_noise, progress, desc)  # fmt: skip
    else:
        played, space, dt = _collect_sharded(task, seeds, seed, env_name, filmed, pixels,
                                             action_noise, progress, desc, workers)  # fmt: skip
    records = [ep.record() for ep in played]
    if images:
        for record, ep in zip(records, played, strict=True):
            record["images"] = {"render": np.stack(ep.frames or [])}
    videos = [(f"episode_{i:06d}.mp4", ep.frames) for i, ep in enumerate(played[:render])
              if ep.frames]  # fmt: skip
    obs_dim = int(records[0]["obs"].shape[1])
    successes = int(sum(r["success"] for r in records))
    lengths = [len(r["actions"]) for r in records]
    meta = {
        "format_version": FORMAT_VERSION,
        "env_id": spec.env_id,
        "task": task,
        "env_name": env_name,
        "episodes": episodes,
        "successes": successes,
        "expert_success_rate": successes / episodes,
        "obs_dim": obs_dim,
        "action_dim": int(np.prod(space.shape)),
        "action_low": np.asarray(space.low, dtype=float).tolist(),
        "action_high": np.asarray(space.high, dtype=float).tolist(),
        "max_steps": spec.max_steps,
        "seed_start": seed,
        "seed_end": seed + episodes - 1,
        "total_steps": int(sum(lengths)),
        "mean_length": float(np.mean(lengths)),
        "source": f"scripted expert ({task})",
        "action_noise": float(action_noise),
        "fps": None if not dt else round(1.0 / float(dt), 6),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(("metaworld",) if task == "metaworld" else ()),
        "collect_seconds": round(time.perf_counter() - start, 3),
    }
    _write_dataset(out_dir, records, meta, videos)
    return meta


_KEPT_ENVS: dict[str, Any] = {}
"""In a worker process of ``collect_demos(workers=k)``: its env per construction, reused by
all the shards it plays (as the one env of ``workers=0`` plays all seeds), so that a shard does
not pay for a new env and, with cameras, a new renderer."""


def _collect_shard(task: str, seeds: list[int], env_seed: int, env_name: str | None,
                   filmed: int, pixels: Any, action_noise: float, progress: bool = False,
                   desc: str = "demos",
                   keep_env: bool = False) -> tuple[list[Any], Any, float | None]:  # fmt: skip
    """The expert's episodes of ``seeds`` in one env of this process (the first ``filmed``
    with frames): ``(episodes, action space, env dt)``. Top level: worker processes run it,
    with ``keep_env`` (the env stays open in :data:`_KEPT_ENVS` for the worker's next shard;
    the worker's exit releases it)."""
    from sci_diffusion.envs.pixels import make_env
    from sci_diffusion.envs.registry import get_task

    spec = get_task(task)
    mode = "rgb_array" if filmed else None
    key = repr((task, env_seed, env_name, mode, pixels))
    env = _KEPT_ENVS.get(key) if keep_env else None
    if env is None:
        env = make_env(task, env_seed, env_name, mode, pixels)
        if keep_env:
            _KEPT_ENVS[key] = env
    try:
        actor = ExpertActor.for_task(spec, env_name=env_name)
        played = play_episodes(spec, actor, seeds, envs=[env], render=filmed, record=True,
                               action_noise=action_noise, progress=progress,
                               desc=desc)  # fmt: skip
        return played, env.action_space, getattr(env.unwrapped, "dt", None)
    finally:
        if not keep_env:
            env.close()


SHARDS_PER_WORKER = 4
"""``collect_demos(workers=k)`` cuts the seeds into about ``4 k`` shards: progress as shards
finish, and a slow shard does not leave the other workers idle."""


def _collect_sharded(task: str, seeds: list[int], env_seed: int, env_name: str | None,
                     filmed: int, pixels: Any, action_noise: float, progress: bool, desc: str,
                     workers: int) -> tuple[list[Any], Any, float | None]:  # fmt: skip
    """:func:`_collect_shard` over contiguous shards of ``seeds`` in ``workers`` processes
    (:func:`~sci_diffusion.envs.vector.run_sharded`), merged in seed order. Every shard makes
    its env with the same construction seed ``env_seed`` as the one-process collection."""
    from sci_diffusion.envs.vector import run_sharded
    from sci_diffusion.io.progress import Progress

    size = -(-len(seeds) // (workers * SHARDS_PER_WORKER))
    jobs = [(task, seeds[i : i + size], env_seed, env_name, min(max(filmed - i, 0), size),
             pixels, action_noise, False, desc, True)
            for i in range(0, len(seeds), size)]  # fmt: skip
    bar = Progress(len(seeds), f"{desc} ({min(workers, len(jobs))} workers)", unit="ep",
                   enabled=progress)  # fmt: skip
    done: list[Any] = []

    def finished(j: int, result: tuple[list[Any], Any, Any]) -> None:
        done.extend(result[0])
        bar.update(len(result[0]))
        bar.set_postfix(success=f"{sum(ep.success for ep in done)}/{len(done)}")

    try:
        results = run_sharded(_collect_shard, jobs, workers, finished, label="seed shard")
    finally:
        bar.close()
    played = [ep for shard, _, _ in results for ep in shard]
    return played, results[0][1], results[0][2]


# -- loading and validation -----------------------------------------------------------------


def _fail(path: Path, problem: str, fix: str) -> DemoFormatError:
    return DemoFormatError(f"{path}: {problem}; {fix}")


REGENERATE = "re-create the data set (sci-diffusion demos ... or import_npz_folder)"


def load_demos(out_dir: Path, images: bool = False) -> Demos:
    """Load and validate the data set in ``out_dir`` (see the module docstring for the layout).

    Camera frames (``images/<camera>``) are always checked (dtype, shape, frame count against
    the observations and ``meta["cameras"]``) but read into :attr:`Demos.images` only with
    ``images=True``: state-only training never holds them in memory.

    Raises :class:`DemoFormatError` naming the file, the problem and the fix when a file is
    missing or unreadable, the format version is unknown, counts, dtypes or shapes disagree
    with ``meta.json``, or a value is not finite.
    """
    import h5py

    out_dir = Path(out_dir)
    meta_path, h5_path = out_dir / META_FILE, out_dir / DEMOS_FILE
    for path in (meta_path, h5_path):
        if not path.is_file():
            raise _fail(
                path,
                "file not found",
                f"point at a directory written by collect_demos; {REGENERATE}",
            )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise _fail(meta_path, f"not valid JSON ({err})", REGENERATE) from None
    if not isinstance(meta, dict):
        raise _fail(meta_path, "not a JSON object", REGENERATE)
    required = ("format_version", "env_id", "episodes", "obs_dim", "action_dim")
    missing = [k for k in required if k not in meta]
    if missing:
        raise _fail(meta_path, f"missing fields {', '.join(missing)}", REGENERATE)
    if meta["format_version"] != FORMAT_VERSION:
        raise _fail(
            meta_path,
            f"unknown format_version {meta['format_version']!r} (this "
            f"version reads {FORMAT_VERSION})",
            "re-create it with this version",
        )
    obs_dim, action_dim = int(meta["obs_dim"]), int(meta["action_dim"])
    cameras = meta.get("cameras") or {}
    if not isinstance(cameras, dict) or not all(
        isinstance(v, list) and len(v) == 3 for v in cameras.values()
    ):
        raise _fail(meta_path, f"cameras must map camera -> [H, W, C], got {cameras!r}",
                    REGENERATE)  # fmt: skip

    obs, actions, rewards, success, seeds, lengths = [], [], [], [], [], []
    frames: list[dict[str, np.ndarray]] = []
    try:
        f = h5py.File(h5_path, "r")
    except OSError as err:
        raise _fail(
            h5_path, f"cannot be opened as HDF5, truncated or corrupt ({err})", REGENERATE
        ) from None
    try:
        with f:
            version = f.attrs.get("format_version")
            if version is None or int(version) != FORMAT_VERSION:
                raise _fail(h5_path, f"unknown format_version {version!r}", REGENERATE)
            if "episodes" not in f or not isinstance(f["episodes"], h5py.Group):
                raise _fail(h5_path, "no 'episodes' group", REGENERATE)
            names = sorted(f["episodes"])
            if len(names) != int(meta["episodes"]):
                raise _fail(
                    h5_path,
                    f"holds {len(names)} episodes but {META_FILE} says {meta['episodes']}",
                    "the files do not belong together; " + REGENERATE,
                )
            if names != [f"{i:06d}" for i in range(len(names))]:
                raise _fail(h5_path, "episode groups are not numbered 000000..N-1", REGENERATE)
            for name in names:
                ep = _read_episode(h5_path, f["episodes"][name], name, obs_dim, action_dim)
                views = _image_datasets(h5_path, f["episodes"][name], name, cameras,
                                        len(ep["obs"]))  # fmt: skip
                if images and views:
                    frames.append({camera: ds[()] for camera, ds in views.items()})
                obs.append(ep["obs"])
                actions.append(ep["actions"])
                rewards.append(ep["rewards"])
                success.append(ep["success"])
                seeds.append(ep["seed"])
                lengths.append(ep["length"])
    except (OSError, KeyError, RuntimeError) as err:
        raise _fail(h5_path, f"unreadable, truncated or corrupt ({err})", REGENERATE) from None
    return Demos(
        obs=obs,
        actions=actions,
        rewards=rewards,
        success=np.asarray(success, dtype=bool),
        seeds=np.asarray(seeds, dtype=np.int64),
        lengths=np.asarray(lengths, dtype=np.int64),
        meta=meta,
        images=frames,
    )


def _image_datasets(path: Path, g: Any, name: str, cameras: dict[str, list[int]],
                    rows: int) -> dict[str, Any]:  # fmt: skip
    """The checked (not yet read) ``images/<camera>`` datasets of one episode group."""
    where = f"episode {name}"
    group = g.get("images")
    found = sorted(group) if group is not None else []
    if found != sorted(cameras):
        raise _fail(path, f"{where}: cameras {found} but {META_FILE} lists {sorted(cameras)}",
                    REGENERATE)  # fmt: skip
    out = {}
    for camera in found:
        ds = group[camera]
        expected = (rows, *cameras[camera])
        if ds.dtype != np.uint8 or tuple(ds.shape) != expected:
            raise _fail(path, f"{where}: images/{camera} is {ds.dtype} {tuple(ds.shape)}, "
                              f"expected uint8 {expected} (one frame per observation, "
                              f"[H, W, C] from {META_FILE} cameras)", REGENERATE)  # fmt: skip
        out[camera] = ds
    return out


def _read_episode(path: Path, g: Any, name: str, obs_dim: int, action_dim: int) -> dict:
    where = f"episode {name}"
    for key in ("obs", "actions", "rewards"):
        if key not in g:
            raise _fail(path, f"{where}: dataset {key!r} missing", REGENERATE)
    for key in ("seed", "success", "length"):
        if key not in g.attrs:
            raise _fail(path, f"{where}: attribute {key!r} missing", REGENERATE)
    arrays = {}
    for key, dtype in (("obs", np.float32), ("actions", np.float32), ("rewards", np.float32)):
        ds = g[key]
        if ds.dtype != dtype:
            raise _fail(
                path,
                f"{where}: {key} has dtype {ds.dtype}, expected {np.dtype(dtype)}",
                f"store {key} as float32; {REGENERATE}",
            )
        arrays[key] = ds[()]
        if not np.all(np.isfinite(arrays[key])):
            raise _fail(path, f"{where}: {key} contains NaN or inf", REGENERATE)
    o, a, r = arrays["obs"], arrays["actions"], arrays["rewards"]
    length = int(g.attrs["length"])
    if a.ndim != 2 or a.shape[1] != action_dim:
        raise _fail(
            path,
            f"{where}: actions shape {a.shape}, expected (T, {action_dim}) "
            f"(action_dim from {META_FILE})",
            REGENERATE,
        )
    if o.ndim != 2 or o.shape[1] != obs_dim:
        raise _fail(
            path,
            f"{where}: obs shape {o.shape}, expected (T+1, {obs_dim}) (obs_dim from {META_FILE})",
            REGENERATE,
        )
    if a.shape[0] != length or r.shape != (length,) or o.shape[0] not in (length, length + 1):
        raise _fail(
            path,
            f"{where}: lengths disagree (length attr {length}, actions "
            f"{a.shape[0]}, rewards {r.shape}, obs {o.shape[0]})",
            REGENERATE,
        )
    if length < 1:
        raise _fail(path, f"{where}: empty episode", REGENERATE)
    return {
        **arrays,
        "success": bool(g.attrs["success"]),
        "seed": int(g.attrs["seed"]),
        "length": length,
    }


# -- bring your own -------------------------------------------------------------------------


def _read_npz(path: Path) -> dict[str, Any]:
    """One validated episode from an ``.npz`` file; ``ValueError`` with the reason if bad."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if "obs" not in keys or "actions" not in keys:
                lacking = sorted({"obs", "actions"} - keys)
                raise ValueError(f"missing key(s) {', '.join(lacking)} (has {sorted(keys)})")
            data = {k: z[k] for k in ("obs", "actions", "rewards", "success") if k in keys}
    except ValueError as err:
        if "allow_pickle" in str(err) or "Object arrays" in str(err):
            raise ValueError(
                "contains an object (pickled) array; save plain numeric arrays"
            ) from None
        raise
    except (OSError, EOFError) as err:
        raise ValueError(f"not a readable .npz ({err})") from None
    obs, actions = data["obs"], data["actions"]
    for key, arr in data.items():
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{key} has non-numeric dtype {arr.dtype}")
    if actions.ndim != 2 or len(actions) < 1:
        raise ValueError(f"actions must be (T, A) with T >= 1, got shape {actions.shape}")
    t = len(actions)
    if obs.ndim != 2 or obs.shape[0] not in (t, t + 1):
        raise ValueError(f"obs must be (T or T+1, D) with T={t}, got shape {obs.shape}")
    rewards = data.get("rewards", np.zeros(t))
    if rewards.shape != (t,):
        raise ValueError(f"rewards must be ({t},), got shape {rewards.shape}")
    success = data.get("success")
    if success is not None and success.size != 1:
        raise ValueError(f"success must be a scalar, got shape {success.shape}")
    for key, arr in (("obs", obs), ("actions", actions), ("rewards", rewards)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{key} contains NaN or inf")
    return {
        "obs": obs.astype(np.float32),
        "actions": actions.astype(np.float32),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "success": None if success is None else bool(success.reshape(())),
        "seed": -1,
    }


def import_npz_folder(src: Path, out_dir: Path, env_id: str) -> dict:
    """Convert a folder of ``*.npz`` episodes (sorted by file name) into ``demos.hdf5`` +
    ``meta.json`` in ``out_dir``.

    Each file holds ``obs`` (T or T+1, D), ``actions`` (T, A), optionally ``rewards`` (T,)
    (zeros when absent) and a scalar ``success`` (episodes without it are stored as successes
    and ``meta["expert_success_rate"]`` is null). Files are read with ``allow_pickle=False``.
    All bad files are reported together in one :class:`DemoFormatError`.
    """
    src = Path(src)
    files = sorted(src.glob("*.npz"))
    if not files:
        raise DemoFormatError(f"{src}: no *.npz files found; put one episode per .npz file there")
    episodes, bad = [], []
    for path in files:
        try:
            episodes.append(_read_npz(path))
        except ValueError as err:
            bad.append(f"{path.name}: {err}")
    if not bad:
        obs_dims = {e["obs"].shape[1] for e in episodes}
        act_dims = {e["actions"].shape[1] for e in episodes}
        if len(obs_dims) > 1 or len(act_dims) > 1:
            bad.append(
                f"inconsistent dims across files (obs {sorted(obs_dims)}, actions "
                f"{sorted(act_dims)})"
            )
    if bad:
        raise DemoFormatError(
            f"{src}: {len(bad)} bad file(s): "
            + "; ".join(bad)
            + "; fix or remove them and re-run the import"
        )
    meta = {"env_id": env_id, "source": f"import_npz_folder({src})",
            "source_files": [p.name for p in files]}  # fmt: skip
    return write_imported_dataset(Path(out_dir), episodes, meta)


def write_imported_dataset(
    dest: Path,
    episodes: list[dict[str, Any]],
    meta: dict[str, Any],
    versions: tuple[str, ...] = (),
) -> dict:
    """Complete ``meta`` (counts, dims, observed action range, date, versions) and write
    ``demos.hdf5`` + ``meta.json`` into ``dest`` all-or-nothing.

    ``episodes``: dicts of ``obs`` (T or T+1, D), ``actions`` (T, A), ``rewards`` (T,) float32,
    ``success`` (bool or None: unknown), ``seed`` (int, -1 unknown) and optionally ``images``
    (``{camera: uint8 (rows of obs, H, W, C)}``). Episodes with unknown success are stored as
    successes and ``expert_success_rate`` is null (as for the npz importer). ``versions``:
    extra distributions whose versions ``meta["versions"]`` records. Returns the meta written.
    """
    known = [e["success"] for e in episodes if e["success"] is not None]
    all_known = len(known) == len(episodes)
    for e in episodes:
        e["success"] = True if e["success"] is None else bool(e["success"])
    acts = np.concatenate([e["actions"] for e in episodes])
    lengths = [len(e["actions"]) for e in episodes]
    seeds = [int(e["seed"]) for e in episodes]
    full = {
        "format_version": FORMAT_VERSION,
        "env_id": meta.pop("env_id"),
        "task": meta.pop("task", None),
        "env_name": meta.pop("env_name", None),
        "episodes": len(episodes),
        "successes": int(sum(e["success"] for e in episodes)),
        "expert_success_rate": (sum(known) / len(known)) if all_known else None,
        "obs_dim": int(episodes[0]["obs"].shape[1]),
        "action_dim": int(episodes[0]["actions"].shape[1]),
        "action_low": acts.min(axis=0).astype(float).tolist(),  # observed range
        "action_high": acts.max(axis=0).astype(float).tolist(),
        "max_steps": int(max(lengths)),
        "seed_start": seeds[0] if all(s >= 0 for s in seeds) else None,
        "seed_end": seeds[-1] if all(s >= 0 for s in seeds) else None,
        "total_steps": int(sum(lengths)),
        "mean_length": float(np.mean(lengths)),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(versions),
        **meta,
    }
    _write_dataset(Path(dest), episodes, full)
    return full
