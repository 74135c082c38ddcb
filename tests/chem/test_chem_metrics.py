"""Literature molecule metrics: validity (EDM/DiGress, strict), uniqueness, novelty, stability."""

from __future__ import annotations

import csv
import importlib.util
import random

import numpy as np
import pytest

Chem = pytest.importorskip("rdkit.Chem")

from sci_diffusion.chem import gate  # noqa: E402
from sci_diffusion.chem.metrics import (  # noqa: E402
    EDM_ALLOWED_VALENCES,
    atom_stable,
    bond_order_graph,
    canonical_smiles_set,
    edm_stability,
    literature_valid_smiles,
    molecule_metrics,
    novelty,
    strict_valid_smiles,
    uniqueness,
    validity,
    validity_strict,
)


def raw(smiles: str) -> Chem.Mol:
    """An unsanitized molecule, as a generator would build it."""
    mol = Chem.MolFromSmiles(smiles, sanitize=False)
    assert mol is not None
    return mol


def explicit_h_graph_mol(smiles: str) -> Chem.Mol:
    """Rebuild a molecule atom by atom with explicit hydrogens and Kekulé bonds, unsanitized."""
    source = Chem.AddHs(Chem.MolFromSmiles(smiles))
    Chem.Kekulize(source, clearAromaticFlags=True)
    mol = Chem.RWMol()
    for atom in source.GetAtoms():
        new = Chem.Atom(atom.GetSymbol())
        new.SetFormalCharge(atom.GetFormalCharge())
        mol.AddAtom(new)
    for bond in source.GetBonds():
        mol.AddBond(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), bond.GetBondType())
    return mol.GetMol()


def methane_orders(n_h: int = 4) -> np.ndarray:
    orders = np.zeros((n_h + 1, n_h + 1))
    orders[0, 1:] = orders[1:, 0] = 1
    return orders


# ---------------------------------------------------------------------------------- validity


def test_two_fragment_molecule_is_literature_valid_but_strictly_invalid():
    mol = raw("CCO.C")
    assert literature_valid_smiles(mol) == "CCO"  # the largest fragment's SMILES
    assert strict_valid_smiles(mol) is None
    assert validity([mol]) == 1.0
    assert validity_strict([mol]) == 0.0


def test_pentavalent_carbon_is_invalid_under_both_definitions():
    mol = raw("CC(C)(C)(C)C")
    assert literature_valid_smiles(mol) is None
    assert strict_valid_smiles(mol) is None


def test_an_invalid_small_fragment_makes_the_whole_molecule_invalid():
    # EDM and DiGress sanitize the whole molecule before taking the largest fragment.
    assert literature_valid_smiles(raw("CCCCCCCCCC.FC(F)(F)(F)F")) is None


def test_largest_fragment_wins_and_ties_keep_the_first():
    assert literature_valid_smiles(raw("O.CCCC.CC")) == "CCCC"
    assert literature_valid_smiles(raw("CCO.CCN")) == "CCO"


def test_none_and_empty_molecules_are_invalid():
    assert literature_valid_smiles(None) is None
    assert strict_valid_smiles(Chem.Mol()) is None
    assert validity([None, raw("C"), None, raw("CC")]) == 0.5


def test_validity_leaves_its_input_unsanitized():
    mol = raw("c1ccccc1O")
    assert mol.NeedsUpdatePropertyCache()
    literature_valid_smiles(mol)
    strict_valid_smiles(mol)
    assert mol.NeedsUpdatePropertyCache()


def test_explicit_hydrogen_molecules_give_ordinary_smiles():
    mol = explicit_h_graph_mol("Oc1ccccc1")
    assert mol.GetNumAtoms() == 13
    assert literature_valid_smiles(mol) == "Oc1ccccc1"
    assert strict_valid_smiles(mol) == "Oc1ccccc1"


def test_empty_sample_set_raises():
    with pytest.raises(ValueError, match="no molecules"):
        validity([])


# ----------------------------------------------------------------------- uniqueness, novelty


def test_uniqueness_is_over_valid_molecules():
    assert uniqueness(["CCO", "CCO", "CC"]) == pytest.approx(2 / 3)
    assert uniqueness([]) == 0.0


def test_novelty_is_over_unique_valid_molecules():
    # 3 distinct valid molecules, one of them in the training set.
    assert novelty(["CCO", "CCO", "CC", "CCC"], {"CC"}) == pytest.approx(2 / 3)
    assert novelty([], {"CC"}) == 0.0


def test_canonical_smiles_set_canonicalizes_and_skips_garbage():
    assert canonical_smiles_set(["OCC", "C(O)C", "[H]OC([H])([H])C", "not a smiles"]) == {"CCO"}
    assert canonical_smiles_set(["C[C@H](N)O"], isomeric=True) == {"C[C@H](N)O"}
    assert canonical_smiles_set(["C[C@H](N)O"]) == {"CC(N)O"}
    assert canonical_smiles_set is gate.canonical_smiles_set  # one implementation


# -------------------------------------------------------------------------------- stability


def test_edm_valence_table_matches_edm():
    assert EDM_ALLOWED_VALENCES["C"] == (4,)
    assert EDM_ALLOWED_VALENCES["N"] == (3,)
    assert EDM_ALLOWED_VALENCES["S"] == (4,)
    assert EDM_ALLOWED_VALENCES["P"] == (3, 5)
    assert len(EDM_ALLOWED_VALENCES) == 16


def test_methane_is_stable_and_pentavalent_carbon_is_not():
    assert atom_stable(["C", "H", "H", "H", "H"], methane_orders()).all()
    stable = atom_stable(["C"] + ["H"] * 5, methane_orders(5))
    assert stable.tolist() == [False] + [True] * 5
    assert edm_stability([(["C"] + ["H"] * 5, methane_orders(5))]) == (pytest.approx(5 / 6), 0.0)


