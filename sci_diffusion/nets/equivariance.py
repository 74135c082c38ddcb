"""Test helpers for E(n)- and permutation-equivariant functions of batched point clouds.

In the spirit of e3nn's ``assert_equivariant``: every input of ``fn`` declares a *kind*, the
helper draws random group elements, transforms the inputs, and checks that the outputs
transform as their declared kinds say. All tensors are batched, with nodes on dimension 1:

=============  ==================  ==========================================================
kind           shape               transformation ``x -> g x`` (per sample of the batch)
=============  ==================  ==========================================================
``positions``  (B, N, ..., d)      rotated/reflected, translated, nodes permuted
``vectors``    (B, N, ..., d)      rotated/reflected (displacements: not translated), permuted
``scalars``    (B, N, ...)         invariant, nodes permuted
``edges``      (B, N, N, ...)      invariant, permuted on both node axes
``graph``      (B, ...)            invariant under everything (e.g. the time ``t``)
``mask``       (B, N) bool         the node mask (input only, at most one), permuted
=============  ==================  ==========================================================

Transforms: ``rotation`` (orthogonal, det +1), ``reflection`` (orthogonal, det -1),
``translation``, ``permutation`` of the nodes and ``padding`` (padded entries of every input
replaced by random values). Where a node mask is given, permutations shuffle the real nodes
among the real slots only (padding stays where it is, so layouts with padding at the end stay
valid) and outputs are compared on real entries only: what a function writes into padding rows
is its own business and is not checked here.

The module imports torch only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_ATOL",
    "KINDS",
    "TRANSFORMS",
    "assert_equivariant",
    "default_atol",
    "equivariance_errors",
    "permute_nodes",
    "random_orthogonal",
    "random_permutation",
    "rotate",
    "translate",
]

KINDS = ("positions", "vectors", "scalars", "edges", "graph", "mask")
NODE_KINDS = ("positions", "vectors", "scalars")
GEOMETRIC_KINDS = ("positions", "vectors")
TRANSFORMS = ("rotation", "reflection", "translation", "permutation", "padding")

DEFAULT_ATOL: dict[torch.dtype, float] = {
    torch.float64: 1e-9,
    torch.float32: 1e-4,
    torch.float16: 1e-2,
    torch.bfloat16: 5e-2,
}
"""Default absolute bounds on ``max |f(g x) - g f(x)|`` by the lowest output precision.

