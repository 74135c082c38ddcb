"""Screen a molecule file: read SMILES or SDF, run the gate, write the outputs.

:func:`screen_file` is what ``sci-diffusion screen in=<file> out=<dir>`` calls. Supported inputs
(optionally gzip-compressed, ``.gz``):

* SMILES files ``.smi``, ``.smiles``, ``.txt``: one molecule per line, the SMILES first and an
  optional name after whitespace; blank lines and lines starting with ``#`` are ignored, and so
  is a first line whose first word is ``smiles`` (a header).
* SDF files ``.sdf``, ``.sd``: records separated by ``$$$$``; the title line is the name.

Molecules are parsed without sanitization (sanitization is the gate's second check). A line or
record that cannot be read is not an error of the run: it is reported with its position
(``line 12``, ``record 3 (line 40)``) and reason in ``rejected.csv`` (failed check
``construction``) and in ``metrics.json`` (``input_errors``), and skipped. Only input that is
unusable as a whole raises :class:`ScreenInputError`. Files are read as text and parsed by
RDKit; nothing is unpickled.

This reader is deliberately minimal; a richer one (``sci_diffusion.chem.data``) may replace it.
"""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rdkit import Chem, rdBase

from .gate import (
    GateConfig,
    MoleculeInput,
    NotConstructed,
    canonical_smiles_set,
    run_gate,
)
from .outputs import write_outputs

SMILES_SUFFIXES: tuple[str, ...] = (".smi", ".smiles", ".txt")
SDF_SUFFIXES: tuple[str, ...] = (".sdf", ".sd")
MAX_REPORTED_INPUT_ERRORS = 20
"""``metrics.json`` lists this many unreadable inputs; ``rejected.csv`` has all of them."""


class ScreenInputError(ValueError):
    """The input file cannot be screened at all (missing, unknown format, binary, empty)."""


@dataclass
class InputBatch:
    """Molecules read from a file, ready for :func:`~sci_diffusion.chem.gate.run_gate`.

    Attributes
    ----------
    molecules
        SMILES strings, unsanitized RDKit molecules, or :class:`NotConstructed` for unreadable
        lines/records.
    names, sources
        Per molecule: its name (or ``None``) and position (``"line 3"``, ``"record 2 (line 9)"``).
    format
        ``"smiles"`` or ``"sdf"``.
    """

    molecules: list[MoleculeInput] = field(default_factory=list)
    names: list[str | None] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    format: str = "smiles"

    def add(self, molecule: MoleculeInput, name: str | None, source: str) -> None:
        self.molecules.append(molecule)
        self.names.append(name)
        self.sources.append(source)


def input_format(path: str | Path) -> str:
    """``"smiles"`` or ``"sdf"`` from the file name (a trailing ``.gz`` is ignored).

    Raises
    ------
    ScreenInputError
        For any other suffix.
    """
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith(SMILES_SUFFIXES):
        return "smiles"
    if name.endswith(SDF_SUFFIXES):
        return "sdf"
    supported = ", ".join(SMILES_SUFFIXES + SDF_SUFFIXES)
    raise ScreenInputError(f"{path}: unknown molecule file type; supported: {supported} (+ .gz)")


