"""The ``strict`` geometry profile: bond lengths and bond angles within QM9's own DFT range.

PoseBusters' bond checks (:mod:`.plausibility`, the gate's ``default`` geometry profile) accept
a bond between 0.75 x and 1.25 x RDKit's distance-geometry bounds: a C#N of 0.96 Å or a C=O of
1.04 Å passes. The ``strict`` profile adds two checks on top of those, against a table derived
from QM9's own B3LYP/6-31G(2df,p) geometries (:mod:`.qm9_geometry_table`):

* ``strict_bond_lengths`` — every bond's length lies within the bounds of its key,
  ``"<element>-<element>:<order>"`` with the elements in alphabetical order and the order
  ``1``, ``2``, ``3`` or ``ar`` (aromatic, RDKit's model after sanitization): ``"C-N:3"``.
* ``strict_bond_angles`` — every bond angle i-j-k lies within the bounds of its key,
  ``"<centre element>:<centre hybridization>:<ring>"``: RDKit's hybridization of j (``SP``,
  ``SP2``, ``SP3``), then ``r3``, ``r4`` or ``r5`` when a ring of that size holds both bonds
  (the smallest such ring), ``x`` when none does but j is in a 3-, 4- or 5-ring (an angle
  outside a small ring, e.g. at a cyclopropane's substituent), else ``-``. Examples:
  ``"C:SP3:r3"`` (inside a cyclopropane), ``"N:SP2:-"``. Angles with a hydrogen at any of
  their three atoms are not in the table.

The bounds of a key are the ``lower`` and ``upper`` percentiles (0.1 and 99.9 by default) of
that key's values over the molecules of QM9's training split (SMILES graph at the DFT
geometry, aligned by :mod:`.structures`; a molecule whose relaxed geometry is not connected
like its SMILES is skipped: 1 of the 100,000). Keys seen fewer than ``min_count`` (50) times
get no bound: a bond or angle with such a key, or one QM9 never has, is not checked by the
strict profile; it is counted (``strict_unchecked``), not failed. Hydrogens follow the
plausibility config's ``ignore_hydrogens`` (default: skipped, as in PoseBusters); the table
holds the X-H bonds too.

By construction about 0.2% of QM9's bonds of each kind lie outside their bounds, so a QM9
molecule, with 9.4 heavy-atom bonds and 13.9 angles on average, fails now and then: on the
test split 1.6% have a bond and 3.6% a bond or an angle outside (``QM9_TEST`` in the table).

The table is regenerated with ``python -m sci_diffusion.chem.geometry_bounds`` (all of the
training split, about 70 CPU-seconds; the QM9 files come with the ``qm9pack`` package, nothing
is downloaded), which rewrites ``qm9_geometry_table.py`` with QM9's own failure shares on the
test split (``QM9_TEST``). ``docs/molecules.md`` ("Strict geometry profile") lists the bounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import math
import pprint
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rdkit import Chem, rdBase

__all__ = [
    "GEOMETRY_PROFILES",
    "STRICT_CHECKS",
    "GeometryTable",
    "angle_key",
    "bond_key",
    "candidate_geometry",
    "carbon_carbon_outside",
    "check_strict_geometry",
    "derive_table",
    "failure_shares",
    "geometry_table",
    "measure_geometry",
    "qm9_molecules",
]

GEOMETRY_PROFILES: tuple[str, ...] = ("default", "strict")
"""The gate's geometry profiles: PoseBusters' checks alone, or with QM9's bounds on top."""

STRICT_CHECKS: tuple[str, ...] = ("strict_bond_lengths", "strict_bond_angles")
"""The checks the strict profile adds to :data:`~.plausibility.PLAUSIBILITY_CHECKS`."""

_ORDER = {
    Chem.BondType.SINGLE: "1",
    Chem.BondType.DOUBLE: "2",
    Chem.BondType.TRIPLE: "3",
    Chem.BondType.AROMATIC: "ar",
}
_RINGS = (3, 4, 5)
_MAX_LISTED = 8  # outliers listed per check in a result


