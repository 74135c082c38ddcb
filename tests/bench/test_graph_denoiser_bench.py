"""The dense-vs-sparse graph denoiser benchmark at tiny sizes: result structure, JSON, and the
sparse layout it feeds to torch-geometric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sci_diffusion.bench.graph_denoiser import (
    DENSE_VARIANTS,
    EDGE_CLASSES,
    NODE_CLASSES,
    SIZE_HISTOGRAMS,
    draw_sizes,
    random_batch,
    run_graph_denoiser_bench,
    table,
    to_sparse,
)
from sci_diffusion.nets.graph_transformer import pair_mask

TINY = {"layers": 1, "node_dim": 16, "edge_dim": 8, "global_dim": 8, "heads": 2}


def test_random_batch_is_a_valid_padded_graph_batch() -> None:
    data = random_batch(6, 9, seed=1)
    mask = data["mask"]
    assert mask.sum(1).min() >= 6  # sizes in [ceil(2N/3), N]
    assert torch.equal(data["e"], data["e"].transpose(1, 2))
    assert torch.equal(data["e"].sum(-1), pair_mask(mask).float())
    assert torch.equal(data["x"].sum(-1), mask.float())


def test_sizes_follow_the_histogram_clipped_to_n() -> None:
    gen = torch.Generator().manual_seed(0)
    sizes = draw_sizes(2000, 8, SIZE_HISTOGRAMS["qm9"], gen)
    assert sizes.max() == 8 and sizes.min() >= 1
    assert 0.8 < float((sizes == 8).float().mean()) < 0.9  # 17879 / 21800 of QM9 with N <= 8
    data = random_batch(64, 27, histogram=SIZE_HISTOGRAMS["moses"])
    assert data["mask"].sum(1).min() >= 9


def test_sparse_layout_keeps_every_real_pair_once_per_direction() -> None:
    data = random_batch(3, 5, seed=2)
    sparse = to_sparse(data)
    sizes = data["mask"].sum(1)
    assert sparse["x"].shape == (int(sizes.sum()), NODE_CLASSES)
    assert sparse["edge_index"].shape[1] == int((sizes * (sizes - 1)).sum())
    assert sparse["edge_attr"].shape == (sparse["edge_index"].shape[1], EDGE_CLASSES)
    src, dst = sparse["edge_index"]
    assert torch.all(src != dst)
    assert torch.equal(sparse["batch"][src], sparse["batch"][dst])  # no cross-graph edges


@pytest.mark.parametrize("sparse", [True, False])
def test_bench_result_structure_and_json(tmp_path: Path, sparse: bool) -> None:
    if sparse:
        pytest.importorskip("torch_geometric")
    out = tmp_path / "graph.json"
    previous = torch.get_num_threads()
    result = run_graph_denoiser_bench(
        (("tiny", 5, 4), ("small", 7, 2)),
        **TINY,
        repeats=2,
        warmup=1,
        threads=1,
        sparse=sparse,
        out=str(out),
    )
    assert torch.get_num_threads() == previous  # restored
    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(result["rows"]))
    assert [r["name"] for r in result["rows"]] == ["tiny", "small"]
    expected = {*DENSE_VARIANTS, "features_cycles", "features_spectral"}
    if sparse:
        expected |= {"sparse_pyg", "to_sparse"}
    for row in result["rows"]:
        assert set(row["seconds"]) == expected
        assert all(s > 0 for s in row["seconds"].values())
        assert 0 < row["real_pair_fraction"] <= 1
        assert ("sparse_over_dense" in row) == sparse
    assert result["machine"]["cpu_count"] >= 1
    assert "| tiny | 5 | 4 |" in table(result)
