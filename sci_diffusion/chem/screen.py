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

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdkit import Chem, rdBase

from sci_diffusion import __version__
from sci_diffusion.io.errors import UserInputError
from sci_diffusion.io.files import publish, temp_path, write_json_atomic, write_text_atomic
from sci_diffusion.io.progress import Progress, stage

from ._deprecated import renamed
from .gate import (
    GateConfig,
    GateCounts,
    MoleculeInput,
    MoleculeRecord,
    NotConstructed,
    Signature,
    _check_chunk,
    _checker_for,
    _encode,
    canonical_smiles_set,
    complete_record,
    duplicate_key,
    duplicate_reason,
    record_alerts,
    record_signature,
)
from .molfiles import (
    SDF_SUFFIXES,  # noqa: F401 (part of this module's interface)
    SMILES_SUFFIXES,  # noqa: F401
    RawRecord,
    UnknownFormatError,
    input_format,
    read_raw_records,
)
from .outputs import (
    CANDIDATE_COLUMNS,
    CANDIDATES_CSV,
    CANDIDATES_SDF,
    GRID_PNG,
    GRID_SVG,
    METRICS_JSON,
    REJECTED_COLUMNS,
    REJECTED_CSV,
    REPORT_MD,
    Cells,
    candidate_row,
    grid_png_of,
    grid_svg_of,
    provenance,
    record_cells,
    rejected_row,
    report_markdown,
    sdf_block,
    sdf_grid_entries,
    sdf_tags,
)
from .parallel import imap_tasks

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


def _source(line: int, record: int | None) -> str:
    """Where a record is: ``line 12`` (SMILES) or ``record 3 (line 40)`` (SDF)."""
    return f"line {line}" if record is None else f"record {record} (line {line})"


def _gate_input(raw: RawRecord) -> tuple[MoleculeInput, str | None, str]:
    """(gate input, name, source) of a record. A SMILES goes on unparsed, so that the gate's
    construction check records why it fails; an SDF record is parsed here, unsanitized."""
    source = _source(raw.line, raw.record)
    if raw.binary:
        return NotConstructed(raw.binary), None, source
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


# --------------------------------------------------------------------------------------------
# Streaming: chunks in, rows appended, a ledger to resume from

