"""scripts/gpu_tasks.py, the device run's per-task GPU checks, in its quick CPU mode.

The device run itself needs a lent GPU; here ``--device cpu --quick`` runs the same code with a
handful of steps and 2-4 samples, and the JSON's structure is checked.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import subprocess_env

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_tasks.py"


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("gpu_tasks_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _run(tmp_path: Path, *args: str, timeout: float = 600) -> tuple[dict, str]:
    out = tmp_path / "out"
    cmd = [sys.executable, str(SCRIPT), str(out), str(tmp_path / "runs"), "--device", "cpu",
           "--quick", "--cpu-threads", "1", "--pack", "none", *args]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(),
                          cwd=tmp_path, timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads((out / "gpu_tasks.json").read_text()), proc.stdout


def test_quick_cpu_run_measures_a_task_and_records_a_failing_one(tmp_path: Path) -> None:
    report, stdout = _run(tmp_path, "--tasks", "toy2d,no_such_task", "--sections", "tasks",
                          "--budget", "400")  # fmt: skip
    assert report["settings"]["quick"] and report["settings"]["device"] == "cpu"
    assert report["environment"]["modules"]["torch"] is True
    tasks = report["sections"]["tasks"]["tasks"]
    assert set(tasks) == {"toy2d", "no_such_task"}
    toy = tasks["toy2d"]
    assert toy["status"] == "ok", toy
    for leg, steps in (("train_device", 3), ("train_cpu", 2)):
        run = toy[leg]
        assert run["status"] == "ok" and run["rc"] == 0 and run["steps"] == steps
        assert run["rate_steps_per_s"] > 0 and run["examples_per_s"] > 0
        assert run["batch_size"] == 256 and run["precision"] == "fp32"
    assert toy["eval"]["metrics"]["n_samples"] == 128
    for where in ("device", "cpu"):
        (row,) = toy["rate"][where]
        assert row["n"] == 128 and row["per_s"] > 0 and row["unit"] == "samples"
        assert row["steps_configured"] == 50
    assert toy["rate"]["cpu"][0]["extrapolated"] and toy["rate"]["cpu"][0]["steps_timed"] == 2
    assert toy["train_speedup_vs_cpu"] > 0 and toy["sample_speedup_vs_cpu"] > 0
    # a part that fails is recorded (with its output) and the run goes on
    bad = tasks["no_such_task"]
    assert bad["status"] == "failed"
    assert bad["train_device"]["status"] == "failed" and bad["train_device"]["rc"] == 2
    assert "no_such_task" in bad["train_device"]["tail"]
    assert bad["eval"]["status"] == "skipped"
    assert report["sections"]["tasks"]["status"] == "failed"
    assert "[gpu_tasks" in stdout and "gpu_tasks summary" in stdout
    assert any(line.startswith("toy2d") and " ok " in line for line in report["summary"])


def test_a_spent_budget_skips_every_part_with_a_note(tmp_path: Path) -> None:
    report, _ = _run(tmp_path, "--tasks", "toy2d", "--budget", "1")
    toy = report["sections"]["tasks"]["tasks"]["toy2d"]
    assert toy["status"] == "partial"
    assert toy["train_device"]["status"] == "skipped"
    assert "budget spent" in toy["train_device"]["note"]
    q = report["sections"]["qm9_3d_h"]
    assert q["goal"].startswith("molecule stability above EDM's 82.0%")
    if q["status"] != "skipped":  # skipped only where RDKit or QM9 is missing
        assert q["data"]["status"] == q["probes"]["edm_256x9/device"]["status"] == "skipped"
        assert q["eval"]["status"] == "skipped" and q["rates"]["ours_128x4"]["status"] == "skipped"
        assert q["plan"]["lines"][-1].startswith("reached: 0 steps")


def test_steady_rate_leaves_out_the_first_logged_interval() -> None:
    m = _module()
    # the first interval (start-up) is slow; the steady rate comes from the rest
    points = [(0.0, 1), (5.0, 10), (6.0, 20), (7.0, 30)]
    assert m.steady_rate(points) == pytest.approx(10.0)
    assert m.steady_rate([(0.0, 1), (1.0, 11)]) == pytest.approx(10.0)
    assert m.steady_rate([(0.0, 1)]) is None
    assert m.steady_rate([(0.0, 1), (0.01, 2), (0.02, 3)]) is None  # shorter than a few polls


def test_side_by_side_and_the_plan_from_measured_rates() -> None:
    m = _module()
    probes = {
        "ours_128x4/device": {"rate_steps_per_s": 20.0, "device": "cuda"},
        "ours_128x4/cpu": {"rate_steps_per_s": 2.0, "device": "cpu"},
        "edm_256x9/device": {"rate_steps_per_s": 5.0, "device": "cuda"},
        "edm_256x9/cpu": {"rate_steps_per_s": 0.25, "device": "cpu"},
    }
    row = {"n": 64, "per_s": 640.0, "steps_configured": 100, "extrapolated": False}
    rates = {
        "ours_128x4": {"device": [row], "cpu": [{**row, "per_s": 32.0}]},
        "edm_256x9": {"device": [{**row, "per_s": 160.0}], "cpu": [{**row, "per_s": 4.0}]},
    }
    rows = {(r["model"], r["where"]): r for r in m.side_by_side(probes, rates, 64)}
    ours = rows[("ours_128x4", "device")]
    assert ours["train_molecules_per_s"] == 1280 and ours["train_ms_per_step"] == 50
    assert ours["train_speedup_vs_cpu"] == 10 and ours["sample_speedup_vs_cpu"] == 20
    assert ours["train_cost_edm_over_ours"] == 4 and ours["sample_cost_edm_over_ours"] == 4
    assert rows[("edm_256x9", "device")]["train_speedup_vs_cpu"] == 20
    rec = {
        "train": {"rate_steps_per_s": 10.0, "steps": 1234},
        "probes": probes,
        "rates": rates,
        "stability": {"edm_distance_table": {"mol_stability": 0.5}, "samples": 256, "steps": 100},
    }
    plan = m.plan(rec, m.Sizes())
    ours = plan["ours_128x4 (the long run)"]
    assert ours["steps_per_epoch"] == pytest.approx(100_000 / 64)
    assert ours["hours_per_epochs"][1000] == pytest.approx(1000 * 100_000 / 64 / 10 / 3600)
    assert plan["edm_256x9"]["steps_in_10_min"] == pytest.approx(5.0 * 600)
    assert plan["sample_ours_128x4"]["minutes_per_10000"] == pytest.approx(10_000 / 640 / 60)
    assert "1234 steps" in plan["lines"][-1] and "0.5" in plan["lines"][-1]


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SCI_DIFFUSION_TEST_GPU_TASKS_FULL"),
                    reason="every task and the qm9_3d_h section: ~15 CPU-minutes; set "
                           "SCI_DIFFUSION_TEST_GPU_TASKS_FULL=1")  # fmt: skip
def test_quick_cpu_run_of_every_task_and_section(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SCI_DIFFUSION_CACHE", str(tmp_path / "cache"))  # small data sets apart
    report, _ = _run(tmp_path, "--budget", "3000", timeout=3600)
    tasks = report["sections"]["tasks"]["tasks"]
    assert set(tasks) == set(_module().all_tasks())
    for name, record in tasks.items():
        assert record["status"] == "ok", (name, record)
    q = report["sections"]["qm9_3d_h"]
    assert q["status"] == "ok", q
    assert q["stability"]["target_mol_stability"] == 0.82
    assert q["stability"]["edm_distance_table"]["mol_stability"] is not None
    assert len(q["side_by_side"]) == 4 and q["plan"]["lines"]
