"""Run directories: resolved config, JSONL + TensorBoard logs, atomic small-file writes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

CONFIG_FILE = "config.yaml"
LOG_FILE = "train_log.jsonl"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; run artefacts are meant to be shared
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def temp_path(out_dir: Path, name: str) -> Iterator[Path]:
    """A fresh temp file name in ``out_dir`` (hidden, ``.tmp-<name>.*``, mode 0644) for a file
    that a writer fills and the caller then ``os.replace``'s onto ``out_dir / name``; the temp
    file is removed if the block raises. Use it for binary artefacts (HDF5, SDF, images)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{name}.", suffix=Path(name).suffix, dir=out_dir)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; artefacts are meant to be shared
    try:
        yield Path(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any, *, allow_nan: bool = True) -> None:
    """JSON via :func:`write_text_atomic`; ``allow_nan=False`` refuses NaN/inf values."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str, allow_nan=allow_nan)
    write_text_atomic(path, text + "\n")


def save_config(run_dir: Path, cfg: DictConfig) -> None:
    write_text_atomic(run_dir / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))


def git_commit() -> str | None:
    """The commit of the source tree the package runs from, if it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class RunLogger:
    """Appends one JSON object per logged step to ``train_log.jsonl`` and mirrors scalars to
    TensorBoard (``tb/``). Only the main process creates one."""

    def __init__(self, run_dir: Path, tensorboard: bool = True) -> None:
        self.path = run_dir / LOG_FILE
        self.file = self.path.open("a")
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"))

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.file.write(json.dumps({"step": step, **scalars}) + "\n")
        self.file.flush()
        if self.tb is not None:
            for key, value in scalars.items():
                self.tb.add_scalar(key, value, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()
