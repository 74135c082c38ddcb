"""The rollout benchmark (``sci_diffusion.bench.rollouts``) at tiny sizes: every configuration
timed, speed-ups against ``workers=0``, the same episodes everywhere, the table and the JSON.
Budget: ~5 s (one-worker pools from the fork server)."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

import sci_diffusion.envs  # noqa: F401  (chooses the headless GL backend before mujoco loads)

pytest.importorskip("gymnasium")
pytest.importorskip("mujoco")

from sci_diffusion.bench.rollouts import bench_rollouts, main, table


def test_tiny_bench_times_every_configuration_and_finds_the_same_episodes() -> None:
    result = bench_rollouts(episodes=2, n_envs=2, workers=(0, 1), pixels=(False,), repeats=1,
                            progress=False)  # fmt: skip
    configs = [(r["run"], r["obs"], r["workers"], r["pool"]) for r in result["records"]]
    assert configs == [("episodes", "state", 0, None), ("episodes", "state", 1, "cold"),
                       ("episodes", "state", 1, "warm"), ("demos", "state", 0, None),
                       ("demos", "state", 1, "shards")]  # fmt: skip
    assert set(result["speedup"]) == {"episodes/state/cold/workers=1",
                                      "episodes/state/warm/workers=1",
                                      "demos/state/shards/workers=1"}  # fmt: skip
    assert result["same_episodes"] == {"episodes/state": True, "demos/state": True}
    for rec in result["records"]:
        assert rec["wall_s"] > 0 and rec["env_steps"] > 0 and len(rec["walls_s"]) == 1
        observable = rec["workers"] == 0 or rec["pool"] == "warm"
        assert (rec["cores_used"] is not None) == observable, rec
    assert set(result["pool_open_s"]) == {"state/workers=1"}
    assert result["machine"]["load_average_after"] is not None
    text = table(result)
    assert text.count("\n| ") == 5 and "1 (ref.)" in text and "same episodes" in text
    assert mp.active_children() == []


def test_main_prints_the_table_and_writes_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "rollouts.json"
    argv = ["--episodes", "1", "--n-envs", "1", "--workers", "0", "--obs", "state", "pixels",
            "--repeats", "1", "--no-demos", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| episodes | pixels | 0 | - |" in printed
    data = json.loads(out.read_text())
    assert data["config"]["obs"] == ["state", "pixels"] and data["speedup"] == {}
