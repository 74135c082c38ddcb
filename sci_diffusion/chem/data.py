"""Molecule data: QM9 (from ``qm9pack``), MOSES (from ``molsets``), user SMILES/SDF files.

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

import contextlib
import csv
import functools
import gzip
import hashlib
import importlib.util
import io
import json
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sci_diffusion.io.cache import CACHE_ENV as _ENV_CACHE  # noqa: F401 (old name)
from sci_diffusion.io.cache import cache_dir
from sci_diffusion.io.files import write_json_atomic

if TYPE_CHECKING:  # RDKit and pandas are imported where used: they are slow to import
    from rdkit import Chem

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
_TIMESTAMP = re.compile(r"^\[\d\d:\d\d:\d\d\] ")


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


def moses_source_file(split: str) -> Path:
    """molsets' gzipped CSV (one ``SMILES`` column) for ``train``, ``test`` or
    ``test_scaffolds`` (found without importing ``moses``)."""
    if split not in MOSES_SPLITS:
        raise ValueError(f"MOSES split must be one of {MOSES_SPLITS}, got {split!r}")
    root = _package_dir("moses", "pip install --no-deps molsets")
    return root / "dataset" / "data" / f"{split}.csv.gz"


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


@dataclass(frozen=True)
class MoleculeProblem:
    """A molecule that was skipped, and why.

    Attributes
    ----------
    source : str
        The file (or data set) it came from.
    line : int or None
        1-based line of the SMILES, or the first line of the SDF record.
    record : int or None
        1-based SDF record number, or a data set row's ``source_index``.
    text : str
        The offending SMILES or the record's title line.
    reason : str
        RDKit's error text where there is one.
    """

    source: str
    line: int | None
    record: int | None
    text: str
    reason: str

    def __str__(self) -> str:
        where = ", ".join(
            f"{label} {value}"
            for label, value in (("record", self.record), ("line", self.line))
            if value is not None
        )
        return f"{self.source} ({where}): {self.reason} [{self.text}]"


@dataclass(frozen=True)
class InputMolecule:
    """A sanitized molecule read from a user file, with where it came from."""

    mol: Chem.Mol
    name: str
    line: int
    record: int | None = None


@contextlib.contextmanager
def rdkit_errors() -> Iterator[list[str]]:
    """Collect RDKit's error log lines (timestamps removed) instead of printing them.

    Warnings are silenced for the duration. On RDKit builds without ``CaptureErrorLog`` the
    list stays empty and errors are silenced too; callers fall back to exception texts.
    """
    from rdkit import rdBase

    lines: list[str] = []
    if not hasattr(rdBase, "CaptureErrorLog"):
        with rdBase.BlockLogs():
            yield lines
        return
    # BlockLogs first: it mutes warnings; the capture, entered after it, still gets errors.
    with rdBase.BlockLogs(), rdBase.CaptureErrorLog() as capture:
        yield lines
    lines += [_TIMESTAMP.sub("", ln) for ln in capture.messages.splitlines() if ln.strip()]


def _condense_log(log: list[str], fallback: str) -> str:
    """RDKit's multi-line parse error as one line (the echoed input and caret line dropped)."""
    prefix = "SMILES Parse Error:"
    parts = [ln.removeprefix(prefix).strip().rstrip(":") for ln in log if ln.startswith(prefix)]
    specific = [p for p in parts if not p.startswith("Failed parsing")]
    return "; ".join(specific or parts) or "; ".join(log) or fallback


def _sanitize(mol: Chem.Mol) -> str | None:
    """Sanitize in place; the error text on failure, None on success."""
    from rdkit import Chem

    try:
        Chem.SanitizeMol(mol)
    except Exception as err:  # RDKit raises several exception types; all mean "invalid"
        return str(err) or type(err).__name__
    return None


def parse_smiles(smiles: str) -> tuple[Chem.Mol | None, str | None]:
    """Parse and sanitize a SMILES without printing RDKit's log.

    Returns
    -------
    mol : rdkit.Chem.Mol or None
        The sanitized molecule, None on failure.
    reason : str or None
        Why it failed (RDKit's parse error or sanitization message), None on success.
    """
    from rdkit import Chem

    with rdkit_errors() as log:
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
    if mol is None:
        return None, "SMILES parse error: " + _condense_log(log, "invalid SMILES")
    if mol.GetNumAtoms() == 0:
        return None, "empty molecule"
    with rdkit_errors():
        reason = _sanitize(mol)
    return (None, reason) if reason else (mol, None)


# ------------------------------------------------------------------- user files: raw records


