"""The sampler benchmark in quick mode: JSON structure, and DPM-Solver++ reaches the noise floor."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from sci_diffusion.bench.sampler import (
    QUICK_NFE_TARGETS,
    SPEED_BATCHES,
    main_table,
    run_sampler_benchmark,
    steps_for_nfe,
)
from sci_diffusion.core import function_evaluations

QUALITY_KEYS = {"sampler", "schedule", "steps", "nfe", "distance", "threshold"}
SPEED_KEYS = {
    "sampler", "batch", "steps", "ours_s", "diffusers_s", "network_s", "ratio",
    "overhead_fraction",
}  # fmt: skip
# diffusers' own set_timesteps trips a numpy-2 deprecation; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:diffusers")


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    pytest.importorskip("diffusers")
    path = tmp_path_factory.mktemp("bench") / "sampler.json"
    return path, run_sampler_benchmark(str(path), quick=True)


@pytest.mark.slow
def test_json_is_written_atomically_and_matches_the_result(
    quick: tuple[Path, dict[str, Any]],
) -> None:
    path, result = quick
    assert json.loads(path.read_text()) == json.loads(json.dumps(result))
    assert [p.name for p in path.parent.iterdir()] == ["sampler.json"]  # no temp file left


@pytest.mark.slow
def test_structure(quick: tuple[Path, dict[str, Any]]) -> None:
    _, result = quick
    assert {"machine", "quality", "speed"} <= set(result)
    assert {"platform", "torch", "threads", "date"} <= set(result["machine"])
    threshold = result["config"]["threshold"]
    assert threshold > 0
    assert result["quality"]
    for record in result["quality"]:
        assert set(record) >= QUALITY_KEYS
        assert record["nfe"] == function_evaluations(record["sampler"], record["steps"])
        assert record["nfe"] <= max(QUICK_NFE_TARGETS)
        assert record["threshold"] == threshold
        assert record["distance"] is None or record["distance"] >= 0
        assert record["denoiser_calls"] >= record["nfe"]
    samplers = {r["sampler"] for r in result["quality"]}
    assert {"ddpm", "ddim", "dpm_solver_pp_2m", "flow_euler", "euler_maruyama"} <= samplers
    assert {(r["sampler"], r["batch"]) for r in result["speed"]} == {
        (s, b) for s in ("ddim", "dpm_solver_pp_2m") for b in SPEED_BATCHES
    }
    for record in result["speed"]:
        assert set(record) >= SPEED_KEYS
        assert min(record["ours_s"], record["diffusers_s"], record["network_s"]) > 0
        assert record["ratio"] == pytest.approx(record["ours_s"] / record["diffusers_s"])
        overhead = (record["ours_s"] - record["network_s"]) / record["network_s"]
        assert record["overhead_fraction"] == pytest.approx(overhead)
    assert "dpm_solver_pp_2m" in main_table(result)


@pytest.mark.slow
def test_dpm_solver_reaches_the_noise_floor(quick: tuple[Path, dict[str, Any]]) -> None:
    _, result = quick
    records = [
        r for r in result["quality"] if r["sampler"] == "dpm_solver_pp_2m" and r["nfe"] >= 32
    ]
    assert records
    for r in records:
        assert r["distance"] is not None and math.isfinite(r["distance"])
        assert r["distance"] < r["threshold"], r


def test_steps_for_nfe() -> None:
    assert steps_for_nfe("ddim", 32) == 32
    assert steps_for_nfe("heun", 32) == 16  # 2 * 16 - 1 = 31 evaluations
    assert steps_for_nfe("flow_heun", 4) == 2
    assert steps_for_nfe("heun", 1) == 1


def test_missing_diffusers_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "diffusers", None)  # makes `import diffusers` fail
    with pytest.raises(ImportError, match=r"sci-diffusion\[bench\]"):
        run_sampler_benchmark(None, quick=True)
