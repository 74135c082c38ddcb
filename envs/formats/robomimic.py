"""robomimic HDF5 data sets -> our demonstration sets (h5py only; robomimic is not needed).

robomimic's layout (``docs/datasets/overview.md`` of ARISE-Initiative/robomimic), one file::

    data                      group; attrs: total (samples), env_args (JSON: env_name, type,
                              env_kwargs)
    data/demo_<k>             one group per trajectory; attrs: num_samples (N), model_file
                              (robosuite MJCF, optional)
        actions               (N, A)
        rewards, dones        (N,)
        states                (N, S) flattened MuJoCo states (robosuite only)
        obs/<key>             (N, ...) per observation key; images uint8 (N, H, W, C)
        next_obs/<key>        (N, ...) the observation after each action
    mask/<filter_key>         names of the demos in a filter (e.g. train, valid)

Demos are taken in the order of their number ``k`` (robomimic sorts them so). Low-dimensional
observation keys (1-D or 2-D numeric datasets) are concatenated in sorted key order (or the
order of ``obs_keys``) into our ``obs``; uint8 image keys (N, H, W, C) become cameras. When
``next_obs`` holds every used key, its last row is appended as the final observation o_T, so
episodes have T+1 observations like ours. What is ignored: ``docs/robotics.md``, "Data formats".
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._common import DataFormatError, check_dims, env_dims, require, write_imported

__all__ = ["import_robomimic"]

FIX = "repair the file or re-create it with robomimic's tools"


def import_robomimic(
    src: Path,
    dest: Path,
    task: str | None = None,
    env_name: str | None = None,
    obs_keys: list[str] | None = None,
    filter_key: str | None = None,
) -> dict[str, Any]:
    """Convert the robomimic HDF5 file ``src`` into our format in ``dest`` (``demos.hdf5`` +
    ``meta.json``, written all-or-nothing after every demo was read and checked).

    Per demo ``data/demo_<k>`` (k ascending; only those of ``mask/<filter_key>`` when given):
    ``obs`` (N or N+1, D) float32 = the low-dimensional ``obs/<key>`` concatenated (``obs_keys``
    chooses and orders them; default all, sorted), plus ``next_obs`` at the last step when
    present; ``actions`` (N, A) float32; ``rewards`` (N,) (zeros without); image keys (uint8
    (N, H, W, C)) -> cameras of the same name. ``success`` is unknown (robomimic stores none):
    stored as true, ``expert_success_rate`` null. ``task`` (one of our env tasks; ``env_name``
    for Meta-World): the env the set must fit, checked on the first demo before the rest is
    read. ``meta["robomimic"]`` keeps ``env_args``, the keys used and those ignored.

    Raises :class:`DataFormatError` naming the file and the field (e.g.
    ``data/demo_3/obs/object``) when a group, dataset or attribute is missing, ``num_samples``
    or a shape disagrees, a value is not finite, or the dimensions do not fit ``task``'s env.
    Returns the ``meta.json`` dictionary written.
    """
    h5py = require("h5py", "h5py")
    src, start = Path(src), time.perf_counter()
    if not src.is_file():
        raise DataFormatError(src, "file", "not found", "point import= at the robomimic .hdf5")
    try:
        f = h5py.File(src, "r")
    except OSError as err:
        raise DataFormatError(src, "file", f"not a readable HDF5 file ({err})", FIX) from None
    with f:
        if not isinstance(f.get("data"), h5py.Group):
            raise DataFormatError(src, "data", "group missing", FIX)
        env_args = _env_args(src, f["data"])
        names = _demo_names(src, f, filter_key)
        first = f["data"][names[0]]
        low, cameras, ignored = _classify(src, first, names[0], obs_keys)
        widths = {k: _width(first["obs"][k]) for k in low}
        if "actions" not in first:
            raise DataFormatError(src, f"data/{names[0]}/actions", "dataset missing", FIX)
        action_dim = _width(first["actions"])
        dims = None
        if task is not None:
            dims = env_dims(task, env_name)
            check_dims(dims, sum(widths.values()), action_dim, src,
                       f"data/{names[0]}/obs ({', '.join(low)})",
                       f"data/{names[0]}/actions")  # fmt: skip
        shapes = {k: tuple(first["obs"][k].shape[1:]) for k in (*low, *cameras)}
        episodes = [_read_demo(src, f["data"][n], n, low, cameras, shapes, action_dim)
                    for n in names]  # fmt: skip
    meta: dict[str, Any] = {
        "env_id": f"robomimic/{env_args.get('env_name', 'unknown')}" if env_args else
                  "robomimic/unknown",
        "task": None,
        "env_name": None,
    }  # fmt: skip
    if dims is not None:
        meta.update(env_id=dims.env_id, task=dims.task, env_name=dims.env_name)
    meta.update({
        "source": f"robomimic data set {src}",
        "robomimic": {"env_args": env_args, "obs_keys": low, "obs_widths": widths,
                      "cameras": cameras, "ignored_obs_keys": ignored,
                      "filter_key": filter_key, "demos": names},
        "import_seconds": round(time.perf_counter() - start, 3),
    })  # fmt: skip
    return write_imported(Path(dest), episodes, meta, versions=())


def _env_args(src: Path, data: Any) -> dict[str, Any] | None:
    raw = data.attrs.get("env_args")
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        parsed = json.loads(str(raw))
    except ValueError as err:
        raise DataFormatError(src, "data.attrs['env_args']", f"not valid JSON ({err})",
                              FIX) from None  # fmt: skip
    if not isinstance(parsed, dict):
        raise DataFormatError(src, "data.attrs['env_args']", "not a JSON object", FIX)
    return parsed


def _demo_names(src: Path, f: Any, filter_key: str | None) -> list[str]:
    names = [k for k in f["data"] if k.startswith("demo_")]
    bad = [k for k in names if not k[5:].isdigit()]
    if bad:
        raise DataFormatError(src, f"data/{bad[0]}", "demo groups must be named demo_<number>",
                              FIX)  # fmt: skip
    names.sort(key=lambda k: int(k[5:]))
    if filter_key is not None:
        key = f"mask/{filter_key}"
        if key not in f:
            masks = sorted(f["mask"]) if "mask" in f else []
            raise DataFormatError(src, key, f"filter key missing (the file has {masks})",
                                  "pass one of those or leave the filter out")  # fmt: skip
        wanted = {x.decode() if isinstance(x, bytes) else str(x) for x in f[key][()]}
        unknown = sorted(wanted - set(names))
        if unknown:
            raise DataFormatError(src, key, f"lists demos that do not exist: {unknown[:5]}", FIX)
        names = [n for n in names if n in wanted]
    if not names:
        raise DataFormatError(src, "data", "no demo_<k> groups", FIX)
    return names


def _classify(src: Path, demo: Any, name: str, obs_keys: list[str] | None
              ) -> tuple[list[str], list[str], list[str]]:  # fmt: skip
    """(low-dimensional keys, image keys, ignored keys) of ``demo/obs``."""
    if "obs" not in demo:
        raise DataFormatError(src, f"data/{name}/obs", "group missing", FIX)
    obs = demo["obs"]
    keys = list(obs_keys) if obs_keys is not None else sorted(obs)
    low, cameras, ignored = [], [], []
    for key in keys:
        if key not in obs:
            raise DataFormatError(src, f"data/{name}/obs/{key}", "dataset missing", FIX)
        ds = obs[key]
        if ds.dtype == np.uint8 and ds.ndim == 4:
            cameras.append(key)
        elif ds.dtype.kind in "biuf" and ds.ndim in (1, 2):
            low.append(key)
        else:
            ignored.append(key)
    if obs_keys is not None and ignored:
        raise DataFormatError(src, f"data/{name}/obs/{ignored[0]}", "neither a vector nor a "
                              "uint8 (N, H, W, C) image", "leave it out of obs_keys")  # fmt: skip
    if not low:
        raise DataFormatError(src, f"data/{name}/obs", f"no low-dimensional keys among {keys}",
                              "a state policy needs at least one vector observation")  # fmt: skip
    return low, cameras, ignored


def _width(ds: Any) -> int:
    return 1 if ds.ndim == 1 else int(ds.shape[1])


def _read_demo(src: Path, demo: Any, name: str, low: list[str], cameras: list[str],
               shapes: dict[str, tuple], action_dim: int) -> dict[str, Any]:  # fmt: skip
    where = f"data/{name}"
    for part in ("actions", "obs"):
        if part not in demo:
            raise DataFormatError(src, f"{where}/{part}", "missing", FIX)
    if "num_samples" not in demo.attrs:
        raise DataFormatError(src, f"{where}.attrs['num_samples']", "attribute missing", FIX)
    actions = np.asarray(demo["actions"][()])
    n = int(demo.attrs["num_samples"])
    if actions.ndim == 1:
        actions = actions[:, None]
    if len(actions) != n:
        raise DataFormatError(src, f"{where}.attrs['num_samples']", f"{n}, but actions has "
                              f"{len(actions)} rows (shape mismatch)", FIX)  # fmt: skip
    if actions.shape[1:] != (action_dim,):
        raise DataFormatError(src, f"{where}/actions", f"shape {actions.shape}, expected "
                              f"({n}, {action_dim}) (the action dimension of the first demo)",
                              FIX)  # fmt: skip
    if n < 1:
        raise DataFormatError(src, f"{where}.attrs['num_samples']", "empty demo", FIX)

    def read(group: str, key: str) -> np.ndarray:
        if group not in demo or key not in demo[group]:
            raise DataFormatError(src, f"{where}/{group}/{key}", "dataset missing", FIX)
        array = np.asarray(demo[group][key][()])
        if array.shape[:1] != (n,) or tuple(array.shape[1:]) != shapes[key]:
            raise DataFormatError(src, f"{where}/{group}/{key}", f"shape {array.shape}, "
                                  f"expected ({n}, {', '.join(map(str, shapes[key]))}) "
                                  "(num_samples; the shape in the first demo)", FIX)  # fmt: skip
        return array

    has_next = "next_obs" in demo and all(k in demo["next_obs"] for k in (*low, *cameras))
    parts = []
    for key in low:
        rows = read("obs", key).reshape(n, -1).astype(np.float32)
        if has_next:
            last = read("next_obs", key).reshape(n, -1)[-1:].astype(np.float32)
            rows = np.concatenate([rows, last])
        parts.append(rows)
    obs = np.concatenate(parts, axis=1)
    images = {}
    for key in cameras:
        frames = read("obs", key)
        if has_next:
            frames = np.concatenate([frames, read("next_obs", key)[-1:]])
        images[key] = frames
    rewards = np.zeros(n, np.float32)
    if "rewards" in demo:
        rewards = np.asarray(demo["rewards"][()], dtype=np.float32).reshape(-1)
        if rewards.shape != (n,):
            raise DataFormatError(src, f"{where}/rewards", f"shape {rewards.shape}, expected "
                                  f"({n},) (num_samples)", FIX)  # fmt: skip
    for field, array in (("obs", obs), ("actions", actions), ("rewards", rewards)):
        if not np.all(np.isfinite(array)):
            raise DataFormatError(src, f"{where}/{field}", "holds NaN or inf", FIX)
    return {"obs": obs, "actions": actions.astype(np.float32), "rewards": rewards,
            "success": None, "seed": -1, "images": images}  # fmt: skip
