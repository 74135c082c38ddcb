"""Embedded default checkpoints: slim, verified copies of trained runs shipped in the package.

An embedded default for task ``T`` is the directory ``sci_diffusion/embedded/T/``::

    config.yaml                          the run's resolved config (from the checkpoint)
    checkpoints/step_XXXXXXXX.safetensors  EMA weights only (the ``ema.*`` tensors, float32)
    model_card.md                        the run's card under a header naming the source

The checkpoint is an ordinary :mod:`~sci_diffusion.io.checkpoint` file: written by
``save_checkpoint`` with its own content hash, so ``load_run`` reads the directory like a run
directory and refuses a modified file. It holds no optimizer state, no raw (non-EMA) weights
and no RNG state, so it can be sampled from and evaluated but not resumed. Its metadata keeps
the run's config, step and data description and adds an ``"embedded"`` record (source run,
source checkpoint and its SHA-256, export date). ``evaluate_run`` never writes into such a
directory (it lives inside the installed package, possibly read-only).

``sci-diffusion export run=<run dir>`` (:func:`export_embedded`) writes one;
``sci-diffusion sample n=100 out=<dir>`` samples the ``qm9_graph`` default.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

import sci_diffusion
from sci_diffusion.io.checkpoint import (
    CheckpointError,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from sci_diffusion.io.errors import UserInputError
from sci_diffusion.io.rundir import CHECKPOINT_DIR, CONFIG_FILE

__all__ = [
    "CONDITIONAL_SUFFIX",
    "DEFAULT_TASK",
    "EMBEDDED_DIR",
    "EMBEDDED_KEY",
    "available_embedded",
    "embedded_run",
    "export_embedded",
    "is_embedded_dir",
]

EMBEDDED_DIR = Path(__file__).resolve().parents[1] / "embedded"
"""Where the package keeps its embedded defaults, one sub-directory per task."""

DEFAULT_TASK = "qm9_graph"
"""The task ``sci-diffusion sample`` uses when given neither ``run=`` nor ``task=``."""

CONDITIONAL_SUFFIX = "_conditional"
"""A property-conditional run of task ``T`` is embedded as ``T_conditional`` (beside the
unconditional ``T``); ``sample target.<p>=...`` without ``run=`` uses it."""

EMBEDDED_KEY = "embedded"
"""Checkpoint metadata key of the export record; its presence marks an embedded checkpoint."""

CARD_FILE = "model_card.md"
_KEEP_META = ("config", "step", "ema_step", "data", "last_loss", "wall_seconds",
              "package_version", "torch_version", "git_commit")  # fmt: skip
_TASK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def embedded_run(task: str) -> Path | None:
    """The embedded default directory of ``task``, or ``None`` when the package has none."""
    if not isinstance(task, str) or not _TASK_NAME.match(task):
        return None
    folder = EMBEDDED_DIR / task
    if (folder / CONFIG_FILE).is_file() and list_checkpoints(folder / CHECKPOINT_DIR):
        return folder
    return None


def embedded_for_sampling(task: str, conditional: bool) -> Path | None:
    """The default ``sample`` uses: ``T_conditional`` when targets are given and it exists,
    else ``T`` (whose task then refuses targets it was not trained for)."""
    if conditional:
        found = embedded_run(task + CONDITIONAL_SUFFIX)
        if found is not None:
            return found
    return embedded_run(task)


def embedded_name(config: dict[str, Any]) -> str:
    """Where a run with this config is embedded: its task, plus :data:`CONDITIONAL_SUFFIX`
    for a property-conditional run."""
    task = config.get("task", {})
    return str(task.get("name", "")) + (CONDITIONAL_SUFFIX if task.get("condition") else "")


def available_embedded() -> list[str]:
    """Tasks that have an embedded default, sorted."""
    if not EMBEDDED_DIR.is_dir():
        return []
    return sorted(p.name for p in EMBEDDED_DIR.iterdir() if embedded_run(p.name) is not None)


def is_embedded_dir(path: Path) -> bool:
    """Whether ``path`` is (inside) the package's embedded directory."""
    try:
        Path(path).resolve().relative_to(EMBEDDED_DIR.resolve())
    except ValueError:
        return False
    return True


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_checkpoint(run_dir: Path) -> Path:
    """The newest verified checkpoint of ``run_dir`` (clear errors when there is none)."""
    if not run_dir.is_dir():
        raise UserInputError(f"run directory {run_dir} does not exist; pass run=<a train run dir>")
    folder = run_dir / CHECKPOINT_DIR
    found = list_checkpoints(folder)
    if not found:
        raise UserInputError(f"no checkpoint in {folder}; train the run first or pass another run=")
    path = latest_checkpoint(folder)
    if path is None:
        load_checkpoint(found[-1])  # raises the CheckpointError that says what is wrong
    if path != found[-1]:
        raise CheckpointError(
            f"the newest checkpoint {found[-1]} of {run_dir} fails verification; export refuses "
            f"to fall back to the older {path}: delete the damaged file first if that is meant"
        )
    return path


def sample_command(dest: Path) -> str:
    """How to sample the embedded default in ``dest`` (a conditional one takes targets)."""
    if dest.name.endswith(CONDITIONAL_SUFFIX):
        task = dest.name.removesuffix(CONDITIONAL_SUFFIX)
        return f"sci-diffusion sample task={task} target.<property>=<value> n=100 out=<dir>"
    return f"sci-diffusion sample task={dest.name} n=100 out=<dir>"


