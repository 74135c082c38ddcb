"""Generic I/O every layer may use: atomic files with one permission policy, the cache folder,
run directories, checkpoints and videos. Imports no domain code (no MuJoCo, RDKit or tasks)."""

from .cache import cache_dir
from .files import (
    atomic_directory,
    atomic_open,
    file_mode,
    publish,
    temp_path,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)

__all__ = [
    "atomic_directory",
    "atomic_open",
    "cache_dir",
    "file_mode",
    "publish",
    "temp_path",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