def test_atomic_numbers_work_like_symbols():
    assert atom_stable([6, 1, 1, 1, 1], methane_orders()).all()


def test_phosphorus_allows_three_or_five_bonds():
    for n_h, ok in ((3, True), (4, False), (5, True)):
        assert atom_stable(["P"] + ["H"] * n_h, methane_orders(n_h))[0] == ok


def test_edm_table_ignores_charges_and_counts_sulfur_as_tetravalent():
    ammonium = bond_order_graph(Chem.AddHs(Chem.MolFromSmiles("[NH4+]")))
    assert atom_stable(*ammonium).tolist() == [False, True, True, True, True]
    hydrogen_sulfide = bond_order_graph(Chem.AddHs(Chem.MolFromSmiles("S")))
    assert not atom_stable(*hydrogen_sulfide)[0]  # EDM: S must have 4 bonds


def test_aromatic_bonds_count_one_and_a_half():
    benzene = Chem.AddHs(Chem.MolFromSmiles("c1ccccc1"))
    assert atom_stable(*bond_order_graph(benzene)).all()  # 1.5 + 1.5 + 1 = 4
    pyrrole = Chem.AddHs(Chem.MolFromSmiles("c1cc[nH]c1"))
    symbols, orders = bond_order_graph(pyrrole)
    assert not atom_stable(symbols, orders)[symbols.index("N")]  # 1.5 + 1.5 + 1 = 4 != 3
    assert atom_stable(*bond_order_graph(pyrrole, kekulize=True)).all()


def test_stability_pools_atoms_and_counts_missing_graphs_as_unstable():
    good = (["C", "H", "H", "H", "H"], methane_orders())
    bad = (["C", "H", "H", "H"], methane_orders(3))
    atoms, mols = edm_stability([good, bad, None])
    assert atoms == pytest.approx(8 / 9)
    assert mols == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("atoms", "orders", "message"),
    [
        (["C", "H"], np.array([[0, 1], [0, 0]]), "symmetric"),
        (["C", "H"], np.zeros((3, 3)), "shape"),
        (["Se", "H"], np.array([[0, 1], [1, 0]]), "Se"),
        ([34, 1], np.array([[0, 1], [1, 0]]), "34"),
    ],
)
def test_stability_rejects_bad_graphs(atoms, orders, message):
    with pytest.raises(ValueError, match=message):
        atom_stable(atoms, orders)


# ------------------------------------------------------------------------------ entry point


def test_molecule_metrics_on_a_hand_made_set():
    mols = [raw("CCO"), raw("OCC"), raw("CCO.C"), raw("CC(C)(C)(C)C"), None, raw("CCN")]
    out = molecule_metrics(mols, training_smiles=["CN", "C(C)N"])
    assert out["n_samples"] == 6
    assert out["n_valid"] == 4 and out["validity"] == pytest.approx(4 / 6)
    assert out["n_valid_strict"] == 3 and out["validity_strict"] == pytest.approx(3 / 6)
    assert out["uniqueness"] == pytest.approx(2 / 4)  # {CCO, CCN} among 4 valid
    assert out["valid_unique"] == pytest.approx(2 / 6)
    assert out["novelty"] == pytest.approx(1 / 2)  # CCN is in the training set
    assert out["atom_stability"] is None and out["mol_stability"] is None
    assert molecule_metrics(mols)["novelty"] is None


def test_molecule_metrics_with_explicit_hydrogens():
    mols = [explicit_h_graph_mol("CCO"), explicit_h_graph_mol("C[NH3+]"), None]
    out = molecule_metrics(mols, explicit_h=True)
    assert out["validity_strict"] == pytest.approx(2 / 3)
    assert out["mol_stability"] == pytest.approx(1 / 3)  # the ammonium N is unstable
    assert out["atom_stability"] == pytest.approx((9 + 7) / (9 + 8))
    graphs = [bond_order_graph(m) for m in mols[:2]] + [None]
    assert molecule_metrics(mols, explicit_h=True, graphs=graphs) == out
    with pytest.raises(ValueError, match="graphs"):
        molecule_metrics(mols, explicit_h=True, graphs=graphs[:2])


def qm9_sample(n: int, seed: int = 0) -> list[str]:
    """``n`` random SMILES from qm9pack's first csv, read without importing qm9pack."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None:
        pytest.skip("qm9pack is not installed")
    path = spec.submodule_search_locations[0] + "/data/qm9_part1.csv"
    csv.field_size_limit(1 << 26)
    with open(path, newline="") as f:
        rows = csv.reader(f)
        column = next(rows).index("SMILES")
        smiles = [row[column] for row in rows]
    return random.Random(seed).sample(smiles, n)


def test_qm9_molecules_are_valid_and_stable_except_charged_atoms():
    smiles = qm9_sample(300)
    mols = [explicit_h_graph_mol(s) for s in smiles]
    out = molecule_metrics(mols, training_smiles=smiles, explicit_h=True)
    assert out["validity"] == 1.0
    assert out["validity_strict"] == 1.0
    assert out["novelty"] == 0.0
    assert out["uniqueness"] > 0.99
    # With the bonds of the SMILES, EDM's neutral table fails exactly the charged atoms.
    charges = [[a.GetFormalCharge() for a in m.GetAtoms()] for m in mols]
    n_charged_atoms = sum(sum(c != 0 for c in mol) for mol in charges)
    n_atoms = sum(len(mol) for mol in charges)
    assert out["atom_stability"] == pytest.approx(1 - n_charged_atoms / n_atoms)
    assert out["mol_stability"] == pytest.approx(np.mean([not any(c) for c in charges]))