@contextlib.contextmanager
def _open_binary(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes (gunzipped for ``.gz``), after checking it looks like text; read
    errors (a truncated ``.gz``, permissions) become :class:`ScreenInputError`."""
    if not path.is_file():
        raise ScreenInputError(f"{path}: no such file")
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as handle:
            if b"\0" in handle.read(8192):
                raise ScreenInputError(f"{path}: looks like a binary file, not SMILES or SDF text")
            handle.seek(0)
            yield handle
    except (OSError, EOFError) as error:
        raise ScreenInputError(f"{path}: cannot read: {error}") from None


def _numbered_lines(handle: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(handle, start=1):
        yield number, line.rstrip(b"\r\n")


def read_smiles_file(path: str | Path) -> InputBatch:
    """Read a SMILES file (see the module docstring for the format).

    Parameters
    ----------
    path
        ``.smi``, ``.smiles`` or ``.txt`` file, optionally ``.gz``.
    """
    batch = InputBatch(format="smiles")
    header_possible = True
    with _open_binary(Path(path)) as handle:
        for number, raw in _numbered_lines(handle):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                batch.add(NotConstructed("not UTF-8 text"), None, f"line {number}")
                continue
            if not line or line.startswith("#"):
                continue
            smiles, *rest = line.split(maxsplit=1)
            if header_possible and smiles.lower() == "smiles":
                header_possible = False
                continue
            header_possible = False
            batch.add(smiles, " ".join(rest[0].split()) if rest else None, f"line {number}")
    return batch


def _parse_block(text: bytes) -> tuple[MoleculeInput, str | None]:
    """One SDF record's bytes to an unsanitized molecule (or :class:`NotConstructed`) and name."""
    try:
        block = text.decode("utf-8")
    except UnicodeDecodeError:
        return NotConstructed("not UTF-8 text"), None
    name = block.split("\n", 1)[0].strip() or None
    with rdBase.BlockLogs():  # RDKit reports mol-block errors as warnings we cannot capture
        mol = Chem.MolFromMolBlock(block, sanitize=False, removeHs=False, strictParsing=True)
    if mol is None:
        reason = "RDKit could not parse the mol block (check counts line, atoms and bonds)"
        return NotConstructed(reason), name
    return mol, name


def read_sdf_file(path: str | Path) -> InputBatch:
    """Read an SDF file record by record, without sanitization, keeping explicit hydrogens.

    Parameters
    ----------
    path
        ``.sdf`` or ``.sd`` file, optionally ``.gz``.
    """
    batch = InputBatch(format="sdf")
    lines: list[bytes] = []
    start = 1
    record = 0

    def flush() -> None:
        nonlocal record
        if any(line.strip() for line in lines):
            record += 1
            molecule, name = _parse_block(b"\n".join(lines) + b"\n")
            batch.add(molecule, name, f"record {record} (line {start})")

    with _open_binary(Path(path)) as handle:
        for number, raw in _numbered_lines(handle):
            if raw.strip() == b"$$$$":
                flush()
                lines, start = [], number + 1
            else:
                lines.append(raw)
        flush()  # a last record without its $$$$
    return batch


def read_molecules(path: str | Path) -> InputBatch:
    """Read a SMILES or SDF file, chosen by its suffix (:func:`input_format`).

    Raises
    ------
    ScreenInputError
        Missing, unreadable or binary file, unknown suffix, or no molecules in it.
    """
    path = Path(path)
    fmt = input_format(path)
    batch = read_smiles_file(path) if fmt == "smiles" else read_sdf_file(path)
    if not batch.molecules:
        raise ScreenInputError(f"{path}: no molecules found")
    return batch


def _training_set(training: str | Path | Iterable[str], processes: int | None) -> set[str]:
    if isinstance(training, (str, Path)) and input_format(training) == "smiles":
        smiles = [m for m in read_smiles_file(training).molecules if isinstance(m, str)]
    elif isinstance(training, (str, Path)):
        raise ScreenInputError(f"{training}: the training set must be a SMILES file")
    else:
        smiles = list(training)
    return canonical_smiles_set(smiles, processes=processes)


def screen_file(
    in_path: str | Path,
    out_dir: str | Path,
    config: GateConfig | Mapping[str, Any] | None = None,
    *,
    training: str | Path | Iterable[str] | None = None,
    processes: int | None = None,
    provenance_fields: Mapping[str, Any] | None = None,
    grid_size: int = 24,
) -> dict[str, Any]:
    """Screen every molecule of a SMILES or SDF file and write the outputs to ``out_dir``.

    Parameters
    ----------
    in_path
        The molecule file (module docstring).
    out_dir
        Output directory (:func:`~sci_diffusion.chem.outputs.write_outputs`).
    config
        A :class:`GateConfig` or a plain mapping for :meth:`GateConfig.from_dict`.
    training
        Training-set SMILES for the novelty check: a SMILES file or an iterable of SMILES
        (made canonical here). ``None`` skips novelty.
    processes
        Worker processes (``None``: every available core; 1: inline).
    provenance_fields
        Output of :func:`~sci_diffusion.chem.outputs.provenance` (default: versions and date).
    grid_size
        Candidates drawn in ``grid.svg``.

    Returns
    -------
    dict
        The metrics written to ``metrics.json``, including ``input`` (path, format, records)
        ``n_input_errors`` and ``input_errors`` (the first :data:`MAX_REPORTED_INPUT_ERRORS`
        inputs that could not be read as molecules, with source and reason).

    Raises
    ------
    ScreenInputError
        The input file cannot be screened at all, or ``out_dir`` is an existing file.
    GateConfigError
        ``config`` has an unknown key or a bad value.
    """
    in_path, out = Path(in_path), Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ScreenInputError(f"out={out} exists and is not a directory")
    if not isinstance(config, GateConfig):
        config = GateConfig.from_dict(config or {})
    batch = read_molecules(in_path)
    reference = None if training is None else _training_set(training, processes)
    records = run_gate(
        batch.molecules,
        config,
        names=batch.names,
        sources=batch.sources,
        training_smiles=reference,
        processes=processes,
    )
    errors = [
        {"source": r.source or "", "reason": r.failure_reason or ""}
        for r in records
        if r.failed_gate == "construction"
    ]
    extra: dict[str, Any] = {
        "input": {"path": str(in_path), "format": batch.format, "n_records": len(records)},
        "n_input_errors": len(errors),
        "input_errors": errors[:MAX_REPORTED_INPUT_ERRORS],
    }
    if reference is not None:
        extra["training_set_size"] = len(reference)
    return write_outputs(
        out,
        records,
        config=config,
        provenance_fields=provenance_fields,
        extra_metrics=extra,
        grid_size=grid_size,
    )
