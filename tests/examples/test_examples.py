"""Every script in examples/ runs end to end in its --small mode and prints what it measured.

Each runs as a subprocess (as a user would run it), must exit 0 and print one ``RESULT`` line
of ``key=value`` numbers; the checks below are the properties that hold at any training
length (exact constraints, finite values, counts), not quality, which the small runs are too
short to show.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest
from support import subprocess_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--small", *args],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
        env=subprocess_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, result.stdout
    values = dict(item.split("=") for item in lines[0].split()[1:])
    return {k: float(v) for k, v in values.items()}


def test_every_example_is_tested_here() -> None:
    source = Path(__file__).read_text()
    for script in sorted(EXAMPLES.glob("*.py")):
        assert f'"{script.name}"' in source, f"{script.name} has no test in {__file__}"


def test_mixture_2d() -> None:
    r = run_example("mixture_2d.py")
    assert r["noise_floor"] > 0 and math.isfinite(r["sliced_wasserstein"])
    assert 0 <= r["on_mode_share"] <= 1


def test_point_cloud_egnn() -> None:
    r = run_example("point_cloud_egnn.py")
    assert r["max_abs_com"] < 1e-4  # zero centre of mass over the real points
    assert r["max_abs_padding"] == 0  # padded points exactly zero
    assert r["nn_error_data"] < 0.1 and math.isfinite(r["nn_error_samples"])


def test_categorical_sequences() -> None:
    r = run_example("categorical_sequences.py")
    assert 0 <= r["rule_share"] <= 1 and r["chance"] < 1e-3
    assert r["distinct_valid"] <= 768


@pytest.mark.parametrize("exact", [False, True])
def test_trajectory_inpainting(exact: bool) -> None:
    r = run_example("trajectory_inpainting.py", *(["--exact"] if exact else []))
    for method in ("replacement", "resampling", "guidance"):
        assert r[f"{method}_fixed_exact"] == 1  # the known waypoints are kept bitwise
        assert 0 <= r[f"{method}_right_mode"] <= 1


@pytest.mark.skipif(
    importlib.util.find_spec("torch_geometric") is None
    or importlib.util.find_spec("qm9pack") is None,
    reason="needs torch-geometric and qm9pack",
)
def test_pyg_qm9() -> None:
    r = run_example("pyg_qm9.py")
    assert r["samples"] == 64 and math.isfinite(r["final_loss"])
    shares = [r[f"sample_share_{s}"] for s in "CNOF"]
    assert abs(sum(shares) - 1) < 1e-3  # printed to 4 significant digits
