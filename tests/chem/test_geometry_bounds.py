"""The strict geometry profile: QM9's bond-length and bond-angle ranges (issue 17, item 2).

The default (PoseBusters) checks accept bonds from 0.75 x to 1.25 x RDKit's distance-geometry
bounds, so a C#N of 0.96 Å passes; the strict profile must reject it and must leave the default
results as they were."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rdkit")

from rdkit import Chem
from rdkit.Chem import AllChem
from rdkit.Chem import rdMolTransforms as transforms

from sci_diffusion.chem import geometry_bounds as gb
from sci_diffusion.chem.gate import GateConfig, GateConfigError, run_gate
from sci_diffusion.chem.plausibility import (
    PLAUSIBILITY_CHECKS,
    PlausibilityConfig,
    check_plausibility,
)
from sci_diffusion.io.errors import UserInputError


def embedded(smiles: str, seed: int = 1) -> Chem.Mol:
    """Heavy atoms at an MMFF geometry (a 3D structure as a generator gives it: no H)."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    AllChem.MMFFOptimizeMolecule(mol)
    return Chem.RemoveHs(mol)


def acetonitrile(cn: float | None = None) -> Chem.Mol:
    mol = embedded("CC#N")
    if cn is not None:
        transforms.SetBondLength(mol.GetConformer(), 1, 2, cn)
    return mol


def test_strict_profile_rejects_a_short_nitrile_the_default_accepts() -> None:
    short = acetonitrile(0.96)
    default = check_plausibility(short, PlausibilityConfig(n_conformers=0))
    assert default["plausible"] is True  # the old behaviour: 0.96 Å is within 0.75 x lb
    assert not any(k.startswith("strict") for k in default)  # default results unchanged
    strict = check_plausibility(short, PlausibilityConfig(n_conformers=0, profile="strict"))
    assert strict["plausible"] is False
    assert strict["strict_bond_lengths"] is False and strict["strict_bond_angles"] is True
    key, value, (lower, upper), atoms = strict["strict_bond_outliers"][0]
    assert key == "C-N:3" and value == pytest.approx(0.96) and atoms == [1, 2]
    assert 1.14 < lower < 1.16 < upper < 1.18  # QM9's nitriles: 1.153-1.167 Å
    assert all(strict[c] is True for c in PLAUSIBILITY_CHECKS if c != "energy_ratio")
    relaxed = check_plausibility(acetonitrile(), PlausibilityConfig(n_conformers=0,
                                                                   profile="strict"))  # fmt: skip
    assert relaxed["plausible"] is True and relaxed["strict_unchecked"] == 0


def test_gate_geometry_profile() -> None:
    short = acetonitrile(0.96)
    record = run_gate([short], GateConfig(geometry_profile="strict"))[0]
    outcome = record.gates["geometry_3d"]
    assert not record.passed and outcome.status == "fail"
    assert outcome.reason == "strict_bond_lengths"
    assert outcome.values["strict_bond_outliers"][0][0] == "C-N:3"
    assert run_gate([short])[0].passed  # the default profile is PoseBusters' alone
    assert GateConfig().geometry_profile == "default"
    assert GateConfig.from_dict({"geometry_profile": "strict"}).to_dict()["geometry_profile"] == (
        "strict"
    )


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"geometry_profile": "loose"}, ("'default'", "'strict'", "loose")),
        ({"geometry_3d_options": {"profile": "strict"}}, ("geometry_profile",)),
    ],
)
def test_bad_profile_settings_are_user_errors(settings: dict, words: tuple[str, ...]) -> None:
    with pytest.raises(GateConfigError) as info:
        GateConfig.from_dict(settings)
    assert isinstance(info.value, UserInputError)
    assert all(w in str(info.value) for w in words)
    with pytest.raises(ValueError, match="default, strict"):
        PlausibilityConfig(profile="loose")


def test_keys() -> None:
    mol = embedded("CC1CC1C#N")
    bonds, angles = gb.measure_geometry(mol, mol.GetConformer().GetPositions())
    assert sorted(m.key for m in bonds) == sorted(
        ["C-C:1"] * 5 + ["C-N:3"]  # methyl-C, three ring bonds, ring-C#N's C, C#N
    )
    keys = {m.key for m in angles}
    assert {"C:SP3:r3", "C:SP3:x", "C:SP:-"} <= keys  # in the ring, at a substituent, nitrile
    benzene = embedded("c1ccccc1O")
    bonds, angles = gb.measure_geometry(benzene, benzene.GetConformer().GetPositions())
    assert {m.key for m in bonds} == {"C-C:ar", "C-O:1"}
    assert {m.key for m in angles} == {"C:SP2:-"}


def test_packaged_table_is_what_the_generator_writes() -> None:
    table = gb.geometry_table()
    assert gb.table_source(table) == gb.TABLE_MODULE.read_text()
    assert table.source["lower_percentile"] == 0.1 and table.source["upper_percentile"] == 99.9
    for bound in (*table.bond_lengths.values(), *table.bond_angles.values()):
        assert bound.lower <= bound.median <= bound.upper and bound.count >= 50
    qm9 = table.qm9_test
    assert qm9["n"] > 13_000 and qm9["bond_outside_share"] < 0.02 < qm9["any_outside_share"]


def test_derived_from_qm9_and_qm9_passes_its_own_bounds() -> None:
    molecules = list(gb.qm9_molecules("train", 300))
    assert len(molecules) == 300 and all(m.GetNumAtoms() == len(p) for m, p in molecules)
    table = gb.derive_table(molecules, lower=0.0, upper=100.0, min_count=1)
    assert {"C-C:1", "C-H:1", "C-O:2"} <= set(table.bond_lengths)
    # min-max bounds: every molecule they were derived from passes them
    shares = gb.failure_shares(molecules, table, ignore_hydrogens=False)
    assert shares["n"] == 300 and shares["any_outside"] == 0
    # the packaged table on held-out molecules: the rare failures of a 0.1-99.9% range
    test = list(gb.qm9_molecules("test", 300, hydrogens=False))
    assert gb.failure_shares(test)["bond_outside_share"] < 0.05
    with pytest.raises(ValueError, match="lower < upper"):
        gb.derive_table([], lower=50, upper=50)


def test_candidate_geometry_counts_carbon_carbon_bonds() -> None:
    good = embedded("CCO")
    stretched = embedded("CCO")
    transforms.SetBondLength(stretched.GetConformer(), 0, 1, 1.75)
    result = gb.candidate_geometry([good, stretched, None])
    assert result["n"] == 2 and result["cc_outside_1.2_1.6"] == 1
    assert result["bond_outside"] == 1 and result["bond_outliers"] == {"C-C:1 long": 1}
    assert result["qm9_test"] == dict(gb.geometry_table().qm9_test)
    assert gb.carbon_carbon_outside(good, good.GetConformer().GetPositions()) is False
    assert not gb.carbon_carbon_outside(stretched, np.asarray(
        stretched.GetConformer().GetPositions()), high=1.8)  # fmt: skip
