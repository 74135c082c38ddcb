"""Screen a molecule file: read SMILES or SDF, run the gate, write the outputs.

:func:`screen_file` is what ``sci-diffusion screen in=<file> out=<dir>`` calls. Supported inputs
(optionally gzip-compressed, ``.gz``):

* SMILES files ``.smi``, ``.smiles``, ``.txt``, ``.csv``: one molecule per line, the SMILES
  first and an optional name after whitespace or a comma; blank lines and lines starting with
  ``#`` are ignored, and a first line naming a ``smiles`` column is a header (in a ``.csv`` it
  also selects the SMILES and name columns).
* SDF files ``.sdf``, ``.sd``, ``.mol``: records separated by ``$$$$``; the title line is the
  name.

Formats, lines and records are those of :mod:`sci_diffusion.chem.molfiles`
(:func:`~sci_diffusion.chem.molfiles.input_format`,
:func:`~sci_diffusion.chem.molfiles.read_raw_records`), the one reader of molecule files, so
screening and the sanitizing readers see the same molecules at the same positions. Here they
are not sanitized (sanitization is the gate's second check). A line or record that cannot
be read is not an error of the run: it is reported with its position (``line 12``, ``record 3
(line 40)``) and reason in ``rejected.csv`` (failed check ``construction``) and in
``metrics.json`` (``input_errors``), and skipped. Only input that is unusable as a whole raises
:class:`ScreenInputError`. Files are read as text and parsed by RDKit; nothing is unpickled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdkit import Chem, rdBase

from sci_diffusion.io.errors import UserInputError

from ._deprecated import renamed
from .gate import (
    GateConfig,
    MoleculeInput,
    NotConstructed,
    canonical_smiles_set,
    run_gate,
)
from .molfiles import (
    SDF_SUFFIXES,  # noqa: F401 (part of this module's interface)
    SMILES_SUFFIXES,  # noqa: F401
    RawRecord,
    UnknownFormatError,
    input_format,
    read_raw_records,
)
from .outputs import write_outputs

MAX_REPORTED_INPUT_ERRORS = 20
"""``metrics.json`` lists this many unreadable inputs; ``rejected.csv`` has all of them."""


class ScreenInputError(UserInputError):
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


def _parse_block(text: str) -> MoleculeInput:
    """One SDF record to an unsanitized molecule, or :class:`NotConstructed` with why."""
    with rdBase.BlockLogs():  # RDKit reports mol-block errors as warnings we cannot capture
        mol = Chem.MolFromMolBlock(text + "\n", sanitize=False, removeHs=False, strictParsing=True)
    if mol is None:
        reason = "RDKit could not parse the mol block (check counts line, atoms and bonds)"
        return NotConstructed(reason)
    return mol


def _gate_input(raw: RawRecord) -> tuple[MoleculeInput, str | None, str]:
    """(gate input, name, source) of a record. A SMILES goes on unparsed, so that the gate's
    construction check records why it fails; an SDF record is parsed here, unsanitized."""
    line = f"line {raw.line}"
    source = line if raw.record is None else f"record {raw.record} ({line})"
    if raw.not_utf8:
        return NotConstructed("not UTF-8 text"), None, source
    if raw.record is not None:
        return _parse_block(raw.text), raw.name or None, source
    smiles = raw.text or NotConstructed("no SMILES on this line")
    return smiles, " ".join(raw.name.split()) or None, source


def _read_batch(path: str | Path, fmt: str | None = None) -> InputBatch:
    """Every record of the file as gate inputs (``fmt`` None: from the file name); an unknown
    suffix and read errors become :class:`ScreenInputError`."""
    path = Path(path)
    try:
        fmt = fmt or input_format(path)
    except UnknownFormatError as error:
        raise ScreenInputError(str(error)) from None
    if not path.is_file():
        raise ScreenInputError(f"{path}: no such file")
    try:
        records = list(read_raw_records(path, fmt))
    except (OSError, EOFError) as error:
        raise ScreenInputError(f"{path}: cannot read: {error}") from None
    except ValueError as error:  # a binary file
        raise ScreenInputError(str(error)) from None
    batch = InputBatch(format=fmt)
    for raw in records:
        batch.add(*_gate_input(raw))
    return batch


def read_gate_inputs(path: str | Path) -> InputBatch:
    """The molecules of a SMILES or SDF file (format from its name,
    :func:`~sci_diffusion.chem.molfiles.input_format`) as gate inputs: SMILES unparsed, SDF
    records parsed without sanitization, explicit hydrogens kept.

    Raises
    ------
    ScreenInputError
        Missing, unreadable or binary file, unknown suffix, or no molecules in it.
    """
    batch = _read_batch(path)
    if not batch.molecules:
        raise ScreenInputError(f"{path}: no molecules found")
    return batch


def _read_smiles_batch(path: str | Path) -> InputBatch:
    return _read_batch(path, "smiles")


def _read_sdf_batch(path: str | Path) -> InputBatch:
    return _read_batch(path, "sdf")


# Old names (they shared names with the sanitizing readers of .molfiles): they still work.
read_molecules = renamed("sci_diffusion.chem.screen.read_molecules", read_gate_inputs)
read_smiles_file = renamed("sci_diffusion.chem.screen.read_smiles_file", _read_smiles_batch,
                           "sci_diffusion.chem.screen.read_gate_inputs")  # fmt: skip
read_sdf_file = renamed("sci_diffusion.chem.screen.read_sdf_file", _read_sdf_batch,
                        "sci_diffusion.chem.screen.read_gate_inputs")  # fmt: skip


def _training_set(training: str | Path | Iterable[str], processes: int | None) -> frozenset[str]:
    if isinstance(training, (str, Path)):
        if input_format(training, default="unknown") != "smiles":
            raise ScreenInputError(f"{training}: the training set must be a SMILES file")
        smiles = [m for m in _read_batch(training, "smiles").molecules if isinstance(m, str)]
    else:
        smiles = list(training)
    return canonical_smiles_set(smiles, isomeric=True, processes=processes)


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
    batch = read_gate_inputs(in_path)
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
