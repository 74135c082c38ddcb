"""LeRobot v3.0 data sets <-> our demonstration sets, with pyarrow and PyAV only (the
``lerobot`` package is neither needed nor imported).

The v3.0 layout (``codebase_version`` ``"v3.0"``, as ``lerobot.datasets`` writes it)::

    meta/info.json                              fps, features, totals, path templates
    meta/stats.json                             per feature min / max / mean / std / count
    meta/tasks.parquet                          task string (pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet    one row per episode: length, where its rows
                                                and video frames are
    data/chunk-000/file-000.parquet             one row per frame: observation.state, action,
                                                timestamp, frame_index, episode_index, ...
    videos/<key>/chunk-000/file-000.mp4         one stream per camera, episodes back to back
                                                (episode e: from_timestamp .. to_timestamp)

A LeRobot frame pairs an observation with the action taken in it, so an episode of T actions
is T frames: our final observation o_T (and its camera frame) is not exported, and an
imported episode holds T observations (our format allows T or T+1; training windows never
read o_T). Which fields map to which, and which are ignored: ``docs/robotics.md``, "Data
formats". Our own ``meta.json`` (plus the episode seeds) travels in ``meta/sci_diffusion.json``,
a file LeRobot does not read, so that a round trip keeps the env id, task and seeds.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sci_diffusion.envs.demos import META_FILE, load_demos
from sci_diffusion.io.errors import UserInputError
from sci_diffusion.io.files import atomic_directory

from ._common import DataFormatError, check_dims, env_dims, require, write_imported

__all__ = ["CODEBASE_VERSION", "QUALITIES", "export_lerobot", "import_lerobot"]

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
OURS_PATH = "meta/sci_diffusion.json"
CHUNK = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK + ".mp4"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK + ".parquet"

STATE, ENV_STATE, ACTION = "observation.state", "observation.environment_state", "action"
REWARD, DONE, SUCCESS = "next.reward", "next.done", "next.success"
IMAGES = "observation.images."
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")

QUALITIES: dict[str, tuple[str, str, dict[str, str]]] = {
    "high": ("libx264", "yuv420p", {"crf": "18", "g": "2"}),
    "lossless": ("libx264rgb", "rgb24", {"crf": "0", "g": "2"}),
}
"""``quality`` of exported MP4s -> (PyAV codec, pixel format, codec options). ``high``: H.264
4:2:0, crf 18 (plays everywhere; lossy, chroma halved); ``lossless``: H.264 RGB 4:4:4, crf 0
(decodes to the exact frames; larger files). Keyframe every 2 frames (``g``), as LeRobot does,
so that a reader can seek to any frame cheaply."""

FIX = "repair or re-export the data set"


def _fail(src: Path, rel: str, field: str, problem: str, fix: str = FIX) -> DataFormatError:
    return DataFormatError(src / rel, field, problem, fix)


# -- export ---------------------------------------------------------------------------------


def export_lerobot(
    src: Path,
    dest: Path,
    fps: float | None = None,
    quality: str = "high",
    task_text: str | None = None,
) -> dict[str, Any]:
    """Write our demonstration set ``src`` (``demos.hdf5`` + ``meta.json``) as a LeRobot v3.0
    data set in the new folder ``dest`` (written in a hidden temporary folder and renamed into
    place: nothing is left behind on error).

    Per episode of T actions: T frames with ``observation.state`` (D,) float32 = o_0..o_{T-1},
    ``action`` (A,) float32, ``next.reward`` float32, ``next.done`` (true on the last frame),
    ``next.success`` (the episode's success, on its last frame), ``timestamp`` = frame_index /
    fps; each camera of ``meta["cameras"]`` becomes ``observation.images.<camera>``, one MP4
    per camera (:data:`QUALITIES`). ``fps`` defaults to ``meta["fps"]``, else the control rate
    of the set's task env; LeRobot needs a whole number. ``task_text``: the language task of
    every episode (default: the Meta-World task name or the env id).

    Returns the ``meta/info.json`` dictionary.
    """
    pa, pq = require("pyarrow", "pyarrow"), require("pyarrow.parquet", "pyarrow")
    src, dest = Path(src), Path(dest)
    if quality not in QUALITIES:
        raise UserInputError(f"quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UserInputError(f"{dest} exists and is not empty; export into a new folder")
    start = time.perf_counter()
    demos = load_demos(src, images=True)
    meta = demos.meta
    rate = _export_fps(src, meta, fps)
    cameras: dict[str, list[int]] = meta.get("cameras") or {}
    for camera, shape in cameras.items():
        if shape[2] != 3:
            raise DataFormatError(src / META_FILE, f"cameras.{camera}",
                                  f"frames have {shape[2]} channels; LeRobot videos are RGB",
                                  "export RGB cameras only")  # fmt: skip
    if cameras:
        require("av", "av")
    lengths = [int(t) for t in demos.lengths]
    n_frames, n_episodes = int(sum(lengths)), len(lengths)
    episode_index = np.repeat(np.arange(n_episodes), lengths)
    frame_index = np.concatenate([np.arange(t) for t in lengths])
    last = frame_index == np.repeat(np.asarray(lengths) - 1, lengths)
    state = np.concatenate([o[:t] for o, t in zip(demos.obs, lengths, strict=True)])
    action = np.concatenate(demos.actions)
    reward = np.concatenate(demos.rewards).astype(np.float32)
    columns = {
        STATE: state.astype(np.float32),
        ACTION: action.astype(np.float32),
        REWARD: reward,
        DONE: last,
        SUCCESS: last & demos.success[episode_index],
        "timestamp": (frame_index / rate).astype(np.float32),
        "frame_index": frame_index.astype(np.int64),
        "episode_index": episode_index.astype(np.int64),
        "index": np.arange(n_frames, dtype=np.int64),
        "task_index": np.zeros(n_frames, dtype=np.int64),
    }
    task = task_text or meta.get("env_name") or str(meta["env_id"])
    features = {
        STATE: _vector_feature("float32", state.shape[1], "state"),
        ACTION: _vector_feature("float32", action.shape[1], "action"),
        REWARD: {"dtype": "float32", "shape": [1], "names": None},
        DONE: {"dtype": "bool", "shape": [1], "names": None},
        SUCCESS: {"dtype": "bool", "shape": [1], "names": None},
    }
    stats = {key: _stats(np.asarray(columns[key]).reshape(n_frames, -1)) for key in features}
    starts = np.concatenate([[0], np.cumsum(lengths)])
    episodes: dict[str, Any] = {
        "episode_index": np.arange(n_episodes, dtype=np.int64),
        "tasks": [[task]] * n_episodes,
        "length": np.asarray(lengths, dtype=np.int64),
        "data/chunk_index": np.zeros(n_episodes, dtype=np.int64),
        "data/file_index": np.zeros(n_episodes, dtype=np.int64),
        "dataset_from_index": starts[:-1].astype(np.int64),
        "dataset_to_index": starts[1:].astype(np.int64),
    }
    with atomic_directory(dest) as tmp:
        for camera, (height, width, channels) in cameras.items():
            key = IMAGES + camera
            rel = VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0)
            frames = (ep[camera][i] for ep, t in zip(demos.images, lengths, strict=True)
                      for i in range(t))  # fmt: skip
            pix_fmt = _encode(tmp / rel, frames, height, width, rate, quality)
            codec = QUALITIES[quality][0]
            features[key] = {
                "dtype": "video",
                "shape": [height, width, channels],
                "names": ["height", "width", "channels"],
                "info": {"video.height": height, "video.width": width,
                         "video.codec": "h264", "video.pix_fmt": pix_fmt,
                         "video.fps": rate, "video.channels": channels,
                         "video.encoder": codec, "video.crf": int(QUALITIES[quality][2]["crf"]),
                         "video.g": int(QUALITIES[quality][2]["g"]),
                         "is_depth_map": False, "has_audio": False},
            }  # fmt: skip
            stats[key] = _image_stats(ep[camera][:t] for ep, t in
                                      zip(demos.images, lengths, strict=True))  # fmt: skip
            episodes[f"videos/{key}/chunk_index"] = np.zeros(n_episodes, dtype=np.int64)
            episodes[f"videos/{key}/file_index"] = np.zeros(n_episodes, dtype=np.int64)
            episodes[f"videos/{key}/from_timestamp"] = starts[:-1] / rate
            episodes[f"videos/{key}/to_timestamp"] = starts[1:] / rate
        for key in INDEX_FEATURES:
            dtype = "float32" if key == "timestamp" else "int64"
            features[key] = {"dtype": dtype, "shape": [1], "names": None}
            stats[key] = _stats(np.asarray(columns[key]).reshape(n_frames, 1))
        episodes["meta/episodes/chunk_index"] = np.zeros(n_episodes, dtype=np.int64)
        episodes["meta/episodes/file_index"] = np.zeros(n_episodes, dtype=np.int64)
        _write_parquet(pq, tmp / DATA_PATH.format(chunk_index=0, file_index=0),
                       pa.table({k: _arrow(pa, v) for k, v in columns.items()}))  # fmt: skip
        _write_parquet(pq, tmp / EPISODES_PATH.format(chunk_index=0, file_index=0),
                       pa.table({k: _arrow(pa, v) for k, v in episodes.items()}))  # fmt: skip
        _write_parquet(pq, tmp / TASKS_PATH, _tasks_table(pa, [task]))
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": None,
            "total_episodes": n_episodes,
            "total_frames": n_frames,
            "total_tasks": 1,
            "chunks_size": 1000,
            "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200,
            "fps": rate,
            "splits": {"train": f"0:{n_episodes}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if cameras else None,
            "features": features,
        }
        _write_json(tmp / INFO_PATH, info)
        _write_json(tmp / STATS_PATH, stats)
        ours = {**meta, "seeds": [int(s) for s in demos.seeds],
                "export_seconds": round(time.perf_counter() - start, 3)}  # fmt: skip
        _write_json(tmp / OURS_PATH, ours)
    return info


def _export_fps(src: Path, meta: dict[str, Any], fps: float | None) -> int:
    if fps is None:
        fps = meta.get("fps")
    if fps is None and meta.get("task"):
        fps = env_dims(str(meta["task"]), meta.get("env_name")).fps
    if fps is None:
        raise DataFormatError(src / META_FILE, "fps", "no control rate recorded and the task's "
                              "env has none", "pass fps=<frames per second>")  # fmt: skip
    if not float(fps) > 0 or abs(float(fps) - round(float(fps))) > 1e-6:
        raise UserInputError(f"fps={fps}: LeRobot data sets need a positive whole number of "
                             "frames per second")  # fmt: skip
    return round(float(fps))


def _vector_feature(dtype: str, width: int, name: str) -> dict[str, Any]:
    return {"dtype": dtype, "shape": [int(width)], "names": [f"{name}_{i}" for i in range(width)]}


def _stats(x: np.ndarray) -> dict[str, list]:
    """LeRobot ``stats.json`` entry of ``x`` (N, D): per-column min/max/mean/std, count."""
    x = np.asarray(x, dtype=np.float64)
    return {"min": x.min(0).tolist(), "max": x.max(0).tolist(), "mean": x.mean(0).tolist(),
            "std": x.std(0).tolist(), "count": [len(x)]}  # fmt: skip


def _image_stats(episodes: Iterator[np.ndarray]) -> dict[str, list]:
    """Per-channel stats of uint8 frames (N, H, W, C) scaled to [0, 1], shaped (C, 1, 1) as
    LeRobot stores them; exact, from per-channel histograms of the 256 levels."""
    hist: np.ndarray | None = None
    count = 0
    for frames in episodes:
        channels = frames.shape[-1]
        if hist is None:
            hist = np.zeros((channels, 256), dtype=np.int64)
        for c in range(channels):
            hist[c] += np.bincount(frames[..., c].ravel(), minlength=256)
        count += len(frames)
    assert hist is not None
    levels = np.arange(256) / 255.0
    pixels = hist.sum(1)
    mean = hist @ levels / pixels
    std = np.sqrt(np.maximum(hist @ levels**2 / pixels - mean**2, 0.0))
    low = np.array([levels[np.flatnonzero(h)[0]] for h in hist])
    high = np.array([levels[np.flatnonzero(h)[-1]] for h in hist])

    def shaped(v: np.ndarray) -> list:
        return [[[float(c)]] for c in v]

    return {"min": shaped(low), "max": shaped(high), "mean": shaped(mean), "std": shaped(std),
            "count": [count]}  # fmt: skip


def _arrow(pa: Any, value: Any) -> Any:
    """A column: (N, D) arrays as fixed-size lists (LeRobot's ``Sequence(length=D)``), (N,)
    arrays as scalars, lists of string lists as ``list<string>``."""
    if isinstance(value, list):
        return pa.array(value, type=pa.list_(pa.string()))
    value = np.asarray(value)
    if value.ndim == 2:
        flat = pa.array(np.ascontiguousarray(value).reshape(-1))
        return pa.FixedSizeListArray.from_arrays(flat, value.shape[1])
    return pa.array(value)


def _tasks_table(pa: Any, tasks: list[str]) -> Any:
    """``meta/tasks.parquet`` as pandas writes LeRobot's frame (index ``task``, column
    ``task_index``), with the pandas metadata that makes ``pd.read_parquet`` restore the
    index — without needing pandas."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "task": pa.array(tasks, pa.string())})  # fmt: skip
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode",
                            "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64", "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode",
             "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }  # fmt: skip
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def _write_parquet(pq: Any, path: Path, table: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, allow_nan=False) + "\n")


