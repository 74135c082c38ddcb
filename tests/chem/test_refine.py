"""Force-field refinement: a relaxed copy beside the raw structure, never in its place."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rdkit")

from rdkit import Chem
from rdkit.Chem import AllChem

from sci_diffusion.chem.refine import (
    REFINEMENT_FIELDS,
    refine_many,
    refine_molecule,
    refined_sdf_text,
    refinement_summary,
)


def distorted(smiles: str, noise: float = 0.08, seed: int = 0) -> Chem.Mol:
    """Heavy atoms only, an MMFF geometry shaken by Gaussian noise (a generated structure)."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    AllChem.MMFFOptimizeMolecule(mol)
    heavy = Chem.RemoveHs(mol)
    rng = np.random.default_rng(seed)
    conformer = heavy.GetConformer()
    shaken = conformer.GetPositions() + rng.normal(0, noise, (heavy.GetNumAtoms(), 3))
    for i, p in enumerate(shaken):
        conformer.SetAtomPosition(i, p.tolist())
    return heavy


def test_refinement_keeps_the_raw_coordinates_and_records_energies() -> None:
    raw = distorted("C[C@H](O)C#N")
    before = raw.GetConformer().GetPositions().copy()
    result = refine_molecule(raw)
    np.testing.assert_array_equal(raw.GetConformer().GetPositions(), before)  # untouched
    assert raw.GetNumAtoms() == 5 and raw.GetNumConformers() == 1
    assert result.error is None and result.force_field == "MMFF94"
    assert result.energy_before > result.energy_after  # kcal/mol, the distortion relaxed
    assert result.converged is True and result.n_hydrogens_added == 5
    assert 0.01 < result.heavy_atom_rmsd < 0.5
    refined = result.mol()
    assert refined.GetNumAtoms() == 10  # hydrogens added with coordinates
    assert [a.GetSymbol() for a in refined.GetAtoms()][:5] == ["C", "C", "O", "C", "N"]
    moved = np.abs(refined.GetConformer().GetPositions()[:5] - before).max()
    assert moved > 1e-3  # the copy was minimized
    assert set(result.to_dict()) == set(REFINEMENT_FIELDS)


def test_uff_when_mmff_has_no_parameters_and_errors_are_recorded() -> None:
    boronic = distorted("CB(O)O", noise=0.02)  # MMFF94 has no boron
    result = refine_molecule(boronic)
    assert result.force_field == "UFF" and result.error is None
    assert result.energy_after <= result.energy_before
    assert refine_molecule(None).error == "no molecule"
    assert refine_molecule(Chem.MolFromSmiles("CCO")).error == "no 3D conformer"
    with pytest.raises(ValueError, match="max_iterations"):
        refine_molecule(boronic, max_iterations=0)


def test_many_summary_and_sdf() -> None:
    mols = [distorted("CCO"), None, distorted("CC(=O)N", seed=1)]
    results = refine_many(mols)
    assert [r.error is None for r in results] == [True, False, True]
    summary = refinement_summary(results)
    assert summary["n"] == 3 and summary["n_refined"] == 2 and summary["n_converged"] == 2
    assert summary["force_fields"] == {"MMFF94": 2}
    assert summary["energy_MMFF94"]["drop_median"] > 0
    tags = [{"index": i, "canonical_smiles": "x"} for i in range(3)]
    text = refined_sdf_text(zip(tags, results, strict=True))
    supplier = Chem.SDMolSupplier()
    supplier.SetData(text, removeHs=False)
    records = list(supplier)
    assert [int(m.GetProp("index")) for m in records] == [0, 2]
    assert all(m.GetProp("force_field") == "MMFF94" for m in records)
    assert all(any(a.GetAtomicNum() == 1 for a in m.GetAtoms()) for m in records)
