"""Safe, pickle-free, atomic, self-verifying checkpoints.

A checkpoint is ONE safetensors file (``step_00001000.safetensors``) holding:

* the tensors, each moved to CPU and made contiguous, under the names given by the caller;
* three safetensors metadata strings (the header's ``__metadata__``):

  ``"sci_diffusion"``
      the caller's metadata as JSON (``sort_keys=True``, compact separators);
  ``"format_version"``
      ``"1"``;
  ``"sha256"``
      hex SHA-256 over the format version, that JSON text and, for every tensor in sorted
      name order, its name, dtype string (``"torch.float32"``), shape and raw bytes (each
      field length-prefixed so that no two different contents hash alike).

Loading never unpickles anything (``safetensors`` only), refuses truncated or foreign files and
recomputes the hash, so a file modified after it was written is caught instead of silently
training on damaged weights. Saving writes a temporary file next to the target and renames it
over the target, so a run killed mid-write leaves the previous checkpoint intact.

Typical use::

    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    optim_tensors, optim_meta = optimizer_to_tensors(optimizer)
    save_checkpoint(
        checkpoint_path(run_dir / "checkpoints", step),
        {**tensors, **optim_tensors},
        {"step": step, "optimizer": optim_meta, "rng": rng_state()},
    )

    path = latest_checkpoint(run_dir / "checkpoints")
    if path is not None:
        tensors, meta = load_checkpoint(path)
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer_from_tensors(optimizer, tensors, meta["optimizer"])
        set_rng_state(meta["rng"])
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import random
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import Tensor

from .errors import UserInputError
from .files import publish, temp_path

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "checkpoint_path",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "optimizer_from_tensors",
    "optimizer_to_tensors",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

__all__ = [
    "FORMAT_VERSION", "CheckpointError", "checkpoint_path", "latest_checkpoint",
    "list_checkpoints", "load_checkpoint", "optimizer_from_tensors", "optimizer_to_tensors",
    "rng_state", "save_checkpoint", "set_rng_state",
]  # fmt: skip

FORMAT_VERSION = "1"
"""On-disk format :func:`save_checkpoint` writes; the only one :func:`load_checkpoint` reads."""

_META_KEY = "sci_diffusion"
_VERSION_KEY = "format_version"
_HASH_KEY = "sha256"
_HASH_DOMAIN = b"sci_diffusion.checkpoint"
_STEP_FILE = re.compile(r"^step_(\d{8,})\.safetensors$")
_OPTIM_STATE = "optim.state"
_OPTIM_GROUPS = "optim.param_groups"


class CheckpointError(UserInputError):
    """A checkpoint (or the state to put in one) was refused.

    The message names the file, what is wrong with it, and what to do about it.
    """


class _UnsupportedVersionError(CheckpointError):
    """The file is a sci_diffusion checkpoint of a format this version cannot read."""


# --------------------------------------------------------------------------- hashing


class _ContentHasher:
    """SHA-256 over (format version, metadata JSON, then every tensor in sorted name order)."""

    def __init__(self, format_version: str, metadata_json: str) -> None:
        self._sha = hashlib.sha256()
        self._field(_HASH_DOMAIN)
        self._field(format_version.encode("utf-8"))
        self._field(metadata_json.encode("utf-8"))

    def _field(self, data: bytes | np.ndarray) -> None:
        size = data.nbytes if isinstance(data, np.ndarray) else len(data)
        self._sha.update(size.to_bytes(8, "little"))
        self._sha.update(data)

    def add_tensor(self, name: str, tensor: Tensor) -> None:
        """Hash one CPU tensor; call in sorted name order."""
        self._field(name.encode("utf-8"))
        self._field(str(tensor.dtype).encode("utf-8"))
        self._field(json.dumps(list(tensor.shape)).encode("utf-8"))
        # Reinterpret the contiguous storage as bytes (works for bfloat16 and bool, which numpy
        # cannot represent) without copying.
        self._field(tensor.contiguous().reshape(-1).view(torch.uint8).numpy())

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def _content_hash(format_version: str, metadata_json: str, tensors: Mapping[str, Tensor]) -> str:
    hasher = _ContentHasher(format_version, metadata_json)
    for name in sorted(tensors):
        hasher.add_tensor(name, tensors[name])
    return hasher.hexdigest()


# --------------------------------------------------------------------------- saving


def _find_unserialisable(obj: Any, where: str, seen: set[int] | None = None) -> str:
    """Describe the first value in ``obj`` that ``json.dumps`` rejects ("" if none found)."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return ""
    seen = set() if seen is None else seen
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in seen:
            return f"{where} is a circular reference"
        seen.add(id(obj))
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not (key is None or isinstance(key, (str, int, float, bool))):
                return f"{where} has a key {key!r} of type {type(key).__qualname__}"
            found = _find_unserialisable(value, f"{where}[{key!r}]", seen)
            if found:
                return found
        return ""
    if isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            found = _find_unserialisable(value, f"{where}[{index}]", seen)
            if found:
                return found
        return ""
    return f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}"


