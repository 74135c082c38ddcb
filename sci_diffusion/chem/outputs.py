"""Files written after screening: candidates, rejects, metrics, a molecule grid and a report.

:func:`write_outputs` writes, into one directory:

=====================  ======================================================================
``candidates.sdf``     molecules that passed *every* check, one SD tag per field (below);
                       an empty file when there is none.
``candidates.csv``     the same molecules and fields, one row each.
``rejected.csv``       every other input: the first failing check, its reason, all outcomes.
``metrics.json``       counts per check and outcome, pass rate, statuses, provenance (+ extras).
``grid.svg``           up to 24 candidates drawn in 2D, with index, QED and SA score.
``report.md``          a short human-readable summary.
=====================  ======================================================================

Fields of a candidate: ``index``, ``name``, ``source``, ``canonical_smiles``, ``inchikey``,
``validation_status`` (always ``in_silico_screened``: in-silico screened only, not synthesized,
not assayed), ``novel``, the properties, for every check ``gate_<check>`` (pass / fail /
skipped), ``gate_<check>_reason`` and ``gate_<check>_values`` (compact JSON), then the
provenance fields (model fingerprint, sampler, steps, seed, date, package and RDKit versions).

A candidate with a 3D conformer is written with its stereochemistry assigned from the
coordinates (``Chem.AssignStereochemistryFrom3D``: atom parities and wedges in the mol block);
with ``sdf_hydrogens=True`` its missing hydrogens are added with coordinates
(``Chem.AddHs(addCoords=True)``, placed by RDKit's geometry rules, not optimized). The model's
heavy-atom coordinates are written unchanged either way.

All six files are first written to hidden temp files in the directory and only then moved into
place (:func:`sci_diffusion.io.files.publish`, with the package's one file mode), so a failure
while writing leaves no new file behind and a reader never sees a half-written one.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from types import ModuleType
from typing import Any

import rdkit
from rdkit import Chem, rdBase
from rdkit.Chem import rdDepictor

from sci_diffusion import __version__
from sci_diffusion.io.files import publish, temp_path

from .gate import GATES, GateConfig, MoleculeRecord, gate_metrics
from .properties import PROPERTY_NAMES, without_hydrogens

CANDIDATES_SDF = "candidates.sdf"
CANDIDATES_CSV = "candidates.csv"
REJECTED_CSV = "rejected.csv"
METRICS_JSON = "metrics.json"
GRID_SVG = "grid.svg"
GRID_PNG = "grid.png"
REPORT_MD = "report.md"
OUTPUT_FILES: tuple[str, ...] = (
    CANDIDATES_SDF,
    CANDIDATES_CSV,
    REJECTED_CSV,
    GRID_SVG,
    GRID_PNG,
    REPORT_MD,
    METRICS_JSON,
)
"""Every file :func:`write_outputs` writes, in the order they are moved into place."""

VALIDATION_NOTE = "In-silico screened only: not synthesized, not assayed."

PROVENANCE_KEYS: tuple[str, ...] = (
    "model_fingerprint",
    "sampler",
    "steps",
    "seed",
    "date",
    "sci_diffusion_version",
    "rdkit_version",
)

_GATE_COLUMNS = tuple(f"gate_{g}{suffix}" for g in GATES for suffix in ("", "_reason", "_values"))
_RECORD_COLUMNS = ("index", "name", "source", "canonical_smiles", "inchikey", "validation_status")
CANDIDATE_COLUMNS: tuple[str, ...] = (*_RECORD_COLUMNS, "novel", *PROPERTY_NAMES, *_GATE_COLUMNS)
"""Columns of ``candidates.csv`` (and SD tags of ``candidates.sdf``) before the provenance."""

REJECTED_COLUMNS: tuple[str, ...] = (
    *_RECORD_COLUMNS[:3],
    "input_smiles",
    *_RECORD_COLUMNS[3:],
    "failed_gate",
    "failure_reason",
    "novel",
    *PROPERTY_NAMES,
    *_GATE_COLUMNS,
)
"""Columns of ``rejected.csv``."""


def provenance(**fields: Any) -> dict[str, Any]:
    """Provenance fields for the outputs: the caller's, over defaults for the rest.

    Parameters
    ----------
    **fields
        Typically ``model_fingerprint``, ``sampler``, ``steps``, ``seed``; any other key is
        kept too (it becomes a column / SD tag, so it must be a plain identifier).

    Returns
    -------
    dict
        :data:`PROVENANCE_KEYS` first (missing ones ``None``; ``date`` is now in UTC and the
        versions are this package's and RDKit's), then the extra keys.
    """
    defaults: dict[str, Any] = dict.fromkeys(PROVENANCE_KEYS)
    defaults["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    defaults["sci_diffusion_version"] = __version__
    defaults["rdkit_version"] = rdkit.__version__
    return _checked_provenance(defaults | fields)


def _checked_provenance(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` as a dict, after checking each key can be a CSV column and an SD tag."""
    for key in fields:
        if not isinstance(key, str) or not key.isidentifier() or key in REJECTED_COLUMNS:
            raise ValueError(
                f"provenance key {key!r} must be an identifier that is not already a column"
            )
    return dict(fields)


