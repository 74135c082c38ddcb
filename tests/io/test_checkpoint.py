"""Checkpoints: round trip, atomicity, verification, RNG and optimizer state, resuming."""

from __future__ import annotations

import json
import random
import re
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch

from sci_diffusion.io.checkpoint import (
    CheckpointError,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "f32": torch.randn(3, 4, generator=g),
        "bf16": torch.randn(5, generator=g).to(torch.bfloat16),
        "i64": torch.arange(-3, 9, dtype=torch.int64).reshape(2, 6),
        "u8": torch.randint(0, 256, (7,), generator=g, dtype=torch.uint8),
        "bool": torch.tensor([[True, False], [False, True]]),
        "scalar": torch.tensor(2.5),
        "noncontig": torch.randn(4, 3, generator=g).t(),
    }


META = {"step": 100, "config": {"lr": 1e-4, "betas": [0.9, 0.999], "name": "ddpm"}, "ok": True}


def _header_end(path: Path) -> int:
    (size,) = struct.unpack("<Q", path.read_bytes()[:8])
    return 8 + size


def test_round_trip_dtypes_and_nested_metadata(tmp_path: Path) -> None:
    tensors = _tensors()
    path = save_checkpoint(tmp_path / "ckpt" / "a.safetensors", tensors, META)
    assert path == tmp_path / "ckpt" / "a.safetensors" and path.is_file()
    loaded, meta = load_checkpoint(path)
    assert meta == META
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype
        assert loaded[name].device.type == "cpu"
        assert torch.equal(loaded[name], tensor), name
        assert loaded[name].is_contiguous()
    # The content hash is deterministic: same content, same hash.
    second = save_checkpoint(tmp_path / "b.safetensors", tensors, META)
    with safetensors.safe_open(path, "pt") as f1, safetensors.safe_open(second, "pt") as f2:
        assert f1.metadata()["sha256"] == f2.metadata()["sha256"]
        assert f1.metadata()["format_version"] == "1"
        assert json.loads(f1.metadata()["sci_diffusion"]) == META


def test_unserialisable_metadata_refused_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "a.safetensors"
    with pytest.raises(CheckpointError, match=r"not JSON-serialisable.*\['loss'\]"):
        save_checkpoint(path, {"x": torch.zeros(2)}, {"step": 1, "loss": torch.tensor(1.0)})
    with pytest.raises(CheckpointError, match=r"not a torch\.Tensor"):
        save_checkpoint(path, {"x": [1, 2]}, {})  # type: ignore[dict-item]
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_failure_leaves_previous_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint(tmp_path / "step.safetensors", {"x": torch.ones(3)}, {"step": 1})
    before = path.read_bytes()

    def half_written(tensors, filename, metadata=None):  # type: ignore[no-untyped-def]
        Path(filename).write_bytes(b"partial garbage")
        raise RuntimeError("disk exploded midway")

    monkeypatch.setattr(safetensors.torch, "save_file", half_written)
    with pytest.raises(RuntimeError, match="disk exploded"):
        save_checkpoint(path, {"x": torch.zeros(3)}, {"step": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step.safetensors"]
    assert not list(tmp_path.glob(".tmp-*"))
    monkeypatch.undo()
    tensors, meta = load_checkpoint(path)
    assert meta == {"step": 1} and torch.equal(tensors["x"], torch.ones(3))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_truncated_file_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.safetensors", _tensors(), META)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_tampered_tensor_bytes_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.safetensors", _tensors(), META)
    data = bytearray(path.read_bytes())
    offset = _header_end(path) + 5
    assert offset < len(data)
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="hash mismatch"):
        load_checkpoint(path)


def test_tampered_metadata_refused(tmp_path: Path) -> None:
    tensors = _tensors()
    path = save_checkpoint(tmp_path / "a.safetensors", tensors, META)
    with safetensors.safe_open(path, "pt") as f:
        header = dict(f.metadata())
        stored = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    edited = json.loads(header["sci_diffusion"])
    edited["step"] = 999_999
    header["sci_diffusion"] = json.dumps(edited, sort_keys=True, separators=(",", ":"))
    safetensors.torch.save_file(stored, path, metadata=header)  # old sha256 kept
    with pytest.raises(CheckpointError, match="hash"):
        load_checkpoint(path)


def test_foreign_and_unknown_version_files_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"x": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="not a sci_diffusion checkpoint"):
        load_checkpoint(plain)
    safetensors.torch.save_file({"x": torch.zeros(2)}, plain, metadata={"other": "tool"})
    with pytest.raises(CheckpointError, match="not a sci_diffusion checkpoint"):
        load_checkpoint(plain)

    path = save_checkpoint(tmp_path / "a.safetensors", {"x": torch.zeros(2)}, {})
    with safetensors.safe_open(path, "pt") as f:
        header = dict(f.metadata())
    header["format_version"] = "2"
    safetensors.torch.save_file({"x": torch.zeros(2)}, path, metadata=header)
    with pytest.raises(CheckpointError, match="format_version '2'"):
        load_checkpoint(path)


def _draws() -> tuple[list[float], np.ndarray, torch.Tensor]:
    return (
        [random.random(), random.gauss(0.0, 1.0), random.random()],
        np.concatenate([np.random.rand(3), np.random.randn(3)]),  # noqa: NPY002
        torch.cat([torch.rand(3), torch.randn(3)]),
    )


