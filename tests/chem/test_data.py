"""QM9/MOSES sources, the fixed QM9 split and user SMILES/SDF files (real files, real RDKit)."""

from __future__ import annotations

import gzip
import hashlib
import json
import random

import numpy as np
import pytest

pytest.importorskip("rdkit")
pytest.importorskip("pandas")

from rdkit import Chem

from sci_diffusion.chem import data
from sci_diffusion.chem.data import (
    MOSES_SIZES,
    QM9_SIZE,
    QM9_SPLIT_FINGERPRINT,
    QM9_SPLIT_SIZES,
    compute_qm9_split,
    count_moses,
    load_moses,
    load_qm9,
    qm9_split,
    qm9_split_path,
    split_fingerprint,
)
from sci_diffusion.chem.molfiles import (
    parse_smiles,
    read_molecules,
    read_raw_records,
    read_sdf,
    read_smiles_file,
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private cache dir for the module (the split is built once, ~2 s)."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("cache")
        mp.setenv("SCI_DIFFUSION_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def qm9_ids():
    sources = [data.file_digest(p) for p in data.qm9_source_files()]
    return data._qm9_ids(json.dumps(sources))


# ------------------------------------------------------------------------------------ QM9


def test_qm9_sources_hold_all_molecules(qm9_ids):
    ids, indices = qm9_ids
    assert len(ids) == len(set(ids)) == QM9_SIZE
    assert min(indices) == 1 and max(indices) == 133_885  # 3,054 uncharacterized ones absent
    assert ids[0] == "dsgdb9nsd_000001" and indices[0] == 1


def test_load_qm9_records_have_elements_and_coordinates():
    methane, ammonia = load_qm9(limit=2)
    assert (methane.mol_id, methane.index, methane.smiles) == ("dsgdb9nsd_000001", 1, "C")
    assert methane.elements.tolist() == ["C", "H", "H", "H", "H"]
    assert methane.positions.shape == (5, 3) and methane.positions.dtype == np.float64
    # C-H bond lengths of methane at B3LYP/6-31G(2df,p): 1.09 Å.
    ch = np.linalg.norm(methane.positions[1:] - methane.positions[0], axis=1)
    np.testing.assert_allclose(ch, 1.0919, atol=1e-3)
    assert ammonia.elements.tolist() == ["N", "H", "H", "H"]
    light = load_qm9(limit=1, coordinates=False)[0]
    assert light.elements is None and light.positions is None


def test_qm9_smiles_are_kekule_gdb_smiles_with_some_zwitterions():
    records = load_qm9(coordinates=False)
    smiles = [r.smiles for r in records]
    assert not any(c in s for s in smiles for c in "cno@/\\")  # Kekulé, no stereo
    charged = [s for s in smiles if "+" in s or "-]" in s]
    assert len(charged) == 443
    for s in charged[:50]:  # each is a zwitterion: net charge zero
        mol = Chem.MolFromSmiles(s)
        assert sum(a.GetFormalCharge() for a in mol.GetAtoms()) == 0


def test_split_sizes_disjoint_cover_and_fingerprint(cache, qm9_ids):
    split = qm9_split()
    parts = {name: split.indices(name) for name in QM9_SPLIT_SIZES}
    assert {k: len(v) for k, v in parts.items()} == QM9_SPLIT_SIZES
    union = set().union(*map(set, parts.values()))
    assert len(union) == QM9_SIZE and union == set(qm9_ids[1])
    assert split.fingerprint == QM9_SPLIT_FINGERPRINT
    saved = json.loads(qm9_split_path().read_text())
    assert saved["fingerprint"] == QM9_SPLIT_FINGERPRINT
    assert saved["train"] == list(split.train)
    assert split_fingerprint({k: saved[k] for k in QM9_SPLIT_SIZES}) == QM9_SPLIT_FINGERPRINT


def test_split_recipe_is_sha256_order_and_input_order_free(qm9_ids):
    ids, indices = qm9_ids
    split = compute_qm9_split(ids, indices)
    pairs = list(zip(ids, indices, strict=True))
    random.Random(0).shuffle(pairs)
    shuffled = compute_qm9_split([p[0] for p in pairs], [p[1] for p in pairs])
    assert shuffled == split
    first = min(ids, key=lambda m: hashlib.sha256(m.encode()).hexdigest())
    assert split.train[0] == int(first.removeprefix("dsgdb9nsd_"))
    with pytest.raises(ValueError, match="130831"):
        compute_qm9_split(ids[:10], indices[:10])


def test_split_loads_from_cache_and_rebuilds_corrupted_file(cache):
    split = qm9_split()
    path = qm9_split_path()
    saved = json.loads(path.read_text())
    saved["val"][0], saved["test"][0] = saved["test"][0], saved["val"][0]  # tampered
    path.write_text(json.dumps(saved))
    with pytest.warns(UserWarning, match="corrupted"):
        assert qm9_split() == split
    path.write_text("{ truncated")
    with pytest.warns(UserWarning, match="unreadable"):
        assert qm9_split() == split
    assert json.loads(path.read_text())["fingerprint"] == QM9_SPLIT_FINGERPRINT


def test_load_qm9_split_follows_split_order(cache):
    split = qm9_split()
    records = load_qm9("test", limit=3, coordinates=False)
    assert [r.index for r in records] == list(split.test[:3])
    assert all(r.mol_id == f"dsgdb9nsd_{r.index:06d}" for r in records)
    with pytest.raises(ValueError, match="train"):
        load_qm9("validation", limit=1)


# ---------------------------------------------------------------------------------- MOSES


@pytest.mark.parametrize("split", ["train", "test", "test_scaffolds"])
def test_moses_counts(split):
    assert count_moses(split) == MOSES_SIZES[split]


def test_load_moses_first_rows():
    smiles = load_moses("test", limit=5)
    with gzip.open(data.moses_source_file("test"), "rt") as f:
        assert f.readline().strip() == "SMILES"
        assert smiles == [f.readline().strip() for _ in range(5)]
    with pytest.raises(ValueError, match="test_scaffolds"):
        load_moses("valid")


# ----------------------------------------------------------------------------- user files


def test_parse_smiles_reasons():
    mol, reason = parse_smiles("c1ccccc1O")
    assert reason is None and mol.GetNumAtoms() == 7
    assert "syntax error" in parse_smiles("C1CC(")[1]
    assert "unclosed ring" in parse_smiles("C1CC")[1]
    assert "valence" in parse_smiles("N(C)(C)(C)(C)C")[1]
    assert "kekulize" in parse_smiles("c1cccc1")[1]


def test_smiles_file_skips_and_reports_bad_lines(tmp_path, capfd):
    path = tmp_path / "mols.smi"
    path.write_text(
        "# my molecules\n"
        "CCO ethanol\n"
        "C1CC( broken\n"
        "\n"
        "N(C)(C)(C)(C)C pentavalent\n"
        "c1ccccc1,benzene\n"
        "C[N+](C)(C)C\n"
    )
    molecules, problems = read_smiles_file(path)
    assert [(m.name, m.line) for m in molecules] == [
        ("ethanol", 2),
        ("benzene", 6),
        ("line 7", 7),
    ]
    assert Chem.MolToSmiles(molecules[1].mol) == "c1ccccc1"
    assert [(p.line, p.text) for p in problems] == [(3, "C1CC("), (5, "N(C)(C)(C)(C)C")]
    assert "syntax error" in problems[0].reason and "position 5" in problems[0].reason
    assert "Explicit valence" in problems[1].reason
    assert "line 3" in str(problems[0]) and str(path) in str(problems[0])
    assert "SMILES Parse Error" not in capfd.readouterr().err  # captured, not printed


def test_csv_with_header_selects_columns(tmp_path):
    path = tmp_path / "mols.csv"
    path.write_text("\ufeffid,score,SMILES\nm1,0.5,CC(=O)O\nm2,0.1,XYZ\nm3,0.2,\n")  # BOM: Excel
    molecules, problems = read_molecules(path)
    assert [(m.name, Chem.MolToSmiles(m.mol)) for m in molecules] == [("m1", "CC(=O)O")]
    assert [(p.line, p.reason.split(":")[0]) for p in problems] == [
        (3, "SMILES parse error"),
        (4, "no SMILES on this line"),
    ]


def _sdf_text(smiles: list[str]) -> str:
    blocks = []
    for s in smiles:
        mol = Chem.AddHs(Chem.MolFromSmiles(s))
        mol.SetProp("_Name", s)
        blocks.append(Chem.MolToMolBlock(mol) + f">  <ID>\nid-{s}\n\n$$$$\n")
    return "".join(blocks)


def test_sdf_broken_records_reported_with_record_and_line(tmp_path, capfd):
    good = _sdf_text(["CCO", "c1ccccc1O", "CN"])
    records = good.split("$$$$\n")
    truncated = "\n".join(records[1].splitlines()[:6]) + "\n"  # cut inside the atom block
    hypervalent = records[2].replace(" N ", " F ", 1)  # F with two bonds
    text = records[0] + "$$$$\n" + truncated + "$$$$\n" + hypervalent + "$$$$\n" + records[0]
    path = tmp_path / "mols.sdf"
    path.write_text(text)  # the last record lacks its "$$$$"
    molecules, problems = read_sdf(path)
    assert [(m.record, m.name) for m in molecules] == [(1, "CCO"), (4, "CCO")]
    assert molecules[0].mol.GetProp("ID") == "id-CCO"
    assert molecules[0].mol.GetNumAtoms() == 9  # hydrogens kept as written
    lines = text.splitlines()
    assert [p.record for p in problems] == [2, 3]
    for p in problems:
        assert lines[p.line - 1] == p.text  # the line number points at the record's title
    assert "M  END" in problems[0].reason
    assert "valence" in problems[1].reason
    assert "record 2" in str(problems[0])
    assert "valence" not in capfd.readouterr().err


def test_raw_smiles_records_keep_positions_names_and_flag_bad_bytes(tmp_path):
    path = tmp_path / "mols.smi.gz"
    # A BOM, Windows and old Mac newlines, a byte that is not UTF-8, a line without SMILES.
    text = b"\xef\xbb\xbfSMILES id\r\nCCO  eth\t anol\r\n#c\xe9\rC1CC( ,x\r\n"
    path.write_bytes(gzip.compress(text + b"CC caf\xe9\r\n, nameless\n"))
    records = [(r.line, r.text, r.name, r.not_utf8) for r in read_raw_records(path, "smiles")]
    assert records == [
        (2, "CCO", "eth\t anol", False),  # the BOM'd header was recognised
        (4, "C1CC(", "x", False),
        (5, "CC", "caf\ufffd", True),
        (6, "", "nameless", False),
    ]
    molecules, problems = read_smiles_file(path)  # the lenient reader keeps bad bytes as U+FFFD
    assert [(m.name, m.line) for m in molecules] == [("eth\t anol", 2), ("caf\ufffd", 5)]
    assert [(p.line, p.text, p.reason.split(":")[0]) for p in problems] == [
        (4, "C1CC(", "SMILES parse error"),
        (6, "", "no SMILES on this line"),
    ]


def test_raw_sdf_records_count_blank_records_and_flag_bad_bytes(tmp_path):
    blocks = _sdf_text(["CCO", "CN"]).split("$$$$\n")
    path = tmp_path / "mols.sdf"
    text = blocks[0] + "$$$$\n\n$$$$\n" + blocks[1].replace("CN", "C\xe9N", 1)  # no last $$$$
    path.write_bytes(text.encode("latin-1"))
    records = list(read_raw_records(path, "sdf"))
    assert [(r.record, r.name, r.not_utf8) for r in records] == [
        (1, "CCO", False),
        (2, "", False),
        (3, "C\ufffdN", True),
    ]
    lines = text.splitlines()
    assert [lines[r.line - 1] for r in records] == ["CCO", "", "C\xe9N"]
    assert records[0].text == blocks[0].removesuffix("\n")  # the record's own lines
    molecules, problems = read_sdf(path)
    assert [(m.record, m.name) for m in molecules] == [(1, "CCO"), (3, "C\ufffdN")]
    assert [(p.record, p.reason.split(":")[0]) for p in problems] == [(2, "no 'M  END' line")]


def test_binary_files_and_unknown_formats_are_refused(tmp_path):
    path = tmp_path / "mols.smi"
    path.write_bytes(b"CCO\n\x00\x01\x02")
    with pytest.raises(ValueError, match=r"mols\.smi: looks like a binary file"):
        read_molecules(path)
    with pytest.raises(ValueError, match="must be 'smiles' or 'sdf', got 'csv'"):
        read_raw_records(path, "csv")


def test_missing_and_empty_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.smi.*one\s+SMILES per line"):
        read_molecules(tmp_path / "nope.smi")
    empty = tmp_path / "empty.smi"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"empty\.smi contains no molecules.*one SMILES per"):
        read_smiles_file(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text("smiles,name\n\n")
    with pytest.raises(ValueError, match=r"header\.csv contains no molecules"):
        read_molecules(header_only)
    (tmp_path / "empty.sdf").write_text("\n")
    with pytest.raises(ValueError, match=r"empty\.sdf contains no molecules"):
        read_molecules(tmp_path / "empty.sdf")


def test_readers_moved_to_molfiles_still_work_from_data_with_a_warning():
    from sci_diffusion.chem import molfiles

    for name in ("read_smiles_file", "read_sdf", "read_molecules", "parse_smiles", "RawRecord"):
        with pytest.warns(DeprecationWarning, match=f"use sci_diffusion.chem.molfiles.{name}"):
            assert getattr(data, name) is getattr(molfiles, name)
