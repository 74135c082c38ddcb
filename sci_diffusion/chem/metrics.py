"""Molecule generation metrics with the literature's exact definitions, next to stricter ones.

Validity, uniqueness and novelty follow the code of EDM (Hoogeboom et al., ICML 2022,
``qm9/rdkit_functions.py``, ``BasicMolecularMetrics``) and DiGress (Vignac et al., ICLR 2023,
``src/analysis/rdkit_functions.py``), which agree on them. Atom and molecule stability follow
EDM's ``check_stability`` (``qm9/analyze.py``) with EDM's valence table ``allowed_bonds``
(``qm9/bond_analyze.py``). The MOSES benchmark metrics live in
:mod:`sci_diffusion.chem.moses_metrics`; :func:`moses_metrics` is re-exported here.

Inputs are RDKit molecules as a generator builds them: *unsanitized*, ``None`` where building
failed. Nothing here modifies its inputs (every check sanitizes a copy). Stability takes plain
graphs (atom symbols and an (N, N) bond-order matrix), so it needs no RDKit molecule.

The SMILES used for uniqueness and novelty are canonical RDKit SMILES of the molecule with
hydrogens made implicit (``Chem.RemoveHs``), non-isomeric by default, so that explicit-H samples
compare equal to ordinary training-set SMILES. For sanitized molecules this identifies the same
molecules as EDM's SMILES with explicit ``[H]`` atoms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from rdkit import Chem, rdBase

from sci_diffusion.chem._deprecated import renamed
from sci_diffusion.chem.gate import canonical_smiles_set
from sci_diffusion.chem.moses_metrics import moses_metrics

__all__ = [
    "BOND_ORDERS",
    "EDM_ALLOWED_VALENCES",
    "atom_stable",
    "bond_order_graph",
    "canonical_smiles_set",
    "edm_stability",
    "literature_valid_smiles",
    "molecule_metrics",
    "moses_metrics",
    "novelty",
    "strict_valid_smiles",
    "uniqueness",
    "validity",
    "validity_strict",
]

Graph = tuple[Sequence[str | int], np.ndarray]
"""An explicit-H molecular graph: atom symbols (or atomic numbers) and an (N, N) order matrix."""

EDM_ALLOWED_VALENCES: Mapping[str, tuple[int, ...]] = {
    "H": (1,), "C": (4,), "N": (3,), "O": (2,), "F": (1,), "B": (3,), "Al": (3,),
    "Si": (4,), "P": (3, 5), "S": (4,), "Cl": (1,), "As": (3,), "Br": (1,), "I": (1,),
    "Hg": (1, 2), "Bi": (3, 5),
}  # fmt: skip
"""EDM's neutral valence table, ``allowed_bonds`` in EDM's ``qm9/bond_analyze.py``.