def _encode(path: Path, frames: Iterator[np.ndarray], height: int, width: int, rate: int,
            quality: str) -> str:  # fmt: skip
    """Encode RGB frames (H, W, 3) uint8 into one MP4 stream; returns the pixel format."""
    av = require("av", "av")
    codec, pix_fmt, options = QUALITIES[quality]
    if pix_fmt == "yuv420p" and (height % 2 or width % 2):
        pix_fmt = "yuv444p"  # 4:2:0 needs even sides
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = dict(options)
        for i, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            picture.pts = i
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
    return pix_fmt


# -- import ---------------------------------------------------------------------------------


def import_lerobot(
    src: Path,
    dest: Path,
    task: str | None = None,
    env_name: str | None = None,
) -> dict[str, Any]:
    """Convert the LeRobot v3.x data set in folder ``src`` into our format in ``dest``
    (``demos.hdf5`` + ``meta.json``, written all-or-nothing after everything was read and
    checked).

    Per episode (rows of ``meta/episodes``, in ``episode_index`` order): ``obs`` (T, D)
    float32 = ``observation.state`` (then ``observation.environment_state`` when present,
    concatenated), ``actions`` (T, A) = ``action``, ``rewards`` = ``next.reward`` (zeros
    without), ``success`` = any ``next.success`` (unknown without), and one camera per
    ``observation.images.<camera>`` video (decoded with PyAV) or image feature: uint8
    (T, H, W, 3). ``task`` (one of our env tasks; ``env_name`` for Meta-World): the env the
    set must fit — its observation and action dimensions are checked before anything is
    decoded, and ``meta.json`` names it so that ``task.data.demos=<dest>`` trains on it.

    Raises :class:`DataFormatError` naming the file and the field when a file or key is
    missing, a shape, frame count or fps disagrees with ``meta/info.json``, or the
    dimensions do not fit ``task``'s env. Returns the ``meta.json`` dictionary written.
    """
    pa, pq = require("pyarrow", "pyarrow"), require("pyarrow.parquet", "pyarrow")
    src, start = Path(src), time.perf_counter()
    info = _read_info(src)
    features, rate = info["features"], float(info["fps"])
    state_keys = [k for k in (STATE, ENV_STATE) if k in features]
    if not state_keys:
        raise _fail(src, INFO_PATH, f"features.{STATE}", "missing (no state to learn from)")
    for key in (*state_keys, ACTION):
        _vector_width(src, features, key)
    obs_dim = sum(_vector_width(src, features, k) for k in state_keys)
    action_dim = _vector_width(src, features, ACTION)
    if task is not None:
        dims = env_dims(task, env_name)
        check_dims(dims, obs_dim, action_dim, src / INFO_PATH, f"features.{STATE}.shape",
                   f"features.{ACTION}.shape")  # fmt: skip
    cameras = {key: _camera_name(key) for key, ft in features.items()
               if ft.get("dtype") in ("video", "image") and not _is_depth(ft)}  # fmt: skip
    ignored = sorted(set(features) - {*state_keys, ACTION, REWARD, SUCCESS, *cameras,
                                      *INDEX_FEATURES})  # fmt: skip
    table = _read_episodes(pa, pq, src, info, [k for k, f in cameras.items()
                                               if features[k]["dtype"] == "video"])  # fmt: skip
    episodes = _read_frames(pq, src, info, table, state_keys, cameras, rate)
    for key, camera in cameras.items():
        if features[key]["dtype"] == "video":
            _read_video(src, info, table, key, camera, rate, episodes)
    ours = _read_ours(src, len(episodes))
    if ours.get("seeds") is not None:
        for ep, seed in zip(episodes, ours["seeds"], strict=True):
            ep["seed"] = int(seed)
    meta: dict[str, Any] = {
        "env_id": ours.get("env_id") or f"lerobot/{info.get('robot_type') or 'unknown'}",
        "task": ours.get("task"),
        "env_name": ours.get("env_name"),
    }
    if task is not None:
        meta.update(env_id=dims.env_id, task=dims.task, env_name=dims.env_name)
    if "action_noise" in ours:
        meta["action_noise"] = ours["action_noise"]
    meta.update({
        "fps": rate,
        "source": f"LeRobot {info['codebase_version']} data set {src}"
                  + (f" (exported from: {ours['source']})" if ours.get("source") else ""),
        "lerobot": {"codebase_version": info["codebase_version"],
                    "robot_type": info.get("robot_type"), "tasks": _read_tasks(pq, src),
                    "state_features": state_keys, "cameras": cameras,
                    "ignored_features": ignored},
        "import_seconds": round(time.perf_counter() - start, 3),
    })  # fmt: skip
    return write_imported(Path(dest), episodes, meta, versions=("pyarrow", "av"))


