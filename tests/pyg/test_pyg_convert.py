"""sci_diffusion.pyg: PyG graphs to dense padded tensors with masks and back."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

pytest.importorskip("torch_geometric")
from torch_geometric.data import Batch, Data

from sci_diffusion import pyg
from sci_diffusion.core import (
    CategoricalSpace,
    CoMFreeSpace,
    PolynomialSchedule,
    ProductSpace,
)


def _graph(n: int, bonds: list[tuple[int, int, int]], seed: int) -> Data:
    g = torch.Generator().manual_seed(seed)
    src = [i for i, j, _ in bonds] + [j for i, j, _ in bonds]
    dst = [j for i, j, _ in bonds] + [i for i, j, _ in bonds]
    types = [t for *_, t in bonds] * 2
    return Data(
        pos=torch.randn(n, 3, generator=g, dtype=torch.float64) + 5.0,
        x=torch.randint(0, 4, (n,), generator=g),
        edge_index=torch.tensor([src, dst], dtype=torch.long).reshape(2, -1),
        edge_attr=torch.tensor(types, dtype=torch.long),
    )


GRAPHS = [
    _graph(4, [(0, 1, 0), (1, 2, 1), (2, 3, 2)], 0),
    _graph(1, [], 1),
    _graph(6, [(0, 5, 0), (3, 4, 1)], 2),
]


def _same_graph(a: Data, b: Data) -> None:
    assert a.num_nodes == b.num_nodes
    assert torch.allclose(a.pos, b.pos, atol=1e-12)
    assert torch.equal(a.x, b.x)
    order_a = (a.edge_index[0] * 100 + a.edge_index[1]).argsort()
    order_b = (b.edge_index[0] * 100 + b.edge_index[1]).argsort()
    assert torch.equal(a.edge_index[:, order_a], b.edge_index[:, order_b])
    assert torch.equal(a.edge_attr[order_a], b.edge_attr[order_b])


def test_to_dense_layout_masks_and_centres() -> None:
    dense = pyg.to_dense(GRAPHS, node_classes=4, edge_classes=4)
    assert dense.mask.tolist() == [[True] * 4 + [False] * 2, [True] + [False] * 5, [True] * 6]
    assert dense.pos.shape == (3, 6, 3) and dense.pos.dtype == torch.float64
    # per-graph zero centre of mass over real nodes; padding exactly zero
    com = (dense.pos * dense.mask[..., None]).sum(1) / dense.num_nodes[:, None]
    assert com.abs().max() < 1e-12
    assert not dense.pos[~dense.mask].any() and not dense.nodes[~dense.mask].any()
    assert torch.allclose(dense.centre[0], GRAPHS[0].pos.mean(0))
    # nodes one-hot on real nodes
    assert torch.equal(dense.nodes[0, :4].argmax(-1), GRAPHS[0].x)
    assert torch.equal(dense.nodes[dense.mask].sum(-1), torch.ones(11))
    # edges: one-hot on real off-diagonal pairs, class 0 = no edge, type t -> class t + 1
    edges = dense.edges
    assert edges.shape == (3, 6, 6, 4)
    assert torch.equal(edges.sum(-1).bool(), dense.pair_mask)
    assert torch.equal(edges, edges.transpose(1, 2))
    assert edges[0, 1, 2].argmax() == 2 and edges[0, 0, 2].argmax() == 0
    assert edges[2, 5, 0].argmax() == 1 and edges[2, 4, 3].argmax() == 2


def test_round_trip_list_batch_and_single_data() -> None:
    for source in (GRAPHS, Batch.from_data_list(GRAPHS)):
        back = pyg.to_dense(source, node_classes=4, edge_classes=4).to_data_list()
        assert len(back) == len(GRAPHS)
        for a, b in zip(GRAPHS, back, strict=True):
            _same_graph(a, b)
    (single,) = pyg.to_dense(GRAPHS[0], node_classes=4, edge_classes=4).to_data_list()
    _same_graph(GRAPHS[0], single)


def test_one_hot_inputs_and_outputs_and_features() -> None:
    g = GRAPHS[0].clone()
    g.x = torch.nn.functional.one_hot(g.x, 4).float()
    g.edge_attr = torch.nn.functional.one_hot(g.edge_attr, 3).float()
    a = pyg.to_dense([g], node_classes=4, edge_classes=4)
    b = pyg.to_dense([GRAPHS[0]], node_classes=4, edge_classes=4)
    assert torch.equal(a.nodes, b.nodes) and torch.equal(a.edges, b.edges)
    (one_hot,) = a.to_data_list(nodes_as="one_hot")
    assert torch.equal(one_hot.x, g.x)
    feats = Data(pos=torch.randn(3, 3), x=torch.randn(3, 2), edge_index=torch.zeros(2, 0).long())
    dense = pyg.to_dense([feats])  # float features kept as they are, no edges asked for
    assert dense.edges is None and torch.equal(dense.nodes[0], feats.x)
    (back,) = dense.to_data_list(nodes_as="features")
    assert torch.allclose(back.pos, feats.pos, atol=1e-6) and torch.equal(back.x, feats.x)


def test_states_and_masks_feed_the_core_spaces() -> None:
    dense = pyg.to_dense(GRAPHS, node_classes=4, edge_classes=4)
    sched = PolynomialSchedule()
    space = ProductSpace(
        {
            "pos": CoMFreeSpace(sched),
            "atoms": CategoricalSpace(4, sched, "uniform"),
            "bonds": CategoricalSpace(4, sched, "uniform", symmetric=True),
        }
    )
    state, masks = dense.state(), dense.masks()
    assert set(state) == set(masks) == {"pos", "atoms", "bonds"}
    for key, value in state.items():
        space[key].validate(value, masks[key])
        assert torch.allclose(space[key].project(value, masks[key]), value)
    only_positions = pyg.to_dense([Data(pos=torch.randn(3, 3))])
    assert set(only_positions.state()) == set(only_positions.masks()) == {"pos"}


def test_from_dense_of_a_sampled_state() -> None:
    mask = torch.tensor([[True, True, True], [True, True, False]])
    probs = torch.rand(2, 3, 3, 4)
    probs = probs + probs.transpose(1, 2)  # a symmetric space's state is symmetric
    graphs = pyg.from_dense(mask, pos=torch.randn(2, 3, 3), nodes=torch.rand(2, 3, 5), edges=probs)
    assert [g.num_nodes for g in graphs] == [3, 2]
    for g, p in zip(graphs, probs, strict=True):
        cls = p.argmax(-1)
        n = g.num_nodes
        expected = [(i, j) for i in range(n) for j in range(n) if i != j and cls[i, j] > 0]
        assert sorted(map(tuple, g.edge_index.t().tolist())) == expected
        assert all(g.edge_attr[k] == cls[i, j] - 1 for k, (i, j) in enumerate(g.edge_index.t()))
        assert g.x.dtype == torch.long and g.x.shape == (n,)


@pytest.mark.parametrize(
    ("graph", "kwargs", "message"),
    [
        (Data(x=torch.tensor([0, 7]), num_nodes=2), {"node_classes": 4}, "must lie in 0..3"),
        (Data(x=torch.tensor([0, 1])), {}, "pass node_classes"),
        (Data(num_nodes=2), {"node_classes": 3}, "no 'x' attribute"),
        (
            Data(num_nodes=2, edge_index=torch.tensor([[0], [0]])),
            {"edge_classes": 3},
            "self-loops",
        ),
        (
            Data(num_nodes=2, edge_index=torch.tensor([[0], [1]]), edge_attr=torch.tensor([2])),
            {"edge_classes": 3},
            r"edge types must lie in 0..1",
        ),
        (
            Data(
                num_nodes=2,
                edge_index=torch.tensor([[0, 1], [1, 0]]),
                edge_attr=torch.tensor([0, 1]),
            ),
            {"edge_classes": 3},
            "different types",
        ),
        (
            Data(num_nodes=2, edge_index=torch.tensor([[0], [1]]), edge_attr=torch.ones(1, 5)),
            {"edge_classes": 3},
            r"one-hot \(E, 2\)",
        ),
    ],
)
def test_bad_inputs_name_what_is_accepted(graph: Data, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pyg.to_dense([graph], **kwargs)


def test_other_refusals() -> None:
    with pytest.raises(TypeError, match="list of Data"):
        pyg.to_dense(torch.zeros(3))
    with pytest.raises(ValueError, match="at least one graph"):
        pyg.to_dense([])
    with pytest.raises(ValueError, match="max_nodes"):
        pyg.to_dense(GRAPHS, max_nodes=3)
    with pytest.raises(ValueError, match="nodes_as"):
        pyg.from_dense(torch.ones(1, 2, dtype=torch.bool), nodes_as="labels")
    padded = pyg.to_dense(GRAPHS, node_classes=4, max_nodes=8)
    assert padded.mask.shape == (3, 8) and padded.num_nodes.tolist() == [4, 1, 6]


def test_missing_torch_geometric_is_a_clear_import_error() -> None:
    """Importing sci_diffusion.pyg needs torch only; calling it without PyG names the fix."""
    probe = """
import json, sys
sys.modules["torch_geometric"] = None  # as if not installed
from sci_diffusion import pyg
try:
    pyg.to_dense([])
except ImportError as err:
    print(json.dumps(str(err)))
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    message = json.loads(result.stdout.strip().splitlines()[-1])
    assert "pip install torch-geometric" in message
