"""Screening outputs: the six files, their fields, atomicity, and (property-based) that nothing
rejected or deny-listed ever reaches candidates.csv / candidates.sdf."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rdkit")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdkit import Chem
from rdkit.Chem import AllChem

from sci_diffusion.chem import outputs
from sci_diffusion.chem.gate import GATES, SKIPPABLE_GATES, GateConfig, MoleculeRecord, run_gate
from sci_diffusion.chem.outputs import (
    CANDIDATE_COLUMNS,
    OUTPUT_FILES,
    PROVENANCE_KEYS,
    REJECTED_COLUMNS,
    VALIDATION_NOTE,
    grid_svg,
    provenance,
    write_outputs,
)

VALID = [
    "CCO",
    "c1ccccc1O",
    "CC(=O)Nc1ccc(O)cc1",
    "CCN(CC)CC",
    "OC(=O)c1ccccc1",
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "C1CCOC1",
]
INVALID = [
    "C1CC(",
    "",
    "C[N](C)(C)C",
    "c1cccc1",
    "CC.O",
    "C[Si](C)(C)C",
    "[CH2]C",
    "CC(=O)[O-]",
    "c1ccccc1N=Nc1ccccc1",
    "C" * 40 + "C(=O)O",
]
ESTER = "[CX3](=O)[OX2][#6]"
CHLOROBENZENE_KEY = Chem.MolToInchiKey(Chem.MolFromSmiles("Clc1ccccc1"))
DENIED = ["CCOC(C)=O", "COC(=O)c1ccccc1", "Clc1ccccc1", "c1cc(Cl)ccc1", "OCC(N)=O", "C(N)(=O)CO"]
DENY_CONFIG = GateConfig(deny_smarts=(ESTER,), deny_compounds=(CHLOROBENZENE_KEY, "NC(=O)CO"))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def read_sdf(path: Path) -> list[Chem.Mol]:
    """Molecules of an SDF file; RDKit refuses an empty file, which means no candidates here."""
    if path.stat().st_size == 0:
        return []
    return [m for m in Chem.SDMolSupplier(str(path), removeHs=False) if m is not None]


def screen(smiles: list[str], out: Path, config: GateConfig | None = None) -> list[MoleculeRecord]:
    records = run_gate(smiles, config or DENY_CONFIG, names=[f"m{i}" for i in range(len(smiles))])
    prov = provenance(model_fingerprint="abc123", sampler="ddim", steps=50, seed=7)
    write_outputs(out, records, config=config, provenance_fields=prov)
    return records


def is_denied(smiles: str) -> bool:
    mol = Chem.MolFromSmiles(smiles)
    return (
        mol.HasSubstructMatch(Chem.MolFromSmarts(ESTER))
        or Chem.MolToInchiKey(mol) == CHLOROBENZENE_KEY
        or Chem.MolToSmiles(mol) == "NC(=O)CO"
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(smiles=st.lists(st.sampled_from(VALID + INVALID + DENIED), min_size=1, max_size=12))
def test_nothing_rejected_or_denied_reaches_the_candidates(
    smiles: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = tmp_path_factory.mktemp("screen")
    records = screen(smiles, out)
    rows = read_csv(out / "candidates.csv")
    sdf = read_sdf(out / "candidates.sdf")
    passed = [r for r in records if r.passed]
    assert [int(row["index"]) for row in rows] == [r.index for r in passed]
    assert [int(m.GetProp("index")) for m in sdf] == [r.index for r in passed]
    seen = set()
    for row in rows:
        source = smiles[int(row["index"])]
        assert source not in INVALID and not is_denied(source)
        assert row["canonical_smiles"] not in seen  # first occurrence only
        seen.add(row["canonical_smiles"])
        assert row["validation_status"] == "in_silico_screened"
        for gate in GATES:
            assert row[f"gate_{gate}"] == ("skipped" if gate in SKIPPABLE_GATES else "pass")
    for mol in sdf:
        assert not is_denied(Chem.MolToSmiles(mol))
    rejected = read_csv(out / "rejected.csv")
    assert len(rejected) + len(rows) == len(smiles)
    assert all(row["failed_gate"] in GATES and row["failure_reason"] for row in rejected)


def test_writes_exactly_the_six_files_with_their_fields(tmp_path: Path) -> None:
    smiles = ["CC(=O)Nc1ccc(O)cc1", "C1CC(", "CCOC(C)=O", "c1ccccc1O", "CCO"]
    records = screen(smiles, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUTPUT_FILES)  # no temp files
    rows = read_csv(tmp_path / "candidates.csv")
    assert list(rows[0]) == [*CANDIDATE_COLUMNS, *PROVENANCE_KEYS]
    assert [row["name"] for row in rows] == ["m0", "m3", "m4"]
    first = rows[0]
    assert first["canonical_smiles"] == "CC(=O)Nc1ccc(O)cc1"
    assert first["inchikey"] == records[0].inchikey
    assert (first["sampler"], first["steps"], first["seed"]) == ("ddim", "50", "7")
    assert first["model_fingerprint"] == "abc123" and first["rdkit_version"]
    assert json.loads(first["gate_alerts_values"]) == {"brenk": ["hydroquinone"], "pains": []}
    assert first["gate_alerts_reason"] == "recorded only: Brenk: hydroquinone"
    assert float(first["qed"]) == pytest.approx(records[0].properties["qed"], abs=1e-4)

    rejected = read_csv(tmp_path / "rejected.csv")
    assert list(rejected[0]) == list(REJECTED_COLUMNS)
    assert [(r["input_smiles"], r["failed_gate"]) for r in rejected] == [
        ("C1CC(", "construction"),
        ("CCOC(C)=O", "deny_list"),
    ]
    assert "SMILES parse error" in rejected[0]["failure_reason"]

    sdf = read_sdf(tmp_path / "candidates.sdf")
    assert len(sdf) == 3
    props = sdf[0].GetPropsAsDict()
    assert set(CANDIDATE_COLUMNS) - {"name", "source", "novel"} <= set(props)
    assert props["gate_deny_list"] == "pass" and props["sampler"] == "ddim"
    assert Chem.MolToSmiles(sdf[0]) == props["canonical_smiles"]
    assert sdf[0].GetProp("_Name") == "m0"

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["n_input"], metrics["n_candidates"]) == (5, 3)
    assert metrics["provenance"]["seed"] == 7
    report = (tmp_path / "report.md").read_text()
    assert VALIDATION_NOTE in report and "| deny_list | 3 | 1 | 1 |" in report
    assert (tmp_path / "grid.svg").read_text().lstrip().startswith("<?xml")


def test_3d_candidates_keep_their_coordinates(tmp_path: Path) -> None:
    mol = Chem.AddHs(Chem.MolFromSmiles("CC(=O)Nc1ccc(O)cc1"))
    AllChem.EmbedMolecule(mol, randomSeed=0)
    write_outputs(tmp_path, run_gate([mol]))
    back = next(Chem.SDMolSupplier(str(tmp_path / "candidates.sdf"), removeHs=False))
    assert back.GetNumAtoms() == mol.GetNumAtoms()
    assert back.GetConformer().Is3D()


def test_extra_metrics_are_merged(tmp_path: Path) -> None:
    returned = write_outputs(tmp_path, run_gate(["CCO"]), extra_metrics={"validity": 0.5})
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["validity"] == returned["validity"] == 0.5
    assert written["n_candidates"] == 1


def test_no_candidates_still_writes_every_file(tmp_path: Path) -> None:
    write_outputs(tmp_path, run_gate(["C1CC(", "CC.O"]))
    assert read_csv(tmp_path / "candidates.csv") == []
    assert read_sdf(tmp_path / "candidates.sdf") == []
    assert len(read_csv(tmp_path / "rejected.csv")) == 2
    assert "no candidates" in (tmp_path / "grid.svg").read_text()
    assert grid_svg([]).startswith("<svg")


def test_screening_survives_a_drawing_module_that_cannot_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bare GPU image lacks libXrender, so ``import rdkit.Chem.Draw`` fails there (seen on the
    # H200 machine, 2026-12-04): every file is still written, the grid says why it is empty.
    import sys

    import rdkit.Chem

    monkeypatch.delattr(rdkit.Chem, "Draw", raising=False)
    monkeypatch.setitem(sys.modules, "rdkit.Chem.Draw", None)  # the next import raises
    with pytest.warns(RuntimeWarning, match="drawings unavailable"):
        write_outputs(tmp_path, run_gate(["CCO", "c1ccccc1O", "C1CC("]))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUTPUT_FILES)
    assert len(read_csv(tmp_path / "candidates.csv")) == 2
    assert "libxrender1" in (tmp_path / "grid.svg").read_text()
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failure_while_writing_leaves_nothing_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    write_outputs(out, run_gate(["CCO"]))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr(outputs, "grid_svg", broken)  # fail after the SDF and CSVs are written
    with pytest.raises(RuntimeError, match="disk full"):
        write_outputs(out, run_gate(["c1ccccc1O", "CC(=O)Nc1ccc(O)cc1"]))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # old set intact, no temps
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        write_outputs(fresh, run_gate(["CCO"]))
    assert list(fresh.iterdir()) == []


def test_provenance_defaults_and_key_checks() -> None:
    prov = provenance(seed=3, guidance_scale=2.0)
    assert list(prov)[: len(PROVENANCE_KEYS)] == list(PROVENANCE_KEYS)
    assert prov["seed"] == 3 and prov["guidance_scale"] == 2.0 and prov["sci_diffusion_version"]
    with pytest.raises(ValueError, match="identifier"):
        provenance(**{"bad key": 1})
    with pytest.raises(ValueError, match="not already a column"):
        provenance(inchikey="x")


def test_output_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(NotADirectoryError):
        write_outputs(path, run_gate(["CCO"]))


def chiral_from_coordinates() -> tuple[Chem.Mol, str]:
    """(R)-lactonitrile's heavy atoms built from element symbols and coordinates alone (no
    stereo tags: as a 3D generator's molecule is), and its stereo SMILES."""
    from sci_diffusion.chem.reconstruct import with_conformer

    reference = Chem.AddHs(Chem.MolFromSmiles("C[C@@H](O)C#N"))
    AllChem.EmbedMolecule(reference, randomSeed=7)
    heavy = Chem.RemoveHs(reference)
    flat = Chem.MolFromSmiles("CC(O)C#N")  # same atom order, no stereochemistry
    positions = heavy.GetConformer().GetPositions()
    return with_conformer(flat, positions), Chem.MolToSmiles(heavy)