@dataclass(frozen=True)
class RawRecord:
    """One molecule's text as a SMILES or SDF file holds it, before any parsing.

    Shared by the sanitizing readers here and the screening reader (:mod:`.screen`, which leaves
    parsing to the gate), so both see the same molecules at the same positions.

    Attributes
    ----------
    line : int
        1-based line of the SMILES, or the first line of the SDF record.
    record : int or None
        1-based SDF record number; None for a SMILES line.
    text : str
        The SMILES (empty if the line has none), or the SDF record's lines joined by ``"\\n"``.
    name : str
        The name column or the SDF title line, stripped; empty if there is none.
    not_utf8 : bool
        Some bytes were not UTF-8 and read as U+FFFD: lenient readers may keep the record,
        strict ones reject it.
    """

    line: int
    record: int | None
    text: str
    name: str
    not_utf8: bool = False


_BINARY_PEEK = 8192
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # what errors="surrogateescape" makes of a bad byte


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such file. Pass the path of a SMILES file (.smi/.txt/.csv, one "
            "SMILES per line, optional name after a space or comma) or an SDF file (.sdf)."
        )
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; pass a SMILES or SDF file inside it")


def _empty_error(path: Path, what: str) -> ValueError:
    return ValueError(
        f"{path} contains no molecules ({what}). Write one SMILES per line, optionally "
        "followed by a name (a .csv may start with a header naming a 'smiles' column), "
        "or pass an SDF file."
    )