def _to_json(obj: Any, what: str, context: str) -> str:
    """Compact ``json.dumps(obj, sort_keys=True)``, or CheckpointError naming the bad value."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        found = _find_unserialisable(obj, what)
        detail = f"{found}: {exc}" if found else str(exc)
        raise CheckpointError(
            f"{context}: {what} is not JSON-serialisable ({detail}); put tensors in the tensors "
            "mapping and convert other values to str/int/float/bool/None/list/dict with string "
            "keys (e.g. tensor.item(), array.tolist(), str(path))"
        ) from exc


def _prepare_tensors(path: Path, tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached, contiguous CPU tensors that share no memory (safetensors refuses shared ones)."""
    if not isinstance(tensors, Mapping):
        raise CheckpointError(
            f"cannot save checkpoint {path}: tensors is a {type(tensors).__qualname__}, not a "
            "mapping; pass a dict of name -> torch.Tensor"
        )
    prepared: dict[str, Tensor] = {}
    storages: set[int] = set()
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise CheckpointError(
                f"cannot save checkpoint {path}: tensor name {name!r} is invalid; use non-empty "
                "strings other than '__metadata__'"
            )
        if not isinstance(tensor, Tensor):
            raise CheckpointError(
                f"cannot save checkpoint {path}: tensors[{name!r}] is a "
                f"{type(tensor).__qualname__}, not a torch.Tensor; put non-tensor values in "
                "the metadata instead"
            )
        if tensor.layout != torch.strided:
            raise CheckpointError(
                f"cannot save checkpoint {path}: tensors[{name!r}] has layout {tensor.layout}; "
                "convert it with .to_dense() first"
            )
        cpu = tensor.detach().to("cpu").resolve_conj().resolve_neg().contiguous()
        if cpu.numel() > 0:
            storage = cpu.untyped_storage().data_ptr()
            if storage in storages:  # tied weights or views of one buffer: store a copy
                cpu = cpu.clone()
                storage = cpu.untyped_storage().data_ptr()
            storages.add(storage)
        prepared[name] = cpu
    return prepared


