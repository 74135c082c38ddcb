"""Streaming screening: chunks, appended outputs equal to the batch outputs, resume after an
interruption or a real SIGKILL, shards, and bad lines rejected one by one."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("rdkit")

from sci_diffusion.bench.screen import qm9_smiles
from sci_diffusion.chem import screen
from sci_diffusion.chem.gate import GateConfig, run_gate
from sci_diffusion.chem.outputs import provenance, write_outputs
from sci_diffusion.chem.parallel import imap_tasks
from sci_diffusion.chem.screen import (
    PARTIAL_DIR,
    STREAMED_FILES,
    ScreenInputError,
    read_gate_inputs,
    screen_file,
)

PROV = provenance(date="2026-12-03T00:00:00+00:00")


def write_input(path: Path, n: int = 80) -> Path:
    """QM9 SMILES with duplicates far apart (other tasks), bad lines, a NUL and bad UTF-8."""
    smiles = qm9_smiles(n)
    lines = [f"{s} m{i}" for i, s in enumerate(smiles)]
    lines[10:10] = ["C1CC( broken", "OCC ethanol", "[Na+].[Cl-] salt"]
    lines += [smiles[3] + " again", "CCO ethanol-again", smiles[40] + " again"]
    data = "\n".join(lines).encode() + b"\nCC\x00O nul\nCC caf\xe9\n" + smiles[5].encode() + b"\n"
    path.write_bytes(data)
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def same_files(a: Path, b: Path, names=STREAMED_FILES) -> None:
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("settings", [{}, {"reject_duplicates": False, "max_sa_score": 3.5}])
def test_streamed_outputs_equal_the_batch_outputs(tmp_path: Path, settings: dict) -> None:
    """Small chunks and two processes: the same bytes as gating everything at once."""
    path = write_input(tmp_path / "in.smi")
    config = GateConfig.from_dict(settings)
    metrics = screen_file(path, tmp_path / "stream", config, training=["OCC", "C"],
                          processes=2, chunk=7, provenance_fields=PROV)  # fmt: skip
    batch = read_gate_inputs(path)
    records = run_gate(batch.molecules, config, names=batch.names, sources=batch.sources,
                       training_smiles={"CCO", "C"})  # fmt: skip
    expected = write_outputs(tmp_path / "batch", records, config=config, provenance_fields=PROV)
    same_files(tmp_path / "stream", tmp_path / "batch")
    for key, value in expected.items():
        assert metrics[key] == value, key
    assert not (tmp_path / "stream" / PARTIAL_DIR).exists()
    duplicates = [r for r in read_rows(tmp_path / "stream" / "rejected.csv")
                  if r["failed_gate"] == "duplicates"]  # fmt: skip
    if config.reject_duplicates:
        assert [r["name"] for r in duplicates] == ["m13", "again", "ethanol-again", "again", ""]


def test_an_interrupted_run_resumes_without_duplicates_or_losses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_input(tmp_path / "in.smi")
    screen_file(path, tmp_path / "whole", processes=1, chunk=5, provenance_fields=PROV)
    original, calls = screen._consume, []

    def dies_on_the_sixth_task(*args):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt  # like Ctrl-C between two commits
        original(*args)

    monkeypatch.setattr(screen, "_consume", dies_on_the_sixth_task)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        screen_file(path, out, processes=1, chunk=10, provenance_fields=PROV)
    monkeypatch.setattr(screen, "_consume", original)
    ledger = json.loads((out / PARTIAL_DIR / "ledger.json").read_text())
    assert ledger["records"] == 50 and not (out / "metrics.json").exists()
    with (out / PARTIAL_DIR / "rejected.csv").open("a") as f:
        f.write("half a row written when the process died,")  # beyond the ledger: dropped
    screen_file(path, out, processes=1, chunk=10, provenance_fields=PROV)
    same_files(out, tmp_path / "whole", (*STREAMED_FILES, "metrics.json", "report.md"))


def test_other_settings_start_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_input(tmp_path / "in.smi")
    monkeypatch.setattr(screen, "_finish", lambda *a: {})  # stop before the outputs move
    screen_file(path, tmp_path / "out", processes=1, chunk=10, provenance_fields=PROV)
    monkeypatch.undo()
    metrics = screen_file(path, tmp_path / "out", {"max_sa_score": 3.0}, processes=1,
                          provenance_fields=PROV)  # fmt: skip
    assert metrics["first_failure"]["properties"] > 0  # the new setting applied everywhere
    assert metrics["gate_config"]["max_sa_score"] == 3.0


def test_shards_cover_the_file(tmp_path: Path) -> None:
    path = tmp_path / "in.smi"
    path.write_text("\n".join(qm9_smiles(30)) + "\n")
    screen_file(path, tmp_path / "all", processes=1, provenance_fields=PROV)
    rows: list[dict[str, str]] = []
    for rank in range(3):
        metrics = screen_file(path, tmp_path / f"s{rank}", processes=1, shard=f"{rank}/3",
                              provenance_fields=PROV)  # fmt: skip
        assert metrics["shard"] == f"{rank}/3" and metrics["n_input"] == 10
        rows += read_rows(tmp_path / f"s{rank}" / f"shard-{rank}-of-3" / "candidates.csv")
    rows.sort(key=lambda r: int(r["index"]))
    assert rows == read_rows(tmp_path / "all" / "candidates.csv")
    for bad in ("3/3", "a/b", "1", "env"):
        with pytest.raises(ScreenInputError, match="shard"):
            screen_file(path, tmp_path / "x", shard=bad)
    os.environ.update(RANK="1", WORLD_SIZE="3")  # what torchrun sets
    try:
        assert screen.parse_shard("env") == (1, 3)
    finally:
        del os.environ["RANK"], os.environ["WORLD_SIZE"]


def test_a_nul_byte_or_bad_utf8_rejects_only_that_line(tmp_path: Path) -> None:
    """The issue's case: one NUL byte on one line of a 101-line file."""
    smiles = qm9_smiles(101)
    lines = [s.encode() for s in smiles]
    lines[50] = lines[50][:2] + b"\x00" + lines[50][2:]
    lines[70] = lines[70] + b" \xff\xfe"
    (tmp_path / "in.smi").write_bytes(b"\n".join(lines) + b"\n")
    metrics = screen_file(tmp_path / "in.smi", tmp_path / "out", processes=1)
    assert metrics["n_input"] == 101 and metrics["n_input_errors"] == 2
    assert metrics["input_errors"] == [
        {"source": "line 51", "reason": "binary data: NUL byte at column 3"},
        {"source": "line 71", "reason": "not UTF-8 text"},
    ]
    rejected = {r["source"]: r for r in read_rows(tmp_path / "out" / "rejected.csv")}
    assert rejected["line 51"]["failed_gate"] == "construction"
    assert rejected["line 51"]["input_smiles"] == ""
    assert b"\x00" not in (tmp_path / "out" / "rejected.csv").read_bytes()
    assert metrics["gates"]["sanitization"]["pass"] == 99