def _decoded_lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, text without its newline, had non-UTF-8 bytes) for each line; bad bytes
    read as U+FFFD and are flagged rather than failing the whole file."""
    _check_file(path)
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as handle:
        if b"\0" in handle.read(_BINARY_PEEK):
            raise ValueError(f"{path}: looks like a binary file, not SMILES or SDF text")
        handle.seek(0)
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape")
        for number, line in enumerate(text, start=1):
            line = line.rstrip("\r\n")
            if _ESCAPED_BYTE.search(line) is None:
                yield number, line, False
            else:
                yield number, line.encode(errors="surrogateescape").decode(errors="replace"), True


def _header_columns(lowered: list[str]) -> tuple[int, int]:
    """(SMILES column, name column or -1) from a header row."""
    smiles_col = lowered.index("smiles")
    names = [i for i, c in enumerate(lowered) if c in ("name", "id", "title", "mol_id")]
    if names:
        return smiles_col, names[0]
    return smiles_col, (1 - smiles_col if len(lowered) == 2 else -1)


def _smiles_records(path: Path) -> Iterator[RawRecord]:
    """One record per non-blank, non-comment, non-header line (see :func:`read_smiles_file`)."""
    is_csv = ".csv" in path.suffixes
    smiles_col, name_col = 0, 1
    first = True
    for number, raw, not_utf8 in _decoded_lines(path):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if is_csv:
            cells = [c.strip() for c in next(csv.reader([line]))]
        else:
            cells = re.split(r"[\s,]+", line, maxsplit=1)
        lowered = [c.lower() for c in cells]
        # A header may only be the first content line ("SMILES" is not valid SMILES: no M).
        if first and "smiles" in lowered:
            smiles_col, name_col = _header_columns(lowered)
            first = False
            continue
        first = False
        smiles = cells[smiles_col] if smiles_col < len(cells) else ""
        name = cells[name_col] if 0 <= name_col < len(cells) else ""
        yield RawRecord(number, None, smiles, name, not_utf8)


def _sdf_record(record: int, start: int, lines: list[str], not_utf8: bool) -> RawRecord:
    title = lines[0].strip() if lines else ""
    return RawRecord(start, record, "\n".join(lines), title, not_utf8)


def _sdf_records(path: Path) -> Iterator[RawRecord]:
    """One record per ``$$$$``-terminated block (a blank one too: it is counted and reported)."""
    record, start, lines, not_utf8 = 1, 1, [], False
    for number, line, bad in _decoded_lines(path):
        if line.strip() == "$$$$":
            yield _sdf_record(record, start, lines, not_utf8)
            record, start, lines, not_utf8 = record + 1, number + 1, [], False
        else:
            lines.append(line)
            not_utf8 = not_utf8 or bad
    if any(line.strip() for line in lines):  # a last record without its "$$$$"
        yield _sdf_record(record, start, lines, not_utf8)


def read_raw_records(path: str | Path, fmt: str) -> Iterator[RawRecord]:
    """The molecules of a SMILES (``fmt="smiles"``) or SDF (``"sdf"``) file as unparsed text.

    The file format is that of :func:`read_smiles_file` and :func:`read_sdf`, which parse these
    records; the screening gate's reader passes them on unparsed instead. ``.gz`` files are
    decompressed, a leading BOM is dropped and any newline convention is accepted.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        No such file (raised, like the rest, when iteration starts).
    ValueError
        An unknown ``fmt``, or a NUL byte in the first 8 KiB: a binary file, not text.
    OSError, EOFError
        The file cannot be read (e.g. a broken ``.gz``).
    """
    if fmt not in ("smiles", "sdf"):
        raise ValueError(f"molecule file format must be 'smiles' or 'sdf', got {fmt!r}")
    path = Path(path)
    return _smiles_records(path) if fmt == "smiles" else _sdf_records(path)


# ---------------------------------------------------------------- user files: parsed readers


def read_smiles_file(path: str | Path) -> tuple[list[InputMolecule], list[MoleculeProblem]]:
    """Read a SMILES file; bad molecules are skipped and reported, never raised.

    One SMILES per line, optionally followed by a name after whitespace or a comma. Blank
    lines and lines starting with ``#`` are ignored. A first line naming a ``smiles`` column
    (case-insensitive) is a header; in a ``.csv`` it also selects the SMILES column and a
    ``name``/``id``/``title`` column. ``.gz`` files are decompressed.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    molecules : list of InputMolecule
        Sanitized molecules in file order; ``name`` defaults to ``"line <n>"``.
    problems : list of MoleculeProblem
        One per skipped line, with its line number and RDKit's reason.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file holds no SMILES lines at all, or is binary.
    """
    path = Path(path)
    molecules: list[InputMolecule] = []
    problems: list[MoleculeProblem] = []
    for raw in read_raw_records(path, "smiles"):
        mol, reason = parse_smiles(raw.text) if raw.text else (None, "no SMILES on this line")
        if mol is None:
            problems.append(MoleculeProblem(str(path), raw.line, None, raw.text, reason))
            continue
        name = raw.name or f"line {raw.line}"
        mol.SetProp("_Name", name)
        molecules.append(InputMolecule(mol, name, raw.line))
    if not molecules and not problems:
        raise _empty_error(path, "it is empty or has only blank, comment or header lines")
    return molecules, problems


def _sdf_fields(lines: list[str]) -> dict[str, str]:
    """SD data items (``> <NAME>`` then value lines up to a blank line) after ``M  END``."""
    fields: dict[str, str] = {}
    key, values = None, []
    for line in lines:
        header = re.match(r">.*<([^>]+)>", line)
        if header:
            key, values = header.group(1), []
        elif key is not None and line.strip():
            values.append(line)
        elif key is not None:
            fields[key], key = "\n".join(values), None
    if key is not None:
        fields[key] = "\n".join(values)
    return fields


def _mol_from_record(lines: list[str]) -> tuple[Chem.Mol | None, str | None]:
    """A sanitized molecule (hydrogens kept, SD fields as properties), or None and why."""
    from rdkit import Chem

    end = next((i for i, ln in enumerate(lines) if ln.startswith("M  END")), None)
    if end is None:
        return None, "no 'M  END' line: the record is truncated or not a mol block"
    with rdkit_errors() as log:
        mol = Chem.MolFromMolBlock("\n".join(lines[: end + 1]), sanitize=False, removeHs=False)
    if mol is None:
        return None, "unreadable mol block: " + _condense_log(log, "RDKit could not parse it")
    with rdkit_errors():
        reason = _sanitize(mol)
    if reason:
        return None, reason
    for key, value in _sdf_fields(lines[end + 1 :]).items():
        mol.SetProp(key, value)
    return mol, None


def read_sdf(path: str | Path) -> tuple[list[InputMolecule], list[MoleculeProblem]]:
    """Read an SDF file (``.sdf`` or ``.sdf.gz``); bad records are skipped and reported.

    Records are split on ``$$$$`` lines here, so each problem carries its record number and
    first line. Hydrogens are kept as written; SD data items become string properties.

    Returns
    -------
    molecules : list of InputMolecule
        Sanitized molecules; ``name`` is the title line or ``"record <k>"``.
    problems : list of MoleculeProblem
        One per skipped record, with RDKit's reason.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file holds no records, or is binary.
    """
    path = Path(path)
    molecules: list[InputMolecule] = []
    problems: list[MoleculeProblem] = []
    for raw in read_raw_records(path, "sdf"):
        mol, reason = _mol_from_record(raw.text.split("\n"))
        if mol is None:
            problems.append(MoleculeProblem(str(path), raw.line, raw.record, raw.name, reason))
            continue
        name = raw.name or f"record {raw.record}"
        mol.SetProp("_Name", name)
        molecules.append(InputMolecule(mol, name, raw.line, raw.record))
    if not molecules and not problems:
        raise _empty_error(path, "it is empty")
    return molecules, problems


def read_molecules(path: str | Path) -> tuple[list[InputMolecule], list[MoleculeProblem]]:
    """:func:`read_sdf` for ``.sdf``/``.sdf.gz``/``.mol`` files, else :func:`read_smiles_file`."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in (".sdf", ".mol", ".sd"):
        return read_sdf(path)
    return read_smiles_file(path)