def _read_json(src: Path, rel: str) -> Any:
    path = src / rel
    if not path.is_file():
        raise _fail(src, rel, "file", "not found; point import= at the data set's root folder "
                                      "(the one holding meta/, data/ and videos/)")  # fmt: skip
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise _fail(src, rel, "file", f"not valid JSON ({err})") from None


def _read_info(src: Path) -> dict[str, Any]:
    info = _read_json(src, INFO_PATH)
    if not isinstance(info, dict):
        raise _fail(src, INFO_PATH, "file", "not a JSON object")
    for key in ("codebase_version", "fps", "features", "data_path"):
        if key not in info:
            raise _fail(src, INFO_PATH, key, "missing")
    version = str(info["codebase_version"])
    if not version.startswith("v3."):
        raise _fail(src, INFO_PATH, "codebase_version",
                    f"{version!r}; this reads LeRobot v3.x data sets",
                    "convert it with LeRobot's own converter (lerobot.scripts."
                    "convert_dataset_v21_to_v30) first")  # fmt: skip
    fps = info["fps"]
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        raise _fail(src, INFO_PATH, "fps", f"must be a positive number, got {fps!r}")
    features = info["features"]
    if not isinstance(features, dict):
        raise _fail(src, INFO_PATH, "features", "not a JSON object")
    for key, ft in features.items():
        if not isinstance(ft, dict) or "dtype" not in ft or "shape" not in ft:
            raise _fail(src, INFO_PATH, f"features.{key}", "needs dtype and shape")
        if ft["dtype"] in ("video", "image"):
            shape = ft["shape"]
            if not (isinstance(shape, list) and len(shape) == 3
                    and all(isinstance(d, int) and d > 0 for d in shape)):  # fmt: skip
                raise _fail(src, INFO_PATH, f"features.{key}.shape",
                            f"{shape!r}; a camera needs [H, W, C]")  # fmt: skip
        if ft["dtype"] == "video":
            if not info.get("video_path"):
                raise _fail(src, INFO_PATH, "video_path", f"missing (feature {key} is a video)")
            vfps = (ft.get("info") or {}).get("video.fps")
            if vfps is not None and abs(float(vfps) - float(fps)) > 1e-3:
                raise _fail(src, INFO_PATH, f"features.{key}.info.video.fps",
                            f"{vfps}, but the data set's fps is {fps}")  # fmt: skip
    if ACTION not in features:
        raise _fail(src, INFO_PATH, f"features.{ACTION}", "missing (no actions to learn)")
    return info


