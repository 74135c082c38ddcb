"""Other robot-learning data formats <-> our demonstration sets (:mod:`..demos`).

* :func:`import_lerobot` / :func:`export_lerobot`: LeRobot v3.0 folders (``meta/info.json``,
  parquet episode and frame tables, one MP4 stream per camera), read and written with pyarrow
  and PyAV, without the ``lerobot`` package.
* :func:`import_robomimic`: robomimic HDF5 files (``data/demo_<k>/obs/...``, ``actions``,
  ``env_args``).

Every importer reads and checks the whole source before it writes, and writes ``demos.hdf5`` +
``meta.json`` all-or-nothing; the exporter fills a hidden folder and renames it into place.
Problems raise :class:`DataFormatError` (a :class:`~..demos.DemoFormatError`, so a user
error: exit code 2 on the command line) naming the file and the field. Command line:
``sci-diffusion demos import=<path> format=lerobot|robomimic out=<dir> [task=<task>]`` and
``sci-diffusion demos export=<demo dir> format=lerobot out=<dir>``; field mapping in
``docs/robotics.md``, "Data formats".
"""

from __future__ import annotations

from ._common import DataFormatError
from .lerobot import export_lerobot, import_lerobot
from .robomimic import import_robomimic

__all__ = ["FORMATS", "DataFormatError", "export_lerobot", "import_lerobot", "import_robomimic"]

FORMATS = ("lerobot", "robomimic")
"""Formats ``sci-diffusion demos import=`` reads (``export=`` writes ``lerobot``)."""
