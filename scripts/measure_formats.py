"""Time and size of the data-format converters on an N-episode multimodal set with one camera:
``OMP_NUM_THREADS=1 python scripts/measure_formats.py [N] [--out DIR]`` (default 100, a temp
folder).

Steps, each timed (wall seconds and this process's CPU seconds): collect N expert episodes
without frames, export them as LeRobot v3 and import them back; collect the N episodes again
with every rendered frame (``collect_demos(images=True)``, what ``sci-diffusion demos
images=true`` runs), export them as LeRobot v3 (``quality`` high and lossless), import each
export back, write the same episodes as a robomimic HDF5 (h5py, robomimic's layout, images
gzip-compressed like ours) and import that. The converters are the functions the
``sci-diffusion demos import=/export=`` commands call (the command adds ~2 s of start-up).
Prints a markdown table: step, wall s, CPU s, output size.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import sci_diffusion.envs  # noqa: F401  (headless GL before mujoco loads)
from sci_diffusion.envs.demos import collect_demos, load_demos
from sci_diffusion.envs.formats import export_lerobot, import_lerobot, import_robomimic


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def write_robomimic(src: Path, path: Path) -> None:
    """Our set ``src`` in robomimic's layout: obs/next_obs ``state`` (N, D) and ``render``
    (N, H, W, 3) uint8, actions, rewards, dones, num_samples, env_args."""
    import h5py

    demos = load_demos(src, images=True)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": demos.meta["env_id"], "type": 2,
                                             "env_kwargs": {}})  # fmt: skip
        data.attrs["total"] = int(demos.lengths.sum())
        for k, (obs, actions) in enumerate(zip(demos.obs, demos.actions, strict=True)):
            n = len(actions)
            g = data.create_group(f"demo_{k}")
            g.attrs["num_samples"] = n
            frames = demos.images[k]["render"]
            for group, rows in (("obs", slice(0, n)), ("next_obs", slice(1, n + 1))):
                g.create_dataset(f"{group}/state", data=obs[rows])
                g.create_dataset(f"{group}/render", data=frames[rows], compression="gzip",
                                 compression_opts=4, chunks=(1, *frames.shape[1:]))  # fmt: skip
            g.create_dataset("actions", data=actions)
            g.create_dataset("rewards", data=demos.rewards[k])
            g.create_dataset("dones", data=np.eye(1, n, n - 1)[0])


def timed(rows: list[tuple], name: str, out: Path, fn, *args, **kwargs) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args, **kwargs)
    rows.append((name, time.perf_counter() - wall, time.process_time() - cpu, size_mb(out)))
    print(f"{name}: {rows[-1][1]:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("episodes", nargs="?", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    root = args.out or Path(tempfile.mkdtemp(prefix="formats-"))
    ours, states, rows = root / "ours", root / "states", []
    timed(rows, f"collect {args.episodes} episodes, states only", states, collect_demos,
          "multimodal", args.episodes, states, progress=False)  # fmt: skip
    timed(rows, "export LeRobot v3, states only", root / "lerobot_states", export_lerobot,
          states, root / "lerobot_states")  # fmt: skip
    timed(rows, "import LeRobot (states only) -> ours", root / "back_states", import_lerobot,
          root / "lerobot_states", root / "back_states", task="multimodal")  # fmt: skip
    timed(rows, f"collect {args.episodes} episodes, images=true", ours, collect_demos,
          "multimodal", args.episodes, ours, images=True, progress=False)  # fmt: skip
    for quality in ("high", "lossless"):
        lerobot = root / f"lerobot_{quality}"
        timed(rows, f"export LeRobot v3, quality={quality}", lerobot, export_lerobot, ours,
              lerobot, quality=quality)  # fmt: skip
        back = root / f"back_{quality}"
        timed(rows, f"import LeRobot ({quality}) -> ours", back, import_lerobot, lerobot, back,
              task="multimodal")  # fmt: skip
    robomimic = root / "robomimic.hdf5"
    timed(rows, "write robomimic HDF5 (h5py, this script)", robomimic, write_robomimic, ours,
          robomimic)  # fmt: skip
    timed(rows, "import robomimic -> ours", root / "back_robomimic", import_robomimic,
          robomimic, root / "back_robomimic", task="multimodal")  # fmt: skip
    demos = load_demos(ours)
    print(
        f"\n{args.episodes} episodes, {int(demos.lengths.sum())} steps, "
        f"{int(demos.lengths.sum()) + len(demos)} frames 240x240x3; folder {root}\n"
    )
    print("| step | wall s | CPU s | output MB |\n|---|---|---|---|")
    for name, wall, cpu, mb in rows:
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {mb:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
