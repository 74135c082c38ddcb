"""Run directories: file names, the resolved config, JSONL + TensorBoard logs, provenance."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .files import temp_path, write_json_atomic, write_text_atomic

__all__ = [
    "CHECKPOINT_DIR", "CONFIG_FILE", "LOG_FILE", "METRICS_FILE", "RunLogger", "git_commit",
    "save_config", "temp_path", "write_json_atomic", "write_text_atomic",
]  # fmt: skip

CONFIG_FILE = "config.yaml"
LOG_FILE = "train_log.jsonl"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"


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
