"""From generated 3D structures (element symbols + coordinates) to RDKit molecules.

A 3D generator (EDM, GeoLDM, ...) outputs atoms and coordinates, not bonds. Two documented ways
to turn them into RDKit molecules:

**EDM's distance table** (:func:`mol_from_edm_distances`, :func:`edm_bond_order`,
:func:`edm_bond_matrix`). Source: Hoogeboom et al., "Equivariant Diffusion for Molecule
Generation in 3D", ICML 2022, repository ``ehoogeboom/e3_diffusion_for_molecules``, file
``qm9/bond_analyze.py`` (``bonds1``/``bonds2``/``bonds3``, ``margin1, margin2, margin3 = 10, 5,
3``, ``get_bond_order``). Every atom pair is looked up by element in a table of typical single,
double and triple bond lengths (pm); with the distance ``d`` in pm, the pair gets a triple bond
if ``d < triple + 3``, else a double bond if ``d < double + 5``, else a single bond if
``d < single + 10``, else no bond. Pairs missing from a table cannot have that order; pairs
missing from the single-bond table are never bonded. Nothing else is considered: not valences,
not angles, not charges. This is how the EDM/GeoLDM/DiGress QM9 tables (stability, validity)
were computed, so use it to compare with those numbers. It needs explicit hydrogens to be
meaningful (an under-bonded heavy atom looks the same as one with implicit hydrogens).

**RDKit's xyz2mol** (:func:`mol_from_determine_bonds`): ``rdkit.Chem.rdDetermineBonds.
DetermineBonds``, RDKit's port of Jensen's xyz2mol (Kim & Kim, Bull. Korean Chem. Soc. 2015;
``github.com/jensengroup/xyz2mol``). Connectivity comes from covalent radii (or, with
``use_huckel=True``, from extended-Hückel overlap populations via YAeHMOP); bond orders and
formal charges are then chosen so that every atom has a chemically allowed valence *and* the
molecule has the given total charge. Chemically constrained: it finds conjugated/aromatic
systems and zwitterions that pure distance thresholds misread, and it fails with a reason
instead of returning an impossible molecule. Its default connectivity breaks on strained cages
(about 5% of QM9); ``use_huckel=True`` fixes them at 10-20x the time. Use it to get chemically
sensible molecules out of a 3D sample (downstream property calculation, docking, SMILES for
novelty), and report which method a number comes from. It needs explicit hydrogens: with heavy
atoms only, valences are under-determined and xyz2mol fills them with multiple bonds or charges
(six carbons of a benzene ring come back as ``c1c#cc#cc#1``).

Measured agreement with the GDB SMILES of QM9's own relaxed geometries, and EDM stability, are
in ``docs/molecules.md`` ("From 3D coordinates to molecules").

:func:`with_conformer` attaches the model's own coordinates to any molecule (for example one
built from a predicted graph) without re-embedding.

Inputs everywhere: ``symbols`` a sequence of N element symbols (``"C"``, ``"Cl"``; exact
capitalisation), ``positions`` array-like (N, 3) in Å. Bad shapes, non-finite coordinates and
unknown element symbols raise :class:`ValueError`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdDetermineBonds

__all__ = [
    "EDM_DOUBLE_BOND_PM",
    "EDM_MARGINS_PM",
    "EDM_SINGLE_BOND_PM",
    "EDM_TRIPLE_BOND_PM",
    "atoms_with_conformer",
    "edm_bond_matrix",
    "edm_bond_order",
    "mol_from_determine_bonds",
    "mol_from_edm_distances",
    "with_conformer",
]

# --------------------------------------------------------------------------------------------
# EDM's bond-length tables (data)
# --------------------------------------------------------------------------------------------

# Typical bond lengths in pm, transcribed from EDM's qm9/bond_analyze.py (``bonds1``, ``bonds2``,
# ``bonds3``; EDM took them from wiredchemist.com and chemistry-reference.com). Each unordered
# pair is listed once; EDM's tables are symmetric except for one pair, see _DOUBLE_ONE_WAY.
_SINGLE_PAIRS = (
    ("H", "H", 74), ("H", "B", 119), ("H", "C", 109), ("H", "N", 101), ("H", "O", 96),
    ("H", "F", 92), ("H", "Si", 148), ("H", "P", 144), ("H", "S", 134), ("H", "Cl", 127),
    ("H", "As", 152), ("H", "Br", 141), ("H", "I", 161),
    ("B", "Cl", 175),
    ("C", "C", 154), ("C", "N", 147), ("C", "O", 143), ("C", "F", 135), ("C", "Si", 185),
    ("C", "P", 184), ("C", "S", 182), ("C", "Cl", 177), ("C", "Br", 194), ("C", "I", 214),
    ("N", "N", 145), ("N", "O", 140), ("N", "F", 136), ("N", "P", 177), ("N", "S", 168),
    ("N", "Cl", 175), ("N", "Br", 214), ("N", "I", 222),
    ("O", "O", 148), ("O", "F", 142), ("O", "Si", 163), ("O", "P", 163), ("O", "S", 151),
    ("O", "Cl", 164), ("O", "Br", 172), ("O", "I", 194),
    ("F", "F", 142), ("F", "Si", 160), ("F", "P", 156), ("F", "S", 158), ("F", "Cl", 166),
    ("F", "Br", 178), ("F", "I", 187),
    ("Si", "Si", 233), ("Si", "S", 200), ("Si", "Cl", 202), ("Si", "Br", 215), ("Si", "I", 243),
    ("P", "P", 221), ("P", "S", 210), ("P", "Cl", 203), ("P", "Br", 222),
    ("S", "S", 204), ("S", "Cl", 207), ("S", "Br", 225), ("S", "I", 234),
    ("Cl", "Cl", 199), ("Cl", "Br", 214),
    ("Br", "Br", 228),
    ("I", "I", 266),
)  # fmt: skip
_DOUBLE_PAIRS = (
    ("C", "C", 134), ("C", "N", 129), ("C", "O", 120), ("N", "N", 125), ("N", "O", 121),
    ("O", "O", 121), ("O", "P", 150), ("P", "S", 186),
)  # fmt: skip
# EDM lists C=S (160 pm) under "C" only, not under "S": get_bond_order("C", "S", d) can return
# a double bond, get_bond_order("S", "C", d) cannot.
_DOUBLE_ONE_WAY = (("C", "S", 160),)
_TRIPLE_PAIRS = (("C", "C", 120), ("C", "N", 116), ("C", "O", 113), ("N", "N", 110))


def _table(
    pairs: Sequence[tuple[str, str, int]], one_way: Sequence[tuple[str, str, int]] = ()
) -> Mapping[str, Mapping[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for a, b, pm in pairs:
        nested.setdefault(a, {})[b] = pm
        nested.setdefault(b, {})[a] = pm
    for a, b, pm in one_way:
        nested.setdefault(a, {})[b] = pm
    return MappingProxyType({a: MappingProxyType(row) for a, row in nested.items()})


EDM_SINGLE_BOND_PM: Mapping[str, Mapping[str, int]] = _table(_SINGLE_PAIRS)
"""EDM's ``bonds1``: typical single-bond lengths in pm, ``EDM_SINGLE_BOND_PM["C"]["C"] == 154``.