def _card_header(task: str, run_dir: Path, source: Path, step: int, date: str,
                 dest: Path, sampler: Mapping[str, Any] | None = None) -> str:  # fmt: skip
    settings = ", ".join(f"`sampler.{k}={v}`" for k, v in (sampler or {}).items())
    changed = ""
    if settings:
        changed = (f"> Samples by default with {settings}, set at export (the card below "
                   "describes the run with its own sampler settings).\n")  # fmt: skip
    return (
        f"> **Embedded default checkpoint** of sci_diffusion for task `{task}` "
        f"(`{sample_command(dest)}`).\n"
        f"> Exported on {date} by `sci-diffusion export` from run `{run_dir.as_posix()}`, "
        f"checkpoint `{source.name}` (step {step}): EMA weights only, float32; no optimizer "
        "or RNG state (it cannot be resumed). The card below is the run's own.\n"
        f"{changed}\n"
    )


def export_embedded(
    run_dir: Path,
    dest: Path | None = None,
    *,
    task: str | None = None,
    force: bool = False,
    sampler: Mapping[str, Any] | None = None,
) -> Path:
    """Write the slim embedded copy of ``run_dir``'s newest checkpoint to ``dest``; return it.

    ``sampler``: ``sampler.*`` settings (e.g. ``{"time_spacing": "cubic"}``) that replace the
    run's in the copy's config, so ``sample`` uses them by default (the evaluation that chose
    them belongs in the model card); recorded as ``sampler_overrides`` in the copy's
    ``"embedded"`` record. ``sample``'s own ``steps=``/``sampler.*`` still override them.

    ``dest`` defaults to ``EMBEDDED_DIR / <the run's task>``. The source checkpoint is verified
    first (a damaged newest checkpoint is refused, never skipped). The copy is built in a
    temporary directory next to ``dest``, verified, then renamed into place, so ``dest`` is
    never half-written. An existing ``dest`` is replaced only with ``force=True``.

    Raises:
        UserInputError: no such run / no checkpoint / ``task`` differs from the run's task /
            ``dest`` exists without ``force``.
        CheckpointError: the source checkpoint fails verification or has no EMA weights.
    """
    run_dir = Path(run_dir)
    source = _source_checkpoint(run_dir)
    tensors, meta = load_checkpoint(source)
    config = meta.get("config") or {}
    if sampler:
        config = {**config, "sampler": {**config.get("sampler", {}), **dict(sampler)}}
        meta = {**meta, "config": config}
    run_task = str(config.get("task", {}).get("name", ""))
    if task is not None and task != run_task:
        raise UserInputError(f"task={task} but run {run_dir} trained task {run_task!r}; "
                         "pass that task or leave task= out")  # fmt: skip
    if not _TASK_NAME.match(run_task):
        raise UserInputError(
            f"run {run_dir} has no usable task name in its config "
            f"({run_task!r}); export a run written by sci-diffusion train"
        )
    dest = Path(dest) if dest is not None else EMBEDDED_DIR / embedded_name(config)
    if dest.exists() and not force:
        raise UserInputError(f"{dest} already exists; pass force=true to replace it")

    ema = {
        name: tensor.float() if tensor.is_floating_point() else tensor
        for name, tensor in tensors.items()
        if name.startswith("ema.")
    }
    if not ema:
        raise CheckpointError(f"checkpoint {source} holds no EMA weights (ema.* tensors)")
    step = int(meta["step"])
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    slim_meta: dict[str, Any] = {k: meta[k] for k in _KEEP_META if k in meta}
    slim_meta[EMBEDDED_KEY] = {
        "task": run_task,
        "source_run": run_dir.as_posix(),
        "source_checkpoint": source.name,
        "source_sha256": _file_sha256(source),
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "exported_by": f"sci_diffusion {sci_diffusion.__version__}",
        "contents": "EMA weights only (float32); no optimizer, raw-weight or RNG state",
        "previous": meta.get(EMBEDDED_KEY),  # set when re-exporting an embedded copy
        "sampler_overrides": dict(sampler or {}),
    }
    run_card = run_dir / CARD_FILE
    card = run_card.read_text() if run_card.is_file() else "_The run had no model card._\n"

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dest.name}.", dir=dest.parent))
    old: Path | None = None
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; package data is meant to be readable
        written = save_checkpoint(checkpoint_path(tmp / CHECKPOINT_DIR, step), ema, slim_meta)
        os.chmod(tmp / CHECKPOINT_DIR, 0o755)
        load_checkpoint(written)  # the copy verifies before it goes into place
        text = OmegaConf.to_yaml(OmegaConf.create(config), resolve=True)
        (tmp / CONFIG_FILE).write_text(text)
        header = _card_header(run_task, run_dir, source, step, date, dest, sampler)
        (tmp / CARD_FILE).write_text(header + card)
        if dest.exists():  # force=True (checked above)
            old = Path(tempfile.mkdtemp(prefix=f".old-{dest.name}.", dir=dest.parent))
            os.replace(dest, old / dest.name)
        os.replace(tmp, dest)
    except BaseException:
        if old is not None and not dest.exists():
            os.replace(old / dest.name, dest)  # put the previous copy back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None and dest.exists():  # never drop the only copy
            shutil.rmtree(old, ignore_errors=True)
    return dest


def checkpoint_bytes(run_dir: Path) -> int:
    """Total size of the checkpoint files of ``run_dir`` (for reports and tests)."""
    return sum(p.stat().st_size for p in list_checkpoints(Path(run_dir) / CHECKPOINT_DIR))
