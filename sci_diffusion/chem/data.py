"""Molecule data sets shipped by PyPI packages: QM9 (from ``qm9pack``), MOSES (from ``molsets``).

User SMILES/SDF files are read by :mod:`.molfiles` (the readers that lived here still work from
here, with a deprecation warning); data sets are looked up by name in :mod:`.datasets`.

Nothing is downloaded: QM9 and MOSES are read from the data files that their PyPI packages
ship. Neither package is imported (``import qm9pack`` needs ``pkg_resources``, which new
setuptools removed; ``import moses`` fails with pandas >= 2); only their install locations are
looked up with :func:`importlib.util.find_spec`.

QM9 split
---------
The train/val/test split (100,000 / 17,748 / 13,083 molecules, EDM's sizes) is defined without
any random number generator, so no numpy or torch version can change it: molecules are ordered
by ``sha256(mol_id)`` (hex digest, ``mol_id`` such as ``"dsgdb9nsd_000001"``) and the first
100,000 are train, the next 17,748 val, the rest test. :data:`QM9_SPLIT_FINGERPRINT` pins the
result; see :func:`split_fingerprint` for how it is computed.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sci_diffusion.io.cache import CACHE_ENV as _ENV_CACHE  # noqa: F401 (old name)
from sci_diffusion.io.cache import cache_dir
from sci_diffusion.io.files import write_json_atomic

from ._deprecated import moved_names

#: QM9 molecules in qm9pack: 133,885 GDB-9 molecules minus the 3,054 that failed QM9's
#: geometry consistency check.
QM9_SIZE = 130_831
#: EDM's split sizes (Hoogeboom et al. 2022), also used by GeoLDM and MiDi.
QM9_SPLIT_SIZES: Mapping[str, int] = {"train": 100_000, "val": 17_748, "test": 13_083}
#: Bump when the split recipe changes (it names the cache file).
QM9_SPLIT_VERSION = 1
#: :func:`split_fingerprint` of the split built from qm9pack's files; a test pins it.
QM9_SPLIT_FINGERPRINT = "ecc8affaa59cd0242752e9c0ce62b9a232bf3e7900b93a815403a08b4ea5225e"
MOSES_SPLITS = ("train", "test", "test_scaffolds")
#: Data rows in molsets' files (a header line precedes them).
MOSES_SIZES: Mapping[str, int] = {"train": 1_584_663, "test": 176_074, "test_scaffolds": 176_225}

_QM9_FILES = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")


# --------------------------------------------------------------------------- cache and files


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> dict[str, str | int]:
    """Name, size and SHA-256 of a file, for cache keys (memoised per size and mtime)."""
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _DIGESTS:
        h = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        _DIGESTS[memo] = h.hexdigest()
    return {"name": path.name, "size": stat.st_size, "sha256": _DIGESTS[memo]}


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {package!r} is not installed; {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def qm9_source_files() -> list[Path]:
    """The three QM9 CSV files shipped by ``qm9pack`` (found without importing it)."""
    root = _package_dir("qm9pack", "pip install qm9pack (or the 'chem' extra)")
    return [root / "data" / name for name in _QM9_FILES]


def moses_dir() -> Path:
    """The installed ``moses`` package folder (molsets; found without importing it)."""
    return _package_dir("moses", "pip install --no-deps molsets")


def moses_source_file(split: str) -> Path:
    """molsets' gzipped CSV (one ``SMILES`` column) for ``train``, ``test`` or
    ``test_scaffolds`` (found without importing ``moses``)."""
    if split not in MOSES_SPLITS:
        raise ValueError(f"MOSES split must be one of {MOSES_SPLITS}, got {split!r}")
    return moses_dir() / "dataset" / "data" / f"{split}.csv.gz"


# --------------------------------------------------------------------------------------- QM9


@dataclass(frozen=True)
class QM9Record:
    """One QM9 molecule.

    Attributes
    ----------
    mol_id : str
        Stable id from QM9's file name, e.g. ``"dsgdb9nsd_000001"``.
    index : int
        GDB-9 index, 1..133885 (3,054 are absent).
    smiles : str
        qm9pack's ``SMILES`` column: the GDB-17 SMILES (Kekulé form, no stereo). 443
        molecules are zwitterions (one cation and one anion, net charge 0).
    inchi : str
        qm9pack's ``InChi`` column (includes stereo layers from the relaxed geometry).
    elements : np.ndarray or None
        (N,) ``<U2`` element symbols, hydrogens included; None if loaded without coordinates.
    positions : np.ndarray or None
        (N, 3) float64 B3LYP/6-31G(2df,p) coordinates in Å, rows matching ``elements``.
        The atom order is the XYZ file's, not the SMILES's.
    """

    mol_id: str
    index: int
    smiles: str
    inchi: str
    elements: np.ndarray | None = None
    positions: np.ndarray | None = None


def _read_qm9_table(coordinates: bool, nrows: int | None = None):
    """qm9pack's three CSVs as one pandas table (the first ``nrows`` rows if given)."""
    import pandas as pd

    columns = ["XYZ_file", "Index", "SMILES", "InChi"]
    if coordinates:
        columns += ["Elements", "XYZ_Ang"]
    frames = []
    for path in qm9_source_files():
        left = None if nrows is None else nrows - sum(len(f) for f in frames)
        if left is not None and left <= 0:
            break
        frames.append(pd.read_csv(path, usecols=columns, nrows=left))
    return pd.concat(frames, ignore_index=True)


