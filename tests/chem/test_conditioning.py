"""Property tables for conditioning: values equal RDKit's and qm9pack's own, in our units."""

from __future__ import annotations

import numpy as np
import pytest

from sci_diffusion.chem.conditioning import (
    CONDITION_PROPERTIES,
    HARTREE_TO_MEV,
    property_table,
    rdkit_values,
)


def test_every_property_has_a_unit_a_source_and_a_tolerance():
    for spec in CONDITION_PROPERTIES.values():
        assert spec.unit and spec.source in ("rdkit", "qm9_dft") and spec.tolerance > 0
        assert (spec.column != "") == (spec.source == "qm9_dft")


def test_qm9_table_matches_rdkit_and_the_dft_columns(tmp_path, monkeypatch):
    import pandas as pd
    from rdkit import Chem
    from rdkit.Chem import QED, Crippen

    from sci_diffusion.chem.data import qm9_source_files

    monkeypatch.setenv("SCI_DIFFUSION_CACHE", str(tmp_path))
    index = np.array([1, 2, 40, 1000])  # GDB-9 indices: methane, ammonia, ...
    table = property_table("qm9", "all", index, ["qed", "logp", "gap", "alpha"], processes=1)
    raw = pd.read_csv(qm9_source_files()[0], nrows=1000).set_index("Index").loc[index]
    for row, (gdb, record) in zip(table, raw.iterrows(), strict=True):
        mol = Chem.MolFromSmiles(record["SMILES"])
        assert row[0] == pytest.approx(QED.qed(mol)), gdb
        assert row[1] == pytest.approx(Crippen.MolLogP(mol)), gdb
        assert row[2] == pytest.approx(record["HOMO_LUMO_gap_au"] * HARTREE_TO_MEV)
        assert row[3] == pytest.approx(record["Polarizability_bohr3"])
    again = property_table("qm9", "all", index, ["gap", "qed"], processes=1)  # from the cache
    np.testing.assert_array_equal(again, table[:, [2, 0]])
    assert list((tmp_path / "properties").glob("*.npz"))


def test_rdkit_values_ignore_explicit_hydrogens():
    from rdkit import Chem

    mol = Chem.MolFromSmiles("OCC(=O)N")
    with_h = Chem.AddHs(mol)
    names = ["qed", "logp", "mw", "tpsa", "hbd", "hba", "rings", "sa"]
    assert rdkit_values(mol, names) == pytest.approx(rdkit_values(with_h, names))
