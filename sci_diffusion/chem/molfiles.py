"""Molecule files: SMILES and SDF, read record by record, bad records reported, never raised.

One reader serves everyone. :func:`read_raw_records` finds the molecules of a file as text
(line and record numbers, names, bytes that are not UTF-8); :func:`read_smiles_file`,
:func:`read_sdf` and :func:`read_molecules` parse and sanitize them (:mod:`.sanitize`) and
report what fails, and the screening command (:mod:`.screen`) hands the same records to the
gate unparsed. :func:`input_format` tells the format from the file name
(:data:`SMILES_SUFFIXES`, :data:`SDF_SUFFIXES`, each optionally ``.gz``).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rdkit import Chem, rdBase

from sci_diffusion.io.errors import UserInputError

from .sanitize import condense_parse_log, rdkit_errors, sanitize

__all__ = [
    "BINARY_PEEK",
    "BINARY_SHARE",
    "SDF_SUFFIXES",
    "SMILES_SUFFIXES",
    "InputMolecule",
    "MoleculeProblem",
    "RawRecord",
    "UnknownFormatError",
    "binary_reason",
    "input_format",
    "non_text_share",
    "parse_smiles",
    "rdkit_errors",
    "read_molecules",
    "read_raw_records",
    "read_sdf",
    "read_smiles_file",
]

SMILES_SUFFIXES: tuple[str, ...] = (".smi", ".smiles", ".txt", ".csv")
"""SMILES files: one molecule a line (a ``.csv`` header selects the SMILES and name columns)."""
SDF_SUFFIXES: tuple[str, ...] = (".sdf", ".sd", ".mol")
"""SDF files: records separated by ``$$$$`` (a ``.mol`` file is one record without it)."""


class UnknownFormatError(UserInputError):
    """A file name with none of the known suffixes."""


def input_format(path: str | Path, *, default: str | None = None) -> str:
    """``"smiles"`` or ``"sdf"`` from the file name (case-insensitive; a ``.gz`` is ignored).

    Raises
    ------
    UnknownFormatError
        Any other suffix, unless a ``default`` format is given.
    """
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith(SMILES_SUFFIXES):
        return "smiles"
    if name.endswith(SDF_SUFFIXES):
        return "sdf"
    if default is not None:
        return default
    supported = ", ".join(SMILES_SUFFIXES + SDF_SUFFIXES)
    raise UnknownFormatError(f"{path}: unknown molecule file type; supported: {supported} (+ .gz)")


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
        return None, "SMILES parse error: " + condense_parse_log(log, "invalid SMILES")
    if mol.GetNumAtoms() == 0:
        return None, "empty molecule"
    return _sanitized(mol)


def _sanitized(mol: Chem.Mol) -> tuple[Chem.Mol | None, str | None]:
    """``(mol, None)`` once sanitized in place (:func:`.sanitize.sanitize`), else
    ``(None, reason)``; RDKit's log is kept quiet."""
    with rdBase.BlockLogs():
        step, reason, _ = sanitize(mol)
    return (None, reason) if step else (mol, None)


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
    binary : str
        Why the line (or a line of the record) is binary data rather than text — a NUL byte
        or another control character (:func:`binary_reason`) — else empty. Every reader
        rejects such a record with this reason; the file's other records are unaffected.
    """

    line: int
    record: int | None
    text: str
    name: str
    not_utf8: bool = False
    binary: str = ""


BINARY_PEEK = 65536
"""Bytes at the start of a file (after decompression) that decide whether it is text at all."""
BINARY_SHARE = 0.30
"""A file whose first :data:`BINARY_PEEK` bytes are more than this share non-text
(:func:`non_text_share`) is refused whole; below it, bad lines are rejected one by one."""
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # what errors="surrogateescape" makes of a bad byte
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f]")  # C0 controls but tab, newlines, \v, \f
_CONTROL_BYTES = bytes(range(0x00, 0x09)) + bytes(range(0x0E, 0x20)) + b"\x7f"


def non_text_share(sample: bytes) -> float:
    """The share of ``sample``'s bytes that are not text: control bytes other than tab,
    newlines, vertical tab and form feed (NUL included), and bytes that are not part of valid
    UTF-8 (an incomplete character at the very end, cut by the sample, counts as text)."""
    if not sample:
        return 0.0
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    text = codecs.getincrementaldecoder("utf-8")("surrogateescape").decode(sample, final=False)
    invalid = len(_ESCAPED_BYTE.findall(text))
    return (controls + invalid) / len(sample)


def binary_reason(line: str) -> str:
    """Why one decoded line is binary data, not text (empty if it is text): a NUL byte or
    another control character, with its 1-based column."""
    found = _CONTROL.search(line)
    if found is None:
        return ""
    column = found.start() + 1
    if "\x00" in line:
        return f"binary data: NUL byte at column {line.index(chr(0)) + 1}"
    return f"binary data: control character U+{ord(found.group()):04X} at column {column}"


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


def _decoded_lines(path: Path) -> Iterator[tuple[int, str, bool, str]]:
    """(line number, text without its newline, had non-UTF-8 bytes, binary reason) for each
    line; bad bytes read as U+FFFD and are flagged rather than failing the whole file. Only a
    file that is mostly binary (:data:`BINARY_SHARE`) raises."""
    _check_file(path)
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as handle:
        share = non_text_share(handle.read(BINARY_PEEK))
        if share > BINARY_SHARE:
            raise ValueError(
                f"{path}: looks like a binary file, not SMILES or SDF text ({share:.0%} of the "
                f"first {BINARY_PEEK // 1024} KiB are control bytes or invalid UTF-8; more than "
                f"{BINARY_SHARE:.0%} refuses a file, less rejects the bad lines one by one)"
            )
        handle.seek(0)
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape")
        for number, line in enumerate(text, start=1):
            line = line.rstrip("\r\n")
            binary = binary_reason(line)
            if _ESCAPED_BYTE.search(line) is None:
                yield number, line, False, binary
            else:
                line = line.encode(errors="surrogateescape").decode(errors="replace")
                yield number, line, True, binary


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
    for number, raw, not_utf8, binary in _decoded_lines(path):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if binary:  # never parsed: its cells could be anything
            first = False
            yield RawRecord(number, None, "", "", not_utf8, binary)
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


def _sdf_record(
    record: int, start: int, lines: list[str], not_utf8: bool, binary: str
) -> RawRecord:
    if binary:
        return RawRecord(start, record, "", "", not_utf8, binary)
    title = lines[0].strip() if lines else ""
    return RawRecord(start, record, "\n".join(lines), title, not_utf8)


def _sdf_records(path: Path) -> Iterator[RawRecord]:
    """One record per ``$$$$``-terminated block (a blank one too: it is counted and reported)."""
    record, start, lines, not_utf8, binary = 1, 1, [], False, ""
    for number, line, bad, control in _decoded_lines(path):
        if line.strip() == "$$$$":
            yield _sdf_record(record, start, lines, not_utf8, binary)
            record, start, lines, not_utf8, binary = record + 1, number + 1, [], False, ""
        else:
            lines.append(line)
            not_utf8 = not_utf8 or bad
            if control and not binary:
                binary = f"line {number}: {control}"
    if any(line.strip() for line in lines):  # a last record without its "$$$$"
        yield _sdf_record(record, start, lines, not_utf8, binary)


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
        An unknown ``fmt``, or a binary file: more than :data:`BINARY_SHARE` of the first
        :data:`BINARY_PEEK` bytes are not text (:func:`non_text_share`). A binary *line* in a
        text file is a record with :attr:`RawRecord.binary` set instead.
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
        if raw.binary:
            mol, reason = None, raw.binary
        else:
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
        return None, "unreadable mol block: " + condense_parse_log(log, "RDKit could not parse it")
    mol, reason = _sanitized(mol)
    if mol is None:
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
        if raw.binary:
            mol, reason = None, raw.binary
        else:
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
    """:func:`read_sdf` for SDF files (:data:`SDF_SUFFIXES`), else :func:`read_smiles_file`
    (a file of any other name is read as SMILES)."""
    if input_format(path, default="smiles") == "sdf":
        return read_sdf(path)
    return read_smiles_file(path)