@functools.lru_cache(maxsize=2)
def _qm9_ids(sources: str) -> tuple[list[str], list[int]]:
    """(mol ids, GDB-9 indices) of all molecules; ``sources`` (their digests) keys the memo."""
    table = _read_qm9_table(coordinates=False)
    return [f.removesuffix(".xyz") for f in table["XYZ_file"]], table["Index"].tolist()


def _parse_elements(text: str) -> np.ndarray:
    # "['C','H','H']" -> array(['C', 'H', 'H'])
    return np.array(text.strip("[]").replace("'", "").split(","), dtype="<U2")


def _parse_positions(text: str) -> np.ndarray:
    # "[[x,y,z],[x,y,z]]"; not JSON (numbers such as "0." occur), so split on commas.
    return np.array(text.replace("[", "").replace("]", "").split(","), dtype=np.float64).reshape(
        -1, 3
    )


def load_qm9(
    split: str | None = None, *, limit: int | None = None, coordinates: bool = True
) -> list[QM9Record]:
    """Load QM9 molecules from qm9pack's files.

    Parameters
    ----------
    split : {"train", "val", "test"} or None
        A part of :func:`qm9_split` (in its SHA-256 order, so a ``limit`` gives an unbiased
        subset); None loads all 130,831 molecules in GDB-9 index order.
    limit : int, optional
        Keep only the first ``limit`` molecules.
    coordinates : bool
        Also parse element symbols and coordinates (about 1 s more for all of QM9).

    Returns
    -------
    list of QM9Record
    """
    table = _read_qm9_table(coordinates, nrows=limit if split is None else None)
    if split is None:
        rows = np.arange(len(table))
    else:
        row_of = {int(index): row for row, index in enumerate(table["Index"])}
        rows = np.array([row_of[i] for i in qm9_split().indices(split)], dtype=np.int64)
    rows = rows[:limit] if limit is not None else rows
    files, indices = table["XYZ_file"].to_numpy(), table["Index"].to_numpy()
    smiles, inchi = table["SMILES"].to_numpy(), table["InChi"].to_numpy()
    if coordinates:
        elements, xyz = table["Elements"].to_numpy(), table["XYZ_Ang"].to_numpy()
    return [
        QM9Record(
            mol_id=str(files[r]).removesuffix(".xyz"),
            index=int(indices[r]),
            smiles=str(smiles[r]),
            inchi=str(inchi[r]),
            elements=_parse_elements(elements[r]) if coordinates else None,
            positions=_parse_positions(xyz[r]) if coordinates else None,
        )
        for r in rows
    ]


# ------------------------------------------------------------------------------ QM9 split


