"""Dense molecular graphs for discrete (DiGress-style) graph diffusion.

A molecule of N atoms becomes three integer arrays: ``atom_types`` (N,) and ``charges`` (N,)
index into a :class:`GraphVocab`'s ``atoms`` and ``charges``; ``bonds`` (N, N) is symmetric
with a zero diagonal and holds 0 none, 1 single, 2 double, 3 triple. By default molecules are
kekulized (aromatic flags cleared) before featurization, so an aromatic ring is an explicit
alternation of single and double bonds and the bond classes stay four. A vocabulary with
``aromatic=True`` (DiGress's MOSES classes) keeps RDKit's aromatic bonds as a fifth class, 4
aromatic; such a graph does not say which aromatic nitrogen carries a hydrogen (pyrrole-type
``[nH]``), so :func:`graph_to_mol` places the fewest that let the ring kekulize, and a tautomer
may come back (1.0% of the first 20,000 MOSES training molecules; none invalid).
Stereochemistry is dropped. In vocabularies without ``H`` hydrogens are implicit:
:func:`graph_to_mol` leaves them to RDKit's valence model, which with formal charges recovers
every QM9 and MOSES molecule (see ``docs/molecules.md``).

Data sets (:func:`qm9_graphs`, :func:`moses_graphs`) are padded tensors cached on disk as
safetensors (never pickle) under :func:`sci_diffusion.io.cache_dir`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rdkit import Chem, rdBase
from safetensors import safe_open
from safetensors.torch import save_file

from sci_diffusion.io.cache import cache_dir
from sci_diffusion.io.files import publish, temp_path
from sci_diffusion.io.progress import progress as progress_bar
from sci_diffusion.io.progress import stage

from .data import (
    file_digest,
    load_moses,
    load_qm9,
    moses_source_file,
    qm9_source_files,
    qm9_split,
)
from .molfiles import InputMolecule, MoleculeProblem, parse_smiles

#: Bump when featurization or the cache layout changes: it is part of every cache key.
FEATURIZE_VERSION = 1
BOND_NAMES = ("none", "single", "double", "triple")
#: The bond classes of an ``aromatic=True`` vocabulary.
AROMATIC_BOND_NAMES = (*BOND_NAMES, "aromatic")
_BOND_CLASS = {Chem.BondType.SINGLE: 1, Chem.BondType.DOUBLE: 2, Chem.BondType.TRIPLE: 3}
_AROMATIC_CLASS = 4
_BOND_TYPE = (
    None,
    Chem.BondType.SINGLE,
    Chem.BondType.DOUBLE,
    Chem.BondType.TRIPLE,
    Chem.BondType.AROMATIC,
)
_TENSORS = ("atom_types", "charges", "bonds", "node_mask", "source_index")
_OPTIONAL_TENSORS = ("positions",)
_log = logging.getLogger(__name__)


class FeaturizationError(ValueError):
    """A molecule that a graph with this vocabulary cannot represent."""


class OutOfVocabError(FeaturizationError):
    """An element or formal charge missing from the vocabulary."""


@dataclass(frozen=True)
class GraphVocab:
    """The categorical classes of a molecular graph.

    Attributes
    ----------
    name : str
        Short label, used in cache file names.
    atoms : tuple of str
        Element symbols; ``atom_types`` index into it. Containing ``"H"`` means hydrogens are
        explicit nodes.
    charges : tuple of int
        Formal charges; ``charges`` arrays index into it (class 1 is charge 0 by default).
    aromatic : bool
        Keep aromatic bonds as their own class (4) instead of kekulizing them.
    bonds : tuple of str
        The bond classes (derived: :data:`BOND_NAMES`, plus ``"aromatic"`` when ``aromatic``).
    """

    name: str
    atoms: tuple[str, ...]
    charges: tuple[int, ...] = (-1, 0, 1)
    aromatic: bool = False
    bonds: tuple[str, ...] = field(default=BOND_NAMES, init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bonds", AROMATIC_BOND_NAMES if self.aromatic else BOND_NAMES)

    @property
    def explicit_hydrogens(self) -> bool:
        return "H" in self.atoms

    @property
    def num_atom_types(self) -> int:
        return len(self.atoms)

    @property
    def num_charges(self) -> int:
        return len(self.charges)

    @property
    def num_bond_types(self) -> int:
        return len(self.bonds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; :meth:`from_dict` inverts it (for checkpoints and model cards)."""
        data = asdict(self)
        if not self.aromatic:
            # Kekulé vocabularies keep the dictionary (and so every cache key) they always had.
            del data["aromatic"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphVocab:
        vocab = cls(str(data["name"]), tuple(data["atoms"]), tuple(data["charges"]),
                    aromatic=bool(data.get("aromatic", False)))  # fmt: skip
        if tuple(data.get("bonds", vocab.bonds)) != vocab.bonds:
            raise ValueError(f"unsupported bond classes {data['bonds']}; expected {vocab.bonds}")
        return vocab

    def with_aromatic_bonds(self) -> GraphVocab:
        """This vocabulary with aromatic bonds as their own class (name suffix ``-arom``)."""
        if self.aromatic:
            return self
        return GraphVocab(f"{self.name}-arom", self.atoms, self.charges, aromatic=True)


#: QM9, hydrogens implicit (DiGress's QM9 classes).
QM9_VOCAB = GraphVocab("qm9", ("C", "N", "O", "F"))
#: QM9 with hydrogens as nodes (EDM/MiDi-style).
QM9_H_VOCAB = GraphVocab("qm9h", ("H", "C", "N", "O", "F"))
#: MOSES heavy atoms. DiGress also lists H: MOSES writes ``[H]`` in 221 training SMILES
#: (e.g. ``[H]N=c1...``) but RDKit's parser removes all of them, so no graph has an H node.
MOSES_VOCAB = GraphVocab("moses", ("C", "N", "S", "O", "F", "Cl", "Br"))


# ------------------------------------------------------------------------------ conversion


def mol_to_graph(mol: Chem.Mol, vocab: GraphVocab) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Featurize a sanitized molecule.

    Hydrogens are added (vocabulary with ``H``) or removed (without) first, then the molecule
    is kekulized on a copy (unless ``vocab.aromatic``); the input is not modified.

    Parameters
    ----------
    mol : rdkit.Chem.Mol
        A sanitized molecule.
    vocab : GraphVocab

    Returns
    -------
    atom_types : np.ndarray
        (N,) int64 indices into ``vocab.atoms``.
    charges : np.ndarray
        (N,) int64 indices into ``vocab.charges``.
    bonds : np.ndarray
        (N, N) int64 symmetric bond classes, 0 on the diagonal.

    Raises
    ------
    OutOfVocabError
        An element or formal charge not in ``vocab``.
    FeaturizationError
        Radicals, bond orders other than 1-3 after kekulization, or a failed kekulization.
    """
    mol = _with_hydrogens(mol, vocab.explicit_hydrogens)
    atom_index = {symbol: i for i, symbol in enumerate(vocab.atoms)}
    charge_index = {charge: i for i, charge in enumerate(vocab.charges)}
    atom_types, charges = [], []
    for atom in mol.GetAtoms():
        symbol, charge = atom.GetSymbol(), atom.GetFormalCharge()
        if symbol not in atom_index or charge not in charge_index:
            raise OutOfVocabError(_vocab_message(atom, vocab))
        if atom.GetNumRadicalElectrons():
            # A graph cannot say "radical": graph_to_mol would fill the valence with H.
            raise FeaturizationError(f"atom {atom.GetIdx()} ({symbol}) is a radical")
        atom_types.append(atom_index[symbol])
        charges.append(charge_index[charge])
    bonds = bond_classes(mol, vocab)
    return np.array(atom_types, np.int64), np.array(charges, np.int64), bonds


def _with_hydrogens(mol: Chem.Mol, explicit: bool) -> Chem.Mol:
    if explicit:
        return Chem.AddHs(mol)
    # RemoveHs copies and re-sanitizes; skip it in the common case of no H atoms.
    return mol if mol.GetNumAtoms() == mol.GetNumHeavyAtoms() else Chem.RemoveHs(mol)


def bond_classes(mol: Chem.Mol, vocab: GraphVocab) -> np.ndarray:
    """(N, N) int64 symmetric bond classes of ``mol`` under ``vocab``: kekulized on a copy
    first unless the vocabulary has the aromatic class.

    Raises
    ------
    FeaturizationError
        The molecule does not kekulize, or has bonds other than single, double, triple (and
        aromatic, with the aromatic class).
    """
    return _bond_matrix(mol if vocab.aromatic else _kekulized(mol), vocab.aromatic)


def _kekulized(mol: Chem.Mol) -> Chem.RWMol:
    mol = Chem.RWMol(mol)
    try:
        with rdBase.BlockLogs():
            Chem.Kekulize(mol, clearAromaticFlags=True)
    except Exception as err:  # KekulizeException and friends
        raise FeaturizationError(f"cannot be kekulized: {err}") from err
    return mol


def _vocab_message(atom: Chem.Atom, vocab: GraphVocab) -> str:
    i, symbol, charge = atom.GetIdx(), atom.GetSymbol(), atom.GetFormalCharge()
    if symbol not in vocab.atoms:
        return f"atom {i} is {symbol}; vocabulary {vocab.name!r} has {', '.join(vocab.atoms)}"
    return (
        f"atom {i} ({symbol}) has formal charge {charge:+d}; vocabulary {vocab.name!r} allows "
        f"{', '.join(f'{c:+d}' for c in vocab.charges)}"
    )


def _bond_matrix(mol: Chem.Mol, aromatic: bool = False) -> np.ndarray:
    """(N, N) int64 bond classes of a kekulized molecule (``aromatic``: or of one whose
    aromatic bonds become class 4)."""
    allowed = {*_BOND_CLASS, Chem.BondType.AROMATIC} if aromatic else _BOND_CLASS.keys()
    for bond in mol.GetBonds():
        if bond.GetBondType() not in allowed:
            raise FeaturizationError(
                f"bond {bond.GetBeginAtomIdx()}-{bond.GetEndAtomIdx()} is {bond.GetBondType()}; "
                "only single, double and triple bonds are representable"
                + (" (and aromatic ones)" if aromatic else "")
            )
    # With only single/double/triple bonds the bond-order adjacency matrix is the class matrix;
    # aromatic bonds have order 1.5 there (3 when doubled), so they are set from the bond list.
    matrix = Chem.GetAdjacencyMatrix(mol, useBO=True)
    for bond in mol.GetBonds():
        if bond.GetBondType() == Chem.BondType.AROMATIC:
            i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            matrix[i, j] = matrix[j, i] = _AROMATIC_CLASS
    return matrix.astype(np.int64)


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_graph(atom_types: np.ndarray, charges: np.ndarray, bonds: np.ndarray, vocab) -> None:
    n = atom_types.shape[0]
    if atom_types.shape != (n,) or charges.shape != (n,) or bonds.shape != (n, n):
        raise ValueError(
            f"expected atom_types (N,), charges (N,), bonds (N, N); got {atom_types.shape}, "
            f"{charges.shape}, {bonds.shape}"
        )
    for label, values, size in (
        ("atom_types", atom_types, vocab.num_atom_types),
        ("charges", charges, vocab.num_charges),
        ("bonds", bonds, vocab.num_bond_types),
    ):
        if values.size and (values.min() < 0 or values.max() >= size):
            raise ValueError(f"{label} values must lie in [0, {size}); got {values.min()}..")
    if not np.array_equal(bonds, bonds.T):
        raise ValueError("bonds must be symmetric (undirected); symmetrize model outputs first")


def graph_to_mol(
    atom_types: np.ndarray | torch.Tensor,
    charges: np.ndarray | torch.Tensor,
    bonds: np.ndarray | torch.Tensor,
    vocab: GraphVocab,
    mask: np.ndarray | torch.Tensor | None = None,
) -> Chem.RWMol:
    """Build an **unsanitized** molecule from a graph.

    Sanitization is left to the caller (a screening gate records why it fails). With
    explicit-hydrogen vocabularies every atom gets ``NoImplicit``, so a missing hydrogen
    shows up as a radical or a valence error instead of being silently added.

    Aromatic bonds (class 4 of an ``aromatic`` vocabulary) and their atoms are flagged
    aromatic; sanitization then has to find a Kekulé structure. The graph does not say which
    aromatic nitrogen carries a hydrogen (pyrrole-type ``[nH]``), so when the molecule does not
    kekulize as built, the fewest neutral two-connected aromatic nitrogens that make it
    kekulize get one hydrogen each (subsets tried smallest first, in atom order; see
    :func:`place_aromatic_hydrogens`). DiGress places none: there such a ring is invalid.

    Parameters
    ----------
    atom_types : array-like
        (N,) indices into ``vocab.atoms``.
    charges : array-like
        (N,) indices into ``vocab.charges``.
    bonds : array-like
        (N, N) symmetric bond classes (0 none, 1 single, 2 double, 3 triple, 4 aromatic); the
        diagonal is ignored.
    vocab : GraphVocab
    mask : array-like, optional
        (N,) bool; only these nodes are kept (padded graphs).

    Returns
    -------
    rdkit.Chem.RWMol
        Atoms in node order, without sanitization.
    """
    atom_types, charges, bonds = (
        _as_numpy(x).astype(np.int64) for x in (atom_types, charges, bonds)
    )
    if mask is not None:
        keep = np.flatnonzero(_as_numpy(mask).astype(bool))
        atom_types, charges, bonds = atom_types[keep], charges[keep], bonds[np.ix_(keep, keep)]
    _check_graph(atom_types, charges, bonds, vocab)
    mol = Chem.RWMol()
    for t, c in zip(atom_types.tolist(), charges.tolist(), strict=True):
        atom = Chem.Atom(vocab.atoms[t])
        atom.SetFormalCharge(vocab.charges[c])
        atom.SetNoImplicit(vocab.explicit_hydrogens)
        mol.AddAtom(atom)
    rows, cols = np.nonzero(np.triu(bonds, k=1))
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        mol.AddBond(i, j, _BOND_TYPE[bonds[i, j]])
        if bonds[i, j] == _AROMATIC_CLASS:
            mol.GetBondBetweenAtoms(i, j).SetIsAromatic(True)
            mol.GetAtomWithIdx(i).SetIsAromatic(True)
            mol.GetAtomWithIdx(j).SetIsAromatic(True)
    if vocab.aromatic and not vocab.explicit_hydrogens:
        place_aromatic_hydrogens(mol)
    return mol


#: Most subsets of aromatic nitrogens :func:`place_aromatic_hydrogens` tries.
MAX_HYDROGEN_PLACEMENTS = 256


def _sanitize_error(mol: Chem.Mol) -> Exception | None:
    # Not chem.sanitize: its failing step (SANITIZE_KEKULIZE) does not tell a ring system
    # without a Kekulé structure (KekulizeException) from an aromatic atom outside any ring
    # (AtomKekulizeException), which no hydrogen can fix; the exception type does.
    trial = Chem.Mol(mol)
    try:
        with rdBase.BlockLogs():
            Chem.SanitizeMol(trial)
    except Exception as err:  # AtomValenceException, KekulizeException, ...
        return err
    return None


def place_aromatic_hydrogens(mol: Chem.RWMol) -> list[int]:
    """Give pyrrole-type aromatic nitrogens the hydrogen an aromatic graph leaves unsaid.

    Only when ``mol`` fails to kekulize: the smallest set of neutral aromatic nitrogens with
    two neighbours, tried in atom order (at most :data:`MAX_HYDROGEN_PLACEMENTS` sets), whose
    one explicit hydrogen each lets the molecule sanitize. A molecule that fails for another
    reason, or that no set fixes, is left as it was (and stays invalid).

    Parameters
    ----------
    mol : rdkit.Chem.RWMol
        Unsanitized; modified in place.

    Returns
    -------
    list of int
        The atoms that got a hydrogen (empty: none).
    """
    error = _sanitize_error(mol)
    if not isinstance(error, Chem.KekulizeException):
        return []
    candidates = [
        atom.GetIdx()
        for atom in mol.GetAtoms()
        if atom.GetIsAromatic() and atom.GetSymbol() == "N" and atom.GetDegree() == 2
        and atom.GetFormalCharge() == 0 and atom.GetNumExplicitHs() == 0
    ]  # fmt: skip
    tried = 0
    for size in range(1, len(candidates) + 1):
        for chosen in combinations(candidates, size):
            tried += 1
            if tried > MAX_HYDROGEN_PLACEMENTS:
                return []
            trial = Chem.RWMol(mol)
            for index in chosen:
                trial.GetAtomWithIdx(index).SetNumExplicitHs(1)
            if _sanitize_error(trial) is None:
                for index in chosen:
                    mol.GetAtomWithIdx(index).SetNumExplicitHs(1)
                return list(chosen)
    return []


# ------------------------------------------------------------------------ padded data sets


@dataclass(frozen=True)
class GraphStats:
    """What a graph diffusion model needs from its training data.

    Attributes
    ----------
    max_nodes : int
        Largest node count.
    node_counts : torch.Tensor
        (max_nodes + 1,) int64 histogram of node counts (sample N from it when generating).
    atom_type_marginals : torch.Tensor
        (A,) float64 frequency of each atom class over real nodes.
    charge_marginals : torch.Tensor
        (C,) float64 frequency of each charge class over real nodes.
    bond_marginals : torch.Tensor
        (4,) float64 frequency of none/single/double/triple over pairs of distinct real nodes
        (each unordered pair once; "none" dominates).
    """

    max_nodes: int
    node_counts: torch.Tensor
    atom_type_marginals: torch.Tensor
    charge_marginals: torch.Tensor
    bond_marginals: torch.Tensor

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready lists."""
        return {
            "max_nodes": self.max_nodes,
            "node_counts": self.node_counts.tolist(),
            "atom_type_marginals": self.atom_type_marginals.tolist(),
            "charge_marginals": self.charge_marginals.tolist(),
            "bond_marginals": self.bond_marginals.tolist(),
        }


def _normalized(counts: torch.Tensor) -> torch.Tensor:
    counts = counts.double()
    return counts / counts.sum().clamp_min(1)


def graph_stats(
    atom_types: torch.Tensor,
    charges: torch.Tensor,
    bonds: torch.Tensor,
    node_mask: torch.Tensor,
    vocab: GraphVocab,
    chunk: int = 65_536,
) -> GraphStats:
    """Statistics of padded graphs ``(M, N)``, ``(M, N)``, ``(M, N, N)``, ``(M, N)`` bool.

    Rows are processed ``chunk`` at a time so that pair masks of large sets stay small.
    """
    sizes = node_mask.sum(1)
    max_nodes = int(sizes.max()) if len(sizes) else 0
    atom_counts = torch.zeros(vocab.num_atom_types, dtype=torch.int64)
    charge_counts = torch.zeros(vocab.num_charges, dtype=torch.int64)
    bond_counts = torch.zeros(vocab.num_bond_types, dtype=torch.int64)
    upper = torch.ones(bonds.shape[-2:], dtype=torch.bool).triu(1)
    for start in range(0, len(node_mask), chunk):
        rows = slice(start, start + chunk)
        mask = node_mask[rows]
        atom_counts += torch.bincount(atom_types[rows][mask].long(), minlength=len(atom_counts))
        charge_counts += torch.bincount(charges[rows][mask].long(), minlength=len(charge_counts))
        pairs = mask[:, :, None] & mask[:, None, :] & upper
        bond_counts += torch.bincount(bonds[rows][pairs].long(), minlength=len(bond_counts))
    return GraphStats(
        max_nodes=max_nodes,
        node_counts=torch.bincount(sizes, minlength=max_nodes + 1),
        atom_type_marginals=_normalized(atom_counts),
        charge_marginals=_normalized(charge_counts),
        bond_marginals=_normalized(bond_counts),
    )


class GraphDataset(torch.utils.data.Dataset):
    """Padded dense molecular graphs (a map-style torch Dataset).

    Stored compactly as uint8; :meth:`__getitem__` returns int64 tensors, so the default
    ``DataLoader`` collation yields ``atom_types`` (B, N), ``charges`` (B, N), ``bonds``
    (B, N, N) int64 and ``node_mask`` (B, N) bool. Padded nodes have class 0 everywhere and
    are excluded by ``node_mask``.

    Parameters
    ----------
    atom_types, charges : torch.Tensor
        (M, N) uint8 class indices.
    bonds : torch.Tensor
        (M, N, N) uint8 bond classes, symmetric.
    node_mask : torch.Tensor
        (M, N) bool, real nodes first.
    source_index : torch.Tensor
        (M,) int64: where each graph came from (GDB-9 index for QM9, 0-based data row for
        MOSES, position in the input for user data).
    vocab : GraphVocab
    name : str
    problems : sequence of MoleculeProblem
        Molecules that were skipped while building the set.
    positions : torch.Tensor, optional
        (M, N, 3) float32 coordinates in Å, rows matching the nodes, padding zero (3D data
        sets such as :func:`sci_diffusion.chem.structures.qm9_structures`).
    """

    def __init__(
        self,
        atom_types: torch.Tensor,
        charges: torch.Tensor,
        bonds: torch.Tensor,
        node_mask: torch.Tensor,
        source_index: torch.Tensor,
        vocab: GraphVocab,
        *,
        name: str = "",
        problems: Sequence[MoleculeProblem] = (),
        positions: torch.Tensor | None = None,
    ) -> None:
        m, n = node_mask.shape
        shapes = {
            "atom_types": (atom_types.shape, (m, n)),
            "charges": (charges.shape, (m, n)),
            "bonds": (bonds.shape, (m, n, n)),
            "source_index": (source_index.shape, (m,)),
        }
        if positions is not None:
            shapes["positions"] = (positions.shape, (m, n, 3))
        for label, (actual, expected) in shapes.items():
            if tuple(actual) != expected:
                raise ValueError(
                    f"{label} has shape {tuple(actual)}; node_mask {(m, n)} implies {expected}"
                )
        self.atom_types, self.charges, self.bonds = atom_types, charges, bonds
        self.node_mask, self.source_index = node_mask.bool(), source_index.long()
        self.vocab, self.name, self.problems = vocab, name, list(problems)
        self.positions = None if positions is None else positions.float()

    def __len__(self) -> int:
        return self.node_mask.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {
            "atom_types": self.atom_types[i].long(),
            "charges": self.charges[i].long(),
            "bonds": self.bonds[i].long(),
            "node_mask": self.node_mask[i],
        }
        if self.positions is not None:
            item["positions"] = self.positions[i]
        return item

    @property
    def max_nodes(self) -> int:
        """The padded width N (the largest molecule)."""
        return self.node_mask.shape[1]

    @cached_property
    def stats(self) -> GraphStats:
        return graph_stats(self.atom_types, self.charges, self.bonds, self.node_mask, self.vocab)

    def to_mol(self, i: int) -> Chem.RWMol:
        """Graph ``i`` as an unsanitized molecule (:func:`graph_to_mol`)."""
        return graph_to_mol(
            self.atom_types[i], self.charges[i], self.bonds[i], self.vocab, self.node_mask[i]
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        labels = _TENSORS + tuple(k for k in _OPTIONAL_TENSORS if getattr(self, k) is not None)
        return {label: getattr(self, label) for label in labels}


class GraphPadder:
    """Collects variable-size graphs as uint8 blocks padded per chunk (bounded memory).

    A graph is ``(atom_types, charges, bonds)`` or, for 3D data, ``(..., positions)`` with
    positions (n, 3); either every graph carries positions or none does.
    """

    def __init__(self, chunk: int = 8192) -> None:
        self.chunk, self.pending, self.blocks = chunk, [], []
        self.index: list[int] = []

    def add(self, key: int, graph: tuple[np.ndarray, ...]) -> None:
        self.index.append(key)
        self.pending.append(graph)
        if len(self.pending) >= self.chunk:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        width = max(len(g[0]) for g in self.pending)
        m = len(self.pending)
        block = {
            "atom_types": np.zeros((m, width), np.uint8),
            "charges": np.zeros((m, width), np.uint8),
            "bonds": np.zeros((m, width, width), np.uint8),
            "node_mask": np.zeros((m, width), bool),
        }
        if len(self.pending[0]) == 4:
            block["positions"] = np.zeros((m, width, 3), np.float32)
        for row, graph in enumerate(self.pending):
            n = len(graph[0])
            block["atom_types"][row, :n], block["charges"][row, :n] = graph[0], graph[1]
            block["bonds"][row, :n, :n], block["node_mask"][row, :n] = graph[2], True
            if "positions" in block:
                block["positions"][row, :n] = graph[3]
        self.blocks.append(block)
        self.pending = []

    def finish(self) -> dict[str, torch.Tensor]:
        self._flush()
        width = max((block["node_mask"].shape[1] for block in self.blocks), default=0)
        empty = {"atom_types": (0, 0), "charges": (0, 0), "bonds": (0, 0, 0), "node_mask": (0, 0)}
        labels = self.blocks[0].keys() if self.blocks else empty.keys()
        tensors = {}
        for label in labels:
            parts = []
            for block in self.blocks:
                pad = width - block[label].shape[1]
                widths = [(0, 0), (0, pad)] + [(0, pad if label == "bonds" else 0)] * (
                    block[label].ndim - 2
                )
                parts.append(np.pad(block[label], widths))
            tensors[label] = torch.from_numpy(
                np.concatenate(parts)
                if parts
                else np.zeros(empty[label], bool if label == "node_mask" else np.uint8)
            )
        tensors["source_index"] = torch.tensor(self.index, dtype=torch.int64)
        return tensors


def molecule_problem(source: str, key: int, item: Any, reason: str) -> MoleculeProblem:
    if isinstance(item, InputMolecule):
        return MoleculeProblem(source, item.line, item.record, item.name, reason)
    text = item if isinstance(item, str) else Chem.MolToSmiles(item)
    return MoleculeProblem(source, None, key, text, reason)


def featurize(
    molecules: Iterable[tuple[int, str | Chem.Mol | InputMolecule]],
    vocab: GraphVocab,
    *,
    source: str = "",
    total: int | None = None,
    progress: bool = False,
) -> GraphDataset:
    """Featurize molecules into a :class:`GraphDataset`.

    Parameters
    ----------
    molecules : iterable of (key, molecule)
        ``key`` becomes the graph's ``source_index``; a molecule is a SMILES string, a
        sanitized ``Chem.Mol`` or an :class:`~sci_diffusion.chem.molfiles.InputMolecule`.
    vocab : GraphVocab
    source : str
        Names the origin in problems and becomes the data set's ``name``.
    total : int, optional
        How many molecules there are (for the progress display).
    progress : bool
        Show progress (:mod:`sci_diffusion.io.progress`; QM9 takes about half a minute).

    Returns
    -------
    GraphDataset
        Molecules that do not parse or do not fit ``vocab`` are skipped and listed in its
        ``problems`` (with the input's line/record, or ``record=key``).
    """
    padder, problems = GraphPadder(), []
    label = f"featurizing {source or 'molecules'}"
    with rdBase.BlockLogs():  # invalid input is reported below, not printed
        for key, item in progress_bar(molecules, label, total=total, unit="mol", enabled=progress):
            mol = item.mol if isinstance(item, InputMolecule) else item
            if isinstance(mol, str):
                mol = Chem.MolFromSmiles(item)
                if mol is None:
                    reason = parse_smiles(item)[1] or "invalid SMILES"
                    problems.append(molecule_problem(source, key, item, reason))
                    continue
            try:
                padder.add(key, mol_to_graph(mol, vocab))
            except FeaturizationError as err:
                problems.append(molecule_problem(source, key, item, str(err)))
    return GraphDataset(**padder.finish(), vocab=vocab, name=source, problems=problems)


# ---------------------------------------------------------------------------------- cache


class CacheCorruptedError(RuntimeError):
    """A cache file that cannot be trusted (it is rebuilt)."""


def _cache_file(name: str) -> Path:
    return cache_dir() / "graphs" / f"{name}.safetensors"


def _checksums(tensors: Mapping[str, torch.Tensor]) -> dict[str, str]:
    return {
        label: hashlib.sha256(t.contiguous().numpy()).hexdigest()
        for label, t in sorted(tensors.items())
    }


def save_graphs(path: Path, dataset: GraphDataset, key: Mapping[str, Any]) -> None:
    """Write ``dataset`` to a safetensors file atomically, with its cache key, vocabulary,
    problems and per-tensor SHA-256 checksums in the header metadata."""
    tensors = {label: t.contiguous() for label, t in dataset.tensors().items()}
    metadata = {
        "key": json.dumps(key, sort_keys=True),
        "checksums": json.dumps(_checksums(tensors)),
        "vocab": json.dumps(dataset.vocab.to_dict()),
        "name": dataset.name,
        "problems": json.dumps([asdict(p) for p in dataset.problems]),
    }
    with temp_path(path.parent, path.name) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        publish(tmp, path)  # save_file recreates the file (as 0600): publish sets the mode again


def load_graphs(path: Path, key: Mapping[str, Any] | None = None) -> GraphDataset | None:
    """Load a file written by :func:`save_graphs`.

    Returns None when the file is missing or was built under another ``key`` (stale).

    Raises
    ------
    CacheCorruptedError
        The file is unreadable or a tensor fails its checksum.
    """
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if key is not None and metadata.get("key") != json.dumps(key, sort_keys=True):
                return None
            present = set(f.keys())
            labels = _TENSORS + tuple(k for k in _OPTIONAL_TENSORS if k in present)
            tensors = {label: f.get_tensor(label) for label in labels}
        expected = json.loads(metadata["checksums"])
        vocab = GraphVocab.from_dict(json.loads(metadata["vocab"]))
        problems = [MoleculeProblem(**p) for p in json.loads(metadata["problems"])]
    except Exception as err:  # safetensors raises several types on damaged headers
        raise CacheCorruptedError(f"{path} is unreadable ({type(err).__name__}: {err})") from err
    bad = [label for label, digest in _checksums(tensors).items() if expected.get(label) != digest]
    if bad:
        raise CacheCorruptedError(f"{path}: checksum mismatch in {', '.join(bad)}")
    return GraphDataset(**tensors, vocab=vocab, name=metadata["name"], problems=problems)


def cached_dataset(
    name: str, key: dict[str, Any], build: Callable[[], GraphDataset], cache: bool
) -> GraphDataset:
    """Load ``name`` from the cache if built under ``key`` (:func:`cache_key`), else build it
    (a stage line says so) and save it."""
    path = _cache_file(name)
    if cache:
        try:
            dataset = load_graphs(path, key)
        except CacheCorruptedError as err:
            warnings.warn(f"corrupted graph cache, rebuilding it: {err}", stacklevel=3)
            dataset = None
        if dataset is not None:
            return dataset
    start = time.perf_counter()
    stage(f"building {name} graphs" + (f" (once: cached in {path.parent})" if cache else ""))
    dataset = build()
    seconds = time.perf_counter() - start
    _log.info("featurized %s: %d graphs in %.1f s", name, len(dataset), seconds)
    if dataset.problems:
        warnings.warn(
            f"{name}: skipped {len(dataset.problems)} molecules, e.g. {dataset.problems[0]}",
            stacklevel=3,
        )
    if cache:
        save_graphs(path, dataset, key)
    return dataset


def cache_name(dataset: str, split: str, vocab: GraphVocab, limit: int | None) -> str:
    """The cache file's name of a data set part, e.g. ``qm9-train-qm9h-all``."""
    return f"{dataset}-{split}-{vocab.name}-{limit if limit is not None else 'all'}"


def cache_key(dataset: str, split: str, vocab: GraphVocab, limit: int | None) -> dict[str, Any]:
    """What a cached data set part was built from; add the source files' digests
    (:func:`~sci_diffusion.chem.data.file_digest`) and anything else that changes the graphs."""
    return {
        "version": FEATURIZE_VERSION,
        "dataset": dataset,
        "split": split,
        "limit": limit,
        "vocab": vocab.to_dict(),
        "rdkit": rdBase.rdkitVersion,  # kekulization and parsing may change between releases
    }


def qm9_graphs(
    split: str = "train",
    hydrogens: bool = False,
    *,
    limit: int | None = None,
    cache: bool = True,
    aromatic: bool = False,
) -> GraphDataset:
    """QM9 graphs of one split part, cached.

    Parameters
    ----------
    split : {"train", "val", "test"}
        Part of :func:`sci_diffusion.chem.data.qm9_split`, in its (SHA-256) order.
    hydrogens : bool
        Hydrogens as nodes (:data:`QM9_H_VOCAB`, up to 29 nodes) or implicit
        (:data:`QM9_VOCAB`, up to 9 nodes).
    limit : int, optional
        Only the first ``limit`` molecules of the part (an unbiased subset).
    cache : bool
        Read and write the on-disk cache.
    aromatic : bool
        Aromatic bonds as their own class (:meth:`GraphVocab.with_aromatic_bonds`).

    Returns
    -------
    GraphDataset
        ``source_index`` holds GDB-9 indices.
    """
    vocab = QM9_H_VOCAB if hydrogens else QM9_VOCAB
    vocab = vocab.with_aromatic_bonds() if aromatic else vocab
    key = cache_key("qm9", split, vocab, limit)
    key["sources"] = [file_digest(p) for p in qm9_source_files()]
    key["split_fingerprint"] = qm9_split().fingerprint
    name = cache_name("qm9", split, vocab, limit)

    def build() -> GraphDataset:
        records = load_qm9(split, limit=limit, coordinates=False)
        pairs = ((r.index, r.smiles) for r in records)
        return featurize(pairs, vocab, source=f"qm9:{split}", total=len(records), progress=True)

    return cached_dataset(name, key, build, cache)


def moses_graphs(
    split: str = "train", *, limit: int | None = None, cache: bool = True, aromatic: bool = False
) -> GraphDataset:
    """MOSES graphs (:data:`MOSES_VOCAB`, hydrogens implicit) of one split, cached.

    Parameters
    ----------
    split : {"train", "test", "test_scaffolds"}
    limit : int, optional
        Only the first ``limit`` rows of the file. Featurizing all 1,584,663 training
        molecules takes a while (see ``docs/molecules.md``); it is done once, then cached.
    cache : bool
        Read and write the on-disk cache.
    aromatic : bool
        Aromatic bonds as their own class, as DiGress featurizes MOSES
        (:meth:`GraphVocab.with_aromatic_bonds`).

    Returns
    -------
    GraphDataset
        ``source_index`` holds 0-based data rows of the split's CSV.
    """
    vocab = MOSES_VOCAB.with_aromatic_bonds() if aromatic else MOSES_VOCAB
    key = cache_key("moses", split, vocab, limit)
    key["sources"] = [file_digest(moses_source_file(split))]
    name = cache_name("moses", split, vocab, limit)

    def build() -> GraphDataset:
        smiles = load_moses(split, limit=limit)
        return featurize(enumerate(smiles), vocab, source=f"moses:{split}",
                         total=len(smiles), progress=True)  # fmt: skip

    return cached_dataset(name, key, build, cache)