def bond_key(mol: Chem.Mol, bond: Chem.Bond) -> str | None:
    """``"C-N:3"``: the bond's elements (alphabetical) and order; None for other bond types."""
    order = _ORDER.get(bond.GetBondType())
    if order is None:
        return None
    a, b = sorted((bond.GetBeginAtom().GetSymbol(), bond.GetEndAtom().GetSymbol()))
    return f"{a}-{b}:{order}"


def _smallest_shared_ring(bond_rings: Sequence[Sequence[int]], b1: int, b2: int) -> int:
    sizes = [len(ring) for ring in bond_rings if b1 in ring and b2 in ring]
    return min(sizes) if sizes else 0


def angle_key(centre: Chem.Atom, ring_size: int) -> str:
    """``"C:SP3:r3"``: the centre's element and hybridization, then the smallest ring holding
    both bonds (``r3``/``r4``/``r5``), or ``x`` when no such ring holds both but the centre is
    in a 3-, 4- or 5-ring (an angle outside a small ring), else ``-``."""
    if ring_size in _RINGS:
        ring = f"r{ring_size}"
    else:
        info = centre.GetOwningMol().GetRingInfo()
        small = any(info.IsAtomInRingOfSize(centre.GetIdx(), size) for size in _RINGS)
        ring = "x" if small else "-"
    return f"{centre.GetSymbol()}:{centre.GetHybridization()!s}:{ring}"


def _angle(positions: np.ndarray, i: int, j: int, k: int) -> float:
    u, v = positions[i] - positions[j], positions[k] - positions[j]
    cosine = float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


@dataclass(frozen=True)
class Measured:
    """One bond length (Å) or bond angle (degrees) of a molecule, with its key and atoms."""

    key: str | None
    value: float
    atoms: tuple[int, ...]


def measure_geometry(
    mol: Chem.Mol, positions: np.ndarray, *, ignore_hydrogens: bool = True
) -> tuple[list[Measured], list[Measured]]:
    """Every bond length and bond angle of a sanitized molecule at ``positions`` (N, 3) Å.

    Bonds to hydrogen are skipped when ``ignore_hydrogens``; angles with a hydrogen at any of
    the three atoms always are (the table has none). Keys are :func:`bond_key` and
    :func:`angle_key` (None for a bond type outside single/double/triple/aromatic).
    """
    heavy = [a.GetAtomicNum() > 1 for a in mol.GetAtoms()]
    bonds: list[Measured] = []
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        if ignore_hydrogens and not (heavy[i] and heavy[j]):
            continue
        length = float(np.linalg.norm(positions[i] - positions[j]))
        bonds.append(Measured(bond_key(mol, bond), length, (i, j)))
    angles: list[Measured] = []
    bond_rings = mol.GetRingInfo().BondRings()
    for centre in mol.GetAtoms():
        j = centre.GetIdx()
        if not heavy[j]:
            continue
        links = [(b.GetOtherAtomIdx(j), b.GetIdx()) for b in centre.GetBonds()]
        links = [(i, b) for i, b in links if heavy[i]]
        for x in range(len(links)):
            for y in range(x + 1, len(links)):
                (i, b1), (k, b2) = links[x], links[y]
                ring = _smallest_shared_ring(bond_rings, b1, b2)
                angles.append(Measured(angle_key(centre, ring), _angle(positions, i, j, k),
                                       (i, j, k)))  # fmt: skip
    return bonds, angles


# --------------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Bound:
    """The accepted range of one key and what it was derived from."""

    lower: float
    upper: float
    count: int
    median: float


@dataclass(frozen=True)
class GeometryTable:
    """Bond-length (Å) and bond-angle (degree) bounds by key, and how they were derived."""

    bond_lengths: Mapping[str, Bound]
    bond_angles: Mapping[str, Bound]
    source: Mapping[str, Any]
    qm9_test: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """QM9's own shares on its test split (:func:`failure_shares`, heavy atoms)."""


@functools.lru_cache(maxsize=1)
def geometry_table() -> GeometryTable:
    """The packaged table (:mod:`.qm9_geometry_table`), loaded once per process."""
    from . import qm9_geometry_table as t

    return GeometryTable(
        {k: Bound(*v) for k, v in t.BOND_LENGTHS.items()},
        {k: Bound(*v) for k, v in t.BOND_ANGLES.items()},
        dict(t.SOURCE),
        dict(t.QM9_TEST),
    )