def _cell(value: Any) -> str:
    """One CSV cell / SD tag value on a single line."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{round(value, 4)!r}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return " ".join(str(value).split())


def record_fields(record: MoleculeRecord) -> dict[str, Any]:
    """A record flattened to the output columns (values not yet formatted).

    Parameters
    ----------
    record
        One record from :func:`~sci_diffusion.chem.gate.run_gate`.
    """
    fields: dict[str, Any] = {
        "index": record.index,
        "name": record.name,
        "source": record.source,
        "input_smiles": record.input_smiles,
        "canonical_smiles": record.canonical_smiles,
        "inchikey": record.inchikey,
        "validation_status": record.validation_status,
        "failed_gate": record.failed_gate,
        "failure_reason": record.failure_reason,
        "novel": record.novel,
    }
    fields.update({name: record.properties.get(name) for name in PROPERTY_NAMES})
    for gate, outcome in record.gates.items():
        fields[f"gate_{gate}"] = outcome.status
        fields[f"gate_{gate}_reason"] = outcome.reason
        fields[f"gate_{gate}_values"] = dict(outcome.values)
    return fields


_MISSING = object()
Cells = tuple[dict[str, Any], dict[str, str]]
"""A record's raw output fields and their formatted cells, by column (:func:`record_cells`)."""


def record_cells(
    record: MoleculeRecord, prov: Mapping[str, Any], *, like: Cells | None = None
) -> Cells:
    """Every output field of a record (with the provenance) and its formatted cell.

    ``like``: the cells of another record of the same molecule; a field equal to (and of the
    same type as) the field there is not formatted again (streaming screening completes one
    molecule twice, and the two differ in a few checks only)."""
    fields = record_fields(record) | dict(prov)
    if like is None:
        return fields, {column: _cell(value) for column, value in fields.items()}
    old_fields, old_cells = like
    cells = {}
    for column, value in fields.items():
        old = old_fields.get(column, _MISSING)
        same = old is value or (type(old) is type(value) and old == value)
        cells[column] = old_cells[column] if same else _cell(value)
    return fields, cells


def candidate_row(
    record: MoleculeRecord, prov: Mapping[str, Any], cells: Cells | None = None
) -> list[str]:
    """One ``candidates.csv`` row (:data:`CANDIDATE_COLUMNS`, then the provenance fields)."""
    by_column = (cells or record_cells(record, prov))[1]
    return [by_column.get(c, "") for c in (*CANDIDATE_COLUMNS, *prov)]


def rejected_row(record: MoleculeRecord, cells: Cells | None = None) -> list[str]:
    """One ``rejected.csv`` row (:data:`REJECTED_COLUMNS`)."""
    by_column = (cells or record_cells(record, {}))[1]
    return [by_column.get(c, "") for c in REJECTED_COLUMNS]


def sdf_tags(values: Mapping[str, str]) -> str:
    """SD data items, one per (tag, formatted value), in order."""
    return "".join(f">  <{tag}>\n{value}\n\n" for tag, value in values.items())


def written_molecule(mol: Chem.Mol, *, hydrogens: bool = False) -> Chem.Mol:
    """A copy of a candidate as ``candidates.sdf`` holds it: 2D coordinates computed for a
    molecule without conformers; for a 3D one, stereochemistry assigned from its coordinates
    and, with ``hydrogens``, the missing hydrogens added with coordinates (the given atoms
    keep theirs)."""
    mol = Chem.Mol(mol)
    if mol.GetNumConformers() == 0:
        rdDepictor.Compute2DCoords(mol)
        return Chem.AddHs(mol, addCoords=True) if hydrogens else mol
    if mol.GetConformer().Is3D():
        Chem.AssignStereochemistryFrom3D(mol, replaceExistingTags=True)
    if hydrogens:
        mol = Chem.AddHs(mol, addCoords=True)
    return mol