def _vector_width(src: Path, features: dict[str, Any], key: str) -> int:
    ft = features[key]
    shape = ft["shape"]
    if not isinstance(shape, list) or len(shape) != 1 or not isinstance(shape[0], int):
        raise _fail(src, INFO_PATH, f"features.{key}.shape",
                    f"{shape!r}; expected a vector [D]")  # fmt: skip
    if not any(ft["dtype"].startswith(t) for t in ("float", "int", "uint")):
        raise _fail(src, INFO_PATH, f"features.{key}.dtype", f"{ft['dtype']!r} is not numeric")
    return int(shape[0])


def _camera_name(key: str) -> str:
    if key.startswith(IMAGES):
        return key[len(IMAGES) :]
    return key.removeprefix("observation.").replace("/", "_")


def _is_depth(ft: dict[str, Any]) -> bool:
    info = ft.get("info") or {}
    return bool(info.get("is_depth_map") or info.get("video.is_depth_map"))


def _columns(pq: Any, path: Path) -> list[str]:
    try:
        return list(pq.read_schema(path).names)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise DataFormatError(path, "file", f"not a readable parquet file ({err})",
                              FIX) from None  # fmt: skip


def _read_episodes(pa: Any, pq: Any, src: Path, info: dict, videos: list[str]) -> dict:
    """``meta/episodes`` as ``{column: numpy array}`` sorted by episode_index, checked."""
    files = sorted((src / EPISODES_DIR).glob("chunk-*/file-*.parquet"))
    if not files:
        raise _fail(src, EPISODES_DIR, "file", "no chunk-*/file-*.parquet episode tables found")
    need = ["episode_index", "length", "data/chunk_index", "data/file_index"]
    for key in videos:
        need += [f"videos/{key}/{c}" for c in ("chunk_index", "file_index",
                                               "from_timestamp", "to_timestamp")]  # fmt: skip
    parts = []
    for path in files:
        have = _columns(pq, path)
        for column in need:
            if column not in have:
                raise DataFormatError(path, column, "column missing", FIX)
        parts.append(pq.read_table(path, columns=need))
    table = pa.concat_tables(parts)
    out = {c: table.column(c).to_numpy() for c in need}
    order = np.argsort(out["episode_index"], kind="stable")
    out = {c: v[order] for c, v in out.items()}
    n = len(out["episode_index"])
    if not np.array_equal(out["episode_index"], np.arange(n)):
        raise _fail(src, EPISODES_DIR, "episode_index", "episodes are not numbered 0..N-1")
    total = info.get("total_episodes")
    if total is not None and int(total) != n:
        raise _fail(src, INFO_PATH, "total_episodes", f"{total}, but {EPISODES_DIR} lists {n}")
    total = info.get("total_frames")
    if total is not None and int(total) != int(out["length"].sum()):
        raise _fail(src, INFO_PATH, "total_frames",
                    f"{total}, but the episode lengths in {EPISODES_DIR} add up to "
                    f"{int(out['length'].sum())}")  # fmt: skip
    if n == 0 or (out["length"] < 1).any():
        raise _fail(src, EPISODES_DIR, "length", "no episodes, or an episode without frames")
    return out