Symmetric. Elements: H, B, C, N, O, F, Si, P, S, Cl, As, Br, I (Al, Hg, Bi, which EDM's GEOM
vocabulary and valence table know, have no entry: they are never bonded).
"""

EDM_DOUBLE_BOND_PM: Mapping[str, Mapping[str, int]] = _table(_DOUBLE_PAIRS, _DOUBLE_ONE_WAY)
"""EDM's ``bonds2``: typical double-bond lengths in pm (C=C 134, C=N 129, C=O 120, ...).

Symmetric except C=S: ``["C"]["S"] == 160`` exists, ``["S"]["C"]`` does not (as in EDM).
"""

EDM_TRIPLE_BOND_PM: Mapping[str, Mapping[str, int]] = _table(_TRIPLE_PAIRS)
"""EDM's ``bonds3``: typical triple-bond lengths in pm (C#C 120, C#N 116, C#O 113, N#N 110)."""

EDM_MARGINS_PM: tuple[int, int, int] = (10, 5, 3)
"""EDM's ``margin1, margin2, margin3`` in pm, added to the single/double/triple lengths.

EDM's comment: tuned to maximise the stability of the true QM9 samples.
"""

# EDM's GEOM atom_decoder order (QM9's H, C, N, O, F is a subsequence). EDM's build_molecule
# (qm9/rdkit_functions.py) sorts each pair in this order before the table lookup, which makes
# its graphs independent of atom order; edm_bond_matrix does the same.
_EDM_ATOM_ORDER = ("H", "B", "C", "N", "O", "F", "Al", "Si", "P", "S", "Cl", "As", "Br", "I",
                   "Hg", "Bi")  # fmt: skip
