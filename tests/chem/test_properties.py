"""Gate properties against RDKit's own descriptor functions, on real molecules."""

from __future__ import annotations

import pytest

pytest.importorskip("rdkit")

from rdkit import Chem
from rdkit.Chem import QED, AllChem, Crippen, Descriptors, rdMolDescriptors

from sci_diffusion.chem.properties import (
    PROPERTY_NAMES,
    compute_properties,
    lipinski_violations,
    sa_score,
    sascorer,
    without_hydrogens,
)

DRUGS = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "ibuprofen": "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "caffeine": "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "imatinib": "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1",
}


@pytest.mark.parametrize("smiles", DRUGS.values(), ids=DRUGS.keys())
def test_properties_equal_rdkit_reference_functions(smiles: str) -> None:
    mol = Chem.MolFromSmiles(smiles)
    props = compute_properties(mol)
    assert tuple(props) == PROPERTY_NAMES
    assert props["qed"] == pytest.approx(QED.qed(mol))
    assert props["sa_score"] == pytest.approx(sascorer().calculateScore(mol))
    assert props["mw"] == pytest.approx(Descriptors.MolWt(mol))
    assert props["logp"] == pytest.approx(Crippen.MolLogP(mol))
    assert props["hbd"] == rdMolDescriptors.CalcNumLipinskiHBD(mol)
    assert props["hba"] == rdMolDescriptors.CalcNumLipinskiHBA(mol)
    assert props["rotatable_bonds"] == rdMolDescriptors.CalcNumRotatableBonds(mol)
    assert 0.0 < props["qed"] < 1.0
    assert 1.0 <= props["sa_score"] <= 10.0


def test_known_values_for_small_molecules() -> None:
    ethanol = compute_properties(Chem.MolFromSmiles("CCO"))
    assert ethanol["mw"] == pytest.approx(46.069, abs=1e-3)
    assert (ethanol["hbd"], ethanol["hba"], ethanol["rotatable_bonds"]) == (1, 1, 0)
    assert ethanol["lipinski_violations"] == 0
    # aspirin is easy to make; a caged, stereo-rich natural product is not
    assert sa_score(Chem.MolFromSmiles(DRUGS["aspirin"])) < 2.5
    cage = "CC1(C)C2CCC1(C)C(=O)C2"  # camphor: bridged bicycle
    assert sa_score(Chem.MolFromSmiles(cage)) > sa_score(Chem.MolFromSmiles(DRUGS["aspirin"]))


def test_explicit_hydrogens_and_3d_give_the_same_values() -> None:
    mol = Chem.MolFromSmiles(DRUGS["ibuprofen"])
    with_h = Chem.AddHs(mol)
    AllChem.EmbedMolecule(with_h, randomSeed=0)
    assert compute_properties(with_h) == pytest.approx(compute_properties(mol))
    assert without_hydrogens(mol) is mol  # no copy when nothing to remove
    assert without_hydrogens(with_h).GetNumAtoms() == mol.GetNumAtoms()


def test_lipinski_violations_count_strictly_above_limits() -> None:
    assert lipinski_violations(500.0, 5.0, 5, 10) == 0
    assert lipinski_violations(500.1, 5.1, 6, 11) == 4
    long_acid = "C" * 40 + "C(=O)O"  # MW > 500 and logP > 5
    assert compute_properties(Chem.MolFromSmiles(long_acid))["lipinski_violations"] == 2