def save_checkpoint(
    path: str | os.PathLike[str],
    tensors: Mapping[str, Tensor],
    metadata: Mapping[str, Any],
) -> Path:
    """Write ``tensors`` and ``metadata`` atomically to one safetensors file at ``path``.

    Args:
        path: the file to write (usually :func:`checkpoint_path`); parent directories are
            created. An existing file there is replaced only once the new one is complete.
        tensors: name -> tensor of any shape, dtype and device. Each is detached, moved to CPU
            and made contiguous; tensors sharing memory (tied weights) are stored as copies.
        metadata: any JSON-serialisable mapping (nested dicts/lists, str/int/float/bool/None;
            :func:`rng_state` and :func:`optimizer_to_tensors` produce such values). Stored as
            JSON with sorted keys, so tuples come back as lists and non-string keys as strings.

    Returns:
        The final path of the checkpoint.

    Raises:
        CheckpointError: non-JSON-serialisable metadata or a non-tensor value; nothing is
            written in that case.

    The file is first written to ``.tmp-<name>.<random>`` in the same directory, fsync'ed, then
    ``os.replace``'d onto ``path`` and the directory fsync'ed. On any exception the temporary
    file is removed, so no partial output is left and a previous file at ``path`` is untouched.
    """
    path = Path(path)
    context = f"cannot save checkpoint {path}"
    if not isinstance(metadata, Mapping):
        raise CheckpointError(
            f"{context}: metadata is a {type(metadata).__qualname__}, not a mapping; pass a dict"
        )
    metadata_json = _to_json(dict(metadata), "metadata", context)
    prepared = _prepare_tensors(path, tensors)
    header = {
        _META_KEY: metadata_json,
        _VERSION_KEY: FORMAT_VERSION,
        _HASH_KEY: _content_hash(FORMAT_VERSION, metadata_json, prepared),
    }

    with temp_path(path.parent, path.name) as tmp:
        # Looked up at call time so that tests can make serialisation fail.
        safetensors.torch.save_file(prepared, tmp, metadata=header)
        publish(tmp, path)  # save_file recreates the file: publish re-applies the mode
    return path


# --------------------------------------------------------------------------- loading


def _read_checkpoint(path: Path, *, keep_tensors: bool) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Open, verify and (optionally) return the CPU tensors and the metadata of ``path``.

    Tensors are read and hashed one at a time, so verification alone needs the memory of the
    largest tensor only.
    """
    if not path.exists():
        raise CheckpointError(
            f"checkpoint {path} does not exist; check the path, or call "
            "latest_checkpoint(<checkpoint directory>) to find the newest valid one"
        )
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} is not a regular file; pass the .safetensors file"
        )
    corrupt = (
        f"checkpoint {path} is truncated or not a safetensors file ({{}}); delete it and resume "
        "from an earlier checkpoint"
    )
    try:
        handle = safetensors.safe_open(str(path), framework="pt", device="cpu")
    except (safetensors.SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(corrupt.format(exc)) from exc

    tensors: dict[str, Tensor] = {}
    with handle:
        header = handle.metadata() or {}
        if _META_KEY not in header:
            raise CheckpointError(
                f"checkpoint {path} is not a sci_diffusion checkpoint (its safetensors metadata "
                f"has no {_META_KEY!r}, {_VERSION_KEY!r} and {_HASH_KEY!r} keys); read it with "
                "safetensors.torch.load_file, or re-save its tensors with save_checkpoint"
            )
        version = header.get(_VERSION_KEY)
        if version != FORMAT_VERSION:
            raise _UnsupportedVersionError(
                f"checkpoint {path} has format_version {version!r}, but this sci_diffusion reads "
                f"only {FORMAT_VERSION!r}; open it with the sci_diffusion version that wrote it, "
                "or upgrade sci_diffusion"
            )
        expected = header.get(_HASH_KEY)
        if not isinstance(expected, str):
            raise CheckpointError(
                f"checkpoint {path} has no {_HASH_KEY!r} content hash, so it cannot be verified "
                "(corrupted or not written by save_checkpoint); delete it and resume from an "
                "earlier checkpoint"
            )
        metadata_json = header[_META_KEY]
        hasher = _ContentHasher(version, metadata_json)
        try:
            for name in sorted(handle.keys()):
                tensor = handle.get_tensor(name)
                if keep_tensors:  # copy out of the file's memory map: return what was hashed
                    tensor = tensor.clone()
                hasher.add_tensor(name, tensor)
                if keep_tensors:
                    tensors[name] = tensor
        except (safetensors.SafetensorError, OSError, RuntimeError, ValueError) as exc:
            raise CheckpointError(corrupt.format(exc)) from exc

    if hasher.hexdigest() != expected:
        raise CheckpointError(
            f"checkpoint {path} failed verification: content hash mismatch: the file was "
            "modified after it was written (tampered or corrupted); delete it and resume from "
            "an earlier checkpoint"
        )
    try:
        metadata = json.loads(metadata_json)
    except ValueError as exc:  # unreachable for files written by save_checkpoint
        raise CheckpointError(corrupt.format(f"metadata is not JSON: {exc}")) from exc
    if not isinstance(metadata, dict):
        raise CheckpointError(corrupt.format("metadata is not a JSON object"))
    return tensors, metadata


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Load and verify a checkpoint written by :func:`save_checkpoint`.

    Only ``safetensors`` is used to read the file (the same ``safe_open`` reader that
    ``safetensors.torch.load_file`` wraps, opened once so that the header and tensors come from
    the same file even if it is being replaced); nothing is unpickled.

    Args:
        path: the ``.safetensors`` file.
        device: where to put the returned tensors; they are verified on CPU first.

    Returns:
        ``(tensors, metadata)``: name -> tensor with the saved dtype and shape on ``device``,
        and the metadata dict as saved (after a JSON round trip).

    Raises:
        CheckpointError: the file is missing, truncated or not a safetensors file, lacks the
            sci_diffusion metadata keys ("not a sci_diffusion checkpoint"), has an unknown
            ``format_version``, or its content hash does not match (tampered or corrupted).
    """
    tensors, metadata = _read_checkpoint(Path(path), keep_tensors=True)
    target = torch.device(device)
    if target.type != "cpu":
        tensors = {name: tensor.to(target) for name, tensor in tensors.items()}
    return tensors, metadata