A correct network still differs between ``f(g x)`` and ``g f(x)`` by rounding: each of a few
hundred operations on O(1-10) values contributes about ``eps * |value|`` (float32 ``eps`` =
1.2e-7, float64 2.2e-16), i.e. ~1e-5 in float32 and ~1e-13 in float64. The bounds leave a
margin of ~10x (float32) and ~1e4x (float64) above that, and stay orders of magnitude below
the O(1e-2 .. 1) errors of a genuinely broken symmetry. Use float64 to test tightly.
"""

TRANSLATION_SCALE = 5.0
PADDING_SCALE = 10.0


# --------------------------------------------------------------------------- group elements
def random_orthogonal(
    batch: int,
    dim: int = 3,
    *,
    proper: bool = True,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Haar-random orthogonal matrices (batch, dim, dim) with det +1 (``proper``) or -1.

    QR of a Gaussian matrix with the signs of ``R``'s diagonal moved into ``Q`` is Haar
    distributed on O(d); flipping one column then fixes the determinant.
    """
    a = torch.randn(batch, dim, dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    wrong = torch.linalg.det(q) < 0 if proper else torch.linalg.det(q) > 0
    q[:, :, 0] = torch.where(wrong[:, None], -q[:, :, 0], q[:, :, 0])
    return q.to(dtype)


def random_permutation(
    batch: int,
    n: int,
    mask: Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random node permutations (batch, n): ``out[b, k]`` is the node moved to slot ``k``.

    With a node ``mask`` (batch, n) the real nodes are shuffled among the real slots and every
    padded slot keeps its own node, so the mask is unchanged by the permutation.
    """
    keys = torch.rand(batch, n, generator=generator)
    if mask is None:
        return keys.argsort(dim=1)
    mask = mask.cpu()
    index = torch.arange(n, dtype=keys.dtype).expand(batch, n)
    # Real nodes in random order first, then padded nodes in index order.
    order = torch.where(mask, keys, 2.0 + index / n).argsort(dim=1)
    # Real slots ascending first, then padded slots ascending: zipping the two keeps padding put.
    slots = torch.where(mask, index, n + index).argsort(dim=1)
    return torch.empty_like(order).scatter_(1, slots, order)


# --------------------------------------------------------------------------- applying them
def _node_view(perm: Tensor, t: Tensor, dim: int) -> Tensor:
    shape = [1] * t.ndim
    shape[0], shape[dim] = perm.shape
    return perm.reshape(shape).expand(t.shape)


def permute_nodes(t: Tensor, perm: Tensor, kind: str) -> Tensor:
    """Apply ``perm`` (B, N) to the node axis (``edges``: both node axes) of ``t``."""
    if kind == "graph":
        return t
    perm = perm.to(t.device)
    out = t.gather(1, _node_view(perm, t, 1))
    return out.gather(2, _node_view(perm, out, 2)) if kind == "edges" else out


def rotate(t: Tensor, rot: Tensor, kind: str) -> Tensor:
    """``x -> R x`` on the last axis of ``positions`` / ``vectors``; other kinds unchanged."""
    if kind not in GEOMETRIC_KINDS:
        return t
    return torch.einsum("bij,b...j->b...i", rot.to(t.device, torch.float64), t.double()).to(t.dtype)


def translate(t: Tensor, shift: Tensor, kind: str) -> Tensor:
    """``x -> x + s`` for ``positions`` (shift (B, d)); every other kind is unchanged."""
    if kind != "positions":
        return t
    shift = shift.to(t.device, torch.float64).reshape(t.shape[0], *([1] * (t.ndim - 2)), -1)
    return (t.double() + shift).to(t.dtype)


# --------------------------------------------------------------------------- structure
def _flatten_outputs(out: Any) -> dict[str, Tensor | None]:
    if out is None or isinstance(out, Tensor):
        return {"output": out}
    if isinstance(out, Mapping):
        return {str(k): v for k, v in out.items()}
    if isinstance(out, tuple) and hasattr(out, "_fields"):  # NamedTuple
        return dict(zip(out._fields, out, strict=True))
    if isinstance(out, Sequence):
        return {str(i): v for i, v in enumerate(out)}
    raise TypeError(f"fn must return a tensor, a tuple or a dict of tensors; got {type(out)}")


def _output_kinds(
    kinds: str | Sequence[str | None] | Mapping[str, str | None], names: list[str]
) -> dict[str, str | None]:
    if isinstance(kinds, str):
        if names != ["output"]:
            raise ValueError(f"fn returns {names}: give output_kinds as a sequence or a dict")
        return {"output": kinds}
    if isinstance(kinds, Mapping):
        return {name: kinds.get(name) for name in names}
    if len(kinds) != len(names):
        raise ValueError(f"fn returns {len(names)} outputs {names}; got {len(kinds)} kinds")
    return dict(zip(names, kinds, strict=True))


def _check_kind(name: str, kind: str | None, t: Tensor, batch: int, n: int, d: int | None) -> None:
    if kind not in KINDS:
        raise ValueError(f"{name!r}: unknown kind {kind!r}; accepted: {', '.join(KINDS)}")
    need = {"graph": 1, "edges": 3, "mask": 2}.get(kind, 2)
    lead = (batch,) + (n,) * (need - 1)
    if t.ndim < need or tuple(t.shape[:need]) != lead:
        raise ValueError(
            f"{name!r} of kind {kind!r} must start with shape {lead}; got {tuple(t.shape)}"
        )
    if kind in GEOMETRIC_KINDS and d is not None and t.shape[-1] != d:
        raise ValueError(f"{name!r} of kind {kind!r} must end with the coordinate dim {d}")
    if kind == "mask" and t.dtype != torch.bool:
        raise ValueError(f"the node mask {name!r} must be a bool tensor, got {t.dtype}")


def _sizes(inputs: Mapping[str, Tensor | None], kinds: Mapping[str, str]) -> tuple[int, int]:
    for kind in ("mask", *NODE_KINDS, "edges"):
        for name, t in inputs.items():
            if t is not None and kinds.get(name) == kind:
                return t.shape[0], t.shape[1]
    raise ValueError("equivariance needs at least one node-level input (B, N, ...) or a mask")


# --------------------------------------------------------------------------- padding
def _real(mask: Tensor | None, kind: str, t: Tensor) -> Tensor | None:
    """Boolean selector of the real entries of ``t`` (None: all are real)."""
    if mask is None or kind == "graph":
        return None
    mask = mask.to(t.device)
    sel = mask[:, :, None] & mask[:, None, :] if kind == "edges" else mask
    return sel.reshape(sel.shape + (1,) * (t.ndim - sel.ndim)).expand_as(t)


def _scramble_padding(t: Tensor, real: Tensor, generator: torch.Generator) -> Tensor:
    if torch.is_floating_point(t):
        noise = PADDING_SCALE * torch.randn(t.shape, generator=generator, dtype=torch.float64)
    else:
        high = int(t.max()) + 1 if t.numel() else 1
        noise = torch.randint(0, max(high, 1), t.shape, generator=generator)
    return torch.where(real, t, noise.to(t.device, t.dtype))


# --------------------------------------------------------------------------- the check
def _transform_inputs(
    transform: str,
    inputs: Mapping[str, Tensor | None],
    kinds: Mapping[str, str],
    mask: Tensor | None,
    sizes: tuple[int, int, int | None],
    generator: torch.Generator,
    translation_scale: float,
) -> tuple[dict[str, Tensor | None], Callable[[Tensor, str], Tensor]]:
    """Transformed inputs, and the map that the outputs must follow (``g`` on each kind)."""
    batch, n, d = sizes
    if transform in ("rotation", "reflection"):
        rot = random_orthogonal(batch, d or 3, proper=transform == "rotation", generator=generator)
        g: Callable[[Tensor, str], Tensor] = lambda t, kind: rotate(t, rot, kind)  # noqa: E731
    elif transform == "translation":
        shift = translation_scale * torch.randn(
            batch, d or 3, generator=generator, dtype=torch.float64
        )
        g = lambda t, kind: translate(t, shift, kind)  # noqa: E731
    elif transform == "permutation":
        perm = random_permutation(batch, n, mask, generator=generator)
        g = lambda t, kind: permute_nodes(t, perm, kind)  # noqa: E731
    else:  # padding: inputs scrambled where padded, outputs must not change
        out: dict[str, Tensor | None] = {}
        for name, t in inputs.items():
            real = None if t is None else _real(mask, kinds[name], t)
            keep = t is None or real is None or kinds[name] == "mask"
            out[name] = t if keep else _scramble_padding(t, real, generator)
        return out, lambda t, kind: t
    return {k: None if t is None else g(t, kinds[k]) for k, t in inputs.items()}, g


def _max_error(actual: Tensor, expected: Tensor, real: Tensor | None) -> float:
    diff = (actual.detach().double() - expected.detach().double()).abs()
    diff = torch.nan_to_num(diff, nan=float("inf"))  # NaN is a failure, not a pass
    if real is not None:
        diff = diff[real]
    return float(diff.max()) if diff.numel() else 0.0


def _applicable(
    transforms: Sequence[str] | None, has_geometry: bool, has_padding: bool
) -> list[str]:
    possible = {
        "rotation": has_geometry,
        "reflection": has_geometry,
        "translation": has_geometry,
        "permutation": True,
        "padding": has_padding,
    }
    if transforms is None:
        return [t for t in TRANSFORMS if possible[t]]
    for t in transforms:
        if t not in possible:
            raise ValueError(f"unknown transform {t!r}; accepted: {', '.join(TRANSFORMS)}")
        if not possible[t]:
            why = "no padded entries (mask)" if t == "padding" else "no positions/vectors input"
            raise ValueError(f"transform {t!r} cannot be tested: {why}")
    return list(transforms)


def _measure(
    fn: Callable[..., Any],
    inputs: Mapping[str, Tensor | None],
    input_kinds: Mapping[str, str],
    output_kinds: str | Sequence[str | None] | Mapping[str, str | None],
    transforms: Sequence[str] | None,
    trials: int,
    generator: torch.Generator | None,
    translation_scale: float,
) -> tuple[dict[str, dict[str, float]], dict[str, Tensor | None]]:
    """The errors of :func:`equivariance_errors` and the untransformed outputs."""
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    unknown = set(inputs) - set(input_kinds)
    if unknown:
        raise ValueError(f"input_kinds misses {sorted(unknown)}; kinds: {', '.join(KINDS)}")
    batch, n = _sizes(inputs, input_kinds)
    present = {k: t for k, t in inputs.items() if t is not None}
    geometric = [t for k, t in present.items() if input_kinds[k] in GEOMETRIC_KINDS]
    d = geometric[0].shape[-1] if geometric else None
    masks = [t for k, t in present.items() if input_kinds[k] == "mask"]
    if len(masks) > 1:
        raise ValueError("at most one input may have kind 'mask'")
    mask = masks[0] if masks else None
    for name, t in present.items():
        _check_kind(name, input_kinds[name], t, batch, n, d)
    todo = _applicable(transforms, d is not None, mask is not None and not bool(mask.all()))

    reference = _flatten_outputs(fn(**inputs))
    kinds = _output_kinds(output_kinds, list(reference))
    checked = {k: t for k, t in reference.items() if t is not None and kinds[k] is not None}
    for name, t in checked.items():
        _check_kind(f"output {name}", kinds[name], t, batch, n, d)

    errors: dict[str, dict[str, float]] = {}
    for transform in todo:
        errors[transform] = dict.fromkeys(checked, 0.0)
        for _ in range(trials):
            moved, g = _transform_inputs(
                transform, inputs, input_kinds, mask, (batch, n, d), generator, translation_scale
            )
            outputs = _flatten_outputs(fn(**moved))
            for name, ref in checked.items():
                kind = kinds[name]
                expected = g(ref.detach().double(), kind)
                err = _max_error(outputs[name], expected, _real(mask, kind, expected))
                errors[transform][name] = max(errors[transform][name], err)
    return errors, reference


def equivariance_errors(
    fn: Callable[..., Any],
    inputs: Mapping[str, Tensor | None],
    input_kinds: Mapping[str, str],
    output_kinds: str | Sequence[str | None] | Mapping[str, str | None],
    *,
    transforms: Sequence[str] | None = None,
    trials: int = 3,
    generator: torch.Generator | None = None,
    translation_scale: float = TRANSLATION_SCALE,
) -> dict[str, dict[str, float]]:
    """Measure ``max |f(g x) - g f(x)|`` over real entries, per transform and output.

    Parameters
    ----------
    fn
        Called as ``fn(**inputs)``; returns a tensor, a tuple/NamedTuple or a dict of tensors
        (``None`` entries are skipped). Must be deterministic (e.g. a module in eval mode).
    inputs
        Keyword arguments of ``fn``: tensors (batch first, nodes on dim 1) or ``None``.
    input_kinds
        The kind of every input (see the module docstring), e.g.
        ``{"x": "positions", "h": "scalars", "t": "graph", "mask": "mask"}``.
    output_kinds
        A kind for a single tensor output, a sequence parallel to a tuple output, or a dict
        by output name (NamedTuple field names or dict keys); a ``None`` kind (or a name
        missing from the dict) skips that output.
    transforms
        Subset of :data:`TRANSFORMS`; default: every one that applies (geometric transforms
        need a ``positions``/``vectors`` input, ``padding`` a mask with padded entries).
    trials
        Random group elements drawn per transform (``fn`` runs ``1 + trials * transforms``
        times).
    generator
        Source of all randomness (CPU); default ``torch.Generator().manual_seed(0)``.
    translation_scale
        Standard deviation of the random translations.

    Returns
    -------
    dict
        ``errors[transform][output_name]``: the largest absolute error over trials, in
        float64.

    Raises
    ------
    ValueError
        For unknown kinds or transforms, shapes that do not match their kinds, or a
        transform that cannot be tested with these inputs.
    """
    errors, _ = _measure(
        fn, inputs, input_kinds, output_kinds, transforms, trials, generator, translation_scale
    )
    return errors


def assert_equivariant(
    fn: Callable[..., Any],
    inputs: Mapping[str, Tensor | None],
    input_kinds: Mapping[str, str],
    output_kinds: str | Sequence[str | None] | Mapping[str, str | None],
    *,
    transforms: Sequence[str] | None = None,
    trials: int = 3,
    atol: float | None = None,
    generator: torch.Generator | None = None,
    translation_scale: float = TRANSLATION_SCALE,
) -> dict[str, dict[str, float]]:
    """Check that ``fn`` is equivariant; raise ``AssertionError`` naming every violation.

    Arguments as in :func:`equivariance_errors`; ``atol`` bounds every error (default: from
    :data:`DEFAULT_ATOL` for the lowest-precision floating output, see there for why; 0 for
    integer outputs). Returns the measured errors ``errors[transform][output_name]``.

    Examples
    --------
    >>> x = torch.randn(2, 5, 3)
    >>> errors = assert_equivariant(
    ...     lambda x: x - x.mean(1, keepdim=True), {"x": x}, {"x": "positions"}, "vectors"
    ... )
    >>> sorted(errors)
    ['permutation', 'reflection', 'rotation', 'translation']
    """
    errors, reference = _measure(
        fn, inputs, input_kinds, output_kinds, transforms, trials, generator, translation_scale
    )
    if atol is None:
        atol = default_atol(t for t in reference.values() if t is not None)
    failures = [
        f"  {transform}: output {name!r} max error {err:.3g} > atol {atol:.3g}"
        for transform, per_output in errors.items()
        for name, err in per_output.items()
        if not err <= atol
    ]
    if failures:
        raise AssertionError("not equivariant:\n" + "\n".join(failures))
    return errors


def default_atol(outputs: Iterable[Tensor]) -> float:
    """The bound :func:`assert_equivariant` uses for ``outputs``: the loosest entry of
    :data:`DEFAULT_ATOL` among their floating dtypes (0 when none is floating)."""
    dtypes = [t.dtype for t in outputs if torch.is_floating_point(t)]
    if not dtypes:
        return 0.0  # integer outputs must match exactly
    return max(DEFAULT_ATOL.get(dt, DEFAULT_ATOL[torch.float32]) for dt in dtypes)