PARTIAL_DIR = ".screen-partial"
"""Folder inside ``out`` holding a screening in progress: the appended outputs and the ledger."""
LEDGER = "ledger.json"
STREAMED_FILES: tuple[str, ...] = (CANDIDATES_CSV, CANDIDATES_SDF, REJECTED_CSV)
"""Outputs appended chunk by chunk; the others are written once, at the end."""
DEFAULT_CHUNK = 10_000
"""Records screened between two ledger commits (the most work a kill can lose)."""
TASK_SIZE = 250
"""Records per task sent to a worker process."""
MAX_REASONS = 1_000
"""Distinct rejection reasons counted exactly for ``report.md``; later new ones are counted
under ``(other reasons)`` of their check, so the counter's memory stays bounded."""
_LEDGER_VERSION = 1


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"rank/world"`` (or a pair) checked: ``0 <= rank < world``; ``"env"`` takes them from
    the ``RANK`` and ``WORLD_SIZE`` variables torchrun sets; ``None`` stays ``None``.

    Raises
    ------
    ScreenInputError
        For anything else.
    """
    if shard is None:
        return None
    if shard == "env":
        rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
        if rank is None or world is None:
            raise ScreenInputError("shard=env needs RANK and WORLD_SIZE (set by torchrun)")
        shard = f"{rank}/{world}"
    if isinstance(shard, str):
        rank_text, _, world_text = shard.partition("/")
        try:
            shard = int(rank_text), int(world_text)
        except ValueError:
            raise ScreenInputError(f"shard={shard!r}: expected <rank>/<world>, e.g. 0/4") from None
    rank, world = shard
    if not (isinstance(rank, int) and isinstance(world, int) and 0 <= rank < world):
        raise ScreenInputError(f"shard={rank}/{world}: need 0 <= rank < world")
    return rank, world


@dataclass(frozen=True)
class _Placeholder:
    """The earlier occurrence of a duplicate, before the parent knows which one it is."""

    index: int = -1
    source: str | None = None


_DUPLICATE_CELLS = ("gate_duplicates_reason", "gate_duplicates_values")

# The worker's view of the job: gate config, provenance, training set (set by `_init_worker`).
_JOB: dict[str, Any] = {}


def _init_worker(config: GateConfig, prov: dict[str, Any], training: frozenset[str] | None) -> None:
    _JOB.update(config=config, prov=prov, training=training)


def _key_digest(key: str) -> bytes:
    """16 bytes standing for a duplicate key: the parent remembers every distinct molecule, so
    it keeps digests, not SMILES (collision odds at 10^9 molecules about 1e-21)."""
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


def _row_of(
    record: MoleculeRecord, prov: Mapping[str, Any], cells: Cells
) -> tuple[bool, list[str]]:
    if record.passed:
        return True, candidate_row(record, prov, cells)
    return False, rejected_row(record, cells)


def _duplicate_variant(
    record: MoleculeRecord, prov: Mapping[str, Any], cells: Cells
) -> tuple[bool, list[str | None], list[tuple[int, str, str]], Any, Signature, tuple | None]:
    """The outputs of a record completed as a duplicate of a placeholder, with the cells that
    name the earlier occurrence left as holes ``(position, prefix, "reason" | "values")``."""
    passed, row = _row_of(record, prov, cells)
    columns = (*CANDIDATE_COLUMNS, *prov) if passed else REJECTED_COLUMNS
    prefix = "" if record.failed_gate == "duplicates" else "recorded only: "
    holes = [(columns.index(_DUPLICATE_CELLS[0]), prefix, "reason"),
             (columns.index(_DUPLICATE_CELLS[1]), "", "values")]  # fmt: skip
    if record.failed_gate == "duplicates":
        holes.append((columns.index("failure_reason"), "", "reason"))
    holed: list[str | None] = list(row)
    for position, _, _ in holes:
        holed[position] = None
    sdf = sdf_block(record, prov, split_at=_DUPLICATE_CELLS, cells=cells) if passed else None
    reason = None
    if record.failed_gate and record.failed_gate != "duplicates":
        reason = (record.failed_gate, record.failure_reason or "")
    return passed, holed, holes, sdf, record_signature(record), reason


def _screen_task(_: None, task: Sequence[tuple[int, str, Any, str | None, str]]) -> tuple:
    """Worker: the gate and the formatted outputs of one task's records.

    Each record is completed twice where it reaches the duplicates check: as a first occurrence
    and as a duplicate with holes for the earlier one; the parent, which alone knows every
    molecule seen so far, picks one and fills the holes. Everything expensive (RDKit, 2D
    coordinates, formatting) happens here, so the parent only writes."""
    config, prov, training = _JOB["config"], _JOB["prov"], _JOB["training"]
    encoded = []
    for _, kind, payload, _, _ in task:
        if kind == "molblock":
            kind, payload = _encode(_parse_block(payload))
        encoded.append((kind, payload))
    partial = _check_chunk(config, encoded)
    alerts = GateCounts()
    out = []
    for (index, _, _, name, source), result in zip(task, partial, strict=True):
        record = complete_record(index, result, config, name=name, source=source,
                                 training=training)  # fmt: skip
        alerts.add_alerts(record_alerts(record))
        key = duplicate_key(record, config)
        cells = record_cells(record, prov)
        passed, row = _row_of(record, prov, cells)
        sdf = sdf_block(record, prov, cells=cells) if passed else None
        reason = (record.failed_gate, record.failure_reason or "") if record.failed_gate else None
        duplicate = None
        if key is not None:
            twin = complete_record(index, result, config, name=name, source=source,
                                   training=training, first=_Placeholder())  # fmt: skip
            duplicate = _duplicate_variant(twin, prov, record_cells(twin, prov, like=cells))
            key = _key_digest(key)
        out.append((key, passed, row, sdf, record_signature(record), reason, duplicate))
    return out, dict(alerts.alerts)


@dataclass
class _Ledger:
    """What a screening in progress has durably written: records consumed, output sizes, and
    the counters behind metrics.json and report.md."""

    fingerprint: str
    provenance: dict[str, Any]
    records: int = 0
    complete: bool = False
    sizes: dict[str, int] = field(default_factory=dict)
    counts: GateCounts = field(default_factory=GateCounts)
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    input_errors: list[dict[str, str]] = field(default_factory=list)
    n_input_errors: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": _LEDGER_VERSION,
            "fingerprint": self.fingerprint,
            "provenance": list(self.provenance.items()),  # in column order (JSON sorts keys)
            "records": self.records,
            "complete": self.complete,
            "sizes": self.sizes,
            "counts": self.counts.to_json(),
            "reasons": [[g, r, n] for (g, r), n in self.reasons.items()],
            "input_errors": self.input_errors,
            "n_input_errors": self.n_input_errors,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Ledger:
        return cls(
            fingerprint=data["fingerprint"],
            provenance={key: value for key, value in data["provenance"]},
            records=int(data["records"]),
            complete=bool(data["complete"]),
            sizes={k: int(v) for k, v in data["sizes"].items()},
            counts=GateCounts.from_json(data["counts"]),
            reasons=Counter({(g, r): n for g, r, n in data["reasons"]}),
            input_errors=list(data["input_errors"]),
            n_input_errors=int(data["n_input_errors"]),
        )

    def count_reason(self, gate: str, reason: str) -> None:
        key = (gate, reason)
        if key not in self.reasons and len(self.reasons) >= MAX_REASONS:
            key = (gate, "(other reasons)")
        self.reasons[key] += 1


def _fingerprint(parts: Mapping[str, Any]) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _file_identity(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _load_ledger(partial: Path, fingerprint: str) -> _Ledger | None:
    """The ledger of an unfinished screening of the same input and settings, or ``None``."""
    try:
        data = json.loads((partial / LEDGER).read_text())
        if data.get("version") != _LEDGER_VERSION or data.get("fingerprint") != fingerprint:
            return None
        ledger = _Ledger.from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for name in STREAMED_FILES:
        path = partial / name
        if not ledger.complete and (not path.is_file() or path.stat().st_size < ledger.sizes[name]):
            return None  # a file lost what the ledger says was written: start over
    return ledger


class _Seen(dict):
    """The first occurrence of every distinct molecule: key digest -> index and line packed in
    one int (about 130 bytes a molecule; the source text is rebuilt from them when needed)."""

    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.sdf = fmt == "sdf"

    def add(self, key: bytes, index: int, source: str) -> None:
        line = int(source.rsplit(" ", 1)[1].rstrip(")"))  # "line 12", "record 3 (line 40)"
        self[key] = index << 32 | line

    def first(self, key: bytes) -> tuple[int, str] | None:
        """(index, source) of the first occurrence, or ``None``."""
        packed = self.get(key)
        if packed is None:
            return None
        index, line = packed >> 32, packed & 0xFFFFFFFF
        return index, _source(line, index + 1 if self.sdf else None)


def _seen_from_outputs(partial: Path, key_column: str, fmt: str) -> _Seen:
    """The first occurrence of every molecule in the outputs written so far (rows whose
    duplicates check passed as their own first occurrence)."""
    seen = _Seen(fmt)
    for name in (CANDIDATES_CSV, REJECTED_CSV):
        with (partial / name).open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row["gate_duplicates"] != "pass":
                    continue
                index = int(row["index"])
                if json.loads(row["gate_duplicates_values"]).get("first_index") != index:
                    continue
                key = row[key_column] or row["canonical_smiles"]
                seen.add(_key_digest(key), index, row["source"])
    return seen


def _tasks(
    records: Iterator[RawRecord], start: int, shard: tuple[int, int] | None, size: int
) -> Iterator[tuple[int, list[tuple[int, str, Any, str | None, str]]]]:
    """(records consumed after the task, the task) from the raw records, skipping the first
    ``start`` (done before a resume) and those of other shards; indexes are file positions."""
    task: list[tuple[int, str, Any, str | None, str]] = []
    ordinal = -1
    for ordinal, raw in enumerate(records):
        if ordinal < start or (shard is not None and ordinal % shard[1] != shard[0]):
            continue
        molecule, name, source = _gate_input(raw)
        if isinstance(molecule, NotConstructed):
            task.append((ordinal, "none", molecule.reason, name, source))
        elif raw.record is not None:
            task.append((ordinal, "molblock", raw.text, name, source))
        else:
            task.append((ordinal, "smiles", molecule, name, source))
        if len(task) >= size:
            yield ordinal + 1, task
            task = []
    if task or ordinal + 1 > start:
        yield max(ordinal + 1, start), task


def _run_task(_: None, item: tuple[int, list]) -> tuple[int, tuple]:
    consumed, task = item
    return consumed, _screen_task(None, task) if task else ([], {})


class _Appender:
    """The streamed outputs, opened for appending, and the ledger committed after them."""

    def __init__(self, partial: Path, ledger: _Ledger, prov: Mapping[str, Any]) -> None:
        self.partial, self.ledger = partial, ledger
        if not ledger.sizes:  # a fresh start: headers, created with the package's file mode
            write_text_atomic(partial / CANDIDATES_SDF, "")
            for name, columns in ((CANDIDATES_CSV, (*CANDIDATE_COLUMNS, *prov)),
                                  (REJECTED_CSV, REJECTED_COLUMNS)):  # fmt: skip
                text = io.StringIO()
                csv.writer(text).writerow(columns)
                write_text_atomic(partial / name, text.getvalue())
            ledger.sizes = {name: (partial / name).stat().st_size for name in STREAMED_FILES}
            self.commit()
        for name in STREAMED_FILES:  # drop whatever a killed run appended after its last commit
            os.truncate(partial / name, ledger.sizes[name])
        self.files = {name: (partial / name).open("a", newline="", encoding="utf-8")
                      for name in STREAMED_FILES}  # fmt: skip
        self.candidates = csv.writer(self.files[CANDIDATES_CSV])
        self.rejected = csv.writer(self.files[REJECTED_CSV])
        self.sdf = self.files[CANDIDATES_SDF]

    def commit(self, records: int | None = None) -> None:
        """Make the appended rows durable, then record them (and the counters) in the ledger."""
        for handle in getattr(self, "files", {}).values():
            handle.flush()
            os.fsync(handle.fileno())
        self.ledger.sizes = {n: (self.partial / n).stat().st_size for n in STREAMED_FILES}
        if records is not None:
            self.ledger.records = records
        write_json_atomic(self.partial / LEDGER, self.ledger.to_json())

    def close(self) -> None:
        for handle in getattr(self, "files", {}).values():
            handle.close()


def _consume(
    results: tuple, appender: _Appender, seen: _Seen, config: GateConfig
) -> None:
    """Write one task's records (in order), choosing first occurrence or duplicate for each."""
    rows, alerts = results
    ledger = appender.ledger
    ledger.counts.add_alerts(alerts)
    generic = f"duplicate of an earlier input, same {config.duplicate_key}"
    for key, passed, row, sdf, signature, reason, duplicate in rows:
        first = None if key is None else seen.first(key)
        if key is not None and first is None:
            seen.add(key, int(row[0]), row[2])  # index and source: the rows' first columns
        if first is not None:
            passed, cells, holes, sdf_parts, signature, reason = duplicate
            text = duplicate_reason(first[0], first[1], config.duplicate_key)
            values = json.dumps({"first_index": first[0]}, separators=(",", ":"))
            for position, prefix, kind in holes:
                cells[position] = prefix + (text if kind == "reason" else values)
            row = cells
            if sdf_parts is not None:
                head, tail = sdf_parts
                tags = {_DUPLICATE_CELLS[0]: cells[holes[0][0]], _DUPLICATE_CELLS[1]: values}
                sdf = head + sdf_tags(tags) + tail
            if reason is None and signature[1] == "duplicates":
                reason = ("duplicates", generic)
        ledger.counts.signatures[signature] += 1
        if reason is not None:
            ledger.count_reason(*reason)
            if reason[0] == "construction":
                ledger.n_input_errors += 1
                if len(ledger.input_errors) < MAX_REPORTED_INPUT_ERRORS:
                    ledger.input_errors.append({"source": row[2], "reason": reason[1]})
        if passed:
            appender.candidates.writerow(row)
            appender.sdf.write(sdf)
        else:
            appender.rejected.writerow(row)