def test_a_mostly_binary_file_is_refused_with_the_rule(tmp_path: Path) -> None:
    from sci_diffusion.chem.molfiles import BINARY_SHARE, non_text_share

    text = b"CCO\n" * 700
    assert non_text_share(text) == 0 and non_text_share(b"\xff\x00ab") == 0.5
    assert non_text_share("é".encode()[:1]) == 0  # a character cut by the sample is text
    ok = text + bytes(int(len(text) * 0.4))  # 29% NUL bytes: bad lines, not a bad file
    assert non_text_share(ok) < BINARY_SHARE
    (tmp_path / "ok.smi").write_bytes(ok)
    metrics = screen_file(tmp_path / "ok.smi", tmp_path / "out", processes=1)
    assert metrics["n_input_errors"] == 1 and metrics["n_candidates"] == 1
    (tmp_path / "bad.smi").write_bytes(text + bytes(len(text)))  # 50%
    with pytest.raises(ScreenInputError, match=r"binary file.*50% of the first 64 KiB"):
        screen_file(tmp_path / "bad.smi", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def _plus(arg: int, task: list[int]) -> list[int]:
    return [arg + x for x in task]


def test_imap_tasks_keeps_order_and_runs_small_inputs_inline() -> None:
    tasks = ([i, i + 1] for i in range(0, 40, 2))
    assert [y for r in imap_tasks(_plus, 1, tasks, 2, window=3) for y in r] == list(range(1, 41))
    assert list(imap_tasks(_plus, 1, iter([[5]]), 2)) == [[6]]
    assert list(imap_tasks(_plus, 1, iter([]), 2)) == []


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """A real kill: the command and its workers get SIGKILL between commits, then the same
    command finishes the job; the rows equal an uninterrupted run's (date column aside)."""
    smiles = qm9_smiles(1500)
    path = tmp_path / "in.smi"
    path.write_text("\n".join(smiles + smiles[:300]) + "\n")  # 300 duplicates at the end
    env = dict(os.environ, OMP_NUM_THREADS="1", SCI_DIFFUSION_PROGRESS="off")

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "sci_diffusion", "screen", f"in={path}", f"out={out}",
                "processes=2", "chunk=250"]  # fmt: skip

    out = tmp_path / "killed"
    process = subprocess.Popen(command(out), env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    ledger = out / PARTIAL_DIR / "ledger.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if ledger.exists() and json.loads(ledger.read_text())["records"] >= 500:
            break
        time.sleep(0.05)
    assert process.poll() is None, "finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)  # the command and its worker processes
    process.wait()
    done = json.loads(ledger.read_text())["records"]
    assert 500 <= done < 1800 and not (out / "metrics.json").exists()
    resumed = subprocess.run(command(out), env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    whole = tmp_path / "whole"
    subprocess.run(command(whole), env=env, check=True, capture_output=True, timeout=600)
    for name in ("candidates.csv", "rejected.csv"):
        got, want = read_rows(out / name), read_rows(whole / name)
        for row in got + want:
            row.pop("date", None)
        assert got == want, name
        indexes = [r["index"] for r in got]
        assert len(indexes) == len(set(indexes))
    assert len(read_rows(out / "rejected.csv")) >= 300
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (out, whole))
    assert {k: v for k, v in got.items() if k != "provenance"} == {
        k: v for k, v in want.items() if k != "provenance"
    }


def test_sdf_duplicates_name_the_first_record(tmp_path: Path) -> None:
    from rdkit import Chem

    blocks = [Chem.MolToMolBlock(Chem.MolFromSmiles(s)) for s in ("CCO", "c1ccccc1O", "OCC")]
    path = tmp_path / "in.sdf"
    path.write_text("".join(b + "$$$$\n" for b in blocks * 3))
    screen_file(path, tmp_path / "stream", processes=2, chunk=2, provenance_fields=PROV)
    batch = read_gate_inputs(path)
    records = run_gate(batch.molecules, names=batch.names, sources=batch.sources)
    write_outputs(tmp_path / "batch", records, config=GateConfig(), provenance_fields=PROV)
    same_files(tmp_path / "stream", tmp_path / "batch")
    reasons = [r["failure_reason"] for r in read_rows(tmp_path / "stream" / "rejected.csv")]
    assert reasons[0] == "duplicate of input 0 (record 1 (line 1)), same canonical_smiles"