def test_rng_state_round_trip_through_checkpoint(tmp_path: Path) -> None:
    random.gauss(0.0, 1.0)  # leave a cached gaussian in both python and numpy
    np.random.randn()  # noqa: NPY002
    state = rng_state()
    assert json.loads(json.dumps(state)) == state  # JSON-serialisable, no tensors
    expected = _draws()
    path = save_checkpoint(tmp_path / "rng.safetensors", {}, {"rng": state})
    _draws()  # advance everything
    _, meta = load_checkpoint(path)
    set_rng_state(meta["rng"])
    got = _draws()
    assert got[0] == expected[0]
    np.testing.assert_array_equal(got[1], expected[1])
    assert torch.equal(got[2], expected[2])


def test_malformed_rng_state_changes_nothing() -> None:
    early = rng_state()
    _draws()
    current = rng_state()
    # Valid python and torch parts from an earlier point, but a numpy part that fails after
    # python's has been applied: the whole call must be undone.
    broken = {**early, "numpy": {**early["numpy"], "key": [1, 2, 3]}}
    with pytest.raises(CheckpointError, match="RNG state"):
        set_rng_state(broken)
    got = _draws()
    set_rng_state(current)
    expected = _draws()
    assert got[0] == expected[0]
    np.testing.assert_array_equal(got[1], expected[1])
    assert torch.equal(got[2], expected[2])


def _model_and_optimizer(seed: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    decay = [p for n, p in model.named_parameters() if n.endswith("weight")]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias")]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-2,
        betas=(0.8, 0.95),
    )
    return model, optimizer


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(16, 4, generator=g), torch.randn(16, 2, generator=g)
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()


def test_optimizer_round_trip_is_bitwise(tmp_path: Path) -> None:
    model, optimizer = _model_and_optimizer(seed=0)
    for seed in range(3):
        _step(model, optimizer, seed)

    optim_tensors, optim_meta = optimizer_to_tensors(optimizer)
    assert "optim.state.0.exp_avg" in optim_tensors
    weights = {f"model.{k}": v for k, v in model.state_dict().items()}
    path = save_checkpoint(
        checkpoint_path(tmp_path, 3), {**weights, **optim_tensors}, {"optimizer": optim_meta}
    )

    # Reference: keep going without save/restore.
    for seed in (10, 11):
        _step(model, optimizer, seed)

    restored_model, restored_optimizer = _model_and_optimizer(seed=123)  # different init
    tensors, meta = load_checkpoint(path)
    restored_model.load_state_dict(
        {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    )
    optimizer_from_tensors(restored_optimizer, tensors, meta["optimizer"])
    assert restored_optimizer.param_groups[0]["betas"] == (0.8, 0.95)
    for seed in (10, 11):
        _step(restored_model, restored_optimizer, seed)

    for (name, a), b in zip(
        model.state_dict().items(), restored_model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    reference = optimizer.state_dict()
    restored = restored_optimizer.state_dict()
    assert reference["param_groups"] == restored["param_groups"]
    for param_id, state in reference["state"].items():
        for name, value in state.items():
            assert torch.equal(value, restored["state"][param_id][name]), (param_id, name)
    # The caller's loaded tensors were copied, not stepped in place.
    assert torch.equal(
        tensors["optim.state.0.exp_avg"], load_checkpoint(path)[0]["optim.state.0.exp_avg"]
    )


def test_optimizer_class_mismatch_refused() -> None:
    model, optimizer = _model_and_optimizer(seed=0)
    _step(model, optimizer, 0)
    tensors, meta = optimizer_to_tensors(optimizer)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(CheckpointError, match="AdamW state but the optimizer is SGD"):
        optimizer_from_tensors(sgd, tensors, meta)
    _, fresh = _model_and_optimizer(seed=0)
    del tensors["optim.state.1.exp_avg_sq"]
    with pytest.raises(CheckpointError, match=re.escape("optim.state.1.exp_avg_sq")):
        optimizer_from_tensors(fresh, tensors, meta)


def test_checkpoint_paths_and_listing(tmp_path: Path) -> None:
    assert checkpoint_path(tmp_path, 100) == tmp_path / "step_00000100.safetensors"
    with pytest.raises(CheckpointError):
        checkpoint_path(tmp_path, -1)
    assert list_checkpoints(tmp_path / "missing") == []
    assert latest_checkpoint(tmp_path / "missing") is None
    for step in (2000, 5, 123_456_789):
        save_checkpoint(checkpoint_path(tmp_path, step), {"x": torch.tensor(step)}, {})
    (tmp_path / ".tmp-step_00009999.safetensors.abc").write_bytes(b"junk")
    (tmp_path / "notes.txt").write_text("hi")
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step_00000005.safetensors",
        "step_00002000.safetensors",
        "step_123456789.safetensors",
    ]


def test_latest_checkpoint_skips_corrupt_newest(tmp_path: Path) -> None:
    for step in (100, 200, 300):
        save_checkpoint(checkpoint_path(tmp_path, step), {"w": torch.full((4,), step)}, {})
    newest = checkpoint_path(tmp_path, 300)
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) - 3])  # killed mid-write without atomic rename
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert latest_checkpoint(tmp_path / "nothing-here") is None
    with pytest.warns(RuntimeWarning, match="step_00000300"):
        latest = latest_checkpoint(tmp_path)
    assert latest == checkpoint_path(tmp_path, 200)
    tensors, _ = load_checkpoint(latest)
    assert torch.equal(tensors["w"], torch.full((4,), 200))


def test_latest_checkpoint_all_good_does_not_warn(tmp_path: Path) -> None:
    for step in (1, 2):
        save_checkpoint(checkpoint_path(tmp_path, step), {"w": torch.zeros(1)}, {"step": step})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 2)
