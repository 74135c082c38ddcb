"""Atomic writes: one permission policy, nothing left behind on failure, old import paths warn."""

from __future__ import annotations

import importlib
import os
import sys
import warnings

import pytest

from sci_diffusion.io import atomic_open, temp_path, write_json_atomic, write_text_atomic


def _mode(path) -> int:
    return os.stat(path).st_mode & 0o777


def test_written_files_get_the_mode_open_would_give(tmp_path):
    old = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        with temp_path(tmp_path, "b.bin") as tmp:
            tmp.write_bytes(b"1")
            os.replace(tmp, tmp_path / "b.bin")
        (tmp_path / "plain.txt").write_text("x")  # what a plain open() creates
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.txt") == _mode(tmp_path / "plain.txt") == 0o640
    assert _mode(tmp_path / "b.bin") == 0o640


def test_failure_leaves_neither_file_nor_temp(tmp_path):
    target = tmp_path / "out" / "m.json"
    with pytest.raises(ValueError, match="Out of range float"):
        write_json_atomic(target, {"x": float("nan")}, allow_nan=False)
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("half")
        raise RuntimeError("writer died")
    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_replacing_keeps_the_old_file_until_the_new_one_is_complete(tmp_path):
    target = tmp_path / "m.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("new")
        assert target.read_text() == "old"
        raise RuntimeError
    assert target.read_text() == "old"


def test_atomic_open_refuses_read_and_append_modes(tmp_path):
    with pytest.raises(ValueError, match="mode must contain 'w'"), atomic_open(tmp_path / "x", "a"):
        pass


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("sci_diffusion.train.checkpoint", "sci_diffusion.io.checkpoint", "load_checkpoint"),
        ("sci_diffusion.train.rundir", "sci_diffusion.io.rundir", "write_json_atomic"),
        ("sci_diffusion.train.sampling", "sci_diffusion.core.sampler_config", "run_sampler"),
    ],
)
def test_old_module_paths_still_work_and_warn(old, new, name):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message)
               for w in caught)  # fmt: skip
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_atomic_directory_appears_whole_or_not_at_all(tmp_path):
    from sci_diffusion.io import atomic_directory

    target = tmp_path / "tree"
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "half.bin").write_bytes(b"1")
        raise RuntimeError("writer died")
    assert list(tmp_path.iterdir()) == []  # no folder, no hidden temporary
    old = os.umask(0o027)
    try:
        target.mkdir()  # an empty folder may be replaced
        with atomic_directory(target) as tmp:
            (tmp / "a.txt").write_text("x")
    finally:
        os.umask(old)
    assert (target / "a.txt").read_text() == "x" and _mode(target) == 0o750
    with pytest.raises(FileExistsError), atomic_directory(target):
        pass  # a folder with content is never replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]
