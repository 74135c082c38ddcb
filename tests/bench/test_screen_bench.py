"""The screening-gate throughput benchmark at tiny sizes: structure, arithmetic, atomic JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("rdkit")

from sci_diffusion.bench.screen import (
    ANCHOR_RATES,
    anchor_checks,
    main_table,
    moses_smiles,
    qm9_smiles,
    run_screen_bench,
)


def test_data_files_are_read_without_importing_the_packages() -> None:
    assert qm9_smiles(3) == ["C", "N", "O"]
    moses = moses_smiles(5)
    assert len(moses) == 5 and all(isinstance(s, str) and s for s in moses)
    assert anchor_checks(moses) == 5


def test_tiny_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "screen.json"
    result = run_screen_bench(str(out), n_qm9=24, n_moses=8, repeats=2, processes=2)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert [p.name for p in tmp_path.iterdir()] == ["screen.json"]
    assert result["config"] == {"repeats": 2, "processes": 2, "target_ratio": 0.9}
    assert {"available_cores", "load_average_before", "rdkit", "date"} <= set(result["machine"])
    assert [d["dataset"] for d in result["datasets"]] == ["qm9", "moses"]
    for d in result["datasets"]:
        assert len(d["single_s"]) == len(d["all_s"]) == 2
        assert d["single_rate"] > 0 and d["all_rate"] > 0 and d["anchor_checks_rate"] > 0
        assert d["ratio"] == pytest.approx(d["all_rate"] / (2 * d["single_rate"]))
        assert d["meets_target"] == (d["ratio"] >= 0.9)
        for key in ("cpu_ratio", "single_cpu_rate", "anchor_checks_cpu_rate"):
            assert d[key] is None or d[key] > 0
        assert d["anchor_reference_rate"] == ANCHOR_RATES[d["dataset"]]
        assert 0.0 <= d["pass_rate"] <= 1.0
        assert d["stream_ratio"] == pytest.approx(
            d["stream_all_rate"] / (2 * d["stream_single_rate"])
        )
        assert d["stream_meets_target"] == (d["stream_ratio"] >= 0.9)
    table = main_table(result)
    assert "\nscreen " in table
    assert "qm9" in table and "moses" in table and "ratio" in table


def test_a_dataset_can_be_left_out_and_repeats_are_checked() -> None:
    result = run_screen_bench(n_qm9=10, n_moses=0, repeats=1, processes=1)
    assert [d["dataset"] for d in result["datasets"]] == ["qm9"]
    with pytest.raises(ValueError, match="repeats"):
        run_screen_bench(n_qm9=1, n_moses=0, repeats=0)
