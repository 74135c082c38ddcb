"""Peak memory of pixel training data: lazy frame reads against loading every frame.

Builds a pixel demonstration set of ``episodes`` episodes (default 1,000) for ``multimodal``:
``real`` expert episodes are collected with their frames and the set is filled by cycling
through them (same frames, so the same compression; only the size matters here). Then, each
in a fresh process so that its peak resident set size is its own:

* ``lazy``: what training does — windows over all episodes and ``batches`` random batches
  whose frames are read through :class:`~sci_diffusion.policy.frames.FrameStore`;
* ``eager``: ``load_demos(images=True)``, every frame decoded in memory.

``python -m sci_diffusion.bench.frames [--episodes 1000] [--out DIR]`` prints a table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_pixel_set", "peak_rss"]


def build_pixel_set(out: Path, episodes: int = 1000, real: int = 20, size: int = 64) -> Path:
    """Write a ``multimodal`` pixel set of ``episodes`` episodes into ``out`` (see the module
    docstring); returns ``out``."""
    from sci_diffusion.envs.demos import _write_dataset, collect_demos, load_demos
    from sci_diffusion.envs.pixels import pixel_spec
    from sci_diffusion.envs.registry import get_task

    seed_dir = out.parent / (out.name + "-seed")
    spec = pixel_spec(get_task("multimodal"), image_size=size)
    meta = collect_demos("multimodal", real, seed_dir, pixels=spec, progress=True)
    demos = load_demos(seed_dir, images=True)
    records = []
    for i in range(episodes):
        k = i % real
        records.append({"obs": demos.obs[k], "actions": demos.actions[k],
                        "rewards": demos.rewards[k], "success": bool(demos.success[k]),
                        "seed": int(demos.seeds[k]), "images": demos.images[k]})  # fmt: skip
    meta = {**meta, "episodes": episodes, "source": f"{real} expert episodes cycled (bench)",
            "total_steps": int(sum(len(r["actions"]) for r in records))}  # fmt: skip
    meta.pop("cameras", None)
    _write_dataset(out, records, meta)
    return out


_CHILD = r"""
import json, resource, sys, time
import numpy as np
mode, path, batches, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
from pathlib import Path
from sci_diffusion.envs.demos import DEMOS_FILE, load_demos
start = time.perf_counter()
if mode == "eager":
    demos = load_demos(Path(path), images=True)
    held = sum(f.nbytes for ep in demos.images for f in ep.values())
else:
    from sci_diffusion.policy.frames import FrameStore
    from sci_diffusion.policy.windows import make_windows
    demos = load_demos(Path(path))
    windows = make_windows(demos.obs, demos.actions, 2, 16)
    store = FrameStore(Path(path) / DEMOS_FILE, demos.meta["cameras"],
                       [len(o) for o in demos.obs])
    rng = np.random.default_rng(0)
    held = 0
    for _ in range(batches):
        index = rng.integers(0, len(windows), batch)
        frames = store.read(windows.obs_index[index].numpy())
        held = max(held, sum(f.nbytes for f in frames.values()))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"mode": mode, "peak_rss_bytes": peak, "frames_bytes_held": held,
                  "seconds": seconds}))
"""


def peak_rss(path: Path, mode: str, batches: int = 200, batch: int = 64) -> dict[str, Any]:
    """Peak RSS of one ``mode`` (``lazy`` or ``eager``) over the set in ``path``, measured in a
    fresh Python process."""
    out = subprocess.run([sys.executable, "-c", _CHILD, mode, str(path), str(batches),
                          str(batch)], capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--out", default=None, help="keep the built set here (default: temp)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.out) if args.out else Path(tmp) / "pixels"
        print(f"[frames] building a {args.episodes}-episode pixel set in {path} ...", flush=True)
        t = time.perf_counter()
        build_pixel_set(path, args.episodes)
        size = (path / "demos.hdf5").stat().st_size
        built = time.perf_counter() - t
        print(f"[frames] built in {built:.0f} s, demos.hdf5 {size / 2**20:.0f} MiB", flush=True)
        rows = []
        for mode in ("lazy", "eager"):
            print(f"[frames] {mode} ...", flush=True)
            rows.append(peak_rss(path, mode, args.batches))
    print("| mode | peak RSS (MiB) | frames held (MiB) | seconds |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['peak_rss_bytes'] / 2**20:.0f} | "
              f"{r['frames_bytes_held'] / 2**20:.1f} | {r['seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
