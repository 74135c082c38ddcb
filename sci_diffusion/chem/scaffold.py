"""Scaffolds (fixed fragments) for constrained graph generation: parse, encode, check.

:func:`parse_scaffold` turns a fragment string into the class indices a graph model of a
:class:`~sci_diffusion.chem.featurize.GraphVocab` fixes — ``atoms`` (k,), ``charges`` (k,) and
``bonds`` (k, k) — and raises :class:`ScaffoldError` (a user error) before any sampling for
what it cannot represent. :func:`contains_scaffold` checks a generated molecule.

**What a fragment may say.** The string is read as SMILES first, then as SMARTS. Only plain
element atoms (with an optional formal charge) and bond orders are usable: the graph has one
atom class, one charge class and one bond class per entry and nothing else. So SMARTS query
features (atom lists ``[C,N]``, wildcards ``*``, ``~``/``@`` or ``-,=`` bonds, ring or
connectivity tests ``R``/``X``/``D``, recursive ``$()``, logical operators, H-count queries)
are refused, as are isotopes and dummy atoms in SMILES; stereochemistry is dropped (the graph
has none); hydrogens and radicals are not fixed — hydrogens are removed from the fragment and
a fixed atom may gain substituents in place of them (in an explicit-hydrogen vocabulary its
hydrogen nodes are generated). SMARTS aromatic atoms and ``:`` bonds are accepted; an
implicit SMARTS bond is single between aliphatic atoms and aromatic between aromatic ones.

**Kekulé form and aromaticity.** The graph's bond classes are none / single / double / triple
(:mod:`.featurize` kekulizes every training molecule), so an aromatic fragment is fixed in one
Kekulé form (RDKit's); under a vocabulary with an aromatic bond class
(``task.data.aromatic_bonds``) its aromatic bonds are fixed as aromatic instead. A generated
molecule is sanitized before it is judged, and sanitization re-perceives that ring as aromatic;
so the check matches the **sanitized** fragment (aromatic flags from RDKit's perception, the
same aromaticity model on both sides), not its Kekulé form — which would not match the aromatic
ring of the sanitized candidate. Default RDKit substructure semantics apply: element, formal
charge where the fragment's is non-zero, bond order (aromatic matches aromatic), hydrogen
counts not compared, no chirality. Consequence: the generated graph always holds the fragment's
Kekulé atoms and bonds (exactly), but the rest of the molecule can change how RDKit perceives
them, and then the check says no — a non-aromatic fragment ring fused into a larger system that
RDKit perceives as aromatic (an oxetane in ``O=C1Oc2c1noc2O``: its C-C bond reads aromatic), or
an aromatic fragment ring bridged across by new atoms so that ring perception no longer sees it
(a pyridine in ``C1=CC2=NC=C1C21CC1``). Such candidates are counted as not containing it
(docs/benchmarks.md, "Scaffold-constrained generation").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from rdkit import Chem, rdBase
from torch import Tensor

from sci_diffusion.io.errors import UserInputError

from .featurize import FeaturizationError, bond_classes
from .sanitize import sanitize

__all__ = ["Scaffold", "ScaffoldError", "contains_scaffold", "parse_scaffold"]

# A SMARTS atom that is only an element (aliphatic, aromatic or by number) and a charge.
_PLAIN_ATOM = re.compile(
    r"^(?:[A-Z][a-z]?|[bcnops]|"  # organic subset, outside brackets
    r"\[(?:#\d+|[A-Z][a-z]?|[bcnops]|se|as|te)(?:&?(?:[+-]\d*|\++|-+))?\])$"
)
_PLAIN_BONDS = {"": None, "-": Chem.BondType.SINGLE, "=": Chem.BondType.DOUBLE,
                "#": Chem.BondType.TRIPLE, ":": Chem.BondType.AROMATIC}  # fmt: skip


class ScaffoldError(UserInputError):
    """A scaffold the task's graphs cannot hold (unparsable, out of vocabulary, too large,
    empty, or with query features a graph cannot represent)."""


@dataclass(frozen=True)
class Scaffold:
    """A parsed fragment under one vocabulary.

    Attributes
    ----------
    text
        The string as given.
    mol
        The sanitized fragment without hydrogens or stereochemistry: the query of
        :func:`contains_scaffold` (aromatic where RDKit perceives aromaticity).
    atoms, charges
        (k,) int64 class indices into the vocabulary's ``atoms`` and ``charges``.
    bonds
        (k, k) int64 symmetric bond classes of the Kekulé form (0 none, 1 single, 2 double,
        3 triple), zero diagonal. Atom order is ``mol``'s.
    """

    text: str
    mol: Chem.Mol
    atoms: Tensor
    charges: Tensor
    bonds: Tensor

    @property
    def num_atoms(self) -> int:
        return int(self.atoms.shape[0])

    @property
    def smiles(self) -> str:
        return Chem.MolToSmiles(self.mol)


def parse_scaffold(text: str, vocab: Any, max_nodes: int) -> Scaffold:
    """Parse ``text`` (SMILES, else SMARTS) into fixed class indices under ``vocab``
    (a :class:`~sci_diffusion.chem.featurize.GraphVocab`) for graphs of at most
    ``max_nodes`` nodes.

    Raises
    ------
    ScaffoldError
        An unparsable string, query features a graph cannot represent, an element or charge
        outside the vocabulary, more atoms than ``max_nodes``, an empty fragment, or one that
        cannot be kekulized.
    """
    if not isinstance(text, str) or not text.strip():
        raise ScaffoldError(
            f"scaffold {text!r} is empty; give a fragment as SMILES or SMARTS, e.g. c1ccccc1"
        )
    text = text.strip()
    mol = _from_smiles(text)
    if mol is None:
        mol = _from_smarts(text)
    mol = _plain(mol, text)
    if mol.GetNumAtoms() == 0:
        raise ScaffoldError(f"scaffold {text!r} has no heavy atoms (an empty fragment)")
    atoms, charges = _atom_classes(mol, vocab, text)
    k = mol.GetNumAtoms()
    if k > max_nodes:
        raise ScaffoldError(
            f"scaffold {text!r} has {k} heavy atoms; the model's molecules have at most "
            f"{max_nodes} nodes"
        )
    try:
        bonds = torch.from_numpy(bond_classes(mol, vocab))
    except FeaturizationError as err:
        raise ScaffoldError(f"scaffold {text!r}: {err}") from None
    return Scaffold(text, mol, torch.tensor(atoms), torch.tensor(charges), bonds)


def _from_smiles(text: str) -> Chem.Mol | None:
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(text)
    if mol is None:
        return None
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() == 0:
            raise ScaffoldError(
                f"scaffold {text!r}: atom {atom.GetIdx()} is a wildcard/dummy atom ('*'); a "
                "graph fixes one element per atom — give the element"
            )
        if atom.GetIsotope():
            raise ScaffoldError(
                f"scaffold {text!r}: atom {atom.GetIdx()} has an isotope label "
                f"({atom.GetIsotope()}{atom.GetSymbol()}); the graph has no isotopes"
            )
    return mol


def _from_smarts(text: str) -> Chem.Mol:
    with rdBase.BlockLogs():
        query = Chem.MolFromSmarts(text)
    if query is None:
        raise ScaffoldError(
            f"cannot parse scaffold {text!r} as SMILES or as SMARTS; give a fragment such as "
            "c1ccccc1 or C1CC(=O)N1"
        )
    mol = Chem.RWMol()
    for atom in query.GetAtoms():
        smarts = atom.GetSmarts()
        if not _PLAIN_ATOM.match(smarts):
            raise ScaffoldError(
                f"scaffold {text!r}: SMARTS atom {atom.GetIdx()} '{smarts}' is a query a "
                "graph cannot represent; only plain elements with an optional charge (C, c, "
                "[#7], [N+], [O-]) are usable"
            )
        plain = Chem.Atom(atom.GetAtomicNum())
        plain.SetFormalCharge(atom.GetFormalCharge())
        plain.SetIsAromatic(atom.GetIsAromatic())
        mol.AddAtom(plain)
    for bond in query.GetBonds():
        smarts = bond.GetSmarts()
        if smarts not in _PLAIN_BONDS:
            raise ScaffoldError(
                f"scaffold {text!r}: SMARTS bond {bond.GetBeginAtomIdx()}-"
                f"{bond.GetEndAtomIdx()} '{smarts}' is a query a graph cannot represent; only "
                "'-', '=', '#', ':' or an implicit bond are usable"
            )
        begin, end = bond.GetBeginAtom(), bond.GetEndAtom()
        kind = _PLAIN_BONDS[smarts]
        if kind is None:  # implicit: single, or aromatic between aromatic atoms
            aromatic = begin.GetIsAromatic() and end.GetIsAromatic()
            kind = Chem.BondType.AROMATIC if aromatic else Chem.BondType.SINGLE
        mol.AddBond(begin.GetIdx(), end.GetIdx(), kind)
        if kind == Chem.BondType.AROMATIC:
            mol.GetBondWithIdx(mol.GetNumBonds() - 1).SetIsAromatic(True)
    result = mol.GetMol()
    step, reason, _ = sanitize(result)
    if step is not None:
        raise ScaffoldError(f"scaffold {text!r} (read as SMARTS) is not a valid fragment: {reason}")
    return result


def _plain(mol: Chem.Mol, text: str) -> Chem.Mol:
    """``mol`` without hydrogens and stereochemistry, sanitized."""
    try:
        with rdBase.BlockLogs():
            mol = Chem.RemoveHs(mol)
    except Exception as err:
        raise ScaffoldError(f"scaffold {text!r}: cannot remove its hydrogens: {err}") from None
    mol = Chem.RWMol(mol)
    Chem.RemoveStereochemistry(mol)
    for atom in mol.GetAtoms():
        atom.SetAtomMapNum(0)
        atom.SetNumRadicalElectrons(0)  # "[C]" in a fragment: the atom, not a radical
    return mol.GetMol()


def _atom_classes(mol: Chem.Mol, vocab: Any, text: str) -> tuple[list[int], list[int]]:
    atoms, charges = [], []
    for atom in mol.GetAtoms():
        symbol, charge = atom.GetSymbol(), atom.GetFormalCharge()
        if symbol not in vocab.atoms:
            raise ScaffoldError(
                f"scaffold {text!r}: atom {atom.GetIdx()} is {symbol}, which the model's "
                f"vocabulary {vocab.name!r} does not have; it has {', '.join(vocab.atoms)}"
            )
        if charge not in vocab.charges:
            raise ScaffoldError(
                f"scaffold {text!r}: atom {atom.GetIdx()} ({symbol}) has formal charge "
                f"{charge:+d}; vocabulary {vocab.name!r} allows "
                f"{', '.join(f'{c:+d}' for c in vocab.charges)}"
            )
        atoms.append(vocab.atoms.index(symbol))
        charges.append(vocab.charges.index(charge))
    return atoms, charges


def contains_scaffold(mol: Chem.Mol | None, scaffold: Scaffold) -> bool:
    """Whether ``mol`` (sanitized or not; not modified) sanitizes and contains the scaffold as
    a substructure (RDKit match of the sanitized fragment :attr:`Scaffold.mol`; see the module
    docstring on aromaticity). ``False`` for ``None`` or a molecule that does not sanitize."""
    if mol is None:
        return False
    copy = Chem.Mol(mol)
    with rdBase.BlockLogs():
        if sanitize(copy)[0] is not None:
            return False
        return copy.HasSubstructMatch(scaffold.mol)
