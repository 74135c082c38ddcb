"""The equivariance helper itself: it passes equivariant functions and catches broken ones."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from torch import Tensor

from sci_diffusion.nets.equivariance import (
    DEFAULT_ATOL,
    TRANSFORMS,
    assert_equivariant,
    equivariance_errors,
    permute_nodes,
    random_orthogonal,
    random_permutation,
)

B, N = 3, 6
KINDS = {"x": "positions", "mask": "mask"}
BROKEN = 0.1  # a genuine symmetry break is far above every rounding bound



def _inputs(dtype: torch.dtype = torch.float64) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[0, 4:] = False
    mask[2, 2:] = False
    x = torch.randn(B, N, 3, generator=g, dtype=dtype)
    return {"x": x.masked_fill(~mask[..., None], 0.0), "mask": mask}


def centre(x: Tensor, mask: Tensor) -> Tensor:
    """x minus its mean over real nodes, padding zero: the CoM-free projection."""
    m = mask[..., None].to(x.dtype)
    return (x - (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)) * m


def _failing(errors: dict[str, dict[str, float]]) -> set[str]:
    return {t for t, per in errors.items() if max(per.values()) > BROKEN}


def test_centering_passes_every_transform_tightly() -> None:
    errors = assert_equivariant(centre, _inputs(), KINDS, "vectors")
    assert list(errors) == list(TRANSFORMS)  # all five apply: geometry and padding exist
    assert max(e for per in errors.values() for e in per.values()) < 1e-13


def test_positions_translate_and_vectors_do_not() -> None:
    identity = lambda x, mask: x  # noqa: E731
    assert_equivariant(identity, _inputs(), KINDS, "positions")
    errors = equivariance_errors(identity, _inputs(), KINDS, "vectors")
    assert _failing(errors) == {"translation"}


def test_constant_vector_breaks_rotations_only() -> None:
    shift = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    fn = lambda x, mask: x + shift  # noqa: E731
    assert _failing(equivariance_errors(fn, _inputs(), KINDS, "positions")) == {
        "rotation",
        "reflection",
    }
    with pytest.raises(AssertionError, match=r"rotation: output 'output' max error"):
        assert_equivariant(fn, _inputs(), KINDS, "positions")


def test_absolute_coordinates_break_translation_only() -> None:
    fn = lambda x, mask: x.norm(dim=-1, keepdim=True)  # noqa: E731
    assert _failing(equivariance_errors(fn, _inputs(), KINDS, "scalars")) == {"translation"}
    with pytest.raises(AssertionError, match="translation"):
        assert_equivariant(fn, _inputs(), KINDS, "scalars")


def test_index_dependence_breaks_permutation_only() -> None:
    weights = torch.arange(1, N + 1, dtype=torch.float64)[None, :, None]
    fn = lambda x, mask: centre(x, mask) * weights  # noqa: E731
    assert _failing(equivariance_errors(fn, _inputs(), KINDS, "vectors")) == {"permutation"}
    with pytest.raises(AssertionError, match="permutation"):
        assert_equivariant(fn, _inputs(), KINDS, "vectors")


def test_pseudovector_breaks_reflection_only() -> None:
    def fn(x: Tensor, mask: Tensor) -> Tensor:  # a cross product is chiral
        y = centre(x, mask)
        axis = (y * y.square().sum(-1, keepdim=True)).sum(1, keepdim=True)
        return torch.cross(y, axis.expand_as(y), dim=-1)

    assert _failing(equivariance_errors(fn, _inputs(), KINDS, "vectors")) == {"reflection"}
    with pytest.raises(AssertionError, match="reflection"):
        assert_equivariant(fn, _inputs(), KINDS, "vectors")


def test_reading_padding_breaks_the_padding_check_only() -> None:
    fn = lambda x, mask: x - x.mean(1, keepdim=True)  # noqa: E731  (mean over padding too)
    assert _failing(equivariance_errors(fn, _inputs(), KINDS, "vectors")) == {"padding"}
    with pytest.raises(AssertionError, match="padding"):
        assert_equivariant(fn, _inputs(), KINDS, "vectors")


def test_edges_graph_and_integer_scalars() -> None:
    inputs = _inputs()
    inputs["z"] = torch.randint(1, 5, (B, N), generator=torch.Generator().manual_seed(2))
    kinds = {**KINDS, "z": "scalars"}

    def fn(x: Tensor, mask: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        pair = mask[:, :, None] & mask[:, None, :]
        dist = torch.cdist(x, x) * z[:, :, None] * z[:, None, :] * pair
        return dist, (centre(x, mask).norm(dim=-1) * z * mask).sum(1)

    assert_equivariant(fn, inputs, kinds, ("edges", "graph"), atol=1e-12)

    def upper(x: Tensor, mask: Tensor, z: Tensor) -> Tensor:  # not permutation equivariant
        return torch.triu(torch.cdist(x, x))

    with pytest.raises(AssertionError, match="permutation"):
        assert_equivariant(upper, inputs, kinds, "edges")


class _Out(NamedTuple):
    pos: Tensor
    norm: Tensor
    extra: Tensor | None


def test_structured_outputs_and_skipping() -> None:
    fn = lambda x, mask: _Out(centre(x, mask), centre(x, mask).norm(dim=-1), None)  # noqa: E731
    errors = assert_equivariant(fn, _inputs(), KINDS, {"pos": "vectors", "norm": "scalars"})
    assert set(errors["rotation"]) == {"pos", "norm"}
    as_dict = lambda x, mask: {"a": x, "b": x[:, 0, 0]}  # noqa: E731  (b: not checked)
    assert set(assert_equivariant(as_dict, _inputs(), KINDS, {"a": "positions"})["rotation"]) == {
        "a"
    }


def test_seeded_by_the_generator() -> None:
    fn = lambda x, mask: x + 0.3  # noqa: E731
    run = lambda seed: equivariance_errors(  # noqa: E731
        fn, _inputs(), KINDS, "positions", generator=torch.Generator().manual_seed(seed)
    )
    assert run(5) == run(5)
    assert run(5) != run(6)


def test_default_bound_follows_the_output_precision() -> None:
    def slightly_broken(x: Tensor, mask: Tensor) -> Tensor:  # 1e-6 absolute-coordinate leak
        return centre(x, mask) + 1e-6 * x[..., :1] * mask[..., None]

    for dtype in (torch.float32, torch.float64):
        inputs = _inputs(dtype)
        if DEFAULT_ATOL[dtype] > 1e-5:  # float32: the leak hides below rounding
            assert_equivariant(slightly_broken, inputs, KINDS, "vectors")
        else:
            with pytest.raises(AssertionError, match="translation"):
                assert_equivariant(slightly_broken, inputs, KINDS, "vectors")
    assert_equivariant(centre, _inputs(torch.float32), KINDS, "vectors")


def test_nan_outputs_fail() -> None:
    fn = lambda x, mask: x * float("nan")  # noqa: E731
    with pytest.raises(AssertionError):
        assert_equivariant(fn, _inputs(), KINDS, "positions", transforms=("permutation",))


def test_input_errors_are_value_errors() -> None:
    inputs = _inputs()
    with pytest.raises(ValueError, match="unknown kind"):
        equivariance_errors(centre, inputs, {"x": "spinor", "mask": "mask"}, "vectors")
    with pytest.raises(ValueError, match="input_kinds misses"):
        equivariance_errors(centre, inputs, {"x": "positions"}, "vectors")
    with pytest.raises(ValueError, match="must start with shape"):
        equivariance_errors(lambda x, mask: x[:, :2], inputs, KINDS, "vectors")
    with pytest.raises(ValueError, match="unknown transform"):
        equivariance_errors(centre, inputs, KINDS, "vectors", transforms=("shear",))
    full = {"x": inputs["x"], "mask": torch.ones(B, N, dtype=torch.bool)}
    with pytest.raises(ValueError, match="no padded entries"):
        equivariance_errors(centre, full, KINDS, "vectors", transforms=("padding",))
    assert "padding" not in equivariance_errors(centre, full, KINDS, "vectors")


def test_group_elements() -> None:
    g = torch.Generator().manual_seed(0)
    for proper, det in ((True, 1.0), (False, -1.0)):
        q = random_orthogonal(8, 3, proper=proper, generator=g)
        assert torch.allclose(q @ q.transpose(1, 2), torch.eye(3, dtype=q.dtype), atol=1e-12)
        assert torch.allclose(torch.linalg.det(q), torch.full((8,), det, dtype=q.dtype))
    mask = _inputs()["mask"]
    perm = random_permutation(B, N, mask, generator=g)
    assert torch.equal(perm.sort(dim=1).values, torch.arange(N).expand(B, N))
    assert torch.equal(perm[~mask], torch.arange(N).expand(B, N)[~mask])  # padding stays put
    assert torch.equal(permute_nodes(mask, perm, "scalars"), mask)
