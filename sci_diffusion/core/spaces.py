"""Spaces: what a sample is and how Gaussian noise lives on it.

A space owns its schedule and three operations used by objectives and samplers alike:

* :meth:`noise` — a standard-normal draw *in the space* (masked, projected);
* :meth:`add_noise` — the forward marginal ``x_t = alpha x_0 + sigma eps``;
* :meth:`project` — put any tensor back on the space (padding zeroed, centre of mass removed).

Masks are boolean tensors covering the *leading* dimensions of a sample, e.g. a node mask of
shape (B, N) for positions of shape (B, N, 3). Padded entries are always zero and are never
touched by noise or by samplers. Categorical variables live in :mod:`.categorical`; products
of spaces in :class:`ProductSpace`.

Every space, continuous, categorical or product, satisfies :class:`SpaceProtocol` (what
samplers, objectives and :class:`~.parameterization.Denoiser` rely on); each component of a
space satisfies :class:`ComponentSpaceProtocol` (it also has a schedule and can re-noise).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from ._checks import check_mask, check_ndim
from .parameterization import expand_like
from .schedules import Schedule

State = Tensor | dict[str, Tensor]
Mask = Tensor | None | Mapping[str, Tensor | None]


@runtime_checkable
class SpaceProtocol(Protocol):
    """The interface every space satisfies: :class:`EuclideanSpace` (masked or not),
    :class:`CoMFreeSpace`, :class:`~.categorical.CategoricalSpace` and :class:`ProductSpace`.

    * ``is_categorical`` — whether states are one-hot (the network outputs logits);
    * ``components()`` — ``(key, component)`` pairs: ``(None, self)`` for a single space, the
      named components of a product;
    * ``validate(x, mask)`` — raise ``ValueError`` naming the fix if ``x`` does not belong;
    * ``project(x, mask)`` — put a state (or a prediction) back on the space;
    * ``prior(shape, mask, *, t, generator, device, dtype)`` — a draw at time ``t``.

    States, masks and shapes are tensors/tuples for single spaces and dicts of them for a
    product. ``isinstance(obj, SpaceProtocol)`` checks that the members exist.
    """

    is_categorical: bool

    def components(self) -> Iterator[tuple[str | None, Any]]: ...

    def validate(self, x: Any, mask: Any = None) -> None: ...

    def project(self, x: Any, mask: Any = None) -> Any: ...

    def prior(
        self,
        shape: Any,
        mask: Any = None,
        *,
        t: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Any: ...


@runtime_checkable
class ComponentSpaceProtocol(SpaceProtocol, Protocol):
    """A single (non-product) space: :class:`SpaceProtocol` plus its ``schedule`` and
    ``renoise(x_s, s, t, mask, generator)``, a draw from the forward transition
    ``q(x_t | x_s)`` for ``t >= s`` (used by RePaint-style resampling)."""

    schedule: Schedule

    def renoise(
        self,
        x_s: Tensor,
        s: Tensor,
        t: Tensor,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor: ...


def _mask_like(mask: Tensor, x: Tensor) -> Tensor:
    return mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim))


def masked_mean(values: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of ``values`` (B, ...) over valid elements only; ``mask`` covers leading dims.

    Every trailing (feature) entry of a valid element counts once, so a padded node contributes
    nothing and the result does not depend on how much padding a batch carries.
    """
    if mask is None:
        return values.mean()
    check_mask(mask, values)
    weights = _mask_like(mask, values).to(values.dtype).expand_as(values)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


