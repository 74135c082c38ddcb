"""``sci-diffusion screen``: the gate from the command line, with real RDKit."""

from __future__ import annotations

import csv
from pathlib import Path

from sci_diffusion.cli import main


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_screen_writes_candidates_and_rejections(tmp_path: Path, capsys) -> None:
    smi = _write(tmp_path / "in.smi", ["CCO ethanol", "not_a_smiles bad", "C(C)(C)(C)(C)C five",
                                       "CC(=O)Nc1ccc(O)cc1 paracetamol"])  # fmt: skip
    out = tmp_path / "out"
    assert main(["screen", f"in={smi}", f"out={out}", "processes=1"]) == 0
    assert "2 candidates" in capsys.readouterr().out
    with (out / "candidates.csv").open() as f:
        names = [row["name"] for row in csv.DictReader(f)]
    assert names == ["ethanol", "paracetamol"]
    with (out / "rejected.csv").open() as f:
        failed = {row["name"]: row["failed_gate"] for row in csv.DictReader(f)}
    assert failed == {"bad": "construction", "five": "sanitization"}


def test_gate_overrides_apply_and_deny_list_rejects(tmp_path: Path) -> None:
    smi = _write(tmp_path / "in.smi", ["CCO ethanol", "CCN ethylamine"])
    config = _write(tmp_path / "gate.yaml", ["deny_smarts: ['[NX3]']"])
    out = tmp_path / "out"
    assert main(["screen", f"in={smi}", f"out={out}", "processes=1", f"config={config}"]) == 0
    with (out / "candidates.csv").open() as f:
        assert [row["name"] for row in csv.DictReader(f)] == ["ethanol"]


def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["screen", f"in={tmp_path / 'missing.smi'}", f"out={out}"]) == 2
    assert "missing.smi" in capsys.readouterr().err
    assert not out.exists()
    smi = _write(tmp_path / "in.smi", ["CCO"])
    assert main(["screen", f"in={smi}", f"out={out}", "gate.no_such_setting=1"]) == 2
    assert "unknown gate config key" in capsys.readouterr().err
    assert main(["screen", f"in={smi}"]) == 2
    assert "out=" in capsys.readouterr().err