def sdf_block(
    record: MoleculeRecord,
    prov: Mapping[str, Any],
    *,
    split_at: Sequence[str] = (),
    cells: Cells | None = None,
    hydrogens: bool = False,
) -> str | tuple[str, str]:
    """One ``candidates.sdf`` record: the mol block (:func:`written_molecule`: 2D coordinates
    computed for a molecule without conformers, stereochemistry from 3D coordinates, hydrogens
    added when ``hydrogens``), one SD tag per column and provenance field, ``$$$$``.

    With ``split_at`` (consecutive columns) those tags are left out and the text is returned
    as ``(head, tail)`` around where they belong, for a caller that fills them in later.
    ``cells``: the record's :func:`record_cells`, if already made.
    """
    mol = record.mol()
    if mol is None:  # cannot happen for a passed record; never write a blank entry
        raise ValueError(f"candidate {record.index} has no molecule")
    mol = written_molecule(mol, hydrogens=hydrogens)
    mol.SetProp("_Name", _cell(record.name or record.canonical_smiles))
    by_column = (cells or record_cells(record, prov))[1]
    tags = {column: by_column.get(column, "") for column in (*CANDIDATE_COLUMNS, *prov)}
    block = Chem.MolToMolBlock(mol)
    if not split_at:
        return block + sdf_tags(tags) + "$$$$\n"
    columns = list(tags)
    cut = columns.index(split_at[0])
    if columns[cut : cut + len(split_at)] != list(split_at):
        raise ValueError(f"split_at {split_at} are not consecutive columns")
    head = {c: tags[c] for c in columns[:cut]}
    tail = {c: tags[c] for c in columns[cut + len(split_at) :]}
    return block + sdf_tags(head), sdf_tags(tail) + "$$$$\n"


def _write_csv(path: Path, rows: Iterable[Sequence[str]], columns: Sequence[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)


def _write_sdf(
    path: Path,
    candidates: Sequence[MoleculeRecord],
    prov: Mapping[str, Any],
    hydrogens: bool = False,
) -> None:
    with path.open("w", encoding="utf-8") as f:
        for record in candidates:
            block = sdf_block(record, prov, hydrogens=hydrogens)
            assert isinstance(block, str)
            f.write(block)


GridEntry = tuple[Chem.Mol, int, float, float]
"""(molecule, index, QED, SA score) of one drawn candidate."""


def _record_entries(candidates: Sequence[MoleculeRecord], size: int) -> list[GridEntry]:
    entries = []
    for record in candidates[:size]:
        mol = record.mol()
        if mol is not None:
            props = record.properties
            qed, sa = props.get("qed", float("nan")), props.get("sa_score", float("nan"))
            entries.append((mol, record.index, qed, sa))
    return entries


def sdf_grid_entries(path: str | Path, size: int = 24) -> list[GridEntry]:
    """The first ``size`` molecules of a ``candidates.sdf`` with their index, QED and SA tags,
    for drawing the grid of a screening that streamed its candidates to the file."""
    entries: list[GridEntry] = []
    if size <= 0 or not Path(path).is_file() or Path(path).stat().st_size == 0:
        return entries
    with rdBase.BlockLogs():
        supplier = Chem.SDMolSupplier(str(path), sanitize=True, removeHs=False)
        for mol in supplier:
            if len(entries) >= size:
                break
            if mol is None:
                continue
            props = mol.GetPropsAsDict()
            index = int(props.get("index", len(entries)))
            entries.append((mol, index, _float(props.get("qed")), _float(props.get("sa_score"))))
    return entries


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _grid_molecules(entries: Sequence[GridEntry]) -> tuple[list[Chem.Mol], list[str]]:
    """Flat 2D copies of the drawable entries and their captions."""
    mols, legends = [], []
    for mol, index, qed, sa in entries:
        mol = Chem.Mol(without_hydrogens(mol))
        rdDepictor.Compute2DCoords(mol)  # a flat drawing even for 3D inputs
        legends.append(f"#{index}  QED {qed:.2f}  SA {sa:.1f}")
        mols.append(mol)
    return mols, legends


NO_CANDIDATES = "no candidates passed the gate"


def grid_svg(candidates: Sequence[MoleculeRecord], size: int = 24, per_row: int = 6) -> str:
    """2D drawings of the first ``size`` candidates as one SVG, captioned with index, QED, SA.

    Parameters
    ----------
    candidates
        Passed records (their :meth:`~sci_diffusion.chem.gate.MoleculeRecord.mol`).
    size
        At most this many molecules are drawn.
    per_row
        Molecules per grid row.
    """
    return grid_svg_of(_record_entries(candidates, size), per_row)


def grid_svg_of(entries: Sequence[GridEntry], per_row: int = 6) -> str:
    """:func:`grid_svg` of (molecule, index, QED, SA) entries (e.g. :func:`sdf_grid_entries`)."""
    mols, legends = _grid_molecules(entries)
    draw = _draw_module() if mols else None
    if not isinstance(draw, ModuleType):
        text = escape(draw or NO_CANDIDATES)
        width = max(320, 7 * len(text) + 20)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40">'
            f'<rect width="{width}" height="40" fill="white"/>'
            '<text x="10" y="25" font-family="sans-serif" font-size="14">'
            f"{text}</text></svg>\n"
        )
    svg = draw.MolsToGridImage(
        mols, molsPerRow=min(per_row, len(mols)), subImgSize=(220, 180), legends=legends,
        useSVG=True,
    )  # fmt: skip
    return str(svg)