_EDM_RANK = {symbol: rank for rank, symbol in enumerate(_EDM_ATOM_ORDER)}

_BOND_TYPES = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}

# YAeHMOP (RDKit's extended-Hückel code) calls exit() -- it kills the Python process -- on an
# element without parameters (Xe, Kr, Zn, ...) or when the valence electrons do not fit its
# valence orbitals (H2 with charge +3 or -5). use_huckel is therefore limited to these elements,
# each checked in a subprocess as X-H at 1 electron and at 2 x (s, p orbitals) electrons.
_HUCKEL_ELEMENTS = frozenset(
    ("H", "B", "C", "N", "O", "F", "Al", "Si", "P", "S", "Cl", "As", "Se", "Br", "I")
)


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _element_symbols() -> frozenset[str]:
    table = Chem.GetPeriodicTable()
    return frozenset(table.GetElementSymbol(z) for z in range(1, 119))


def _check_symbol(symbol: object) -> str:
    if not isinstance(symbol, str):  # numpy str_ is a str
        raise ValueError(f"element symbols must be strings, got {symbol!r}")
    if symbol not in _element_symbols():
        raise ValueError(f"unknown element symbol {symbol!r} (expected e.g. 'C', 'Cl')")
    return str(symbol)


def _check_symbols(symbols: Sequence[str]) -> list[str]:
    if isinstance(symbols, str):
        raise ValueError(
            f"symbols must be a sequence of element symbols, not one string ({symbols!r})"
        )
    array = np.asarray(symbols, dtype=object)
    if array.ndim != 1:
        raise ValueError(f"symbols must be a flat sequence, got shape {array.shape}")
    return [_check_symbol(s) for s in array]


