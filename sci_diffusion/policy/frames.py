"""Camera frames of a demonstration set, read lazily while training.

A 1,000-episode pixel set does not fit in memory as decoded frames (1,000 x 120 steps x
84 x 84 x 3 bytes = 2.5 GB per camera), so training never loads it: every batch reads just
the frames of its windows from ``demos.hdf5`` (``images/<camera>``: gzip-compressed, one chunk
per frame, :mod:`sci_diffusion.envs.demos`). Memory stays bounded by the batch and HDF5's chunk
cache, which is kept small (:data:`CHUNK_CACHE_BYTES` per open dataset) because windows are
drawn at random: a cache would rarely hit.

Rows are the global observation rows of :func:`~sci_diffusion.policy.windows.make_windows`
(every episode's observations concatenated in episode order); frame ``k`` of an episode shows
its observation ``k``, so the same index arrays address both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CHUNK_CACHE_BYTES", "FrameStore"]

CHUNK_CACHE_BYTES = 1 << 18
"""HDF5 chunk cache per open dataset (256 KiB: a few decoded frames)."""


class FrameStore:
    """Reads frames by global observation row from a demonstration set's ``demos.hdf5``.

    Args:
        path: the ``demos.hdf5`` file.
        cameras: ``{camera: [H, W, C]}`` (the set's ``meta["cameras"]``).
        episode_rows: observations (= frames) per episode, in episode order.
    """

    def __init__(self, path: Path, cameras: dict[str, Sequence[int]],
                 episode_rows: Sequence[int]) -> None:  # fmt: skip
        self.path = Path(path)
        self.cameras = {name: tuple(int(v) for v in shape) for name, shape in cameras.items()}
        rows = np.asarray(episode_rows, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(rows)])
        self._file: Any = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _open(self) -> Any:
        if self._file is None:
            import h5py

            self._file = h5py.File(self.path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES)
        return self._file

    def read(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Frames of ``rows`` (any shape S of global observation rows) -> ``{camera: uint8
        (*S, H, W, C)}``."""
        rows = np.asarray(rows, dtype=np.int64)
        flat = rows.reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= len(self)):
            raise IndexError(f"frame rows must be in [0, {len(self)}), got {flat.min()}.."
                             f"{flat.max()}")  # fmt: skip
        episode = np.searchsorted(self.offsets, flat, side="right") - 1
        local = flat - self.offsets[episode]
        f = self._open()
        out = {name: np.empty((flat.size, *shape), np.uint8)
               for name, shape in self.cameras.items()}  # fmt: skip
        for ep in np.unique(episode):
            where = np.nonzero(episode == ep)[0]
            wanted, inverse = np.unique(local[where], return_inverse=True)
            group = f["episodes"][f"{int(ep):06d}"]["images"]
            for name in self.cameras:
                # h5py reads increasing indices; repeated rows (edge padding) read once
                out[name][where] = group[name][wanted.tolist()][inverse]
        return {name: frames.reshape(*rows.shape, *frames.shape[1:])
                for name, frames in out.items()}  # fmt: skip

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self) -> dict[str, Any]:  # an open HDF5 handle does not pickle
        return {**self.__dict__, "_file": None}