Note S: 4 only (not 2 or 6), as in EDM. Formal charges are not considered at all.
"""

BOND_ORDERS: Mapping[Chem.BondType, float] = {
    Chem.BondType.SINGLE: 1.0,
    Chem.BondType.DOUBLE: 2.0,
    Chem.BondType.TRIPLE: 3.0,
    Chem.BondType.AROMATIC: 1.5,
}
"""Bond order per RDKit bond type (aromatic 1.5, RDKit's ``GetBondTypeAsDouble``)."""

# Atomic numbers of the elements in the EDM table, so that graphs need no RDKit.
_SYMBOLS = {1: "H", 5: "B", 6: "C", 7: "N", 8: "O", 9: "F", 13: "Al", 14: "Si", 15: "P",
            16: "S", 17: "Cl", 33: "As", 35: "Br", 53: "I", 80: "Hg", 83: "Bi"}  # fmt: skip


# --------------------------------------------------------------------------------------------
# Validity
# --------------------------------------------------------------------------------------------


def _sanitized_copy(mol: Chem.Mol | None) -> Chem.Mol | None:
    """A sanitized copy of ``mol``, or None when it is None, empty or fails sanitization."""
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    copy = Chem.Mol(mol)
    try:
        with rdBase.BlockLogs():
            Chem.SanitizeMol(copy)
    except (ValueError, RuntimeError):  # RDKit sanitize errors subclass ValueError
        return None
    return copy


def _smiles(mol: Chem.Mol, isomeric: bool) -> str:
    """Canonical SMILES of a sanitized molecule with its hydrogens made implicit."""
    with rdBase.BlockLogs():
        return Chem.MolToSmiles(Chem.RemoveHs(mol), isomericSmiles=isomeric)


def _largest_fragment(sanitized: Chem.Mol) -> Chem.Mol | None:
    """EDM's largest fragment (most atoms, first on ties) of a sanitized molecule."""
    try:
        with rdBase.BlockLogs():
            fragments = Chem.GetMolFrags(sanitized, asMols=True)
    except (ValueError, RuntimeError):  # DiGress counts a fragment error as invalid
        return None
    return max(fragments, default=sanitized, key=lambda frag: frag.GetNumAtoms())


def _both_validities(mol: Chem.Mol | None, isomeric: bool) -> tuple[str | None, str | None]:
    """(literature SMILES, strict SMILES) of one molecule, sanitizing it once."""
    sanitized = _sanitized_copy(mol)
    if sanitized is None:
        return None, None
    largest = _largest_fragment(sanitized)
    if largest is None:
        return None, None
    literature = _smiles(largest, isomeric)
    connected = largest.GetNumAtoms() == sanitized.GetNumAtoms()
    return literature, literature if connected else None


def whole_molecule_smiles(mols: Sequence[Chem.Mol | None]) -> list[str | None]:
    """Canonical SMILES of each molecule that sanitizes, all fragments kept (None: it does not
    sanitize, or is empty) — what a benchmark that reads generated SMILES (MOSES) is given.
    The molecules are not modified."""
    out: list[str | None] = []
    for mol in mols:
        copy = _sanitized_copy(mol)
        out.append(None if copy is None else Chem.MolToSmiles(copy) or None)
    return out


def literature_valid_smiles(mol: Chem.Mol | None, *, isomeric: bool = False) -> str | None:
    """EDM/DiGress validity of one molecule: the SMILES of its largest fragment, or None.

    Exactly as in EDM's ``BasicMolecularMetrics.compute_validity`` (and DiGress's, which is the
    same): the *whole* molecule is sanitized (``Chem.SanitizeMol``; failure means invalid), then
    it is split with ``Chem.GetMolFrags(mol, asMols=True)`` and the fragment with the most atoms
    (the first one on ties) gives the SMILES used for uniqueness and novelty. A molecule in
    several pieces is therefore valid as long as every piece sanitizes; a valid large piece
    does not rescue an invalid small one.

    Parameters
    ----------
    mol
        An unsanitized RDKit molecule, or None (failed construction: invalid).
    isomeric
        Keep stereochemistry in the SMILES.

    Returns
    -------
    str or None
        The canonical SMILES (hydrogens implicit) of the largest fragment, or None if invalid.
        Empty molecules are invalid (EDM would count their empty SMILES as valid).
    """
    return _both_validities(mol, isomeric)[0]


def strict_valid_smiles(mol: Chem.Mol | None, *, isomeric: bool = False) -> str | None:
    """Strict validity of one molecule: it sanitizes *and* is one connected fragment.

    Parameters
    ----------
    mol
        An unsanitized RDKit molecule, or None (invalid).
    isomeric
        Keep stereochemistry in the SMILES.

    Returns
    -------
    str or None
        The canonical SMILES (hydrogens implicit), or None if invalid.
    """
    return _both_validities(mol, isomeric)[1]


def _fraction(count: int, total: int) -> float:
    if total == 0:
        raise ValueError("no molecules to evaluate")
    return count / total


def validity(mols: Sequence[Chem.Mol | None]) -> float:
    """Literature validity (EDM, DiGress): fraction of molecules whose every fragment sanitizes.

    ``sum(literature_valid_smiles(m) is not None) / len(mols)``; denominator: all samples,
    failed constructions (None) included. See :func:`literature_valid_smiles`.
    """
    return _fraction(sum(literature_valid_smiles(m) is not None for m in mols), len(mols))


def validity_strict(mols: Sequence[Chem.Mol | None]) -> float:
    """Strict validity: fraction of all samples that sanitize and are a single fragment.

    See :func:`strict_valid_smiles`; denominator: all samples.
    """
    return _fraction(sum(strict_valid_smiles(m) is not None for m in mols), len(mols))


# --------------------------------------------------------------------------------------------
# Uniqueness and novelty
# --------------------------------------------------------------------------------------------


def uniqueness(valid_smiles: Sequence[str]) -> float:
    """Fraction of distinct SMILES among the valid molecules (EDM, DiGress).

    ``len(set(valid_smiles)) / len(valid_smiles)``: denominator the number of *valid*
    molecules (duplicates included), as in ``compute_uniqueness`` of EDM and DiGress. Returns
    0.0 when nothing is valid, as their ``evaluate`` does.

    Parameters
    ----------
    valid_smiles
        One canonical SMILES per valid molecule, e.g. from :func:`literature_valid_smiles`.
    """
    if len(valid_smiles) == 0:
        return 0.0
    return len(set(valid_smiles)) / len(valid_smiles)


def novelty(valid_smiles: Iterable[str], training: Iterable[str]) -> float:
    """Fraction of the distinct valid SMILES that are not in the training set (EDM, DiGress).

    ``len(unique - training) / len(unique)`` with ``unique = set(valid_smiles)``: denominator
    the number of *unique valid* molecules, as in ``compute_novelty`` of EDM and DiGress.
    Returns 0.0 when nothing is valid (EDM's ``evaluate``).

    Parameters
    ----------
    valid_smiles
        Canonical SMILES of the valid samples.
    training
        Canonical SMILES of the training set, made the same way (see
        :func:`canonical_smiles_set`).
    """
    unique = set(valid_smiles)
    if not unique:
        return 0.0
    return len(unique - set(training)) / len(unique)


# --------------------------------------------------------------------------------------------
# Stability (explicit hydrogens)
# --------------------------------------------------------------------------------------------


def _symbol(atom: str | int) -> str:
    if isinstance(atom, str):
        return atom
    try:
        return _SYMBOLS[int(atom)]
    except KeyError:
        raise ValueError(f"atomic number {atom} is not in the EDM valence table") from None


def atom_stable(
    atoms: Sequence[str | int],
    bond_orders: np.ndarray,
    allowed: Mapping[str, tuple[int, ...]] = EDM_ALLOWED_VALENCES,
) -> np.ndarray:
    """EDM's atom stability for one explicit-H graph.

    An atom is stable when the sum of the orders of its bonds equals one of the valences that
    ``allowed`` lists for its element (EDM's ``check_stability``). Orders: single 1, double 2,
    triple 3, aromatic 1.5 — EDM's own distance-based bonds are only ever 1, 2 or 3, so pass
    kekulized orders: with aromatic 1.5 a pyrrole-type nitrogen sums to 4 and fails.

    Formal charges play no part (EDM's table is neutral): an ammonium N (4 bonds) or a
    carboxylate O (1 bond) is unstable. MiDi's charge-aware, more lenient table is *not* used.

    Parameters
    ----------
    atoms
        N element symbols (``"C"``) or atomic numbers (``6``).
    bond_orders
        (N, N) symmetric matrix of bond orders, 0 for no bond, zero diagonal.
    allowed
        Element -> allowed total bond orders; defaults to EDM's table.

    Returns
    -------
    numpy.ndarray
        (N,) bool, True where the atom is stable.

    Raises
    ------
    ValueError
        On a non-square or asymmetric matrix, or an element missing from ``allowed``.
    """
    orders = np.asarray(bond_orders, dtype=np.float64)
    n = len(atoms)
    if orders.shape != (n, n):
        raise ValueError(f"bond_orders must have shape ({n}, {n}), got {orders.shape}")
    if not np.allclose(orders, orders.T):
        raise ValueError("bond_orders must be symmetric")
    valence = orders.sum(axis=1) - np.diag(orders)  # self-loops carry no valence
    stable = np.zeros(n, dtype=bool)
    for i, atom in enumerate(atoms):
        symbol = _symbol(atom)
        if symbol not in allowed:
            raise ValueError(f"element {symbol!r} is not in the valence table")
        stable[i] = bool(np.any(np.isclose(valence[i], allowed[symbol])))
    return stable


def edm_stability(
    graphs: Iterable[Graph | None],
    allowed: Mapping[str, tuple[int, ...]] = EDM_ALLOWED_VALENCES,
) -> tuple[float, float]:
    """EDM's atom and molecule stability over a set of explicit-H graphs.

    atom stability = stable atoms / all atoms (pooled over molecules); molecule stability =
    molecules whose every atom is stable / molecules (EDM's ``analyze_stability_for_molecules``).
    A ``None`` graph (no graph could be built) counts as an unstable molecule with no atoms.

    Parameters
    ----------
    graphs
        ``(atoms, bond_orders)`` pairs as for :func:`atom_stable`, or None.
    allowed
        Element -> allowed total bond orders; defaults to EDM's table.

    Returns
    -------
    tuple of float
        ``(atom_stability, molecule_stability)``; atom stability is NaN when no atoms.
    """
    n_mols = n_stable_mols = n_atoms = n_stable_atoms = 0
    for graph in graphs:
        n_mols += 1
        if graph is None:
            continue
        stable = atom_stable(graph[0], graph[1], allowed)
        n_atoms += stable.size
        n_stable_atoms += int(stable.sum())
        n_stable_mols += bool(stable.all())
    atom_fraction = n_stable_atoms / n_atoms if n_atoms else float("nan")
    return atom_fraction, _fraction(n_stable_mols, n_mols)


def bond_order_graph(mol: Chem.Mol, *, kekulize: bool = False) -> Graph:
    """The explicit graph of an RDKit molecule for stability: atom symbols and bond orders.

    Not the training featurization (:func:`sci_diffusion.chem.featurize.mol_to_graph`, which
    maps a kekulized molecule to a vocabulary's class indices and refuses what the vocabulary
    cannot hold): EDM's stability needs the molecule as it is, any element, aromatic bonds as
    1.5, and no hydrogens added or removed.

    Only atoms present in the molecule count: implicit hydrogens are ignored, so pass the
    molecule as generated (explicit H atoms), or ``Chem.AddHs`` it first.

    Parameters
    ----------
    mol
        An RDKit molecule (sanitized or not).
    kekulize
        Replace aromatic bonds by a Kekulé structure first (on a copy; needs a molecule that
        kekulizes, e.g. a sanitized one).

    Returns
    -------
    tuple
        ``(symbols, orders)``: N symbols and an (N, N) float64 matrix (see :data:`BOND_ORDERS`).
    """
    if kekulize:
        mol = Chem.Mol(mol)
        Chem.Kekulize(mol, clearAromaticFlags=True)
    symbols = [atom.GetSymbol() for atom in mol.GetAtoms()]
    orders = np.zeros((len(symbols), len(symbols)))
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        if bond.GetBondType() not in BOND_ORDERS:
            raise ValueError(f"unsupported bond type {bond.GetBondType()} between {i} and {j}")
        orders[i, j] = orders[j, i] = BOND_ORDERS[bond.GetBondType()]
    return symbols, orders


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def molecule_metrics(
    mols: Sequence[Chem.Mol | None],
    training_smiles: Iterable[str] | None = None,
    explicit_h: bool = False,
    *,
    graphs: Sequence[Graph | None] | None = None,
    training_is_canonical: bool = False,
    isomeric: bool = False,
) -> dict[str, Any]:
    """Validity (literature and strict), uniqueness, novelty and, with hydrogens, stability.

    Parameters
    ----------
    mols
        Generated molecules, unsanitized, None where construction failed.
    training_smiles
        Training-set SMILES for novelty; None leaves ``novelty`` None.
    explicit_h
        The samples carry explicit hydrogens: compute EDM's atom and molecule stability.
    graphs
        Explicit-H graphs for stability, one per sample (None: read them from ``mols`` with
        :func:`bond_order_graph`; a None molecule is an unstable molecule).
    training_is_canonical
        ``training_smiles`` already come from :func:`canonical_smiles_set` (same ``isomeric``).
    isomeric
        Compare stereo-aware SMILES (default: no, as the literature's graphs carry no stereo).

    Returns
    -------
    dict
        ``n_samples``; ``n_valid`` and ``validity`` (EDM/DiGress: every fragment sanitizes);
        ``n_valid_strict`` and ``validity_strict`` (sanitizes and is connected); ``uniqueness``
        (distinct / valid); ``valid_unique`` (distinct valid / samples, EDM's "valid and
        unique"); ``novelty`` (novel / distinct valid, or None); ``atom_stability`` and
        ``mol_stability`` (EDM's table; None unless ``explicit_h``). Uniqueness and novelty use
        the largest-fragment SMILES of the literature-valid molecules.
    """
    if len(mols) == 0:
        raise ValueError("no molecules to evaluate")
    both = [_both_validities(m, isomeric) for m in mols]
    valid = [literature for literature, _ in both if literature is not None]
    n_strict = sum(strict is not None for _, strict in both)
    result: dict[str, Any] = {
        "n_samples": len(mols),
        "n_valid": len(valid),
        "validity": len(valid) / len(mols),
        "n_valid_strict": n_strict,
        "validity_strict": n_strict / len(mols),
        "uniqueness": uniqueness(valid),
        "valid_unique": len(set(valid)) / len(mols),
        "novelty": None,
        "atom_stability": None,
        "mol_stability": None,
    }
    if training_smiles is not None:
        training = (
            set(training_smiles)
            if training_is_canonical
            else canonical_smiles_set(training_smiles, isomeric=isomeric)
        )
        result["novelty"] = novelty(valid, training)
    if explicit_h:
        if graphs is None:
            graphs = [None if m is None else bond_order_graph(m) for m in mols]
        if len(graphs) != len(mols):
            raise ValueError(f"got {len(graphs)} graphs for {len(mols)} molecules")
        result["atom_stability"], result["mol_stability"] = edm_stability(graphs)
    return result


#: Old name of :func:`bond_order_graph` (it shared its name with the featurizer).
mol_to_graph = renamed("sci_diffusion.chem.metrics.mol_to_graph", bond_order_graph)