def _check_positions(positions: np.ndarray | Sequence, n_atoms: int) -> np.ndarray:
    try:
        array = np.asarray(positions, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"positions must be numeric (N, 3) coordinates: {err}") from None
    if array.shape != (n_atoms, 3):
        raise ValueError(
            f"positions must have shape (N, 3) = ({n_atoms}, 3) for {n_atoms} atoms, "
            f"got {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError("positions contain NaN or infinite coordinates")
    return array


def _check_charges(charges: np.ndarray | Sequence[int] | None, n_atoms: int) -> np.ndarray:
    if charges is None:
        return np.zeros(n_atoms, dtype=np.int64)
    array = np.asarray(charges)
    if array.shape != (n_atoms,):
        raise ValueError(f"charges must have shape ({n_atoms},), got {array.shape}")
    if array.size and not (
        np.issubdtype(array.dtype, np.number) and np.all(np.round(array) == array)
    ):
        raise ValueError(f"charges must be integers, got {array.tolist()}")
    return array.astype(np.int64)


def _conformer(positions: np.ndarray) -> Chem.Conformer:
    conformer = Chem.Conformer(len(positions))
    conformer.SetPositions(positions)
    conformer.Set3D(True)
    return conformer


def atoms_with_conformer(
    symbols: Sequence[str], positions: np.ndarray, *, no_implicit: bool
) -> Chem.RWMol:
    """Atoms without bonds at 3D ``positions`` (checked (N, 3) float64 Å), the start of every
    reconstruction from coordinates; ``no_implicit`` forbids implicit hydrogens on them."""
    mol = Chem.RWMol()
    for symbol in symbols:
        atom = Chem.Atom(symbol)
        atom.SetNoImplicit(no_implicit)
        mol.AddAtom(atom)
    if len(symbols):
        mol.AddConformer(_conformer(positions), assignId=True)
    return mol


# --------------------------------------------------------------------------------------------
# EDM: bonds from a distance table
# --------------------------------------------------------------------------------------------


def edm_bond_order(symbol_a: str, symbol_b: str, distance: float) -> int:
    """EDM's bond order for one atom pair from its distance.

    Exactly EDM's ``get_bond_order(symbol_a, symbol_b, distance, check_exists=True)``
    (``qm9/bond_analyze.py`` in ``ehoogeboom/e3_diffusion_for_molecules``): with ``d`` the
    distance in pm, 3 if ``d < triple + 3``, else 2 if ``d < double + 5``, else 1 if
    ``d < single + 10``, else 0; the typical lengths are :data:`EDM_SINGLE_BOND_PM`,
    :data:`EDM_DOUBLE_BOND_PM`, :data:`EDM_TRIPLE_BOND_PM`. A pair missing from a table
    cannot take that order; a pair missing from the single-bond table gives 0 (EDM raises
    ``KeyError`` there unless ``check_exists=True``).

    The lookup is by ``symbol_a`` first, as in EDM: the order of the arguments matters for C
    and S only (``edm_bond_order("C", "S", 1.6) == 2`` but ``edm_bond_order("S", "C", 1.6)
    == 1``). :func:`edm_bond_matrix` sorts each pair, as EDM's ``build_molecule`` does.

    Parameters
    ----------
    symbol_a, symbol_b
        Element symbols, e.g. ``"C"``, ``"Cl"``.
    distance
        Interatomic distance in Å (EDM multiplies by 100 to compare in pm).

    Returns
    -------
    int
        0 (no bond), 1, 2 or 3.

    Raises
    ------
    ValueError
        On an unknown element symbol or a negative or non-finite distance.
    """
    a, b = _check_symbol(symbol_a), _check_symbol(symbol_b)
    distance = float(distance)
    if not np.isfinite(distance) or distance < 0:
        raise ValueError(f"distance must be a finite non-negative length in Å, got {distance}")
    pm = 100 * distance
    margin1, margin2, margin3 = EDM_MARGINS_PM
    single = EDM_SINGLE_BOND_PM.get(a, {}).get(b)
    if single is None or not pm < single + margin1:
        return 0
    double = EDM_DOUBLE_BOND_PM.get(a, {}).get(b)
    if double is None or not pm < double + margin2:
        return 1
    triple = EDM_TRIPLE_BOND_PM.get(a, {}).get(b)
    if triple is None or not pm < triple + margin3:
        return 2
    return 3


@functools.lru_cache(maxsize=1024)
def _pair_thresholds(a: str, b: str) -> tuple[float, float, float]:
    """(single, double, triple) thresholds in pm of a pair in EDM's sorted order; -inf = none."""
    if _EDM_RANK.get(b, len(_EDM_RANK)) < _EDM_RANK.get(a, len(_EDM_RANK)):
        a, b = b, a
    thresholds = []
    for table, margin in zip(
        (EDM_SINGLE_BOND_PM, EDM_DOUBLE_BOND_PM, EDM_TRIPLE_BOND_PM), EDM_MARGINS_PM, strict=True
    ):
        length = table.get(a, {}).get(b)
        thresholds.append(-np.inf if length is None else float(length + margin))
    return thresholds[0], thresholds[1], thresholds[2]


def _edm_orders(symbols: list[str], positions: np.ndarray) -> np.ndarray:
    n = len(symbols)
    if n == 0:
        return np.zeros((0, 0), dtype=np.int64)
    elements = sorted(set(symbols))
    index = np.array([elements.index(s) for s in symbols])
    table = np.array(
        [[_pair_thresholds(a, b) for b in elements] for a in elements], dtype=np.float64
    )  # (K, K, 3)
    thresholds = table[index[:, None], index[None, :]]  # (N, N, 3)
    # EDM: sqrt(sum((p1 - p2) ** 2)) * 100, compared in pm.
    pm = 100 * np.sqrt(np.sum((positions[:, None, :] - positions[None, :, :]) ** 2, axis=-1))
    below = pm[..., None] < thresholds  # (N, N, 3): within single, double, triple range
    orders = below[..., 0] * (1 + below[..., 1] * (1 + below[..., 2].astype(np.int64)))
    np.fill_diagonal(orders, 0)
    return orders.astype(np.int64)


def edm_bond_matrix(symbols: Sequence[str], positions: np.ndarray | Sequence) -> np.ndarray:
    """EDM's bond orders for all atom pairs of one structure.

    ``orders[i, j]`` is :func:`edm_bond_order` of atoms i and j with the pair ordered as in
    EDM's atom vocabulary (H, B, C, N, O, F, Al, Si, P, S, Cl, As, Br, I, Hg, Bi), which is
    what EDM's ``build_molecule`` does; the matrix is therefore symmetric and independent of
    the atom order. (EDM's ``check_stability`` uses the atoms' own order instead; the two
    differ only for a C-S pair with the S atom first, at a C=S distance.)

    Parameters
    ----------
    symbols
        (N,) element symbols.
    positions
        (N, 3) coordinates in Å.

    Returns
    -------
    numpy.ndarray
        (N, N) int64, symmetric, zero diagonal, entries 0 (no bond), 1, 2 or 3. Pass it with
        ``symbols`` to :func:`sci_diffusion.chem.metrics.edm_stability` for EDM's atom and
        molecule stability.

    Raises
    ------
    ValueError
        On an unknown element or positions that are not a finite (N, 3) array.
    """
    checked = _check_symbols(symbols)
    return _edm_orders(checked, _check_positions(positions, len(checked)))


def mol_from_edm_distances(
    symbols: Sequence[str],
    positions: np.ndarray | Sequence,
    charges: np.ndarray | Sequence[int] | None = None,
) -> Chem.Mol:
    """An unsanitized RDKit molecule with EDM's distance-table bonds.

    The molecule EDM's ``build_molecule`` builds (bonds from :func:`edm_bond_matrix`; orders 1,
    2, 3 become SINGLE, DOUBLE, TRIPLE), plus the given formal charges and a 3D conformer with
    the given coordinates. Atoms are plain ``Chem.Atom(symbol)`` as in EDM, so sanitizing lets
    RDKit add implicit hydrogens to under-bonded atoms (part of why EDM's validity is lenient).

    It is *not* sanitized: sanitize (or measure, e.g. with
    :func:`sci_diffusion.chem.metrics.validity`) yourself, as EDM's ``mol2smiles`` does.

    Parameters
    ----------
    symbols
        (N,) element symbols, hydrogens included for EDM's QM9-with-H setting.
    positions
        (N, 3) coordinates in Å.
    charges
        (N,) integer formal charges; None for all zero (EDM builds neutral atoms).

    Returns
    -------
    rdkit.Chem.Mol
        An editable ``Chem.RWMol`` with N atoms (in input order), the bonds, the charges and
        one 3D conformer (id 0; none when N is 0) holding ``positions`` exactly.

    Raises
    ------
    ValueError
        On an unknown element, positions that are not a finite (N, 3) array, or charges that
        are not N integers.
    """
    checked = _check_symbols(symbols)
    coordinates = _check_positions(positions, len(checked))
    formal = _check_charges(charges, len(checked))
    mol = atoms_with_conformer(checked, coordinates, no_implicit=False)
    for atom, charge in zip(mol.GetAtoms(), formal, strict=True):
        atom.SetFormalCharge(int(charge))
    orders = _edm_orders(checked, coordinates)
    for i, j in zip(*np.nonzero(np.triu(orders, k=1)), strict=True):
        mol.AddBond(int(i), int(j), _BOND_TYPES[int(orders[i, j])])
    return mol


# --------------------------------------------------------------------------------------------
# RDKit: DetermineBonds (xyz2mol)
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _silenced_stderr_fd() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null (YAeHMOP prints from C, past RDKit's logger)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2: nothing to silence
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _huckel_problem(symbols: list[str], total_charge: int) -> str | None:
    """Why YAeHMOP cannot take this structure (it would terminate the process), or None."""
    unsupported = sorted(set(symbols) - _HUCKEL_ELEMENTS)
    if unsupported:
        return (
            f"use_huckel: element(s) {', '.join(unsupported)} not supported (extended-Hückel "
            f"connectivity is limited to {', '.join(sorted(_HUCKEL_ELEMENTS))})"
        )
    table = Chem.GetPeriodicTable()
    electrons = sum(table.GetNOuterElecs(s) for s in symbols) - total_charge
    orbitals = sum(1 if s == "H" else 4 for s in symbols)
    if not 1 <= electrons <= 2 * orbitals:
        return (
            f"use_huckel: total charge {total_charge} leaves {electrons} valence electrons for "
            f"{orbitals} valence orbitals (need 1 to {2 * orbitals})"
        )
    return None


def mol_from_determine_bonds(
    symbols: Sequence[str],
    positions: np.ndarray | Sequence,
    total_charge: int = 0,
    *,
    use_huckel: bool = False,
    max_iterations: int = 0,
) -> tuple[Chem.Mol | None, str | None]:
    """A sanitized molecule from RDKit's ``DetermineBonds`` (xyz2mol), or the reason it failed.

    Calls ``rdDetermineBonds.DetermineBonds(mol, useHueckel=use_huckel, charge=total_charge,
    embedChiral=False, maxIterations=max_iterations)`` (RDKit defaults otherwise: covalent
    radii x 1.3 "connect-the-dots" connectivity, charged fragments allowed), then
    ``Chem.SanitizeMol``. Connectivity comes from the geometry; bond orders and formal charges
    are chosen so that all valences are allowed and the charges add up to ``total_charge``.

    **Needs explicit hydrogens.** Every atom is marked ``NoImplicit``: the structure must
    contain all its atoms. With heavy atoms only, valences are under-determined and xyz2mol
    fills them with multiple bonds, charges or radicals instead of hydrogens.

    Stereochemistry is not assigned (``embedChiral=False``); call
    ``Chem.AssignStereochemistryFrom3D(mol)`` for it. Note that ``Chem.RemoveHs`` then keeps
    the H atoms that define double-bond stereo (``[H]N=C...`` for an imine), so canonical
    SMILES of stereo-assigned molecules no longer match ordinary implicit-H SMILES.

    Known failure: with the default connectivity, strained cages (bicyclo[1.1.1], oxetanes
    fused to cyclopropanes, ...) get transannular bonds and fail (about 5% of QM9);
    ``use_huckel=True`` fixes them (see ``docs/molecules.md``) at 10-20x the time (about 2 ms
    per QM9 molecule). xyz2mol's bond-order search can be exponential on large unsaturated
    structures: ``max_iterations`` bounds it.

    Parameters
    ----------
    symbols
        (N,) element symbols, hydrogens included.
    positions
        (N, 3) coordinates in Å.
    total_charge
        Net charge of the molecule.
    use_huckel
        Connectivity from extended-Hückel theory (YAeHMOP) instead of covalent radii. YAeHMOP
        prints "Distance ... is suspicious" warnings from C to stderr for every O-H bond under
        0.97 Å; file descriptor 2 is pointed at /dev/null during the call to keep them out,
        so other threads' stderr output during it is lost too. YAeHMOP terminates the whole
        process on elements it has no parameters for or on an impossible electron count, so
        this path accepts only H, B, C, N, O, F, Al, Si, P, S, Cl, As, Se, Br, I and a total
        charge that leaves 1 to 2 x (valence s and p orbitals) electrons; anything else is
        returned as a failure reason without calling it.
    max_iterations
        Bound on xyz2mol's bond-order search (0: no bound, RDKit's default); exceeding it is a
        failure with a reason.

    Returns
    -------
    tuple
        ``(mol, None)``: a sanitized ``Chem.Mol`` with N atoms in input order and one 3D
        conformer (id 0) holding ``positions`` exactly; or ``(None, reason)`` where ``reason``
        names the failure (RDKit's message, e.g. ``"DetermineBonds failed: ValueError: Final
        molecular charge (0) does not match input (2); could not find valid bond ordering"``;
        ``"SanitizeMol failed: ..."`` when xyz2mol returns a molecule RDKit rejects, e.g. a
        pentavalent carbon in a cage; ``"empty structure: no atoms"`` for N = 0). Chemistry
        failures never raise.

    Raises
    ------
    ValueError
        On an unknown element, positions that are not a finite (N, 3) array or a non-integer
        ``total_charge`` (input errors, not chemistry).
    """
    checked = _check_symbols(symbols)
    coordinates = _check_positions(positions, len(checked))
    if not checked:
        return None, "empty structure: no atoms"
    if int(total_charge) != total_charge:
        raise ValueError(f"total_charge must be an integer, got {total_charge!r}")
    if use_huckel and (problem := _huckel_problem(checked, int(total_charge))):
        return None, problem
    mol = atoms_with_conformer(checked, coordinates, no_implicit=True)
    quiet = _silenced_stderr_fd() if use_huckel else contextlib.nullcontext()
    step = "DetermineBonds"
    try:
        with rdBase.BlockLogs(), quiet:
            rdDetermineBonds.DetermineBonds(
                mol,
                useHueckel=bool(use_huckel),
                charge=int(total_charge),
                embedChiral=False,
                maxIterations=int(max_iterations),
            )
            step = "SanitizeMol"
            Chem.SanitizeMol(mol)
    except (ValueError, RuntimeError) as err:  # RDKit's chemistry errors are ValueError
        message = str(err).strip() or "no message"
        return None, f"{step} failed: {type(err).__name__}: {message}"
    return mol.GetMol(), None


# --------------------------------------------------------------------------------------------
# Conformers
# --------------------------------------------------------------------------------------------


def with_conformer(mol: Chem.Mol, positions: np.ndarray | Sequence) -> Chem.Mol:
    """A copy of ``mol`` whose only conformer holds the given 3D coordinates.

    For a molecule built from a predicted graph: attaches the model's own coordinates (not an
    RDKit embedding). Existing conformers of the copy are removed; ``mol`` is not modified.

    Parameters
    ----------
    mol
        An RDKit molecule with N atoms (explicit hydrogens count; implicit ones do not).
    positions
        (N, 3) coordinates in Å, row i for atom i.

    Returns
    -------
    rdkit.Chem.Mol
        A copy with one 3D conformer (id 0) holding ``positions`` exactly (float64).

    Raises
    ------
    ValueError
        If ``positions`` is not a finite (N, 3) array for the N atoms of ``mol``.
    """
    n_atoms = mol.GetNumAtoms()
    try:
        coordinates = _check_positions(positions, n_atoms)
    except ValueError as err:
        raise ValueError(f"molecule has {n_atoms} atoms: {err}") from None
    copy = Chem.Mol(mol)
    copy.RemoveAllConformers()
    if n_atoms:
        copy.AddConformer(_conformer(coordinates), assignId=True)
    return copy