def _finish(
    out: Path, partial: Path, ledger: _Ledger, config: GateConfig,
    extra: Mapping[str, Any], grid_size: int,
) -> dict[str, Any]:  # fmt: skip
    """metrics.json, report.md and the grid from the counters and the candidates file, then
    every output moved into place (metrics.json last) and the partial folder removed."""
    prov = ledger.provenance
    metrics = ledger.counts.metrics(config) | {"provenance": prov} | dict(extra)
    metrics["n_input_errors"] = ledger.n_input_errors
    metrics["input_errors"] = ledger.input_errors
    sources = {name: partial / name if (partial / name).exists() else out / name
               for name in STREAMED_FILES}  # fmt: skip
    entries = sdf_grid_entries(sources[CANDIDATES_SDF], grid_size)
    with contextlib.ExitStack() as stack:
        written = (GRID_SVG, GRID_PNG, REPORT_MD, METRICS_JSON)
        tmp = {name: stack.enter_context(temp_path(out, name)) for name in written}
        tmp[GRID_SVG].write_text(grid_svg_of(entries))
        tmp[GRID_PNG].write_bytes(grid_png_of(entries))
        tmp[REPORT_MD].write_text(report_markdown(ledger.reasons, metrics, prov))
        text = json.dumps(metrics, indent=2, sort_keys=True, default=str, allow_nan=True)
        tmp[METRICS_JSON].write_text(text + "\n")
        (out / METRICS_JSON).unlink(missing_ok=True)  # no complete-looking mixed set meanwhile
        for name in STREAMED_FILES:
            if sources[name] != out / name:
                publish(sources[name], out / name)
        for name in written:  # metrics.json last: its presence means the set is complete
            publish(tmp[name], out / name)
    shutil.rmtree(partial, ignore_errors=True)  # the ledger (and a killed run's temp files)
    return metrics


