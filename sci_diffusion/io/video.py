"""Rollout and demonstration videos: MP4 when an encoder works, else GIF; written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import publish, temp_path

__all__ = ["VIDEO_FPS", "encode_video", "write_video"]

VIDEO_FPS = 20


def encode_video(tmp: Path, frames: list[np.ndarray], name: str) -> str:
    """Encode ``frames`` into ``tmp``: MP4 when imageio's ffmpeg/pyav plugin works, else GIF.
    Returns the final file name (``name`` with the extension actually used)."""
    import importlib.util

    import imageio.v3 as iio

    stem = Path(name).stem
    array = np.stack([np.asarray(f, dtype=np.uint8) for f in frames])
    plugins = [
        p
        for p, mod in (("pyav", "av"), ("FFMPEG", "imageio_ffmpeg"))
        if importlib.util.find_spec(mod) is not None
    ]
    for plugin in plugins:
        try:
            iio.imwrite(tmp, array, plugin=plugin, extension=".mp4", fps=VIDEO_FPS)
            if tmp.stat().st_size > 0:
                return f"{stem}.mp4"
        except Exception:  # a broken ffmpeg backend: try the next one, then GIF
            continue
    iio.imwrite(tmp, array, plugin="pillow", extension=".gif", duration=1000 / VIDEO_FPS, loop=0)
    return f"{stem}.gif"


def write_video(out_dir: Path, name: str, frames: list[np.ndarray]) -> Path:
    """Write ``frames`` (each (H, W, 3) uint8) as ``out_dir/name`` (MP4, or GIF when no MP4
    encoder works) atomically; returns the path written."""
    with temp_path(out_dir, name) as tmp:
        return publish(tmp, Path(out_dir) / encode_video(tmp, frames, name))
