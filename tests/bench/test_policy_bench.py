import math

import pytest

from sci_diffusion.bench.policy import PAIRS, latency_records
from sci_diffusion.cli import main


def test_latency_records_cover_every_sampler_and_step_count():
    pytest.importorskip("diffusers")
    records = latency_records("mlp", steps=(1, 3), repeats=1, min_time=0.0)
    assert {(r["sampler"], r["steps"]) for r in records} == {
        (name, n) for name, _ in PAIRS for n in (1, 3)
    }
    for r in records:
        for key in ("ours_ms", "diffusers_ms", "network_ms", "ratio"):
            assert math.isfinite(r[key]) and r[key] > 0
        assert r["sampler_overhead_ms"] == pytest.approx(r["ours_ms"] - r["network_ms"])


def test_bench_policy_rejects_unknown_model(capsys):
    assert main(["bench", "policy", "model=resnet"]) == 2
    assert "model must be one of" in capsys.readouterr().err