def atom_block(block: str) -> list[str]:
    lines = block.splitlines()
    n_atoms = int(lines[3][:3])
    return lines[4 : 4 + n_atoms]


@pytest.mark.parametrize("hydrogens", [False, True])
def test_sdf_has_stereo_from_3d_and_hydrogens_on_request(tmp_path: Path, hydrogens: bool) -> None:
    mol, stereo_smiles = chiral_from_coordinates()
    assert all(a.GetChiralTag() == Chem.ChiralType.CHI_UNSPECIFIED for a in mol.GetAtoms())
    given = mol.GetConformer().GetPositions()
    write_outputs(tmp_path, run_gate([mol]), sdf_hydrogens=hydrogens)
    text = (tmp_path / "candidates.sdf").read_text()
    atoms = atom_block(text)
    assert len(atoms) == (10 if hydrogens else 5)
    assert sum(line.split()[3] == "H" for line in atoms) == (5 if hydrogens else 0)
    # the stereocentre's parity (column 3 of the atom line's flags) comes from the coordinates
    assert atoms[1][39:42].strip() in ("1", "2")
    back = next(Chem.SDMolSupplier(str(tmp_path / "candidates.sdf"), removeHs=False))
    assert Chem.MolToSmiles(Chem.RemoveHs(back)) == stereo_smiles
    assert Chem.FindMolChiralCenters(back) == Chem.FindMolChiralCenters(
        Chem.MolFromSmiles(stereo_smiles))  # fmt: skip
    # the model's heavy-atom coordinates are written as they are
    np.testing.assert_allclose(back.GetConformer().GetPositions()[:5], given, atol=1e-4)


def test_extra_files_are_written_with_the_rest(tmp_path: Path) -> None:
    write_outputs(tmp_path, run_gate(["CCO"]), extra_files={"candidates_refined.sdf": "x\n"})
    assert (tmp_path / "candidates_refined.sdf").read_text() == "x\n"
    assert (tmp_path / "metrics.json").is_file()
    with pytest.raises(ValueError, match="plain new file names"):
        write_outputs(tmp_path, run_gate(["CCO"]), extra_files={"metrics.json": "{}"})
    with pytest.raises(ValueError, match="plain new file names"):
        write_outputs(tmp_path, run_gate(["CCO"]), extra_files={"../x.sdf": ""})