# --------------------------------------------------------------------------- directories


def checkpoint_path(directory: str | os.PathLike[str], step: int) -> Path:
    """``directory / f"step_{step:08d}.safetensors"`` for a non-negative integer ``step``."""
    if isinstance(step, bool):
        raise CheckpointError(f"checkpoint step must be an integer >= 0, got {step!r}")
    try:
        step = operator.index(step)
    except TypeError as exc:
        raise CheckpointError(
            f"checkpoint step must be an integer >= 0, got {step!r}; pass the optimizer step count"
        ) from exc
    if step < 0:
        raise CheckpointError(f"checkpoint step must be an integer >= 0, got {step}")
    return Path(directory) / f"step_{step:08d}.safetensors"


def list_checkpoints(directory: str | os.PathLike[str]) -> list[Path]:
    """Files named ``step_XXXXXXXX.safetensors`` in ``directory``, oldest step first.

    Temporary ``.tmp-*`` files and other names are ignored; a missing directory gives ``[]``.
    Files are listed, not verified (see :func:`latest_checkpoint`).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found: list[tuple[int, Path]] = []
    for entry in directory.iterdir():
        match = _STEP_FILE.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return [path for _, path in sorted(found)]


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """The newest checkpoint in ``directory`` that loads and verifies, or ``None``.

    Newer files that fail verification (truncated, corrupted, tampered, foreign) are skipped
    with a ``RuntimeWarning`` naming each, so a run whose last checkpoint is damaged resumes
    from the last good one. A file of an unknown (newer) ``format_version`` is not skipped: its
    CheckpointError propagates, since resuming from an older step would overwrite newer work.
    """
    for path in reversed(list_checkpoints(directory)):
        try:
            _read_checkpoint(path, keep_tensors=False)
        except _UnsupportedVersionError:
            raise
        except CheckpointError as exc:
            warnings.warn(
                f"skipping checkpoint {path}, which fails verification: {exc}",
                RuntimeWarning,
                stacklevel=2,
            )
            continue
        return path
    return None


# --------------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    """Capture the global RNGs as a JSON-serialisable dict (no tensors, no arrays).

    Returns:
        ``{"python": {"version", "state": [625 ints], "gauss_next"},
        "numpy": {"bit_generator", "key": [624 ints], "pos", "has_gauss", "cached_gaussian"},
        "torch": [ints 0..255] (``torch.get_rng_state()``),
        "cuda": [[ints 0..255] per device]}``; ``"cuda"`` only when CUDA is available.
    """
    version, internal, gauss_next = random.getstate()
    name, key, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)  # noqa: NPY002
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "bit_generator": str(name),
            "key": np.asarray(key).tolist(),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _apply_rng_state(state: Mapping[str, Any]) -> None:
    py = state["python"]
    python_state = (int(py["version"]), tuple(int(x) for x in py["state"]), py["gauss_next"])
    npy = state["numpy"]
    numpy_state = (
        str(npy["bit_generator"]),
        np.asarray(npy["key"], dtype=np.uint32),
        int(npy["pos"]),
        int(npy["has_gauss"]),
        float(npy["cached_gaussian"]),
    )
    torch_state = torch.tensor(state["torch"], dtype=torch.uint8)
    random.setstate(python_state)
    np.random.set_state(numpy_state)  # noqa: NPY002
    torch.set_rng_state(torch_state)

    cuda = state.get("cuda")
    if not cuda:
        return
    if not torch.cuda.is_available():
        warnings.warn(
            f"CUDA RNG state for {len(cuda)} device(s) not restored: CUDA is not available; "
            "GPU random draws will differ from the original run",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    count = torch.cuda.device_count()
    if count != len(cuda):
        warnings.warn(
            f"CUDA RNG state saved for {len(cuda)} device(s) but {count} are visible; "
            f"restoring the first {min(count, len(cuda))}",
            RuntimeWarning,
            stacklevel=3,
        )
    for index, device_state in enumerate(cuda[:count]):
        torch.cuda.set_rng_state(torch.tensor(device_state, dtype=torch.uint8), device=index)


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the global RNGs from a dict made by :func:`rng_state` (JSON round trip is fine).

    Python ``random``, numpy's global ``RandomState`` and torch's CPU generator are restored
    together: if any part is malformed none of them changes. CUDA states are restored for the
    visible devices; a mismatch in device count, or no CUDA, only warns.

    Raises:
        CheckpointError: ``state`` is not such a dict.
    """
    previous = rng_state()
    try:
        _apply_rng_state(state)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        _apply_rng_state(previous)
        raise CheckpointError(
            f"cannot restore RNG state: it is malformed ({exc!r}); pass the dict returned by "
            "rng_state(), e.g. the 'rng' entry of the metadata returned by load_checkpoint"
        ) from exc


