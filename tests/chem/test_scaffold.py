"""Scaffold parsing (:mod:`sci_diffusion.chem.scaffold`): class indices under a vocabulary,
each refusal with its message, and the containment check's aromaticity rule."""

from __future__ import annotations

import pytest
import torch
from rdkit import Chem

from sci_diffusion.chem.featurize import QM9_VOCAB, graph_to_mol
from sci_diffusion.chem.scaffold import ScaffoldError, contains_scaffold, parse_scaffold
from sci_diffusion.io.errors import UserInputError


def test_smiles_becomes_kekule_class_indices():
    scaffold = parse_scaffold("c1ccncc1", QM9_VOCAB, 9)
    assert scaffold.num_atoms == 6
    assert scaffold.atoms.tolist() == [0, 0, 0, 1, 0, 0]  # C C C N C C
    assert scaffold.charges.tolist() == [1] * 6  # charge 0 is class 1
    bonds = scaffold.bonds
    assert torch.equal(bonds, bonds.T) and bonds.diagonal().eq(0).all()
    ring = [bonds[i, (i + 1) % 6].item() for i in range(6)]
    assert sorted(ring) == [1, 1, 1, 2, 2, 2]  # alternating single/double: no aromatic class
    assert scaffold.smiles == "c1ccncc1"  # the match query stays aromatic


def test_aromatic_vocabulary_fixes_aromatic_bonds():
    vocab = QM9_VOCAB.with_aromatic_bonds()
    bonds = parse_scaffold("c1ccncc1C", vocab, 9).bonds
    assert [bonds[i, (i + 1) % 6].item() for i in range(6)] == [4] * 6  # the aromatic class
    assert bonds[5, 6].item() == 1
    mol = graph_to_mol(torch.tensor([0, 0, 0, 1, 0, 0, 0]), torch.ones(7, dtype=torch.long),
                       bonds, vocab)  # fmt: skip
    Chem.SanitizeMol(mol)
    assert Chem.MolToSmiles(mol) == Chem.CanonSmiles("Cc1cccnc1")


def test_exocyclic_double_bond_charge_and_disconnected_parts():
    scaffold = parse_scaffold("O=C1CCC1", QM9_VOCAB, 9)
    assert scaffold.atoms.tolist() == [2, 0, 0, 0, 0] and scaffold.bonds[0, 1] == 2
    charged = parse_scaffold("C[N+](C)(C)C", QM9_VOCAB, 9)
    assert charged.charges.tolist()[1] == QM9_VOCAB.charges.index(1)
    two = parse_scaffold("C1CC1.O", QM9_VOCAB, 9)
    assert two.num_atoms == 4 and two.bonds[3].eq(0).all()


@pytest.mark.parametrize(
    "smarts, smiles",
    [
        ("[#6]1:[#6]:[#6]:[#6]:[#6]:[#6]:1", "c1ccccc1"),
        ("[#6]1-[#6]-[#6]-[#7]-1", "C1CCN1"),
        ("[#6]1[#6][#8][#6]1", "C1COC1"),  # implicit SMARTS bonds between aliphatic atoms
        ("[#6]=[#8]", "C=O"),
    ],
)
def test_plain_smarts_is_accepted(smarts, smiles):
    assert Chem.MolFromSmiles(smarts) is None or smarts.startswith("[#6]")
    scaffold = parse_scaffold(smarts, QM9_VOCAB, 9)
    assert scaffold.smiles == Chem.CanonSmiles(smiles)


def test_hydrogens_stereo_and_atom_maps_are_not_fixed():
    scaffold = parse_scaffold("[H]C1([H])C[C@H](O)C1", QM9_VOCAB, 9)
    assert scaffold.num_atoms == 5 and scaffold.smiles == "OC1CCC1"
    assert parse_scaffold("[CH3:1][OH:2]", QM9_VOCAB, 9).smiles == "CO"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("[H]", "atom 0 is H, which.*C, N, O, F"),
        ("C1CC(", "cannot parse scaffold 'C1CC\\(' as SMILES or as SMARTS"),
        ("ClC1CC1", "atom 0 is Cl.*vocabulary 'qm9'.*C, N, O, F"),
        ("C[S]C", "atom 1 is S.*C, N, O, F"),
        ("[O-2]", "formal charge -2.*allows -1, \\+0, \\+1"),
        ("C1CCCCCCCCC1", "10 heavy atoms.*at most 9 nodes"),
        ("[C,N]1CC1", "SMARTS atom 0 '\\[C,N\\]' is a query"),
        ("[CR]CC", "is a query"),
        ("C-,=C", "SMARTS bond 0-1 '-,=' is a query"),
        ("C~C", "bond 0-1"),
        ("*1CC1", "wildcard"),
        ("[13CH3]O", "isotope"),
        ("c1cccc1", "cannot be kekulized|not a valid fragment"),
    ],
)
def test_refusals_are_scaffold_errors_with_a_clear_message(text, message):
    with pytest.raises(ScaffoldError, match=message) as caught:
        parse_scaffold(text, QM9_VOCAB, 9)
    assert isinstance(caught.value, UserInputError)


def test_contains_matches_the_sanitized_fragment_not_its_kekule_form():
    scaffold = parse_scaffold("c1ccncc1", QM9_VOCAB, 9)
    # A graph holding the fragment's Kekulé form on its first nodes plus a methyl: unsanitized
    # it has no aromatic flags; sanitization perceives the ring and the aromatic query matches.
    atoms = torch.cat([scaffold.atoms, torch.tensor([0])])
    charges = torch.cat([scaffold.charges, torch.tensor([1])])
    bonds = torch.zeros(7, 7, dtype=torch.long)
    bonds[:6, :6] = scaffold.bonds
    bonds[0, 6] = bonds[6, 0] = 1
    mol = graph_to_mol(atoms, charges, bonds, QM9_VOCAB)
    assert not any(b.GetIsAromatic() for b in mol.GetBonds())
    assert contains_scaffold(mol, scaffold)
    assert mol.GetNumAtoms() == 7  # not modified
    kekule = Chem.RWMol(scaffold.mol)
    Chem.Kekulize(kekule, clearAromaticFlags=True)
    sanitized = Chem.MolFromSmiles("Cc1ccncc1")
    assert not sanitized.HasSubstructMatch(kekule)  # why the Kekulé form is not the query
    assert not contains_scaffold(Chem.MolFromSmiles("CC1CCNCC1"), scaffold)  # saturated
    assert not contains_scaffold(None, scaffold)
    broken = Chem.RWMol(Chem.MolFromSmiles("C"))
    broken.GetAtomWithIdx(0).SetFormalCharge(-5)
    assert not contains_scaffold(broken, scaffold)