def screen_file(
    in_path: str | Path,
    out_dir: str | Path,
    config: GateConfig | Mapping[str, Any] | None = None,
    *,
    training: str | Path | Iterable[str] | None = None,
    processes: int | None = None,
    provenance_fields: Mapping[str, Any] | None = None,
    grid_size: int = 24,
    chunk: int = DEFAULT_CHUNK,
    resume: bool = True,
    shard: str | tuple[int, int] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Screen every molecule of a SMILES or SDF file and write the outputs to ``out_dir``.

    The file is streamed: records are read in tasks of :data:`TASK_SIZE`, gated in worker
    processes, and their rows appended to ``candidates.csv``, ``candidates.sdf`` and
    ``rejected.csv`` in ``out_dir/.screen-partial/``; after every ``chunk`` records the files
    are fsync'ed and a ledger (records consumed, file sizes, counters) is replaced atomically.
    At the end metrics.json, report.md and the grids are written from the counters and every
    file is moved into ``out_dir`` (metrics.json last). Memory does not grow with the number of
    records, except for one 16-byte digest per distinct molecule (the duplicates check) and
    the training set. A run that was killed is continued from its last commit when called
    again with the same input and settings (``resume``); the outputs equal those of an
    uninterrupted run.

    Parameters
    ----------
    in_path
        The molecule file (module docstring).
    out_dir
        Output directory (:func:`~sci_diffusion.chem.outputs.write_outputs` has the files).
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
    chunk
        Records between two commits of the ledger.
    resume
        Continue an unfinished screening of the same input and settings found in ``out_dir``
        (default); ``False`` starts over.
    shard
        ``"rank/world"`` (or ``"env"``: torchrun's ``RANK``/``WORLD_SIZE``): screen only the
        records ``i`` with ``i % world == rank`` (indexes stay file positions) and write into
        ``out_dir/shard-<rank>-of-<world>/``, for one shard per machine (docs/molecules.md).
        The duplicates check then covers the shard's records only.
    progress
        Show progress (:mod:`sci_diffusion.io.progress`).

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
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ScreenInputError(f"chunk must be a positive integer, got {chunk!r}")
    shard = parse_shard(shard)
    if shard is not None:
        out = out / f"shard-{shard[0]}-of-{shard[1]}"
    if not isinstance(config, GateConfig):
        config = GateConfig.from_dict(config or {})
    fmt, probe = _open_records(in_path)
    empty = next(probe, None) is None  # also raises for a binary or unreadable file
    probe.close()
    if empty:
        raise ScreenInputError(f"{in_path}: no molecules found")
    reference = None if training is None else _training_set(training, processes)
    prov = provenance() if provenance_fields is None else dict(provenance_fields)
    fingerprint = _fingerprint({
        "input": _file_identity(in_path), "format": fmt, "config": config.to_dict(),
        "training": None if reference is None else _fingerprint({"t": sorted(reference)}),
        "shard": shard, "provenance": {k: v for k, v in prov.items() if k != "date"},
        "version": __version__,
    })  # fmt: skip
    partial = out / PARTIAL_DIR
    ledger = _load_ledger(partial, fingerprint) if resume else None
    if ledger is None:
        if (partial / LEDGER).exists():
            stage(f"screen: {partial} holds an unfinished run of other input or settings "
                  "(or resume=false): starting over")  # fmt: skip
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        ledger = _Ledger(fingerprint, prov)
    elif ledger.records:
        stage(f"screen: resuming after {ledger.records} records ({partial / LEDGER})")
    prov = ledger.provenance
    extra: dict[str, Any] = {"input": {"path": str(in_path), "format": fmt}}
    if shard is not None:
        extra["shard"] = f"{shard[0]}/{shard[1]}"
    if reference is not None:
        extra["training_set_size"] = len(reference)
    if not ledger.complete:
        _stream(in_path, partial, ledger, config, prov, reference, processes, chunk, shard,
                progress)  # fmt: skip
    extra["input"]["n_records"] = ledger.counts.metrics()["n_input"]
    return _finish(out, partial, ledger, config, extra, grid_size)


def _open_records(path: Path) -> tuple[str, Iterator[RawRecord]]:
    """The format and a lazy reader that yields nothing but checks the file on the first
    ``next`` (then the real records follow on a fresh reader)."""
    try:
        fmt = input_format(path)
    except UnknownFormatError as error:
        raise ScreenInputError(str(error)) from None
    if not path.is_file():
        raise ScreenInputError(f"{path}: no such file")
    return fmt, _checked(read_raw_records(path, fmt), path)


def _checked(records: Iterator[RawRecord], path: Path) -> Iterator[RawRecord]:
    """``records`` with read errors raised as :class:`ScreenInputError`."""
    try:
        yield from records
    except (OSError, EOFError) as error:
        raise ScreenInputError(f"{path}: cannot read: {error}") from None
    except ValueError as error:  # a binary file
        raise ScreenInputError(str(error)) from None


def _stream(
    in_path: Path, partial: Path, ledger: _Ledger, config: GateConfig, prov: dict[str, Any],
    reference: frozenset[str] | None, processes: int | None, chunk: int,
    shard: tuple[int, int] | None, show: bool,
) -> None:  # fmt: skip
    """Screen the records after the ledger's, appending and committing every ``chunk``."""
    appender = _Appender(partial, ledger, prov)
    try:
        fmt, records = _open_records(in_path)
        if ledger.records:
            seen = _seen_from_outputs(partial, config.duplicate_key, fmt)
        else:
            seen = _Seen(fmt)
        _checker_for(config)  # catalogs and the SA table before the fork: workers inherit them
        tasks = _tasks(records, ledger.records, shard, min(TASK_SIZE, chunk))
        committed = ledger.records
        with Progress(None, "screening", unit="records", initial=ledger.records,
                      enabled=show) as bar:  # fmt: skip
            for consumed, results in imap_tasks(
                _run_task, None, tasks, processes,
                initializer=_init_worker, initargs=(config, prov, reference),
            ):  # fmt: skip
                _consume(results, appender, seen, config)
                bar.update(consumed - bar.count)
                if consumed - committed >= chunk:
                    appender.commit(consumed)
                    committed = consumed
        ledger.complete = True
        appender.commit(max(committed, bar.count))
    finally:
        appender.close()
