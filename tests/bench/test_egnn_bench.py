"""The EGNN benchmark at tiny sizes: JSON structure, record fields and the size sampler."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sci_diffusion.bench.egnn import (
    QM9_SIZES,
    random_molecules,
    run_egnn_bench,
    sample_sizes,
    table,
)

RECORD_KEYS = {
    "setting", "model", "edges", "batch", "n_max", "mean_atoms", "real_pair_fraction",
    "train_s", "sample_s", "train_cpu_s", "sample_cpu_s", "train_mol_per_s", "sample_mol_per_s",
}  # fmt: skip


def test_tiny_run_writes_the_documented_json(tmp_path: Path) -> None:
    path = tmp_path / "egnn.json"
    threads_before = torch.get_num_threads()
    result = run_egnn_bench(str(path), batch_size=3, hidden=8, n_layers=1, repeats=1, threads=1)
    assert json.loads(path.read_text()) == json.loads(json.dumps(result))
    assert result["benchmark"] == "egnn"
    assert {"platform", "torch", "threads", "load_average", "date"} <= set(result["machine"])
    assert result["machine"]["threads"] == 1 and torch.get_num_threads() == threads_before
    assert result["config"]["batch_size"] == 3 and result["config"]["parameters"]["joint"] > 0
    combos = {(r["setting"], r["model"], r["edges"]) for r in result["records"]}
    assert combos == {
        (s, m, e)
        for s in ("heavy", "hydrogens")
        for m in ("edm", "joint")
        for e in ("dense", "sparse")
    }
    for r in result["records"]:
        assert set(r) >= RECORD_KEYS
        assert min(r["train_s"], r["sample_s"]) > 0
        assert r["train_mol_per_s"] == pytest.approx(r["batch"] / r["train_s"])
        assert 0 < r["real_pair_fraction"] < 1
        assert r["n_max"] <= (9 if r["setting"] == "heavy" else 29)
    assert len(result["speedup"]) == 4
    assert "sample mol/s" in table(result)


def test_unknown_setting_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown settings"):
        run_egnn_bench(None, settings=("proteins",), repeats=1)


def test_sizes_follow_qm9_and_molecules_are_padded() -> None:
    g = torch.Generator().manual_seed(0)
    sizes = sample_sizes(QM9_SIZES["hydrogens"], 2000, g)
    assert int(sizes.min()) >= 3 and int(sizes.max()) <= 29
    assert 17.0 < float(sizes.double().mean()) < 19.0  # QM9's mean is 18.0 atoms
    batch = random_molecules(torch.tensor([2, 5]), g)
    assert batch["x"].shape == (2, 5, 3) and batch["mask"].sum().item() == 7
    assert not batch["x"][~batch["mask"]].any()
    bonds = batch["edge_attr"]
    assert torch.equal(bonds, bonds.transpose(1, 2)) and torch.equal(
        bonds.sum(-1), torch.ones(2, 5, 5)
    )