class Space:
    """Base class: a continuous (Gaussian) space with a schedule. Subclasses refine it."""

    is_categorical = False

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule

    def validate(self, x: Tensor, mask: Tensor | None = None) -> None:
        """Raise ``ValueError`` if ``x`` (and ``mask``) do not belong to this space."""
        if not torch.is_floating_point(x):
            raise ValueError(f"{type(self).__name__} needs a float tensor, got dtype {x.dtype}")
        check_mask(mask, x)

    def project(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Zero the padded entries."""
        return x if mask is None else x * _mask_like(mask, x).to(x.dtype)

    def noise(
        self, like: Tensor, mask: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Standard Gaussian noise in the space, shaped like ``like``."""
        eps = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        return self.project(eps, mask)

    def add_noise(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """``alpha(t) x0 + sigma(t) eps``; ``t`` of shape (), (B,) or (B, ...leading)."""
        alpha, sigma = self.schedule.alpha_sigma(expand_like(t, x0))
        return alpha * x0 + sigma * eps

    def renoise(
        self,
        x_s: Tensor,
        s: Tensor,
        t: Tensor,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """A draw from ``q(x_t | x_s)`` for ``t >= s``: ``alpha_{t|s} x_s + sigma_{t|s} eps``
        with ``alpha_{t|s} = alpha_t / alpha_s`` and
        ``sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2`` (RePaint's jump back)."""
        a_s, s_s = self.schedule.alpha_sigma(expand_like(s, x_s).to(x_s.dtype))
        a_t, s_t = self.schedule.alpha_sigma(expand_like(t, x_s).to(x_s.dtype))
        ratio = a_t / a_s
        std = (s_t**2 - ratio**2 * s_s**2).clamp_min(0.0).sqrt()
        return self.project(ratio * x_s + std * self.noise(x_s, mask, generator), mask)

    def prior(
        self,
        shape: tuple[int, ...],
        mask: Tensor | None = None,
        *,
        t: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """A draw from the noise distribution at time ``t``: ``sigma(t) * eps``, shape ``shape``.

        The ``alpha(t) x0`` term is dropped (``alpha(1)`` is ~0 for every built-in schedule).
        """
        like = torch.empty(shape, device=device, dtype=dtype)
        _, sigma = self.schedule.alpha_sigma(torch.tensor(t, device=device, dtype=dtype))
        return sigma * self.noise(like, mask, generator)

    def degrees_of_freedom(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Dimensions of the space per sample, shape (B,) (the Gaussian likelihood's ``d``)."""
        per_element = x[0].numel() if mask is None else x[0].numel() // max(mask[0].numel(), 1)
        if mask is None:
            return torch.full((x.shape[0],), per_element, device=x.device)
        return mask.reshape(mask.shape[0], -1).sum(1) * per_element

    def components(self) -> Iterator[tuple[str | None, Space]]:
        yield None, self


class EuclideanSpace(Space):
    """Tensors of any shape (B, ...), optionally a masked variable-size set.

    For a set of up to N elements with D features use shape (B, N, D) and a node mask (B, N);
    trajectories are (B, T, D) with no mask (or a mask over T for ragged horizons).
    """


class CoMFreeSpace(Space):
    """3D point clouds (B, N, 3) on the zero-centre-of-mass subspace over valid nodes.

    Noise is projected onto the subspace (Hoogeboom et al. 2022; Satorras et al. 2021), which
    has ``(N_valid - 1) * 3`` dimensions; that is what :meth:`degrees_of_freedom` returns.
    """

    def validate(self, x: Tensor, mask: Tensor | None = None) -> None:
        super().validate(x, mask)
        check_ndim(x, 3, "positions", "(B, N, 3)")
        if x.shape[-1] != 3:
            raise ValueError(f"positions must have layout (B, N, 3); got shape {tuple(x.shape)}")
        if mask is not None and mask.ndim != 2:
            raise ValueError(f"node mask must have shape (B, N); got {tuple(mask.shape)}")

    def project(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            return x - x.mean(dim=1, keepdim=True)
        m = mask.unsqueeze(-1).to(x.dtype)
        count = m.sum(dim=1, keepdim=True).clamp_min(1.0)
        centre = (x * m).sum(dim=1, keepdim=True) / count
        return (x - centre) * m

    def degrees_of_freedom(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        n = torch.full((x.shape[0],), x.shape[1], device=x.device) if mask is None else mask.sum(1)
        return (n - 1).clamp_min(0) * 3


class ProductSpace:
    """A named product of spaces sampled jointly, e.g. a molecule =
    ``{"pos": CoMFreeSpace, "atoms": CategoricalSpace, "bonds": CategoricalSpace}``.

    States, denoiser outputs and masks are dicts keyed like ``spaces``; each component keeps its
    own schedule. Symmetric edge components (bond types) are symmetrised by their space.
    """

    is_categorical = False

    def __init__(self, spaces: Mapping[str, Any]) -> None:
        if not spaces:
            raise ValueError("ProductSpace needs at least one component")
        for key, sub in spaces.items():
            if isinstance(sub, ProductSpace) or not isinstance(sub, SpaceProtocol):
                raise ValueError(
                    f"ProductSpace component {key!r} must be a single space (EuclideanSpace, "
                    f"CoMFreeSpace, CategoricalSpace); got {type(sub).__name__}"
                )
        self.spaces = dict(spaces)

    def components(self) -> Iterator[tuple[str | None, Any]]:
        yield from self.spaces.items()

    def _masks(self, mask: Any) -> dict[str, Tensor | None]:
        if mask is not None and not isinstance(mask, Mapping):
            raise ValueError(
                f"a ProductSpace mask is a dict keyed like the components {sorted(self.spaces)}"
            )
        unknown = sorted(set(mask or {}) - set(self.spaces))
        if unknown:
            raise ValueError(f"mask keys {unknown} are not components {sorted(self.spaces)}")
        return {k: (mask or {}).get(k) for k in self.spaces}

    def validate(self, x: Any, mask: Any = None) -> None:
        """A dict with exactly the components' keys, each valid for its component."""
        if not isinstance(x, Mapping) or set(x) != set(self.spaces):
            raise ValueError(f"a ProductSpace state must be a dict with keys {sorted(self.spaces)}")
        masks = self._masks(mask)
        for k, sub in self.spaces.items():
            sub.validate(x[k], masks[k])

    def project(self, x: Any, mask: Any = None) -> dict[str, Tensor]:
        masks = self._masks(mask)
        return {k: self.spaces[k].project(v, masks[k]) for k, v in x.items()}

    def prior(
        self,
        shape: Mapping[str, tuple[int, ...]],
        mask: Any = None,
        *,
        t: float = 1.0,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> dict[str, Tensor]:
        """A draw per component; ``shape`` and ``mask`` are dicts keyed like the components."""
        if not isinstance(shape, Mapping) or set(shape) != set(self.spaces):
            raise ValueError(
                f"ProductSpace.prior needs a shape per component {sorted(self.spaces)}"
            )
        masks = self._masks(mask)
        return {
            k: sub.prior(
                tuple(shape[k]), masks[k], t=t, generator=generator, device=device, dtype=dtype
            )
            for k, sub in self.spaces.items()
        }

    def __getitem__(self, key: str) -> Space:
        return self.spaces[key]

    def __repr__(self) -> str:
        return f"ProductSpace({self.spaces!r})"