def _read_frames(pq: Any, src: Path, info: dict, table: dict, state_keys: list[str],
                 cameras: dict[str, str], rate: float) -> list[dict[str, Any]]:  # fmt: skip
    """Every episode's states, actions, rewards, success and image-feature frames, read from
    its data file and checked against ``meta/episodes`` and the fps."""
    features = info["features"]
    images = [k for k in cameras if features[k]["dtype"] == "image"]
    optional = [k for k in (REWARD, SUCCESS) if k in features]
    need = ["episode_index", "frame_index", "timestamp", *state_keys, ACTION, *optional, *images]
    episodes: list[dict[str, Any]] = [{} for _ in table["episode_index"]]
    files = sorted(
        {
            (int(c), int(f))
            for c, f in zip(table["data/chunk_index"], table["data/file_index"], strict=True)
        }
    )
    for chunk, file in files:
        rel = str(info["data_path"]).format(chunk_index=chunk, file_index=file)
        path = src / rel
        mine = np.flatnonzero((table["data/chunk_index"] == chunk)
                              & (table["data/file_index"] == file))  # fmt: skip
        if not path.is_file():
            raise DataFormatError(path, "file", f"not found (episodes {_span(mine)} are there "
                                  f"by data/chunk_index, data/file_index in {EPISODES_DIR})",
                                  FIX)  # fmt: skip
        have = _columns(pq, path)
        for column in need:
            if column not in have:
                raise DataFormatError(path, column, f"column missing ({INFO_PATH} lists it or "
                                      "every LeRobot frame has it)", FIX)  # fmt: skip
        data = pq.read_table(path, columns=need)
        ep_col = data.column("episode_index").to_numpy()
        frame_col = data.column("frame_index").to_numpy()
        order = np.lexsort((frame_col, ep_col))
        sorted_eps = ep_col[order]
        columns: dict[str, np.ndarray] = {}
        for key in (*state_keys, ACTION):
            columns[key] = _matrix(data.column(key), _vector_width(src, features, key), path, key)
        for key in optional:
            columns[key] = _matrix(data.column(key), 1, path, key)[:, 0]
        stamps = data.column("timestamp").to_numpy().astype(np.float64)
        tolerance = min(1e-3, 0.25 / rate)
        for e in mine:
            lo, hi = np.searchsorted(sorted_eps, [e, e + 1])
            rows = order[lo:hi]
            length = int(table["length"][e])
            if len(rows) != length:
                raise DataFormatError(path, "episode_index", f"episode {e} has {len(rows)} "
                                      f"frames, but {EPISODES_DIR} gives length {length}",
                                      FIX)  # fmt: skip
            if not np.array_equal(frame_col[rows], np.arange(length)):
                raise DataFormatError(path, "frame_index", f"episode {e}: frames are not "
                                      f"numbered 0..{length - 1}", FIX)  # fmt: skip
            error = np.abs(stamps[rows] - np.arange(length) / rate)
            if error.max() > tolerance:
                k = int(np.argmax(error > tolerance))  # the first frame off
                raise DataFormatError(path, "timestamp", f"episode {e} frame {k} at "
                                      f"{stamps[rows][k]:.4f} s, but fps={info['fps']} in "
                                      f"{INFO_PATH} puts it at {k / rate:.4f} s (fps "
                                      "mismatch)", FIX)  # fmt: skip
            obs = np.concatenate([columns[k][rows] for k in state_keys], axis=1)
            ep = episodes[e]
            ep.update(obs=obs.astype(np.float32), actions=columns[ACTION][rows].astype(np.float32),
                      rewards=(columns[REWARD][rows].astype(np.float32) if REWARD in columns
                               else np.zeros(length, np.float32)),
                      success=(bool(columns[SUCCESS][rows].any()) if SUCCESS in columns
                               else None),
                      seed=-1, images={})  # fmt: skip
            for key in (*state_keys, ACTION):
                if not np.all(np.isfinite(columns[key][rows])):
                    raise DataFormatError(path, key, f"episode {e} holds NaN or inf", FIX)
            for key in images:
                ep["images"][cameras[key]] = _decode_images(
                    src, path, key, features[key], data.column(key).take(rows)
                )
    return episodes


