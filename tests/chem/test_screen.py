"""screen_file: SMILES and SDF input, bad lines/records reported and skipped, input errors,
novelty from a training file, and a QM9 sanity check."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

pytest.importorskip("rdkit")

from rdkit import Chem
from rdkit.Chem import AllChem

from sci_diffusion.bench.screen import qm9_smiles
from sci_diffusion.chem import molfiles
from sci_diffusion.chem.gate import GateConfigError, NotConstructed
from sci_diffusion.chem.screen import (
    ScreenInputError,
    input_format,
    read_gate_inputs,
    screen_file,
)

SMILES_TEXT = """smiles name
# a comment, then a blank line

CC(=O)Nc1ccc(O)cc1 paracetamol
C1CC( broken ring
c1ccccc1O\tphenol
C[N](C)(C)C
OCC ethanol again
CCO
"""


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_smiles_file_lines_names_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.smi"
    path.write_bytes(SMILES_TEXT.encode() + b"\xff\xfe not utf-8\n")
    batch = read_gate_inputs(path)
    assert batch.molecules[:2] == ["CC(=O)Nc1ccc(O)cc1", "C1CC("]
    assert batch.names[:3] == ["paracetamol", "broken ring", "phenol"]
    assert batch.sources[0] == "line 4" and batch.sources[-1] == "line 10"

    metrics = screen_file(path, tmp_path / "out", processes=1)
    assert metrics["n_input"] == 7 and metrics["n_candidates"] == 3
    assert metrics["input"]["format"] == "smiles"
    errors = metrics["input_errors"]
    assert [e["source"] for e in errors] == ["line 5", "line 10"]
    assert "SMILES parse error" in errors[0]["reason"] and errors[1]["reason"] == "not UTF-8 text"
    rejected = {r["source"]: r for r in rows(tmp_path / "out" / "rejected.csv")}
    assert rejected["line 7"]["failed_gate"] == "sanitization"
    assert rejected["line 9"]["failure_reason"].startswith("duplicate of input 4 (line 8)")
    names = [r["name"] for r in rows(tmp_path / "out" / "candidates.csv")]
    assert names == ["paracetamol", "phenol", "ethanol again"]


def write_sdf(path: Path, broken_second: bool) -> None:
    mols = []
    for name, smiles in [("para", "CC(=O)Nc1ccc(O)cc1"), ("bad", "CCO"), ("phenol", "Oc1ccccc1")]:
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=0)
        mol.SetProp("_Name", name)
        mols.append(Chem.MolToMolBlock(mol))
    if broken_second:
        lines = mols[1].splitlines()
        lines[4] = lines[4][:31] + "Xx" + lines[4][33:]  # an unknown element symbol
        mols[1] = "\n".join(lines) + "\n"
    path.write_text("".join(block + "$$$$\n" for block in mols))


def test_sdf_records_with_a_broken_one(tmp_path: Path) -> None:
    path = tmp_path / "in.sdf"
    write_sdf(path, broken_second=True)
    batch = read_gate_inputs(path)
    assert batch.names == ["para", "bad", "phenol"]
    assert batch.sources[1].startswith("record 2 (line ")
    metrics = screen_file(path, tmp_path / "out", processes=2)
    assert (metrics["n_input"], metrics["n_candidates"]) == (3, 2)
    assert metrics["input_errors"][0]["source"] == batch.sources[1]
    assert "could not parse the mol block" in metrics["input_errors"][0]["reason"]
    sdf = Chem.SDMolSupplier(str(tmp_path / "out" / "candidates.sdf"), removeHs=False)
    first = next(sdf)
    assert first.GetConformer().Is3D() and first.GetProp("source") == "record 1 (line 1)"


def test_gzip_input_and_a_last_record_without_terminator(tmp_path: Path) -> None:
    path = tmp_path / "in.sdf"
    write_sdf(path, broken_second=False)
    text = path.read_text().rstrip()
    assert text.endswith("$$$$")
    gz = tmp_path / "in.sdf.gz"
    gz.write_bytes(gzip.compress(text.removesuffix("$$$$").encode()))
    assert read_gate_inputs(gz).names == ["para", "bad", "phenol"]
    smi = tmp_path / "in.smi.gz"
    smi.write_bytes(gzip.compress(b"CCO\nc1ccccc1O x\n"))
    assert screen_file(smi, tmp_path / "out", processes=1)["n_candidates"] == 2


def test_the_molfiles_records_passed_on_unparsed(tmp_path: Path) -> None:
    """chem.molfiles' raw records, so both readers agree on names and positions; here SMILES go to
    the gate unparsed and non-UTF-8 or empty lines become construction failures."""
    path = tmp_path / "in.smi"
    path.write_bytes(b"\xef\xbb\xbfSMILES,id\nCCO,eth  anol\nC1CC( ring\nCC caf\xe9\n,orphan\n")
    batch = read_gate_inputs(path)
    assert batch.molecules[:2] == ["CCO", "C1CC("]
    assert batch.molecules[2:] == [
        NotConstructed("not UTF-8 text"),
        NotConstructed("no SMILES on this line"),
    ]
    assert batch.names == ["eth anol", "ring", None, "orphan"]
    molecules, problems = molfiles.read_smiles_file(path)
    lines = sorted([m.line for m in molecules] + [p.line for p in problems])
    assert batch.sources == [f"line {n}" for n in lines] == ["line 2", "line 3", "line 4", "line 5"]
    errors = screen_file(path, tmp_path / "out", processes=1)["input_errors"]
    assert [e["source"] for e in errors] == ["line 3", "line 4", "line 5"]
    assert [e["reason"] for e in errors[1:]] == ["not UTF-8 text", "no SMILES on this line"]


def test_csv_and_mol_files_are_screened_like_the_sanitizing_readers_read_them(
    tmp_path: Path,
) -> None:
    """One suffix list (chem.molfiles): a .csv header selects the columns, a .mol is one record."""
    path = tmp_path / "in.csv"
    path.write_text("id,score,SMILES\nm1,0.5,CC(=O)O\nm2,0.1,XYZ\n")
    batch = read_gate_inputs(path)
    assert batch.format == "smiles"
    assert (batch.molecules, batch.names) == (["CC(=O)O", "XYZ"], ["m1", "m2"])
    assert [m.name for m in molfiles.read_molecules(path)[0]] == ["m1"]
    mol = tmp_path / "one.mol"
    mol.write_text(Chem.MolToMolBlock(Chem.MolFromSmiles("CCO")))
    batch = read_gate_inputs(mol)
    assert batch.format == "sdf" and Chem.MolToSmiles(batch.molecules[0]) == "CCO"
    assert screen_file(path, tmp_path / "out", processes=1)["n_input"] == 2


def test_old_reader_names_still_work_with_a_warning(tmp_path: Path) -> None:
    from sci_diffusion.chem import screen

    path = tmp_path / "in.smi"
    path.write_text("CCO ethanol\n")
    for name in ("read_smiles_file", "read_molecules"):
        with pytest.warns(DeprecationWarning, match="read_gate_inputs"):
            assert getattr(screen, name)(path).molecules == ["CCO"]


def test_sdf_blank_records_are_counted_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "in.sdf"
    write_sdf(path, broken_second=False)
    path.write_text(path.read_text().replace("$$$$\n", "$$$$\n\n$$$$\n", 1))
    batch = read_gate_inputs(path)
    assert batch.names == ["para", None, "bad", "phenol"]
    assert isinstance(batch.molecules[1], NotConstructed)
    problems = molfiles.read_sdf(path)[1]
    assert [p.record for p in problems] == [2]
    assert batch.sources[1] == f"record 2 (line {problems[0].line})"
    assert batch.sources[2].startswith("record 3 (line ")


def test_novelty_from_a_training_file(tmp_path: Path) -> None:
    (tmp_path / "in.smi").write_text("CCO\nCC(=O)Nc1ccc(O)cc1\n")
    (tmp_path / "train.smi").write_text("OCC\nnot-a-smiles\n")
    metrics = screen_file(tmp_path / "in.smi", tmp_path / "out", training=tmp_path / "train.smi")
    assert (metrics["n_novel"], metrics["n_novelty_checked"]) == (1, 2)
    assert metrics["training_set_size"] == 1
    strict = screen_file(
        tmp_path / "in.smi", tmp_path / "out2", {"reject_non_novel": True}, training=["OCC"]
    )
    assert strict["n_candidates"] == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.smi", None, "no such file"),
        ("in.xyz", b"3\n\nC 0 0 0\n", "unknown molecule file type"),
        ("in.smi", bytes(range(256)) * 8, "binary file"),
        ("in.smi", b"\x89PNG\r\n\x1a\n" + bytes(4000), "binary file"),
        ("in.smi", b"# only a comment\n\n", "no molecules found"),
        ("in.sdf", b"\n\n", "no molecules found"),
        ("in.smi.gz", b"not gzip at all", "cannot read"),
    ],
)
def test_unusable_input_raises_a_clear_error(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ScreenInputError, match=message) as info:
        screen_file(path, tmp_path / "out")
    assert isinstance(info.value, ValueError)  # the CLI reports ValueErrors as usage errors
    assert not (tmp_path / "out").exists()


def test_output_and_config_errors(tmp_path: Path) -> None:
    (tmp_path / "in.smi").write_text("CCO\n")
    (tmp_path / "file").write_text("")
    with pytest.raises(ScreenInputError, match="not a directory"):
        screen_file(tmp_path / "in.smi", tmp_path / "file")
    with pytest.raises(GateConfigError, match="unknown gate config key"):
        screen_file(tmp_path / "in.smi", tmp_path / "out", {"max_weight": 500})
    with pytest.raises(ScreenInputError, match="training set must be a SMILES file"):
        screen_file(tmp_path / "in.smi", tmp_path / "out", training=tmp_path / "t.sdf")
    assert input_format("x.SMI") == "smiles" and input_format("x.sd.gz") == "sdf"


def test_qm9_sanity(tmp_path: Path) -> None:
    path = tmp_path / "qm9.smi"
    path.write_text("\n".join(qm9_smiles(300)) + "\n")
    metrics = screen_file(path, tmp_path / "out", processes=2)
    gates = metrics["gates"]
    assert gates["sanitization"]["pass"] == 300  # QM9 SMILES are all valid
    assert gates["elements"]["pass"] == gates["connectedness"]["pass"]  # H C N O F only
    assert metrics["pass_rate"] > 0.8
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["n_input"] == 300
