"""The EGNN on torch-geometric's MessagePassing equals nets/egnn.py's EGNN on the same weights."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

pytest.importorskip("torch_geometric")
from support import small_egnn
from torch_geometric.data import Batch, Data

from sci_diffusion.bench.egnn import run_egnn_bench, speedup_table
from sci_diffusion.nets.egnn import EGNN, EGNNOutput
from sci_diffusion.nets.egnn_pyg import EGNNConv, PyGEGNN, complete_edge_index
from sci_diffusion.nets.equivariance import assert_equivariant

B, N, F, E = 3, 7, 5, 4
INPUT_KINDS = {"x": "positions", "h": "scalars", "t": "graph", "mask": "mask", "edge_attr": "edges"}
OUTPUT_KINDS = {"pos": "vectors", "h": "scalars", "edges": "edges"}
TIGHT = 1e-12  # float64


def make_net(edges: str = "sparse", dtype: torch.dtype = torch.float64, **kw: Any) -> EGNN:
    return small_egnn(F, kw.pop("edge_features", E), edges, dtype, **kw)


def make_inputs(dtype: torch.dtype = torch.float64, seed: int = 1) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[0, 5:] = False
    mask[1, 1:] = False  # a one-atom molecule: no edges at all
    rand = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype)  # noqa: E731
    bonds = rand(B, N, N, E)
    return {
        "x": 2 * rand(B, N, 3),
        "h": rand(B, N, F),
        "t": torch.rand(B, generator=g, dtype=dtype),
        "mask": mask,
        "edge_attr": bonds + bonds.transpose(1, 2),
    }


def _assert_close(a: EGNNOutput, b: EGNNOutput, atol: float) -> None:
    for name, x, y in zip(EGNNOutput._fields, a, b, strict=True):
        if x is None:
            assert y is None
            continue
        assert x.shape == y.shape, name
        assert torch.allclose(x, y, rtol=0, atol=atol), (name, (x - y).abs().max())


@pytest.mark.parametrize("edges", ["dense", "sparse"])
def test_same_outputs_and_gradients_as_egnn_on_loaded_weights(edges: str) -> None:
    net = make_net(edges)
    twin = PyGEGNN.from_egnn(net)
    assert twin.state_dict().keys() == net.state_dict().keys()
    inputs = make_inputs()
    a, b = net(**inputs), twin(**inputs)
    assert min(a.pos.abs().max(), a.h.abs().max(), a.edges.abs().max()) > 1e-2  # not trivial
    _assert_close(a, b, TIGHT)
    for out in (a, b):
        (out.pos.square().sum() + out.h.sin().sum() + out.edges.square().sum()).backward()
    grads = dict(twin.named_parameters())
    for name, p in net.named_parameters():
        assert torch.allclose(p.grad, grads[name].grad, rtol=0, atol=1e-10), name


def test_state_dict_moves_both_ways_and_layers_can_share_parameters() -> None:
    net = make_net()
    torch.manual_seed(5)
    fresh = PyGEGNN(F, 4, hidden=16, n_layers=3, edge_features=E, edge_out_features=3).double()
    fresh.load_state_dict(net.state_dict())  # strict: the same names
    inputs = make_inputs()
    _assert_close(net(**inputs), fresh(**inputs), TIGHT)
    back = make_net(edge_features=E)
    torch.manual_seed(6)
    back.load_state_dict(PyGEGNN.from_egnn(net).state_dict())
    _assert_close(net(**inputs), back(**inputs), TIGHT)
    conv = EGNNConv.from_layer(net.layers[0])
    assert conv.msg_dst.weight is net.layers[0].msg_dst.weight  # shared, not copied


def test_float32_and_the_optional_parts() -> None:
    net = make_net(dtype=torch.float32, edge_features=0, edge_out_features=0, attention=False)
    inputs = make_inputs(torch.float32)
    del inputs["edge_attr"]
    twin = PyGEGNN.from_egnn(net)
    a, b = net(**inputs), twin(**inputs)
    assert b.edges is None and b.pos.dtype == torch.float32
    _assert_close(a, b, 1e-5)
    plain = EGNN(0, 0, hidden=8, n_layers=2).double()  # no node features, no node outputs
    args = (inputs["x"].double(), None, inputs["t"].double(), inputs["mask"])
    out = PyGEGNN.from_egnn(plain)(*args)
    _assert_close(plain(*args), out, TIGHT)
    assert out.h.shape == (B, N, 0)


def test_equivariant_to_rounding() -> None:
    twin = PyGEGNN.from_egnn(make_net())
    errors = assert_equivariant(twin, make_inputs(), INPUT_KINDS, OUTPUT_KINDS, atol=TIGHT)
    assert set(errors) == {"rotation", "reflection", "translation", "permutation", "padding"}
    net32 = PyGEGNN.from_egnn(make_net(dtype=torch.float32))
    assert_equivariant(net32, make_inputs(torch.float32), INPUT_KINDS, OUTPUT_KINDS)


def test_conv_on_a_native_pyg_batch_matches_the_dense_layer() -> None:
    """EGNNConv in PyG's own layout (a Batch with edge_index) = EGNNLayer on padded tensors."""
    net = make_net(edge_features=0, edge_out_features=0)
    layer, conv = net.layers[0], EGNNConv.from_layer(net.layers[0])
    g = torch.Generator().manual_seed(3)
    sizes = [4, 2, 6]
    graphs = []
    for n in sizes:
        full = torch.ones(n, n, dtype=torch.bool) & ~torch.eye(n, dtype=torch.bool)
        graphs.append(Data(h=torch.randn(n, 16, generator=g, dtype=torch.float64),
                           pos=torch.randn(n, 3, generator=g, dtype=torch.float64),
                           edge_index=full.nonzero().t()))  # fmt: skip
    batch = Batch.from_data_list(graphs)
    scalars = torch.rand(batch.edge_index.shape[1], 1, generator=g, dtype=torch.float64)
    h, pos = conv(batch.h, batch.pos, batch.edge_index, scalars)
    # the same through the layer with dense padded tensors and the sparse edge backend
    from sci_diffusion.nets.egnn import _SparseEdges

    mask = torch.arange(6)[None] < torch.tensor(sizes)[:, None]
    dense_h = torch.zeros(3, 6, 16, dtype=torch.float64).masked_scatter(mask[..., None], batch.h)
    dense_x = torch.zeros(3, 6, 3, dtype=torch.float64).masked_scatter(mask[..., None], batch.pos)
    edges = _SparseEdges(mask, torch.float64)
    index, _, _ = complete_edge_index(mask)
    # both list every real pair; put the PyG batch's scalars in the sparse backend's order
    key = lambda ei: ei[1] * 1000 + ei[0]  # noqa: E731
    ours = key(batch.edge_index).argsort()
    theirs = key(index).argsort()
    ordered = torch.empty_like(scalars)
    ordered[theirs] = scalars[ours]
    node = mask[..., None].double()
    hd, xd = layer(dense_h, dense_x, ordered, edges, node)
    assert torch.allclose(hd[mask], h, atol=TIGHT) and torch.allclose(xd[mask], pos, atol=TIGHT)


def test_complete_edge_index_lists_every_real_ordered_pair() -> None:
    mask = torch.tensor([[True, True, True], [True, False, False], [True, True, False]])
    edge_index, flat_pair, node_index = complete_edge_index(mask)
    assert node_index.tolist() == [[0, 1, 2], [3, -1, -1], [4, 5, -1]]
    pairs = sorted(map(tuple, edge_index.t().tolist()))
    assert pairs == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (4, 5), (5, 4)]
    assert flat_pair.numel() == 8 and bool((flat_pair < 3 * 9).all())


def test_benchmark_times_the_pyg_variant() -> None:
    result = run_egnn_bench(
        None, batch_size=3, hidden=8, n_layers=1, repeats=1, threads=1, settings=("heavy",),
        implementations=("dense", "sparse", "pyg"),
    )  # fmt: skip
    assert {r["edges"] for r in result["records"]} == {"dense", "sparse", "pyg"}
    assert all("pyg_train_cpu" in row and "train" in row for row in result["speedup"])
    assert "pyg/sparse" in speedup_table(result)
    with pytest.raises(ValueError, match="unknown implementations"):
        run_egnn_bench(None, repeats=1, implementations=("cuda",))