# --------------------------------------------------------------------------- optimizer state


def optimizer_to_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors and JSON for :func:`save_checkpoint`.

    Returns:
        ``(tensors, meta)``. ``tensors`` maps ``"optim.state.{param_id}.{name}"`` to each tensor
        of per-parameter state (AdamW: ``step``, ``exp_avg``, ``exp_avg_sq``) and
        ``"optim.param_groups.{group_index}.{key}"`` to any tensor hyper-parameter; they alias
        the live state, so save them before the next ``optimizer.step()``. ``meta`` is
        JSON-serialisable: ``{"optimizer": class name, "param_groups": [{"values": {...},
        "tensors": [keys]}], "state": {"<param_id>": {"values": {...}, "tensors": [names]}}}``,
        where ``values`` hold the non-tensor entries (lr, betas, python-number state, ...).

    Raises:
        CheckpointError: a non-tensor entry is not JSON-serialisable.
    """
    state_dict = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}

    def split(entries: dict[str, Any], prefix: str) -> dict[str, Any]:
        """Tensors of ``entries`` go to ``tensors`` under ``prefix.<key>``; the rest stays JSON."""
        values = {k: v for k, v in entries.items() if not isinstance(v, Tensor)}
        names = [k for k, v in entries.items() if isinstance(v, Tensor)]
        tensors.update({f"{prefix}.{k}": entries[k].detach() for k in names})
        return {"values": values, "tensors": names}

    groups = [
        split(group, f"{_OPTIM_GROUPS}.{index}")
        for index, group in enumerate(state_dict["param_groups"])
    ]
    state = {
        str(param_id): split(param_state, f"{_OPTIM_STATE}.{param_id}")
        for param_id, param_state in state_dict["state"].items()
    }
    meta = {"optimizer": type(optimizer).__name__, "param_groups": groups, "state": state}
    _to_json(meta, "optimizer state", f"cannot store the state of {type(optimizer).__name__}")
    return tensors, meta


def _like(value: Any, template: Any) -> Any:
    """Undo JSON's tuple -> list where the live optimizer holds a tuple (e.g. AdamW ``betas``)."""
    if isinstance(template, tuple) and isinstance(value, list):
        return tuple(value)
    return value