@dataclass(frozen=True)
class QM9Split:
    """QM9 train/val/test parts as tuples of GDB-9 indices, each in SHA-256 order."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]

    def indices(self, name: str) -> tuple[int, ...]:
        """The GDB-9 indices of part ``name`` (``train``, ``val`` or ``test``)."""
        if name not in QM9_SPLIT_SIZES:
            raise ValueError(f"QM9 split must be one of {tuple(QM9_SPLIT_SIZES)}, got {name!r}")
        return getattr(self, name)

    def as_dict(self) -> dict[str, list[int]]:
        return {name: list(self.indices(name)) for name in QM9_SPLIT_SIZES}

    @property
    def fingerprint(self) -> str:
        return split_fingerprint(self.as_dict())


def split_fingerprint(parts: Mapping[str, Sequence[int]]) -> str:
    """SHA-256 of a split, recomputable anywhere in a few lines of Python.

    ``sha256(json.dumps({name: [int, ...]}, sort_keys=True, separators=(",", ":")))`` over the
    ASCII encoding; the lists keep their order, so the fingerprint pins order and membership.
    """
    canonical = {name: [int(i) for i in part] for name, part in parts.items()}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def compute_qm9_split(mol_ids: Sequence[str], indices: Sequence[int]) -> QM9Split:
    """The split recipe: order by ``sha256(mol_id)`` and cut at EDM's sizes.

    Parameters
    ----------
    mol_ids : sequence of str
        (M,) stable ids, e.g. ``"dsgdb9nsd_000001"``; M must be 130,831.
    indices : sequence of int
        (M,) the GDB-9 index of each id; these are what the split lists.
    """
    if len(mol_ids) != QM9_SIZE or len(indices) != QM9_SIZE:
        raise ValueError(f"the QM9 split needs all {QM9_SIZE} molecules, got {len(mol_ids)}")
    keyed = sorted(
        (hashlib.sha256(m.encode("ascii")).hexdigest(), m, int(i))
        for m, i in zip(mol_ids, indices, strict=True)
    )
    order = [i for _, _, i in keyed]
    n_train, n_val = QM9_SPLIT_SIZES["train"], QM9_SPLIT_SIZES["val"]
    return QM9Split(
        train=tuple(order[:n_train]),
        val=tuple(order[n_train : n_train + n_val]),
        test=tuple(order[n_train + n_val :]),
    )


def qm9_split_path() -> Path:
    """Where :func:`qm9_split` saves the split (JSON lists of GDB-9 indices)."""
    return cache_dir() / "qm9" / f"split_v{QM9_SPLIT_VERSION}.json"


def _load_saved_split(path: Path, sources: list[dict]) -> QM9Split | None:
    """The saved split if it is intact and built from the current sources, else None."""
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
        split = QM9Split(**{name: tuple(map(int, saved[name])) for name in QM9_SPLIT_SIZES})
        stored = saved["fingerprint"]
    except (ValueError, KeyError, TypeError) as err:
        reason = f"unreadable ({type(err).__name__}: {err})"
    else:
        if split.fingerprint == stored:
            return split if saved.get("sources") == sources else None
        reason = "its fingerprint does not match its lists"
    warnings.warn(f"QM9 split file {path} is corrupted: {reason}; rebuilding it", stacklevel=3)
    return None


def qm9_split() -> QM9Split:
    """The fixed QM9 split, loaded from the cache or built (about 1 s) and saved there.

    The saved JSON (:func:`qm9_split_path`) holds ``train``/``val``/``test`` lists of GDB-9
    indices, the ``fingerprint`` and the source files' sizes and SHA-256s. A file that fails
    its fingerprint is rebuilt with a warning; one built from other source files is rebuilt.
    A split that differs from :data:`QM9_SPLIT_FINGERPRINT` (changed qm9pack data) warns.
    """
    sources = [file_digest(p) for p in qm9_source_files()]
    path = qm9_split_path()
    split = _load_saved_split(path, sources)
    if split is None:
        split = compute_qm9_split(*_qm9_ids(json.dumps(sources)))
        record = {
            "version": QM9_SPLIT_VERSION,
            "recipe": "sort by sha256(mol_id) hex digest; cut 100000/17748/13083",
            "fingerprint": split.fingerprint,
            "sources": sources,
            **split.as_dict(),
        }
        write_json_atomic(path, record)
    if split.fingerprint != QM9_SPLIT_FINGERPRINT:
        warnings.warn(
            f"the QM9 split ({split.fingerprint[:12]}...) differs from the documented one "
            f"({QM9_SPLIT_FINGERPRINT[:12]}...): qm9pack's data files have changed, so "
            "results are not comparable with published numbers of this project",
            stacklevel=2,
        )
    return split


# ------------------------------------------------------------------------------------- MOSES


def load_moses(split: str = "train", *, limit: int | None = None) -> list[str]:
    """MOSES SMILES of one split, in file order.

    Parameters
    ----------
    split : {"train", "test", "test_scaffolds"}
    limit : int, optional
        Read only the first ``limit`` rows.

    Returns
    -------
    list of str
        (M,) SMILES; M is :data:`MOSES_SIZES` ``[split]`` without a limit.
    """
    import pandas as pd

    frame = pd.read_csv(moses_source_file(split), usecols=["SMILES"], nrows=limit)
    return frame["SMILES"].astype(str).tolist()


def count_moses(split: str = "train") -> int:
    """Number of SMILES rows in a MOSES split file (lines minus the header; no parsing)."""
    with gzip.open(moses_source_file(split), "rb") as f:
        return sum(1 for _ in f) - 1


# -------------------------------------------------------------------------------- user files

#: The file readers moved to :mod:`.molfiles`; these names still work here, with a warning.
__getattr__ = moved_names(
    __name__,
    {
        name: f"sci_diffusion.chem.molfiles:{name}"
        for name in (
            "InputMolecule",
            "MoleculeProblem",
            "RawRecord",
            "parse_smiles",
            "rdkit_errors",
            "read_molecules",
            "read_raw_records",
            "read_sdf",
            "read_smiles_file",
        )
    },
)
