"""The dict-in, dict-out EGNN denoiser of 3D molecules: equivariance of the position output,
invariance of the logits, masks inferred from padding, and clear errors."""

from __future__ import annotations

import pytest
import torch

from sci_diffusion.core import CategoricalSpace, CoMFreeSpace, ProductSpace, make_schedule
from sci_diffusion.nets.egnn_denoiser import EGNNDenoiserNet
from sci_diffusion.nets.equivariance import assert_equivariant

CLASSES = {"atoms": 4, "charges": 3}
BONDS = 4


def _state(batch: int = 2, n: int = 6, real: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(n)[None] < torch.tensor([[real], [n]])[:batch]
    x = {k: torch.nn.functional.one_hot(torch.randint(0, c, (batch, n), generator=g), c).double()
         * mask[..., None] for k, c in CLASSES.items()}  # fmt: skip
    bonds = torch.randint(0, BONDS, (batch, n, n), generator=g)
    bonds = torch.triu(bonds, 1) + torch.triu(bonds, 1).transpose(1, 2)
    pair = mask[:, :, None] & mask[:, None, :]
    x["bonds"] = torch.nn.functional.one_hot(bonds, BONDS).double() * pair[..., None]
    x["pos"] = torch.randn(batch, n, 3, generator=g, dtype=torch.float64) * mask[..., None]
    return x


def _net(bonds: bool = True) -> EGNNDenoiserNet:
    torch.manual_seed(0)
    edge = ("bonds", BONDS) if bonds else (None, 0)
    return EGNNDenoiserNet(CLASSES, *edge, hidden=16, n_layers=2).double()


def test_positions_equivariant_logits_invariant() -> None:
    """Rotations, reflections, translations and permutations of the real nodes (float64:
    the measured errors are ~1e-15, the helper's bound 1e-9)."""
    net, x = _net(), _state()
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)

    def fn(pos, atoms, charges, bonds, t):
        out = net({"pos": pos, "atoms": atoms, "charges": charges, "bonds": bonds}, t)
        return out["pos"], out["atoms"], out["charges"], out["bonds"]

    assert_equivariant(
        fn, {"pos": x["pos"], "atoms": x["atoms"], "charges": x["charges"],
             "bonds": x["bonds"], "t": t},
        {"pos": "positions", "atoms": "scalars", "charges": "scalars", "bonds": "edges",
         "t": "graph"},
        ("vectors", "scalars", "scalars", "edges"),
        transforms=("rotation", "reflection", "translation", "permutation"),
    )  # fmt: skip


def test_padding_inferred_and_zero() -> None:
    net, x = _net(), _state()
    out = net(x, torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert out["pos"][0, 4:].abs().max() == 0 and out["atoms"][0, 4:].abs().max() == 0
    assert out["bonds"][0, 4:].abs().max() == 0 and out["bonds"][0, :, 4:].abs().max() == 0
    assert torch.allclose(out["bonds"], out["bonds"].transpose(1, 2))
    # The position output has zero centre of mass over the real nodes.
    assert out["pos"][0, :4].sum(0).abs().max() < 1e-12
    # Garbage in the padding changes nothing (the mask comes from the one-hot rows).
    noisy = {k: v.clone() for k, v in x.items()}
    noisy["pos"][0, 4:] = 1e3
    again = net(noisy, torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert torch.allclose(again["atoms"][0, :4], out["atoms"][0, :4])


def test_without_bonds_and_from_space() -> None:
    schedule = make_schedule("cosine")
    space = ProductSpace({
        "pos": CoMFreeSpace(make_schedule("polynomial")),
        "atoms": CategoricalSpace(4, schedule, "uniform"),
        "charges": CategoricalSpace(3, schedule, "uniform"),
    })  # fmt: skip
    net = EGNNDenoiserNet.from_space(space, ("atoms", "charges"), "bonds", hidden=8, n_layers=1)
    assert net.edge_key is None
    x = {k: v.float() for k, v in _state().items() if k != "bonds"}
    out = net(x, torch.tensor([0.1, 0.9]))
    assert set(out) == {"pos", "atoms", "charges"}


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="at least one categorical node component"):
        EGNNDenoiserNet({})
    with pytest.raises(ValueError, match="edge_key and edge_classes"):
        EGNNDenoiserNet(CLASSES, "bonds", 0)
    x = _state()
    del x["bonds"]
    with pytest.raises(ValueError, match="state components"):
        _net()(x, torch.tensor([0.5, 0.5], dtype=torch.float64))


def test_implementation_pyg_is_the_same_function_with_the_same_weights():
    """`implementation=pyg` (the task configs' `auto` where torch-geometric is installed) builds
    PyGEGNN: a torch-built state dict loads and the outputs agree to float64 rounding."""
    pytest.importorskip("torch_geometric")
    from sci_diffusion.nets.egnn_denoiser import EGNNDenoiserNet, resolve_implementation
    from sci_diffusion.nets.egnn_pyg import PyGEGNN

    assert resolve_implementation("auto") == "pyg"
    torch.manual_seed(0)
    kwargs = dict(node_classes={"atoms": 4, "charges": 3}, edge_key="bonds", edge_classes=5,
                  hidden=16, n_layers=2)  # fmt: skip
    plain = EGNNDenoiserNet(**kwargs).double()
    pyg = EGNNDenoiserNet(**kwargs, implementation="pyg").double()
    assert isinstance(pyg.egnn, PyGEGNN) and not isinstance(plain.egnn, PyGEGNN)
    pyg.load_state_dict(plain.state_dict())
    batch, n = 3, 6
    mask = torch.ones(batch, n, dtype=torch.bool)
    mask[0, 4:] = False
    x = {"pos": torch.randn(batch, n, 3, dtype=torch.float64),
         "atoms": torch.randn(batch, n, 4, dtype=torch.float64),
         "charges": torch.randn(batch, n, 3, dtype=torch.float64),
         "bonds": torch.randn(batch, n, n, 5, dtype=torch.float64)}  # fmt: skip
    x["bonds"] = (x["bonds"] + x["bonds"].transpose(1, 2)) / 2
    t = torch.rand(batch, dtype=torch.float64)
    a, b = plain(x, t, node_mask=mask), pyg(x, t, node_mask=mask)
    for key in a:
        torch.testing.assert_close(a[key][mask] if a[key].dim() == 3 else a[key],
                                   b[key][mask] if b[key].dim() == 3 else b[key],
                                   atol=1e-10, rtol=1e-10)  # fmt: skip


def test_implementation_names_the_choices():
    from sci_diffusion.core.errors import InvalidValueError
    from sci_diffusion.nets.egnn_denoiser import EGNNDenoiserNet

    with pytest.raises(InvalidValueError, match="auto, torch, pyg"):
        EGNNDenoiserNet({"atoms": 4}, implementation="jax")