def _take(tensors: Mapping[str, Tensor], key: str) -> Tensor:
    try:
        tensor = tensors[key]
    except KeyError:
        raise CheckpointError(
            f"cannot restore optimizer: tensor {key!r} is missing; pass the tensors returned by "
            "load_checkpoint for the same checkpoint as the optimizer metadata"
        ) from None
    # Copy, so that stepping the optimizer does not mutate the caller's tensors in place.
    return tensor.detach().clone()


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer,
    tensors: Mapping[str, Tensor],
    meta: Mapping[str, Any],
) -> None:
    """Restore ``optimizer`` from the output of :func:`optimizer_to_tensors` (after a save/load).

    Args:
        optimizer: an optimizer of the same class over the same parameter groups (same sizes,
            same order) as the one saved.
        tensors: a mapping holding the ``optim.*`` tensors (other keys are ignored); each is
            copied, then moved to its parameter's device by ``load_state_dict``.
        meta: the JSON half.

    Raises:
        CheckpointError: wrong optimizer class, malformed ``meta``, a missing tensor, or groups
            that do not match the optimizer's.
    """
    saved_class = meta.get("optimizer") if isinstance(meta, Mapping) else None
    if saved_class is not None and saved_class != type(optimizer).__name__:
        raise CheckpointError(
            f"cannot restore optimizer: the checkpoint holds {saved_class} state but the "
            f"optimizer is {type(optimizer).__name__}; build a {saved_class}, or start the "
            "optimizer from scratch"
        )
    try:
        groups_meta = list(meta["param_groups"])
        state_meta = dict(meta["state"])
        live_groups = optimizer.param_groups
        if len(groups_meta) != len(live_groups):
            raise CheckpointError(
                f"cannot restore {type(optimizer).__name__}: the checkpoint has "
                f"{len(groups_meta)} parameter group(s) but the optimizer has {len(live_groups)};"
                " build the optimizer with the same parameter groups as the saved run"
            )
        param_groups = []
        for index, (group_meta, live) in enumerate(zip(groups_meta, live_groups, strict=True)):
            group = {
                key: _like(value, live.get(key)) for key, value in group_meta["values"].items()
            }
            for key in group_meta["tensors"]:
                group[key] = _take(tensors, f"{_OPTIM_GROUPS}.{index}.{key}")
            param_groups.append(group)
        state: dict[int, dict[str, Any]] = {}
        for param_id, entry in state_meta.items():
            param_state = dict(entry["values"])
            for name in entry["tensors"]:
                param_state[name] = _take(tensors, f"{_OPTIM_STATE}.{param_id}.{name}")
            state[int(param_id)] = param_state
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(
            f"cannot restore {type(optimizer).__name__}: optimizer metadata is malformed "
            f"({exc!r}); pass the meta returned by optimizer_to_tensors (after the JSON round "
            "trip through save_checkpoint/load_checkpoint)"
        ) from exc
    try:
        optimizer.load_state_dict({"state": state, "param_groups": param_groups})
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"cannot restore {type(optimizer).__name__}: {exc}; build the optimizer over the "
            "same parameters, in the same groups and order, as the saved run"
        ) from exc