def _outlier(m: Measured, bound: Bound, digits: int) -> list[Any]:
    return [m.key, round(m.value, digits), [bound.lower, bound.upper], list(m.atoms)]


def check_strict_geometry(
    mol: Chem.Mol,
    positions: np.ndarray,
    *,
    ignore_hydrogens: bool = True,
    table: GeometryTable | None = None,
) -> dict[str, Any]:
    """The strict profile's two checks on one sanitized molecule at ``positions`` (N, 3) Å.

    Returns
    -------
    dict
        ``strict_bond_lengths`` and ``strict_bond_angles`` (True = every measured value of a
        key with bounds lies within them), ``strict_bond_outliers`` and
        ``strict_angle_outliers`` (up to 8 of each: ``[key, value, [lower, upper], atoms]``,
        the worst first, by distance outside relative to the range), ``strict_n_bond_outliers``
        / ``strict_n_angle_outliers`` and ``strict_unchecked`` (bonds and angles whose key has
        no bound).
    """
    table = table or geometry_table()
    bonds, angles = measure_geometry(mol, positions, ignore_hydrogens=ignore_hydrogens)
    out: dict[str, Any] = {}
    unchecked = 0
    for check, name, items, bounds, digits in (
        ("strict_bond_lengths", "bond", bonds, table.bond_lengths, 3),
        ("strict_bond_angles", "angle", angles, table.bond_angles, 1),
    ):
        bad: list[tuple[float, Measured, Bound]] = []
        for m in items:
            bound = bounds.get(m.key) if m.key is not None else None
            if bound is None:
                unchecked += 1
                continue
            excess = max(bound.lower - m.value, m.value - bound.upper)
            if excess > 0:
                bad.append((excess / max(bound.upper - bound.lower, 1e-9), m, bound))
        bad.sort(key=lambda item: -item[0])
        out[check] = not bad
        out[f"strict_n_{name}_outliers"] = len(bad)
        out[f"strict_{name}_outliers"] = [_outlier(m, b, digits) for _, m, b in bad[:_MAX_LISTED]]
    out["strict_unchecked"] = unchecked
    return out


def carbon_carbon_outside(
    mol: Chem.Mol, positions: np.ndarray, low: float = 1.2, high: float = 1.6
) -> bool:
    """Whether some C-C bond (any order) is shorter than ``low`` or longer than ``high`` Å:
    the coarse figure of issue 17 (QM9's own DFT geometries: about 3%)."""
    for bond in mol.GetBonds():
        a, b = bond.GetBeginAtom(), bond.GetEndAtom()
        if a.GetAtomicNum() == 6 and b.GetAtomicNum() == 6:
            d = float(np.linalg.norm(positions[a.GetIdx()] - positions[b.GetIdx()]))
            if not low <= d <= high:
                return True
    return False


# --------------------------------------------------------------------------------------------
# Deriving the table from QM9


def qm9_molecules(
    split: str = "train", limit: int | None = None, *, hydrogens: bool = True
) -> Iterator[tuple[Chem.Mol, np.ndarray]]:
    """QM9 molecules of one split part as (sanitized molecule, DFT positions (N, 3) Å).

    The SMILES's molecule (hydrogens explicit when ``hydrogens``, heavy atoms first) at the
    geometry aligned by :func:`~.structures.align_record`'s matching; molecules whose relaxed
    geometry is not connected like their SMILES are skipped.
    """
    from .data import load_qm9
    from .featurize import FeaturizationError
    from .structures import _match_geometry, _skeleton

    with rdBase.BlockLogs():
        for record in load_qm9(split, limit=limit, coordinates=True):
            mol = Chem.MolFromSmiles(record.smiles)
            if mol is None:
                continue
            with_h = Chem.AddHs(mol)
            if with_h.GetNumAtoms() != len(record.elements):
                continue
            try:
                match = _match_geometry(_skeleton(with_h), record)
            except FeaturizationError:
                continue
            positions = np.asarray(record.positions, np.float64)[list(match)]
            if hydrogens:
                yield with_h, positions
            else:
                yield mol, positions[: mol.GetNumAtoms()]