def grid_png(candidates: Sequence[MoleculeRecord], size: int = 24, per_row: int = 6) -> bytes:
    """The drawings of :func:`grid_svg` as PNG bytes (opens in every viewer)."""
    return grid_png_of(_record_entries(candidates, size), per_row)


def grid_png_of(entries: Sequence[GridEntry], per_row: int = 6) -> bytes:
    """:func:`grid_png` of (molecule, index, QED, SA) entries."""
    import io

    from PIL import Image, ImageDraw

    mols, legends = _grid_molecules(entries)
    draw = _draw_module() if mols else None
    if isinstance(draw, ModuleType):
        image = draw.MolsToGridImage(
            mols, molsPerRow=min(per_row, len(mols)), subImgSize=(220, 180), legends=legends
        )
    else:
        text = draw or NO_CANDIDATES
        image = Image.new("RGB", (max(320, 7 * len(text) + 20), 40), "white")
        ImageDraw.Draw(image).text((10, 14), text, fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _draw_module() -> ModuleType | str:
    """``rdkit.Chem.Draw``, or why it cannot load (the grid then shows that sentence).

    RDKit's drawing code links X11's libXrender: on a bare headless machine (a GPU server's
    image, say) importing it fails, and screening must not fail with it: only the drawings
    are lost, and the grid says so.
    """
    try:
        from rdkit.Chem import Draw
    except ImportError as err:
        reason = (f"molecule drawings unavailable: RDKit's drawing module did not load ({err}); "
                  "on Debian/Ubuntu: apt install libxrender1 libxext6")  # fmt: skip
        warnings.warn(reason, RuntimeWarning, stacklevel=3)
        return reason
    return Draw


def _top_reasons(records: Sequence[MoleculeRecord], n: int = 10) -> list[tuple[str, str, int]]:
    counts = Counter((r.failed_gate, r.failure_reason or "") for r in records if r.failed_gate)
    return [(gate, reason, count) for (gate, reason), count in counts.most_common(n)]


def report_markdown(
    records: Sequence[MoleculeRecord] | Counter[tuple[str, str]],
    metrics: Mapping[str, Any],
    prov: Mapping[str, Any],
) -> str:
    """The text of ``report.md``: counts, the checks table, top rejection reasons, provenance.

    Parameters
    ----------
    records
        Every screened record, or (for a streamed screening) a ``Counter`` of
        ``(failed check, reason)`` of the rejected ones.
    metrics
        :func:`~sci_diffusion.chem.gate.gate_metrics` output (plus any extras).
    prov
        Provenance fields.
    """
    n, k = metrics["n_input"], metrics["n_candidates"]
    lines = [
        "# Screening report",
        "",
        f"Candidates have validation status `in_silico_screened`: they passed every check of "
        f"the RDKit screening gate. {VALIDATION_NOTE}",
        "",
        f"- inputs: {n}",
        f"- candidates: {k} ({100 * metrics['pass_rate']:.1f}%)",
        f"- valid structures (sanitize, one fragment, allowed elements and charges): "
        f"{metrics['n_valid_structure']}",
    ]
    if metrics.get("n_novelty_checked"):
        novel, checked = metrics["n_novel"], metrics["n_novelty_checked"]
        lines.append(f"- novel: {novel} of {checked} sanitized inputs (per input molecule, "
                     "duplicates counted each time: canonical SMILES absent from the training "
                     "set; not the EDM/DiGress novelty ratio over distinct valid molecules)")
    lines += [
        "",
        "## Checks, in order",
        "",
        "| check | pass | fail | skipped |",
        "|---|---|---|---|",
    ]
    for gate in GATES:
        c = metrics["gates"][gate]
        lines.append(f"| {gate} | {c['pass']} | {c['fail']} | {c['skipped']} |")
    lines += ["", "After the first failing check the later ones are skipped.", ""]
    if isinstance(records, Counter):
        reasons = [(gate, reason, count) for (gate, reason), count in records.most_common(10)]
    else:
        reasons = _top_reasons(records)
    if reasons:
        lines += [
            "## Most common rejection reasons",
            "",
            "| check | reason | count |",
            "|---|---|---|",
        ]
        lines += [f"| {g} | {r.replace('|', '/')} | {c} |" for g, r, c in reasons]
        lines.append("")
    lines += ["## Provenance", ""]
    lines += [f"- {key}: {_cell(value) or '-'}" for key, value in prov.items()]
    lines += ["", "## Files", ""]
    lines += [
        f"- `{CANDIDATES_SDF}`, `{CANDIDATES_CSV}`: the {k} candidates with every check result",
        f"- `{REJECTED_CSV}`: the {n - k} rejected inputs with the first failing check",
        f"- `{METRICS_JSON}`: counts per check, alerts, the gate configuration",
        f"- `{GRID_PNG}` (and `{GRID_SVG}`): up to 24 candidates drawn",
        "",
    ]
    return "\n".join(lines)


def write_outputs(
    out_dir: str | Path,
    records: Sequence[MoleculeRecord],
    *,
    config: GateConfig | None = None,
    provenance_fields: Mapping[str, Any] | None = None,
    extra_metrics: Mapping[str, Any] | None = None,
    grid_size: int = 24,
    sdf_hydrogens: bool = False,
    extra_files: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Write all of :data:`OUTPUT_FILES` into ``out_dir``, all or nothing.

    Parameters
    ----------
    out_dir
        Created if missing; files of the same names are replaced.
    records
        Every screened record (:func:`~sci_diffusion.chem.gate.run_gate`), candidates and not.
    config
        The gate config used (stored in ``metrics.json``).
    provenance_fields
        Output of :func:`provenance` (default: ``provenance()`` with nothing known).
    extra_metrics
        Merged into ``metrics.json`` over the gate's own metrics (e.g. validity, uniqueness).
    grid_size
        Most candidates drawn in ``grid.svg``.
    sdf_hydrogens
        Write ``candidates.sdf`` with the missing hydrogens added (:func:`written_molecule`).
    extra_files
        More text files ``{name: text}`` (e.g. ``candidates_refined.sdf``), written in the same
        all-or-nothing step, before ``metrics.json``.

    Returns
    -------
    dict
        The metrics written to ``metrics.json``.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output path {out} exists and is not a directory")
    prov = provenance() if provenance_fields is None else _checked_provenance(provenance_fields)
    candidates = [r for r in records if r.passed]
    rejected = [r for r in records if not r.passed]
    metrics = gate_metrics(records, config) | {"provenance": prov} | dict(extra_metrics or {})
    extra = dict(extra_files or {})
    clash = sorted(set(extra) & set(OUTPUT_FILES))
    if clash or any(Path(name).name != name for name in extra):
        raise ValueError(f"extra_files must be plain new file names, got {sorted(extra)}")
    names = (*(n for n in OUTPUT_FILES if n != METRICS_JSON), *extra, METRICS_JSON)
    with contextlib.ExitStack() as stack:
        tmp = {name: stack.enter_context(temp_path(out, name)) for name in names}
        _write_sdf(tmp[CANDIDATES_SDF], candidates, prov, sdf_hydrogens)
        for name, text in extra.items():
            tmp[name].write_text(text, encoding="utf-8")
        rows = (candidate_row(r, prov) for r in candidates)
        _write_csv(tmp[CANDIDATES_CSV], rows, (*CANDIDATE_COLUMNS, *prov))
        _write_csv(tmp[REJECTED_CSV], (rejected_row(r) for r in rejected), REJECTED_COLUMNS)
        tmp[GRID_SVG].write_text(grid_svg(candidates, grid_size))
        tmp[GRID_PNG].write_bytes(grid_png(candidates, grid_size))
        tmp[REPORT_MD].write_text(report_markdown(records, metrics, prov))
        text = json.dumps(metrics, indent=2, sort_keys=True, default=str, allow_nan=True)
        tmp[METRICS_JSON].write_text(text + "\n")
        for name in names:  # metrics.json last: its presence means the set is complete
            publish(tmp[name], out / name)
    return metrics
