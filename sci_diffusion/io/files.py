"""Atomic file writes with one permission policy, for every layer of the package.

Every file the package writes goes through a hidden temp file in the destination folder
(``.tmp-<name>.*``) that is fsync'ed and then ``os.replace``'d onto its name, so a reader never
sees a half-written file and a failure leaves nothing new behind. Files get the mode a plain
``open()`` would give them: ``0o666`` minus the process umask (``mkstemp``'s ``0600`` would
make shared run folders unreadable to colleagues; ignoring the umask would override a user
who asked for private files).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` is racy across threads)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def file_mode() -> int:
    """The mode of every file we write: what ``open()`` would create (``0o666 & ~umask``)."""
    return 0o666 & ~current_umask()


def fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (POSIX only; best effort)."""
    if os.name != "posix":
        return
    # Some filesystems refuse to fsync directories; the file itself is already in place.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def temp_path(out_dir: Path, name: str) -> Iterator[Path]:
    """A fresh hidden temp file in ``out_dir`` (``.tmp-<name>.*``, mode :func:`file_mode`) for a
    writer that fills it by path (HDF5, SDF, video, safetensors); the caller then
    ``os.replace``'s it onto ``out_dir / name``. The temp file is removed if the block raises.
    Writers that recreate the file (e.g. ``safetensors.save_file``) should call
    :func:`publish` instead of ``os.replace`` so the mode is applied again."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{name}.", suffix=Path(name).suffix, dir=out_dir)
    os.close(fd)
    os.chmod(tmp, file_mode())
    try:
        yield Path(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """A fresh hidden folder next to ``path`` (``.tmp-<name>.*``) for a writer that fills a
    whole tree; when the block succeeds it gets the mode a plain ``mkdir`` would give
    (``0o777`` minus the umask) and is renamed onto ``path``, so readers never see a half
    tree. ``path`` must not exist or be an empty folder (``FileExistsError`` otherwise,
    before anything is written). If the block raises, the folder and everything in it are
    removed.

    >>> with atomic_directory(Path("out/dataset")) as tmp:  # doctest: +SKIP
    ...     (tmp / "info.json").write_text("{}")
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} exists and is not an empty folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}.", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())
        if path.is_dir():
            path.rmdir()  # empty (checked above); a folder that filled meanwhile raises here
        os.replace(tmp, path)
        fsync_directory(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(tmp: Path, path: Path) -> Path:
    """Give ``tmp`` the package's file mode, fsync it and rename it onto ``path``."""
    os.chmod(tmp, file_mode())
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_directory(Path(path).parent)
    return Path(path)


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open()`` for writing whose result appears at ``path`` only when the block succeeds.

    >>> with atomic_open(Path("out/report.md")) as f:  # doctest: +SKIP
    ...     f.write("# report\\n")
    """
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_open writes whole files; mode must contain 'w', got {mode!r}")
    path = Path(path)
    with temp_path(path.parent, path.name) as tmp:
        with open(tmp, mode.replace("x", "w"), **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        publish(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, then rename)."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_json_atomic(path: Path, data: Any, *, allow_nan: bool = True) -> None:
    """JSON (indented, sorted keys) via :func:`write_text_atomic`; ``allow_nan=False`` refuses
    NaN/inf values with a ``ValueError`` before anything is written."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str, allow_nan=allow_nan)
    write_text_atomic(path, text + "\n")