def derive_table(
    molecules: Iterable[tuple[Chem.Mol, np.ndarray]],
    *,
    lower: float = 0.1,
    upper: float = 99.9,
    min_count: int = 50,
    source: Mapping[str, Any] | None = None,
) -> GeometryTable:
    """Percentile bounds of every bond and angle key over ``molecules`` (with hydrogens, so
    that X-H bonds get bounds too).

    Parameters
    ----------
    molecules
        (sanitized molecule, positions) pairs, e.g. :func:`qm9_molecules`.
    lower, upper
        Percentiles (0-100) that become a key's bounds (numpy's linear interpolation).
    min_count
        Keys seen fewer times get no bound (the strict profile then does not check them).
    source
        Provenance stored in the table.
    """
    if not 0 <= lower < upper <= 100:
        raise ValueError(f"need 0 <= lower < upper <= 100, got {lower}, {upper}")
    bond_values: dict[str, list[float]] = {}
    angle_values: dict[str, list[float]] = {}
    n = 0
    for mol, positions in molecules:
        n += 1
        bonds, angles = measure_geometry(mol, positions, ignore_hydrogens=False)
        for m in bonds:
            if m.key is not None:
                bond_values.setdefault(m.key, []).append(m.value)
        for m in angles:
            angle_values.setdefault(m.key, []).append(m.value)  # type: ignore[arg-type]

    def bounds(values: dict[str, list[float]], digits: int) -> dict[str, Bound]:
        out = {}
        for key in sorted(values):
            v = np.asarray(values[key])
            if v.size < min_count:
                continue
            lo, hi, med = np.percentile(v, [lower, upper, 50.0])
            scale = 10**digits  # rounded outwards: a bound never cuts into its range
            out[key] = Bound(math.floor(lo * scale) / scale, math.ceil(hi * scale) / scale,
                             int(v.size), round(float(med), digits))  # fmt: skip
        return out

    info = dict(source or {})
    info.update(n_molecules=n, lower_percentile=lower, upper_percentile=upper,
                min_count=min_count)  # fmt: skip
    return GeometryTable(bounds(bond_values, 4), bounds(angle_values, 2), info)