def _span(index: np.ndarray) -> str:
    return f"{index[0]}..{index[-1]}" if len(index) > 1 else str(index[0])


def _matrix(column: Any, width: int, path: Path, key: str) -> np.ndarray:
    """A (N, width) numpy array from a list, fixed-size-list or (width 1) scalar column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = column.combine_chunks()
    if array.null_count:
        raise DataFormatError(path, key, f"{array.null_count} missing values", FIX)
    kind = array.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or \
            pa.types.is_fixed_size_list(kind):  # fmt: skip
        sizes = pc.list_value_length(array).to_numpy()
        if len(sizes) and (sizes != width).any():
            bad = int(sizes[sizes != width][0])
            raise DataFormatError(path, key, f"rows hold {bad} values, but {INFO_PATH} gives "
                                  f"shape [{width}] (shape mismatch)", FIX)  # fmt: skip
        values = array.flatten().to_numpy(zero_copy_only=False)
        return np.asarray(values).reshape(len(array), width)
    if width != 1:
        raise DataFormatError(path, key, f"scalar column, but {INFO_PATH} gives shape "
                              f"[{width}] (shape mismatch)", FIX)  # fmt: skip
    return np.asarray(array.to_numpy(zero_copy_only=False)).reshape(len(array), 1)


def _expected_hw(ft: dict[str, Any]) -> tuple[int, int, int]:
    shape, names = list(ft["shape"]), ft.get("names") or []
    if len(shape) == 3 and list(names)[:1] in (["channels"], ["channel"]):
        return shape[1], shape[2], shape[0]
    return tuple(shape) if len(shape) == 3 else (-1, -1, -1)  # type: ignore[return-value]


def _check_frame(shape: tuple, ft: dict, path: Path, key: str) -> None:
    expected = _expected_hw(ft)
    if tuple(shape) != tuple(expected):
        raise DataFormatError(path, key, f"frames are {tuple(shape)} (H, W, C), but "
                              f"{INFO_PATH} features.{key}.shape is {list(ft['shape'])} "
                              "(shape mismatch)", FIX)  # fmt: skip


def _decode_images(src: Path, path: Path, key: str, ft: dict, cells: Any) -> np.ndarray:
    """Image features stored in the parquet rows (``{bytes, path}`` structs) -> uint8."""
    from PIL import Image

    frames = []
    for cell in cells.to_pylist():
        blob = (cell or {}).get("bytes")
        if blob is None and (cell or {}).get("path"):
            file = src / cell["path"]
            if not file.is_file():
                raise DataFormatError(file, key, "image file not found", FIX)
            blob = file.read_bytes()
        if blob is None:
            raise DataFormatError(path, key, "a frame has neither bytes nor path", FIX)
        frames.append(np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")))
    array = np.stack(frames)
    _check_frame(array.shape[1:], ft, path, key)
    return array


def _read_video(src: Path, info: dict, table: dict, key: str, camera: str, rate: float,
                episodes: list[dict[str, Any]]) -> None:  # fmt: skip
    """Decode camera ``key`` from its MP4 file(s) into ``episodes[e]["images"][camera]``."""
    av = require("av", "av")
    ft = info["features"][key]
    height, width, channels = _expected_hw(ft)
    chunks, files = table[f"videos/{key}/chunk_index"], table[f"videos/{key}/file_index"]
    for chunk, file in sorted({(int(c), int(f)) for c, f in zip(chunks, files, strict=True)}):
        rel = str(info["video_path"]).format(video_key=key, chunk_index=chunk, file_index=file)
        path = src / rel
        mine = np.flatnonzero((chunks == chunk) & (files == file))
        if not path.is_file():
            raise DataFormatError(path, key, f"video file not found (episodes {_span(mine)} "
                                  f"point there by videos/{key}/chunk_index, file_index in "
                                  f"{EPISODES_DIR})", "restore the video or re-export the "
                                  "data set")  # fmt: skip
        # frame number in the file -> (episode, row); each episode's frames preallocated
        slot: dict[int, tuple[int, int]] = {}
        for e in mine:
            first = round(float(table[f"videos/{key}/from_timestamp"][e]) * rate)
            stop = round(float(table[f"videos/{key}/to_timestamp"][e]) * rate)
            length = len(episodes[e]["actions"])
            if stop - first != length:
                raise DataFormatError(src / EPISODES_DIR, f"videos/{key}/to_timestamp",
                                      f"episode {e} spans {stop - first} frames of {rel} at "
                                      f"{rate:g} fps, but has {length} frames (frame count "
                                      "mismatch)", FIX)  # fmt: skip
            slot.update({first + i: (int(e), i) for i in range(length)})
            episodes[e]["images"][camera] = np.zeros((length, height, width, channels),
                                                     dtype=np.uint8)  # fmt: skip
        seen = 0
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise DataFormatError(path, key, "no video stream", FIX)
                stream = container.streams.video[0]
                stream_rate = stream.average_rate or stream.guessed_rate or stream.base_rate
                if stream_rate and abs(float(stream_rate) - rate) > 1e-3 * rate:
                    raise DataFormatError(path, key, f"the stream runs at {float(stream_rate):g}"
                                          f" fps, but {INFO_PATH} says fps={info['fps']} (fps "
                                          "mismatch)", FIX)  # fmt: skip
                for k, frame in enumerate(container.decode(stream)):
                    number = k if frame.time is None else round(frame.time * rate)
                    if number not in slot:
                        continue
                    picture = frame.to_ndarray(format="rgb24")
                    if picture.shape != (height, width, channels):
                        _check_frame(picture.shape, ft, path, key)
                    e, i = slot.pop(number)
                    episodes[e]["images"][camera][i] = picture
                    seen += 1
        except av.FFmpegError as err:
            raise DataFormatError(path, key, f"not a readable MP4 ({err})", FIX) from None
        if slot:
            missing = sorted(slot)
            e = slot[missing[0]][0]
            raise DataFormatError(path, key, f"holds {seen} of the {seen + len(missing)} frames "
                                  f"{EPISODES_DIR} asks for (episode {e} needs frame "
                                  f"{missing[0]}; frame count mismatch)", FIX)  # fmt: skip


def _read_tasks(pq: Any, src: Path) -> list[str]:
    path = src / TASKS_PATH
    if not path.is_file():
        return []
    table = pq.read_table(path)
    names = table.column_names
    column = "task" if "task" in names else ("__index_level_0__" if "__index_level_0__" in names
                                              else None)  # fmt: skip
    if column is None or "task_index" not in names:
        return []
    order = np.argsort(table.column("task_index").to_numpy())
    tasks = table.column(column).to_pylist()
    return [str(tasks[i]) for i in order]


def _read_ours(src: Path, n_episodes: int) -> dict[str, Any]:
    """Our ``meta.json`` as exported (``meta/sci_diffusion.json``), when present and sound."""
    path = src / OURS_PATH
    if not path.is_file():
        return {}
    try:
        ours = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(ours, dict):
        return {}
    seeds = ours.get("seeds")
    if not (isinstance(seeds, list) and len(seeds) == n_episodes):
        ours["seeds"] = None
    return ours
