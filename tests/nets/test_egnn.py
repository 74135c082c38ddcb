"""EGNN: E(3) x permutation equivariance with masks, dense == sparse, CoM, gradients."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from support import small_egnn
from torch import Tensor

from sci_diffusion.nets.egnn import EGNN, EGNNOutput, resolve_edges
from sci_diffusion.nets.equivariance import assert_equivariant

B, N, F, E = 3, 7, 5, 4
INPUT_KINDS = {"x": "positions", "h": "scalars", "t": "graph", "mask": "mask", "edge_attr": "edges"}
OUTPUT_KINDS = {"pos": "vectors", "h": "scalars", "edges": "edges"}
TIGHT = 1e-12  # float64: measured errors are ~1e-15



def make_net(edges: str = "dense", dtype: torch.dtype = torch.float64, **kw: Any) -> EGNN:
    return small_egnn(F, kw.pop("edge_features", E), edges, dtype, **kw)


def make_inputs(dtype: torch.dtype = torch.float64, seed: int = 1) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[0, 5:] = False
    mask[1, 2:] = False  # a two-atom molecule
    rand = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype)  # noqa: E731
    bonds = rand(B, N, N, E)
    return {
        "x": 2 * rand(B, N, 3),
        "h": rand(B, N, F),
        "t": torch.rand(B, generator=g, dtype=dtype),
        "mask": mask,
        "edge_attr": bonds + bonds.transpose(1, 2),
    }


@pytest.mark.parametrize("edges", ["dense", "sparse"])
def test_equivariant_in_float64_to_rounding(edges: str) -> None:
    net, inputs = make_net(edges), make_inputs()
    out = net(**inputs)
    assert min(out.pos.abs().max(), out.h.abs().max(), out.edges.abs().max()) > 1e-2  # not trivial
    errors = assert_equivariant(net, inputs, INPUT_KINDS, OUTPUT_KINDS, atol=TIGHT)
    assert set(errors) == {"rotation", "reflection", "translation", "permutation", "padding"}


def test_equivariant_in_float32_with_the_default_bound() -> None:
    net, inputs = make_net(dtype=torch.float32), make_inputs(torch.float32)
    errors = assert_equivariant(net, inputs, INPUT_KINDS, OUTPUT_KINDS)
    assert max(e for per in errors.values() for e in per.values()) < 1e-4


def test_without_optional_parts() -> None:
    net = make_net(edge_features=0, edge_out_features=0, attention=False)
    inputs = make_inputs()
    del inputs["edge_attr"]
    assert net(**inputs).edges is None
    kinds = {k: v for k, v in INPUT_KINDS.items() if k != "edge_attr"}
    assert_equivariant(net, inputs, kinds, {"pos": "vectors", "h": "scalars"}, atol=TIGHT)


@pytest.mark.parametrize("dtype, atol", [(torch.float64, TIGHT), (torch.float32, 1e-5)])
def test_dense_and_sparse_agree_with_the_same_weights(dtype: torch.dtype, atol: float) -> None:
    dense, sparse = make_net("dense", dtype), make_net("sparse", dtype)
    sparse.load_state_dict(dense.state_dict())
    inputs = make_inputs(dtype)
    a, b = dense(**inputs), sparse(**inputs)
    for name, x, y in zip(EGNNOutput._fields, a, b, strict=True):
        assert torch.allclose(x, y, rtol=0, atol=atol), (name, (x - y).abs().max())
    # ... and so do their gradients
    for out in (a, b):
        (out.pos.square().sum() + out.h.square().sum() + out.edges.square().sum()).backward()
    for (name, p), q in zip(dense.named_parameters(), sparse.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, rtol=1e-6, atol=atol), name


@pytest.mark.parametrize("edges", ["dense", "sparse"])
def test_padding_is_ignored_even_when_nan_and_outputs_zero_there(edges: str) -> None:
    net, inputs = make_net(edges), make_inputs()
    mask = inputs["mask"]
    clean = net(**inputs)
    dirty = dict(inputs)
    pad, pad_pair = ~mask, ~(mask[:, :, None] & mask[:, None, :])
    dirty["x"] = inputs["x"].masked_fill(pad[..., None], float("nan"))
    dirty["h"] = inputs["h"].masked_fill(pad[..., None], float("inf"))
    dirty["edge_attr"] = inputs["edge_attr"].masked_fill(pad_pair[..., None], float("nan"))
    out = net(**dirty)
    for x, y in zip(clean, out, strict=True):
        assert torch.equal(x, y)
    assert not out.pos[pad].any() and not out.h[pad].any() and not out.edges[pad_pair].any()


@pytest.mark.parametrize("edges", ["dense", "sparse"])
def test_position_output_has_zero_centre_of_mass_over_real_nodes(edges: str) -> None:
    net, inputs = make_net(edges), make_inputs()
    inputs["x"] = inputs["x"] + 100.0  # far from the origin: centring is the net's job
    pos = net(**inputs).pos
    m = inputs["mask"][..., None].double()
    assert (pos * m).sum(1).abs().max() < 1e-12
    assert pos.abs().max() > 1e-2


def test_edge_output_is_symmetric_with_zero_diagonal() -> None:
    net, inputs = make_net("sparse"), make_inputs()
    inputs["edge_attr"] = torch.randn(B, N, N, E, dtype=torch.float64)  # even if the input is not
    edges = net(**inputs).edges
    assert torch.equal(edges, edges.transpose(1, 2))
    assert not torch.diagonal(edges, dim1=1, dim2=2).any()


@pytest.mark.parametrize("edges", ["dense", "sparse"])
def test_gradients_flow_and_stay_finite_for_coincident_atoms(edges: str) -> None:
    net = make_net(edges).train()
    inputs = make_inputs()
    x = inputs["x"].clone()
    x[0, 1] = x[0, 0]  # two real atoms on top of each other
    inputs["x"] = x.requires_grad_(True)
    out = net(**inputs)
    (out.pos.square().sum() + out.h.square().sum() + out.edges.square().sum()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert torch.isfinite(x.grad).all()
    assert not x.grad[~inputs["mask"]].any()  # padding receives no gradient


def test_time_conditions_the_output() -> None:
    net, inputs = make_net(), make_inputs()
    a = net(**inputs)
    b = net(**{**inputs, "t": inputs["t"] * 0.5})
    assert (a.h - b.h).abs().max() > 1e-3 and (a.pos - b.pos).abs().max() > 1e-4
    scalar_t = net(**{**inputs, "t": inputs["t"][0]})  # a shared () time broadcasts
    assert scalar_t.h.shape == a.h.shape


def test_featureless_nodes_and_default_config() -> None:
    net = EGNN(0, 0, hidden=8, n_layers=1).double()
    inputs = make_inputs()
    out = net(inputs["x"], None, inputs["t"], inputs["mask"])
    assert out.pos.shape == (B, N, 3) and out.h.shape == (B, N, 0)
    default = EGNN(5)
    assert default.edges == "auto" and len(default.layers) == 4
    assert 3e5 < sum(p.numel() for p in default.parameters()) < 7e5


def test_auto_edges_are_sparse_on_cpu_and_dense_without_value_reads_elsewhere() -> None:
    assert resolve_edges("auto", torch.device("cpu")) == "sparse"
    assert resolve_edges("auto", torch.device("cuda")) == "dense"
    assert resolve_edges("dense", torch.device("cpu")) == "dense"
    # On the meta device any read of a value raises: auto (dense) must not read one.
    net = make_net("auto").to("meta")
    inputs = {k: v.to("meta") for k, v in make_inputs().items()}
    out = net(**inputs)
    assert out.pos.shape == (B, N, 3) and out.edges.shape == (B, N, N, 3)


def test_bad_inputs_name_the_expected_shape() -> None:
    net, inputs = make_net(), make_inputs()
    with pytest.raises(ValueError, match=r"h must have shape \(3, 7, 5\)"):
        net(**{**inputs, "h": inputs["h"][..., :2]})
    with pytest.raises(ValueError, match="edge_attr must have shape"):
        net(**{**inputs, "edge_attr": None})
    with pytest.raises(ValueError, match="mask must be bool"):
        net(**{**inputs, "mask": inputs["mask"].float()})
    with pytest.raises(ValueError, match="t must have shape"):
        net(**{**inputs, "t": inputs["t"][:2]})
    with pytest.raises(ValueError, match="edges must be one of"):
        EGNN(F, edges="knn")


def test_sparse_custom_gradients_pass_gradcheck_to_second_order() -> None:
    net = EGNN(2, hidden=4, n_layers=1, edges="sparse", edge_out_features=1).double()
    torch.nn.init.normal_(net.layers[0].coord[-1].weight, std=0.5)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    t = torch.rand(2, generator=g, dtype=torch.float64)
    fn = lambda x, h: tuple(net(x, h, t, mask))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, h))
    assert torch.autograd.gradgradcheck(fn, (x, h))
