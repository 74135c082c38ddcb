"""The screening gate: check order, reasons, statuses, batch checks, config loading, parallelism.
Real RDKit throughout; a few seconds on 2 cores."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

pytest.importorskip("rdkit")

from rdkit import Chem
from rdkit.Chem import AllChem

from sci_diffusion.bench.screen import moses_smiles, qm9_smiles
from sci_diffusion.chem.gate import (
    GATES,
    SKIPPABLE_GATES,
    GateConfig,
    GateConfigError,
    MoleculeRecord,
    NotConstructed,
    _Checker,
    _guarded,
    canonical_smiles_set,
    gate_metrics,
    run_gate,
)

PARACETAMOL = "CC(=O)Nc1ccc(O)cc1"
AZOBENZENE = "c1ccccc1N=Nc1ccccc1"  # PAINS azo_A and Brenk diazo
CHALCONE = "O=C(C=Cc1ccccc1)c1ccccc1"  # Brenk Michael acceptor only


def one(item: object, config: GateConfig | None = None, **kwargs: object) -> MoleculeRecord:
    return run_gate([item], config, **kwargs)[0]  # type: ignore[list-item]


def statuses(record: MoleculeRecord) -> list[str]:
    return [record.gates[g].status for g in GATES]


def assert_fails_at(record: MoleculeRecord, gate: str, reason_part: str) -> None:
    assert not record.passed
    assert record.failed_gate == gate, (record.failed_gate, record.failure_reason)
    assert reason_part in (record.failure_reason or "")
    position = GATES.index(gate)
    before = [
        s for g, s in zip(GATES[:position], statuses(record), strict=False)
        if g not in SKIPPABLE_GATES
    ]  # fmt: skip
    assert before == ["pass"] * len(before)  # novelty / geometry_3d: no training set, no 3D
    assert statuses(record)[position + 1 :] == ["skipped"] * (len(GATES) - position - 1)


def test_a_clean_molecule_passes_every_check() -> None:
    record = one(PARACETAMOL)
    assert record.passed and record.validation_status == "in_silico_screened"
    # geometry_3d: a SMILES has no 3D coordinates; novelty: no training set
    assert statuses(record) == ["pass"] * 5 + ["skipped"] + ["pass"] * 3 + ["skipped", "pass"]
    assert record.gates["geometry_3d"].reason == "no 3D coordinates"
    assert record.gates["novelty"].reason == "no training set given"
    assert record.canonical_smiles == PARACETAMOL
    assert record.inchikey == Chem.MolToInchiKey(Chem.MolFromSmiles(PARACETAMOL))
    assert record.failed_gate is None and record.failure_reason is None
    assert Chem.MolToSmiles(record.mol()) == PARACETAMOL
    assert set(record.properties) >= {"qed", "sa_score", "mw", "logp", "lipinski_violations"}


@pytest.mark.parametrize(
    ("smiles", "gate", "reason"),
    [
        ("C1CC(", "construction", "SMILES parse error"),
        ("", "construction", "empty molecule"),
        ("C[N](C)(C)C", "sanitization", "Explicit valence for atom # 1 N, 4"),
        ("c1cccc1", "sanitization", "SANITIZE_KEKULIZE"),
        ("CC.O", "connectedness", "2 fragments"),
        ("C[Si](C)(C)C", "elements", "not allowed: Si"),
        ("CC(=O)[O-]", "charges", "net charge -1"),
        ("C[N+](C)(C)C", "charges", "net charge +1"),
        ("[CH3]", "charges", "1 radical electron"),
        ("C[S+2]([O-])([O-])C", "charges", "|formal charge| 2 > 1"),
        (AZOBENZENE, "alerts", "PAINS: azo_A"),
        ("C" * 40 + "C(=O)O", "properties", "lipinski_violations 2 > 1"),
    ],
)
def test_each_check_rejects_with_its_reason_and_skips_the_rest(
    smiles: str, gate: str, reason: str
) -> None:
    assert_fails_at(one(smiles), gate, reason)


def test_sanitization_records_the_failing_step_and_rdkit_messages() -> None:
    gate = one("C[N](C)(C)C").gates["sanitization"]
    assert gate.values["step"] == "SANITIZE_PROPERTIES"
    assert any("Explicit valence" in m for m in gate.values["messages"])


def test_validation_status_vocabulary() -> None:
    records = run_gate(["C1CC(", "CC.O", AZOBENZENE, PARACETAMOL])
    expected = ["generated", "generated", "valid_structure", "in_silico_screened"]
    assert [r.validation_status for r in records] == expected


def test_failed_constructions_keep_the_callers_reason() -> None:
    records = run_gate([None, NotConstructed("bond 3-7 has no type")])
    assert_fails_at(records[0], "construction", "no reason given")
    assert_fails_at(records[1], "construction", "bond 3-7 has no type")


def test_rdkit_inputs_are_not_modified_and_hydrogens_do_not_matter() -> None:
    raw = Chem.MolFromSmiles("OC(=O)c1ccccc1", sanitize=False)
    before = Chem.MolToSmiles(raw, canonical=False)
    with_h = Chem.AddHs(Chem.MolFromSmiles("OC(=O)c1ccccc1"))
    AllChem.EmbedMolecule(with_h, randomSeed=0)
    a, b = run_gate([raw]) + run_gate([with_h])
    assert Chem.MolToSmiles(raw, canonical=False) == before
    assert a.canonical_smiles == b.canonical_smiles == "O=C(O)c1ccccc1"
    assert a.inchikey == b.inchikey
    assert b.mol().GetNumConformers() == 1  # the 3D structure travels with a candidate


def test_stereo_from_3d_and_smiles_agree() -> None:
    smiles = "C/C=C/C[C@@H](F)Cl"
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    block = Chem.MolFromMolBlock(Chem.MolToMolBlock(mol), sanitize=False, removeHs=False)
    expected = Chem.MolToSmiles(Chem.MolFromSmiles(smiles))
    assert [r.canonical_smiles for r in run_gate([block, smiles])] == [expected, expected]


def test_canonical_smiles_match_rdkit_standard_parse_on_real_data() -> None:
    smiles = qm9_smiles(150) + moses_smiles(50) + ["C[C@H](N)C(=O)O", "F/C=C/F"]
    records = run_gate(smiles, GateConfig(pains="off", max_lipinski_violations=None))
    for s, record in zip(smiles, records, strict=True):
        assert record.canonical_smiles == Chem.MolToSmiles(Chem.MolFromSmiles(s)), s


def test_alert_modes() -> None:
    brenk = one(CHALCONE).gates["alerts"]
    assert brenk.status == "pass" and brenk.reason == "recorded only: Brenk: Michael_acceptor_1"
    assert_fails_at(one(CHALCONE, GateConfig(brenk="reject")), "alerts", "Michael_acceptor_1")
    off = one(AZOBENZENE, GateConfig(pains="off", brenk="off"))
    assert off.passed and off.gates["alerts"].values == {"pains": None, "brenk": None}
    flagged = one(AZOBENZENE, GateConfig(pains="record"))
    assert flagged.passed and "PAINS: azo_A" in flagged.gates["alerts"].reason


def test_property_thresholds() -> None:
    assert_fails_at(one("CCO", GateConfig(max_mw=40)), "properties", "mw 46.07 > 40")
    assert_fails_at(one("CCO", GateConfig(min_qed=0.9)), "properties", "qed 0.4068 < 0.9")
    assert one(PARACETAMOL, GateConfig(max_sa_score=3.0, max_hbd=2, max_hba=3)).passed
    assert one("C" * 40 + "C(=O)O", GateConfig(max_lipinski_violations=None)).passed


def test_properties_for_rejected_molecules_are_values_not_a_pass() -> None:
    record = one("CC.O")
    assert record.properties["mw"] > 0 and record.gates["properties"].status == "skipped"
    assert one("CC.O", GateConfig(properties_for_rejected=False)).properties == {}


def test_charge_limits_are_configurable() -> None:
    assert one("CC[N+](=O)[O-]").passed  # nitro: net 0, |charge| 1
    assert one("C[N+](C)(C)C", GateConfig(max_net_charge=1)).passed
    assert one("[CH3]", GateConfig(allow_radicals=True)).passed
    salt = "[NH4+].[O-]C(=O)[O-].[NH4+]"
    assert one(salt, GateConfig(require_connected=False, min_net_charge=-2)).passed


def test_duplicates_first_occurrence_passes() -> None:
    records = run_gate(["OCC", PARACETAMOL, "CCO", "C(C)O"], sources=["a", "b", "c", "d"])
    assert [r.passed for r in records] == [True, True, False, False]
    assert_fails_at(records[2], "duplicates", "duplicate of input 0 (a)")
    assert records[3].gates["duplicates"].values == {"first_index": 0}
    kept = run_gate(["CCO", "OCC"], GateConfig(reject_duplicates=False))
    assert all(r.passed for r in kept) and "recorded only" in kept[1].gates["duplicates"].reason


def test_duplicates_by_inchikey_merge_tautomers() -> None:
    pair = ["Oc1ccccn1", "O=c1cccc[nH]1"]  # 2-hydroxypyridine / 2-pyridone: one standard InChI
    assert [r.passed for r in run_gate(pair)] == [True, True]
    by_key = run_gate(pair, GateConfig(duplicate_key="inchikey"))
    assert [r.failed_gate for r in by_key] == [None, "duplicates"]


def test_duplicates_count_only_molecules_that_reached_the_check() -> None:
    records = run_gate([AZOBENZENE, AZOBENZENE, "CC.O", "CC.O"])
    assert [r.failed_gate for r in records] == ["alerts", "alerts"] + ["connectedness"] * 2


def test_novelty_is_recorded_and_optionally_rejects() -> None:
    training = canonical_smiles_set(["OCC", "c1ccccc1"], isomeric=True)
    records = run_gate(["CCO", PARACETAMOL], training_smiles=training)
    assert [r.novel for r in records] == [False, True]
    assert all(r.passed for r in records)
    assert records[0].gates["novelty"].reason == "recorded only: in the training set"
    strict = run_gate(
        ["CCO", PARACETAMOL], GateConfig(reject_non_novel=True), training_smiles=training
    )
    assert_fails_at(strict[0], "novelty", "in the training set")
    assert strict[1].passed


def test_deny_list_always_rejects() -> None:
    key = Chem.MolToInchiKey(Chem.MolFromSmiles("Clc1ccccc1"))
    config = GateConfig(
        pains="off",
        brenk="off",
        deny_smarts=("[CX3](=O)[OX2][#6]",),  # esters
        deny_compounds=(key, "C(N)(=O)CO"),  # SMILES in any form
    )
    assert config.deny_compounds == (key, "NC(=O)CO")
    records = run_gate(["CCOC(C)=O", "c1ccc(Cl)cc1", "OCC(N)=O", "CCO"], config)
    assert_fails_at(records[0], "deny_list", "[CX3](=O)[OX2][#6]")
    assert_fails_at(records[1], "deny_list", key)
    assert_fails_at(records[2], "deny_list", "NC(=O)CO")
    assert records[3].passed
    # also without a training set (novelty skipped) and with duplicates only recorded
    again = run_gate(["OCC(N)=O", "OCC(N)=O"], dataclasses.replace(config, reject_duplicates=False))
    assert [r.failed_gate for r in again] == ["deny_list", "deny_list"]


def test_parallel_results_equal_inline_results_in_input_order() -> None:
    smiles = qm9_smiles(60) + ["C1CC(", AZOBENZENE, "CC.O", "CCO", "OCC"] * 3
    inline = run_gate(smiles, processes=1)
    pooled = run_gate(smiles, processes=2, chunk_size=7)
    assert [dataclasses.asdict(r) for r in pooled] == [dataclasses.asdict(r) for r in inline]


def test_metrics_are_consistent() -> None:
    config = GateConfig()
    records = run_gate(["CCO", "CCO", "C1CC(", AZOBENZENE, CHALCONE, "CC.O"], config)
    metrics = gate_metrics(records, config)
    assert metrics["n_input"] == 6 and metrics["n_candidates"] == 2
    assert metrics["pass_rate"] == pytest.approx(2 / 6)
    for counts in metrics["gates"].values():
        assert counts["pass"] + counts["fail"] + counts["skipped"] == 6
    assert sum(metrics["first_failure"].values()) == 4
    order = ["construction", "connectedness", "alerts", "duplicates"]
    assert list(metrics["first_failure"]) == order
    assert metrics["alerts"]["brenk"]["Michael_acceptor_1"] == 1
    assert list(metrics["validation_status"].values()) == [2, 2, 2]
    assert metrics["gate_config"]["allowed_elements"] == sorted(config.allowed_elements)


def test_run_gate_argument_errors() -> None:
    with pytest.raises(ValueError, match="names has 1 entries for 2 inputs"):
        run_gate(["C", "N"], names=["x"])
    with pytest.raises(ValueError, match="processes"):
        run_gate(["C"], processes=0)
    with pytest.raises(TypeError, match="got int"):
        run_gate([3])  # type: ignore[list-item]


def test_canonical_smiles_set_drops_unparsable_entries() -> None:
    assert canonical_smiles_set(["OCC", "C1CC(", "CCO", "", "c1ccccc1"]) == {"CCO", "c1ccccc1"}


def test_canonical_smiles_set_cache_round_trips_and_keys_on_isomeric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sci_diffusion.chem import gate

    smiles = ["OCC", "C[C@H](N)O", "c1ccccc1", "C1CC("]
    for isomeric in (False, True):
        computed = canonical_smiles_set(smiles, isomeric=isomeric, cache_dir=tmp_path)
        assert computed == canonical_smiles_set(smiles, isomeric=isomeric)
    assert len(list(tmp_path.glob("*.txt.gz"))) == 2  # one file per (input, isomeric)
    assert not list(tmp_path.glob(".tmp-*"))
    monkeypatch.setattr(gate, "_CANONICAL_MEMO", {})  # a fresh process: the file answers
    monkeypatch.setattr(gate, "map_chunks", lambda *a, **k: pytest.fail("recomputed"))
    for isomeric in (False, True):
        cached = canonical_smiles_set(smiles, isomeric=isomeric, cache_dir=tmp_path)
        assert cached == canonical_smiles_set(smiles, isomeric=isomeric)
        assert ("C[C@H](N)O" in cached) is isomeric


@pytest.mark.parametrize("damage", ["truncate", "garbage", "bad_utf8"])
def test_canonical_smiles_set_recomputes_a_damaged_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    """A cache file that does not read back whole is recomputed with a warning and rewritten;
    it never answers with part of a training set."""
    import gzip

    from sci_diffusion.chem import gate

    smiles = ["OCC", "c1ccccc1", "CC(=O)N"]
    monkeypatch.setattr(gate, "_CANONICAL_MEMO", {})  # each case writes its own file
    expected = canonical_smiles_set(smiles, cache_dir=tmp_path)
    (stored,) = tmp_path.glob("*.txt.gz")
    whole = stored.read_bytes()
    if damage == "truncate":
        stored.write_bytes(whole[: len(whole) // 2])
    elif damage == "garbage":
        stored.write_bytes(b"not gzip at all")
    else:
        stored.write_bytes(gzip.compress(b"CCO\n\xff\xfe"))
    monkeypatch.setattr(gate, "_CANONICAL_MEMO", {})
    with pytest.warns(RuntimeWarning, match="damaged"):
        assert canonical_smiles_set(smiles, cache_dir=tmp_path) == expected
    with gzip.open(stored, "rt", encoding="utf-8") as handle:  # rewritten whole
        assert frozenset(handle.read().splitlines()) == expected


def test_canonical_smiles_set_in_worker_processes_matches_inline() -> None:
    smiles = [*qm9_smiles(40), "F/C=C/F", "C[C@H](N)O", "not a smiles"]
    for isomeric in (False, True):
        inline = canonical_smiles_set(smiles, isomeric=isomeric)
        assert canonical_smiles_set(smiles, isomeric=isomeric, processes=2) == inline
        assert ("C[C@H](N)O" in inline) is isomeric and ("CC(N)O" in inline) is not isomeric
    records = run_gate(
        ["C[C@@H](N)O", "C[C@H](N)O"],
        training_smiles=canonical_smiles_set(["C[C@H](N)O"], isomeric=True),
    )
    assert [r.novel for r in records] == [True, False]  # the gate compares isomeric SMILES


# --- GateConfig ---------------------------------------------------------------------------


def test_config_defaults_are_the_documented_ones() -> None:
    config = GateConfig()
    assert config.allowed_elements == {"H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I"}
    assert (config.pains, config.brenk) == ("reject", "record")
    assert (config.min_net_charge, config.max_net_charge, config.max_abs_formal_charge) == (0, 0, 1)
    assert config.max_lipinski_violations == 1 and config.max_sa_score is None
    assert not config.reject_non_novel and config.reject_duplicates
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.pains = "off"  # type: ignore[misc]


def test_config_round_trips_through_a_plain_dict() -> None:
    config = GateConfig(allowed_elements={"C", "N", "O", "H"}, max_sa_score=6, deny_smarts=["N"])
    assert config.max_sa_score == 6.0 and config.deny_smarts == ("N",)
    assert GateConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"max_sa_scor": 6}, "unknown gate config key(s) 'max_sa_scor'; known keys: allowed"),
        ({"require_connected": "yes"}, "require_connected must be true or false"),
        ({"max_abs_formal_charge": 1.5}, "max_abs_formal_charge must be an integer >= 0"),
        ({"max_hbd": True}, "max_hbd must be an integer >= 0 or None"),
        ({"max_abs_formal_charge": -1}, "an integer >= 0"),
        ({"min_qed": "high"}, "min_qed must be a number or None"),
        ({"pains": "maybe"}, "pains must be 'reject' or 'record' or 'off'"),
        ({"duplicate_key": "smiles"}, "duplicate_key must be"),
        ({"allowed_elements": ["C", "Xx"]}, "unknown element symbol(s) ['Xx']"),
        ({"allowed_elements": [6, 7]}, "allowed_elements must be a list of strings"),
        ({"deny_smarts": ["[C"]}, "'[C' is not SMARTS"),
        ({"deny_compounds": ["C1CC("]}, "neither InChIKey nor SMILES"),
        ({"min_net_charge": 1, "max_net_charge": 0}, "min_net_charge 1 > max_net_charge 0"),
    ],
)
def test_config_errors_are_clear(data: dict, message: str) -> None:
    with pytest.raises(GateConfigError) as info:
        GateConfig.from_dict(data)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_config_from_command_line_strings() -> None:
    config = GateConfig.from_dict(
        {
            "max_sa_score": "6.5",
            "max_hbd": "none",
            "brenk": "reject",
            "reject_non_novel": "true",
            "allowed_elements": "C,N,O,H",
            "max_abs_formal_charge": "0",
        },
        coerce_strings=True,
    )
    assert config.max_sa_score == 6.5 and config.max_hbd is None and config.reject_non_novel
    assert config.allowed_elements == {"C", "N", "O", "H"} and config.max_abs_formal_charge == 0
    with pytest.raises(GateConfigError, match="max_mw must be a number"):
        GateConfig.from_dict({"max_mw": "heavy"}, coerce_strings=True)
    with pytest.raises(GateConfigError, match="must be a mapping"):
        GateConfig.from_dict(["pains"])  # type: ignore[arg-type]


def test_an_unexpected_error_is_recorded_for_that_molecule_only() -> None:
    class Failing(_Checker):
        def check(self, kind: str, payload: object) -> tuple:
            raise RuntimeError("Invariant Violation")

    result = _guarded(Failing(GateConfig()).check, "smiles", "CCO")
    reason = "unexpected RDKit error while checking: RuntimeError: Invariant Violation"
    assert result[3] == [("fail", reason, {})]


# ---------------------------------------------------------------------------- 3D geometry
def _qm9_3d(index: int = 0) -> Chem.Mol:
    """A QM9 test molecule with explicit hydrogens at its DFT geometry (bonds from the SMILES,
    atoms aligned with the geometry by chem.structures)."""
    from sci_diffusion.chem.data import load_qm9
    from sci_diffusion.chem.featurize import QM9_H_VOCAB, graph_to_mol
    from sci_diffusion.chem.reconstruct import with_conformer
    from sci_diffusion.chem.structures import align_record

    atoms, charges, bonds, positions = align_record(load_qm9("test", limit=index + 1)[index],
                                                    QM9_H_VOCAB)  # fmt: skip
    return with_conformer(graph_to_mol(atoms, charges, bonds, QM9_H_VOCAB), positions)


def test_geometry_3d_checks_molecules_with_coordinates() -> None:
    good = _qm9_3d()
    bad = Chem.Mol(good)
    conf = bad.GetConformer()
    bond = bad.GetBondWithIdx(0)
    i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
    far = conf.GetAtomPosition(j) + (conf.GetAtomPosition(j) - conf.GetAtomPosition(i)) * 0.8
    conf.SetAtomPosition(j, far)  # bond 0 stretched to 1.8x its length
    ok, stretched, flat = run_gate([good, bad, "CCO"], processes=1)
    assert ok.gates["geometry_3d"].status == "pass", ok.gates["geometry_3d"]
    assert ok.passed and ok.mol().GetConformer().Is3D()  # the candidate keeps its coordinates
    assert_fails_at(stretched, "geometry_3d", "bond_lengths")
    assert stretched.validation_status == "generated"  # 3D-implausible: not a valid structure
    assert flat.gates["geometry_3d"].status == "skipped" and flat.passed


def test_geometry_3d_modes_and_options() -> None:
    required = one("CCO", GateConfig(geometry_3d="require"))
    assert_fails_at(required, "geometry_3d", "no 3D coordinates")
    off = run_gate([_qm9_3d()], config=GateConfig(geometry_3d="off"), processes=1)[0]
    assert off.gates["geometry_3d"].status == "skipped" and off.passed
    config = GateConfig.from_dict({"geometry_3d_options": {"n_conformers": 0}})
    assert config.to_dict()["geometry_3d_options"] == {"n_conformers": 0}
    with pytest.raises(GateConfigError, match="unknown plausibility config key"):
        GateConfig.from_dict({"geometry_3d_options": {"conformers": 3}})
    with pytest.raises(GateConfigError, match="geometry_3d must be"):
        GateConfig(geometry_3d="maybe")