def failure_shares(
    molecules: Iterable[tuple[Chem.Mol, np.ndarray]],
    table: GeometryTable | None = None,
    *,
    ignore_hydrogens: bool = True,
    outlier_keys: bool = False,
) -> dict[str, Any]:
    """How many molecules have a bond (``bond_outside``), an angle (``angle_outside``) or
    either (``any_outside``) outside the strict bounds, and a C-C bond outside 1.2-1.6 Å
    (``cc_outside_1.2_1.6``); each also as a ``*_share`` of ``n``. ``outlier_keys``: also
    count the bond keys out of range, ``"C-N:1 short"`` (``bond_outliers``)."""
    counts = {"n": 0, "bond_outside": 0, "angle_outside": 0, "any_outside": 0,
              "cc_outside_1.2_1.6": 0}  # fmt: skip
    keys: dict[str, int] = {}
    for mol, positions in molecules:
        result = check_strict_geometry(mol, positions, ignore_hydrogens=ignore_hydrogens,
                                       table=table)  # fmt: skip
        counts["n"] += 1
        counts["bond_outside"] += not result["strict_bond_lengths"]
        counts["angle_outside"] += not result["strict_bond_angles"]
        counts["any_outside"] += not (
            result["strict_bond_lengths"] and result["strict_bond_angles"]
        )
        counts["cc_outside_1.2_1.6"] += carbon_carbon_outside(mol, positions)
        for key, value, (lower, _), _ in result["strict_bond_outliers"]:
            name = f"{key} {'short' if value < lower else 'long'}"
            keys[name] = keys.get(name, 0) + 1
    n = max(counts["n"], 1)
    shares = {f"{k}_share": round(v / n, 5) for k, v in counts.items() if k != "n"}
    out: dict[str, Any] = {**counts, **shares}
    if outlier_keys:
        out["bond_outliers"] = dict(sorted(keys.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


def candidate_geometry(mols: Sequence[Chem.Mol | None]) -> dict[str, Any]:
    """:func:`failure_shares` of generated molecules (sanitized, first conformer; None and
    molecules without a conformer are left out), heavy atoms only, with the bond keys out of
    range, beside QM9's own test-split shares (``qm9_test``) from the packaged table."""
    pairs = [(m, m.GetConformer().GetPositions()) for m in mols
             if m is not None and m.GetNumConformers()]  # fmt: skip
    out = failure_shares(pairs, ignore_hydrogens=True, outlier_keys=True)
    out["qm9_test"] = dict(geometry_table().qm9_test)
    return out


TABLE_MODULE = Path(__file__).with_name("qm9_geometry_table.py")


def table_source(table: GeometryTable) -> str:
    """The text of :mod:`.qm9_geometry_table` for ``table``."""

    def rows(bounds: Mapping[str, Bound]) -> str:
        lines = [f"    {k!r}: ({b.lower!r}, {b.upper!r}, {b.count}, {b.median!r}),"
                 for k, b in bounds.items()]  # fmt: skip
        return "{\n" + "\n".join(lines) + "\n}"

    source = pprint.pformat(dict(table.source), width=90, sort_dicts=True)
    qm9_test = pprint.pformat(dict(table.qm9_test), width=90, sort_dicts=True)
    return (
        '"""QM9 bond-length (Å) and bond-angle (degree) bounds of the strict geometry profile.\n\n'
        "Generated by ``python -m sci_diffusion.chem.geometry_bounds``\n"
        "(:mod:`sci_diffusion.chem.geometry_bounds`); do not edit by hand. Each entry is\n"
        "``key: (lower, upper, count, median)``.\n"
        '"""\n\n'
        "# fmt: off\n"
        f"SOURCE = {source}\n\n"
        "# QM9's own test split, heavy atoms, against these bounds (failure_shares)\n"
        f"QM9_TEST = {qm9_test}\n\n"
        f"BOND_LENGTHS = {rows(table.bond_lengths)}\n\n"
        f"BOND_ANGLES = {rows(table.bond_angles)}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate :mod:`.qm9_geometry_table` from QM9's training split; print QM9's shares."""
    import rdkit

    from sci_diffusion.io.files import write_text_atomic

    from .data import qm9_split

    parser = argparse.ArgumentParser(prog="python -m sci_diffusion.chem.geometry_bounds",
                                     description=main.__doc__)  # fmt: skip
    parser.add_argument("--lower", type=float, default=0.1, help="lower percentile (0.1)")
    parser.add_argument("--upper", type=float, default=99.9, help="upper percentile (99.9)")
    parser.add_argument("--min-count", type=int, default=50, help="fewest values for a bound")
    parser.add_argument("--limit", type=int, default=None, help="first k training molecules")
    parser.add_argument("--out", type=Path, default=TABLE_MODULE, help="module to write")
    parser.add_argument("--check", type=int, default=None,
                        help="test-split molecules for QM9's own shares (default: all)")
    args = parser.parse_args(argv)
    source = {
        "data": "QM9 train split (qm9pack), SMILES graph at the B3LYP/6-31G(2df,p) geometry",
        "split_fingerprint": qm9_split().fingerprint,
        "rdkit_version": rdkit.__version__,
        "date": datetime.date.today().isoformat(),
        "command": "python -m sci_diffusion.chem.geometry_bounds"
        + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:])),
    }
    table = derive_table(qm9_molecules("train", args.limit), lower=args.lower,
                         upper=args.upper, min_count=args.min_count, source=source)  # fmt: skip
    shares = failure_shares(qm9_molecules("test", args.check, hydrogens=False), table)
    table = dataclasses.replace(table, qm9_test=shares)
    write_text_atomic(args.out, table_source(table))
    print(f"wrote {args.out}: {len(table.bond_lengths)} bond keys, "
          f"{len(table.bond_angles)} angle keys from {table.source['n_molecules']} molecules")
    print("QM9 test split, heavy atoms:", json.dumps(shares))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
