"""Samplers: stateless functions with one signature.

    sample_X(denoise, x, times, *, space, mask=None, generator=None, callback=None,
             constraint=None, check_inputs=True, resample=0, **options) -> x_0 sample

Every sampler shares the arguments documented once in :data:`SAMPLER_ARGUMENTS` (and in
:func:`sample`'s docstring); a sampler adds only its own options (:data:`SAMPLER_OPTIONS`).
An option a sampler does not take raises :class:`SamplerOptionError` (a ``ValueError``, and a
``TypeError`` for code that caught Python's own error) naming the ones it does take.

The loop body never reads a tensor value on the host (no ``.item()``, no data-dependent
``if``): endpoint cases are resolved with ``torch.where``. Input checks run once, before it.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

from ._checks import accepts_keyword, choose
from ._grid import grid_entry, schedule_key
from .categorical import CategoricalSpace
from .errors import InvalidValueError
from .parameterization import BoundDenoiser, Denoiser, _ScheduleOnly, expand_like
from .schedules import Schedule
from .spaces import EuclideanSpace, ProductSpace, Space, SpaceProtocol, State

Denoise = Callable[..., State]
"""``denoise(x_t, t) -> x_0`` or ``denoise(x_t, t, mask=...) -> x_0`` (see ``mask``)."""
Callback = Callable[["SamplerStep"], None]
Constraint = Callable[[State, Tensor], State]
T = TypeVar("T")
_Grid = tuple[Tensor, Tensor, tuple[Tensor, ...], tuple[Tensor, ...]]
"""``(alpha, sigma)`` on a grid and their per-step views."""
_Terms = tuple[
    str, Callable[..., Any], dict[str, Any], list[Tensor], tuple[Tensor, ...],
    tuple[Tensor, ...], list["Tensor | None"],
]  # fmt: skip
"""``_Problem.conversion_terms``: prediction, network call, its keywords, per-step times,
alphas, sigmas, v-prediction denominators."""
_SPACE_TYPES = (Space, CategoricalSpace, ProductSpace)
"""The core's spaces (an ``isinstance`` against them is cheaper than the protocol check)."""

SAMPLER_ARGUMENTS = """\
Arguments shared by every sampler::

    sample_X(denoise, x, times, *, space, mask=None, generator=None, callback=None,
             constraint=None, check_inputs=True, resample=0, **options)

* ``denoise(x_t, t) -> x_0`` — the data-prediction convention (wrap a network with
  :class:`~sci_diffusion.core.parameterization.Denoiser`); for categorical components it
  returns probabilities ``p(x_0 | x_t)`` of shape (B, ..., K). If its signature names a
  ``mask`` parameter (a ``Denoiser`` does) it is called ``denoise(x_t, t, mask=mask)``, with
  ``mask`` exactly as given here (checked once, not per call).
* ``x`` — the state at ``times[0]`` (from ``space.prior``): a tensor, or a dict of tensors for
  a :class:`~sci_diffusion.core.spaces.ProductSpace`, whose components are updated jointly
  (categorical ones by their exact ancestral step, whatever the continuous rule).
* ``times`` — a non-increasing grid of shape (N+1,), (N+1, B) for per-sample times or
  (N+1, B, ...) for per-element times (single-tensor states), in [0, 1]. Any float dtype:
  schedule coefficients are computed in each state component's dtype, and the output keeps
  the state's dtype.
* ``space`` — any :class:`~sci_diffusion.core.spaces.SpaceProtocol`.
* ``mask`` — a bool tensor over leading dims (a dict of them for a product); padded entries
  stay exactly zero.
* ``generator`` — a ``torch.Generator`` for every random draw (determinism).
* ``callback(step)`` — called after every step with a :class:`SamplerStep`.
* ``constraint(x, s)`` — applied to the state after every step (e.g. inpainting).
* ``check_inputs`` — ``False`` skips the one-time value checks (sync-free mode).
* ``resample`` — RePaint's resampling (Lugmayr et al. 2022, jump length 1): after each step
  ``t -> s`` the state is re-noised back to ``t`` with the forward transition
  ``q(x_t | x_s)`` and the step is redone, ``resample`` extra times (cost ``(1 + resample)``
  times the NFE). With ``constraint`` (inpainting) this lets the free part follow the fixed
  one; see :class:`~sci_diffusion.core.guidance.Inpainting`.
"""

SAMPLER_OPTIONS = """\
| sampler | options (default) |
|---|---|
| ``ddpm``, ``categorical`` | none |
| ``ddim`` | ``eta=0.0`` (>= 0; 0 = probability-flow ODE, 1 = DDPM's variance) |
| ``dpm_solver_pp_2m`` | none |
| ``euler``, ``heun`` | ``churn=0.0`` (>= 0, EDM's S_churn), ``s_tmin=0.0``, \
``s_tmax=inf`` (noise-level window of churn), ``s_noise=1.0`` |
| ``flow_euler``, ``flow_heun`` | none |
| ``euler_maruyama`` | none |
"""


class SamplerOptionError(InvalidValueError, TypeError):
    """A sampler got an argument it does not take. A ``ValueError`` (the core's convention for
    bad input) that is also a ``TypeError`` (what Python raised before)."""


@dataclass(frozen=True)
class SamplerStep:
    """What a callback sees after step ``i`` (from time ``t`` to ``s``)."""

    i: int
    t: Tensor
    s: Tensor
    x: State
    x0: State


class _Problem:
    """Uniform dict view of single-tensor and product-space sampling problems.

    Everything that does not change during the loop is decided here, once: the grid's
    checks and derived tensors (shared between calls on the same CPU grid, see
    :mod:`._grid`), how the denoiser is called, which components are continuous.
    """

    def __init__(
        self,
        denoise: Denoise,
        x: State,
        times: Tensor,
        space: Any,
        mask: Any = None,
        constraint: Constraint | None = None,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
        check_inputs: bool = True,
    ) -> None:
        if not isinstance(space, _SPACE_TYPES) and (
            isinstance(space, Schedule) or not isinstance(space, SpaceProtocol)
        ):
            raise ValueError(
                "space must be a space (EuclideanSpace(schedule), CoMFreeSpace, "
                f"CategoricalSpace, ProductSpace); got {type(space).__name__}"
            )
        self.generator = generator
        self.callback = callback
        self.single = not isinstance(space, ProductSpace)
        if self.single:
            if not isinstance(x, Tensor):
                raise ValueError("a single space needs a tensor state; use ProductSpace for dicts")
            self.spaces = {"x": space}
            self.masks = {"x": mask}
        else:
            if not isinstance(x, dict) or set(x) != set(space.spaces):
                keys = sorted(space.spaces)
                raise ValueError(f"a ProductSpace state must be a dict with keys {keys}")
            self.spaces = dict(space.spaces)
            masks = mask or {}
            unknown = sorted(set(masks) - set(self.spaces))
            if unknown:
                raise ValueError(f"mask keys {unknown} are not components {sorted(self.spaces)}")
            self.masks = {k: masks.get(k) for k in self.spaces}
        if times.ndim < 1 or times.shape[0] < 2:
            raise ValueError(
                f"times must have shape (N+1, ...) with N >= 1; got {tuple(times.shape)}"
            )
        self.x = self.wrap(x)
        # the checks read tensor values: once, before the loop (and once per shared grid)
        self._entry = grid_entry(times, check_inputs)
        self.times = self._entry.times
        self.steps = self._entry.steps  # times[i] as views, made once
        if check_inputs:
            for key, sub in self.spaces.items():
                sub.validate(self.x[key], self.masks[key])
        self.check_inputs = check_inputs
        # unmasked Euclidean components: projecting returns the tensor itself (skipped)
        if self.single:  # the same as below, without building comprehensions every call
            self._identity = {"x": type(space) in (Space, EuclideanSpace) and mask is None}
            categorical = space.is_categorical
            self._continuous, self._categorical = ([], ["x"]) if categorical else (["x"], [])
        else:
            self._identity = {
                k: type(s) in (Space, EuclideanSpace) and self.masks[k] is None
                for k, s in self.spaces.items()
            }
            self._continuous = [k for k, s in self.spaces.items() if not s.is_categorical]
            self._categorical = [k for k, s in self.spaces.items() if s.is_categorical]
        self._local: dict[tuple[str, str], Any] = {}
        self._fingerprints: dict[str, tuple | None] = {}
        self._grids: dict[str, _Grid] = {}
        self._denoise = denoise
        self._constraint = constraint
        # How the denoiser is called, decided once: with the mask when it takes one, and
        # through a Denoiser's precomputed-coefficient fast path for continuous single spaces.
        takes_mask = type(denoise) in (Denoiser, BoundDenoiser) or accepts_keyword(denoise, "mask")
        self._mask_kwargs = (
            {"mask": self.masks["x"] if self.single else dict(self.masks)} if takes_mask else {}
        )
        denoise_at = getattr(denoise, "denoise_at", None)
        self._denoise_at = (
            denoise_at
            if self.single and denoise_at is not None and not self.spaces["x"].is_categorical
            else None
        )
        if (
            self._denoise_at is not None
            and self._mask_kwargs
            and type(denoise) not in (Denoiser, BoundDenoiser)
            and not accepts_keyword(self._denoise_at, "mask")
        ):
            self._denoise_at = None
        self._fast = self._fast_denoise() if self._denoise_at is not None else None

    def wrap(self, x: State) -> dict[str, Tensor]:
        return {"x": x} if self.single else dict(x)  # type: ignore[arg-type]

    def unwrap(self, x: dict[str, Tensor]) -> State:
        return x["x"] if self.single else x

    def continuous(self) -> list[str]:
        return self._continuous

    def categorical(self) -> list[str]:
        return self._categorical

    def time_like(self, key: str, t: Tensor) -> Tensor:
        """``t`` broadcastable against component ``key`` and in its dtype."""
        return expand_like(t, self.x[key]).to(self.x[key].dtype)

    def memo(self, name: str, key: str, build: Callable[[], T]) -> T:
        """``build()`` once for component ``key``: shared with later calls on the same grid
        when the component's schedule is a built-in one (its constructor arguments then say
        everything about it), else kept for this call. ``build`` may read only the grid and
        the component's schedule, dtype and number of dimensions."""
        fingerprint = self._fingerprint(key)
        if fingerprint is None:
            local = (name, key)
            if local not in self._local:
                self._local[local] = build()
            return self._local[local]  # type: ignore[no-any-return]
        return self._entry.memo((name, fingerprint), build)

    def _fingerprint(self, key: str) -> tuple | None:
        """What a shared value of component ``key`` depends on besides the grid (read once
        per call), or ``None`` when it may not be shared."""
        try:
            return self._fingerprints[key]
        except KeyError:
            pass
        fingerprint = None
        if self._entry.shared:
            schedule = schedule_key(self.spaces[key].schedule)
            x = self.x[key]
            fingerprint = None if schedule is None else (schedule, x.dtype, x.ndim)
        self._fingerprints[key] = fingerprint
        return fingerprint

    def grid(self, key: str) -> tuple[Tensor, Tensor]:
        """``(alpha, sigma)`` on the whole grid in the component's dtype, shape (N+1, ...)
        broadcastable per step against component ``key``. Evaluated once, so the loop does no
        schedule arithmetic."""
        if key not in self._grids:
            self._grids[key] = self.memo("alpha_sigma", key, lambda: self._alpha_sigma(key))
        return self._grids[key][0], self._grids[key][1]

    def _alpha_sigma(self, key: str) -> _Grid:
        times = self.times.to(self.x[key].dtype)
        alpha, sigma = self.spaces[key].schedule.alpha_sigma(times)
        shape = alpha.shape + (1,) * (self.x[key].ndim - self.times.ndim + 1)
        alpha, sigma = alpha.reshape(shape), sigma.reshape(shape)
        return alpha, sigma, alpha.unbind(0), sigma.unbind(0)

    def at(self, key: str, i: int) -> tuple[Tensor, Tensor]:
        """``(alpha, sigma)`` at ``times[i]`` for component ``key`` (a view; no tensor ops)."""
        if key not in self._grids:
            self.grid(key)
        _, _, alphas, sigmas = self._grids[key]
        return alphas[i], sigmas[i]

    def _fast_denoise(self) -> Callable[[Tensor, int], Tensor] | None:
        """``x0(x_t, i)`` for a :class:`Denoiser` (or a bound one) of a continuous single
        space whose prediction converts with ``(alpha, sigma)``: its network output is
        converted with the grid's terms, computed once (the same operations as
        :meth:`Denoiser.denoise_at` per step, so bitwise the same result). ``None`` when the
        denoiser is anything else (it is then called through ``denoise_at``)."""
        terms = self.conversion_terms()
        if terms is None:
            return None
        prediction, net, cond, t_batch, alphas, sigmas, denominators = terms
        if prediction == "x0":
            convert = lambda x_t, i: net(x_t, t_batch[i], **cond)  # noqa: E731
        elif prediction == "epsilon":
            convert = lambda x_t, i: (  # noqa: E731
                (x_t - sigmas[i] * net(x_t, t_batch[i], **cond)) / alphas[i]
            )
        else:

            def convert(x_t: Tensor, i: int) -> Tensor:
                x0 = alphas[i] * x_t - sigmas[i] * net(x_t, t_batch[i], **cond)
                return x0 if denominators[i] is None else x0 / denominators[i]

        if self._identity["x"]:
            return convert
        project, mask = self.spaces["x"].project, self.masks["x"]
        return lambda x_t, i: project(convert(x_t, i), mask)

    def conversion_terms(self) -> _Terms | None:
        """What :meth:`_fast_denoise` converts with: ``(prediction, net, cond, t_batch,
        alphas, sigmas, denominators)``, where ``net(x_t, t_batch[i], **cond)`` is the
        denoiser's network output at ``times[i]`` and the per-step views convert it to x0
        (v-prediction divides by ``denominators[i]`` unless it is ``None``). ``None`` when the
        denoiser has no such fast path."""
        denoise = self._denoise
        if type(denoise) is BoundDenoiser:
            inner, kwargs = denoise.denoiser, denoise._cond(self._mask_kwargs.get("mask"))
        elif type(denoise) is Denoiser:
            inner, kwargs = denoise, dict(self._mask_kwargs)
        else:
            return None
        if not isinstance(inner, Denoiser) or type(inner).denoise_at is not Denoiser.denoise_at:
            return None
        if not inner._fast_path:
            return None
        prediction = inner.prediction["x"]
        net, cond = _network_call(inner, kwargs)
        alpha, sigma = self.grid("x")
        _, _, alphas, sigmas = self._grids["x"]
        x = self.x["x"]
        if self.times.ndim == 1:  # what network_output would do per call: t.expand(B)
            batch = x.shape[0]
            t_batch = self._entry.memo(
                ("t_batch", batch), lambda: [t.expand(batch) for t in self.steps]
            )
        else:
            t_batch = list(self.steps)
        denominators: list[Tensor | None] = (
            self.memo("v_denominator", "x", lambda: _denominators(alpha, sigma))
            if prediction == "v"
            else [None] * len(alphas)
        )
        return prediction, net, cond, t_batch, alphas, sigmas, denominators

    def denoise(self, x: dict[str, Tensor], t: Tensor, i: int | None = None) -> dict[str, Tensor]:
        """The x0 estimate at ``t`` (``= times[i]`` when ``i`` is given: a :class:`Denoiser`
        then reuses the grid's coefficients instead of re-evaluating the schedule)."""
        if i is not None and self._fast is not None:
            return {"x": self._fast(x["x"], i)}
        if self._denoise_at is not None and i is not None:
            out = {"x": self._denoise_at(x["x"], t, *self.at("x", i), **self._mask_kwargs)}
        else:
            out = self.wrap(self._denoise(self.unwrap(x), t, **self._mask_kwargs))
        return {k: self.spaces[k].project(v, self.masks[k]) for k, v in out.items()}

    def finish_step(self, x: dict[str, Tensor], s: Tensor) -> dict[str, Tensor]:
        x = {
            k: v if self._identity[k] else self.spaces[k].project(v, self.masks[k])
            for k, v in x.items()
        }
        if self._constraint is not None:
            x = self.wrap(self._constraint(self.unwrap(x), s))
        return x

    def alpha_sigma(self, key: str, t: Tensor) -> tuple[Tensor, Tensor]:
        return self.spaces[key].schedule.alpha_sigma(self.time_like(key, t))

    def step_categorical(
        self, x: dict[str, Tensor], x0: dict[str, Tensor], t: Tensor, s: Tensor
    ) -> None:
        for k in self._categorical:
            x[k] = self.spaces[k].step(x[k], x0[k], t, s, self.masks[k], self.generator)

    def noise(self, key: str, like: Tensor) -> Tensor:
        return self.spaces[key].noise(like, self.masks[key], self.generator)

    def renoise(self, x: dict[str, Tensor], s: Tensor, t: Tensor) -> dict[str, Tensor]:
        """Every component drawn from its forward transition ``q(x_t | x_s)``."""
        return {
            k: self.spaces[k].renoise(v, s, t, self.masks[k], self.generator) for k, v in x.items()
        }

    def report(self, i: int, t: Tensor, s: Tensor, x: dict, x0: dict) -> None:
        if self.callback is not None:
            self.callback(SamplerStep(i, t, s, self.unwrap(x), self.unwrap(x0)))

    def ends_at_data(self) -> bool:
        """Whether the grid ends at sigma = 0 for every continuous component. Read once,
        before the loop (and kept with a shared grid); without input checks (sync-free mode)
        assume it does not, unless a checked call on the same shared grid read it."""
        keys = self.continuous()
        last = self.times.shape[0] - 1

        def read() -> bool:
            return all(bool((self.at(k, last)[1] == 0).all()) for k in keys)

        fingerprints = tuple(self._fingerprint(k) for k in keys)
        if None in fingerprints:
            return read() if self.check_inputs else False
        if self.check_inputs:
            return self._entry.memo(("ends_at_data", fingerprints), read)
        return bool(self._entry.peek(("ends_at_data", fingerprints), False))

    def require_positive_alpha(self, t0: Tensor, sampler: str) -> None:
        if not self.check_inputs:
            return
        for k in self.continuous():
            alpha, _ = self.alpha_sigma(k, t0)
            if bool((alpha <= 0).any()):
                raise ValueError(
                    f"{sampler} divides by alpha, which is 0 at times[0] for the "
                    f"{type(self.spaces[k].schedule).__name__}; start below t=1 or use "
                    "'flow_heun' / 'ddim'"
                )


def _network_call(inner: Denoiser, kwargs: dict[str, Any]) -> tuple[Callable[..., Any], dict]:
    """``(call, cond)``: ``call(x_t, t, **cond)`` is ``inner.network_output(x_t, t, **kwargs)``
    for a batched ``t``, with what that decides on every call (mask keyword, projection)
    decided once; usually ``call`` is the network itself. The same call, the same result."""
    if type(inner).network_output is not Denoiser.network_output or (
        inner.prediction.get("x") == "edm"
    ):
        return inner.network_output, kwargs
    mask = kwargs.get("mask")
    cond = {k: v for k, v in kwargs.items() if k != "mask"}
    if inner.mask_keyword is not None:
        cond[inner.mask_keyword] = mask
    net, space = inner.net, inner.components.get("x")
    if (
        space is None
        or space.is_categorical
        or isinstance(mask, dict)
        or (mask is None and type(space) in (Space, EuclideanSpace, _ScheduleOnly))
    ):  # Denoiser._project returns the output itself
        return net, cond
    project = space.project

    def projected(x_t: Tensor, t: Tensor, **cond: Any) -> Any:
        return project(net(x_t, t, **cond), mask)

    return projected, cond


def _denominators(alpha: Tensor, sigma: Tensor) -> list[Tensor | None]:
    """``alpha^2 + sigma^2`` per step of the grid (v-prediction's x0 divides by it); ``None``
    where it is exactly 1 on a CPU grid (dividing by 1 returns the dividend bit for bit, so
    the division is skipped; a device grid's values are not read: that would synchronise)."""
    denominators = alpha**2 + sigma**2
    per_step: list[Tensor | None] = list(denominators.unbind(0))
    if denominators.device.type == "cpu":
        ones = (denominators == 1).reshape(denominators.shape[0], -1).all(1).tolist()
        per_step = [None if one else d for one, d in zip(ones, per_step, strict=True)]
    return per_step


def _eps(x: Tensor, x0: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    return (x - alpha * x0) / sigma


# A step takes the state at times[i] to times[i + 1] (projected and constrained) and returns it
# with the x0 estimate it used.
Step = Callable[[dict, int, Tensor, Tensor], tuple[dict, dict]]
# An update fills the continuous components of ``new`` (categorical ones already stepped).
Update = Callable[[_Problem, dict, dict, dict, int, Tensor, Tensor], None]


def _single_evaluation(problem: _Problem, update: Update) -> Step:
    """The step of samplers that call the network once per step."""
    categorical = bool(problem.categorical())
    fast = problem._fast
    if fast is not None and problem.single and not categorical:  # the same, fewer calls
        finish = problem.finish_step
        plain = problem._identity["x"] and problem._constraint is None  # finish: a no-op

        def single(state: dict, i: int, t: Tensor, s: Tensor) -> tuple[dict, dict]:
            x0 = {"x": fast(state["x"], i)}
            new: dict[str, Tensor] = {}
            update(problem, state, x0, new, i, t, s)
            return (new if plain else finish(new, s)), x0

        return single

    def step(state: dict, i: int, t: Tensor, s: Tensor) -> tuple[dict, dict]:
        x0 = problem.denoise(state, t, i)
        new = dict(state)
        if categorical:
            problem.step_categorical(new, x0, t, s)
        update(problem, state, x0, new, i, t, s)
        return problem.finish_step(new, s), x0

    return step


def _loop(problem: _Problem, step: Step, resample: int) -> State:
    """The loop shared by every sampler, with RePaint's resampling."""
    steps, state, callback = problem.steps, problem.x, problem.callback
    for i in range(len(steps) - 1):
        t, s = steps[i], steps[i + 1]
        new, x0 = step(state, i, t, s)
        for _ in range(resample):
            new, x0 = step(problem.renoise(new, s, t), i, t, s)
        state = new
        if callback is not None:
            problem.report(i, t, s, state, x0)
    return problem.unwrap(state)


_COMMON = [
    inspect.Parameter("denoise", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="Denoise"),
    inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="State"),
    inspect.Parameter("times", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="Tensor"),
    inspect.Parameter("space", inspect.Parameter.KEYWORD_ONLY, annotation="SpaceProtocol"),
    inspect.Parameter("mask", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="Any"),
    inspect.Parameter(
        "generator", inspect.Parameter.KEYWORD_ONLY, default=None,
        annotation="torch.Generator | None",
    ),
    inspect.Parameter(
        "callback", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="Callback | None"
    ),
    inspect.Parameter(
        "constraint", inspect.Parameter.KEYWORD_ONLY, default=None,
        annotation="Constraint | None",
    ),
    inspect.Parameter(
        "check_inputs", inspect.Parameter.KEYWORD_ONLY, default=True, annotation="bool"
    ),
    inspect.Parameter("resample", inspect.Parameter.KEYWORD_ONLY, default=0, annotation="int"),
]  # fmt: skip
_COMMON_NAMES = [p.name for p in _COMMON]


def _sampler(factory: Callable[..., Step]) -> Callable[..., State]:
    """Build the public sampler from ``factory(problem, **options) -> step``.

    The public function has the shared signature (:data:`SAMPLER_ARGUMENTS`) followed by the
    factory's keyword options, visible to ``inspect.signature`` and ``help``; its docstring is
    the factory's plus a pointer to the shared arguments.
    """
    options = list(inspect.signature(factory).parameters.values())[1:]
    signature = inspect.Signature(_COMMON + options, return_annotation="State")
    name = factory.__name__.removeprefix("sample_")
    accepted = ", ".join(p.name for p in options) or "none"

    keywords = frozenset(signature.parameters) - {"denoise", "x", "times"}
    defaults = {
        p.name: p.default
        for p in signature.parameters.values()
        if p.default is not inspect.Parameter.empty
    }

    @functools.wraps(factory)
    def sampler(*args: Any, **kwargs: Any) -> State:
        if len(args) == 3 and "space" in kwargs and kwargs.keys() <= keywords:
            # the usual call: what signature.bind + apply_defaults give, without their cost
            a = {**defaults, "denoise": args[0], "x": args[1], "times": args[2], **kwargs}
        else:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as error:
                raise SamplerOptionError(
                    f"sampler {name!r}: {error}; its own options: {accepted}; arguments of "
                    f"every sampler: {', '.join(_COMMON_NAMES)}"
                ) from None
            bound.apply_defaults()
            a = bound.arguments
        resample = a["resample"]
        if isinstance(resample, bool) or not isinstance(resample, int) or resample < 0:
            raise ValueError(
                f"resample must be an int >= 0 (extra passes per step); got {resample!r}"
            )
        problem = _Problem(
            a["denoise"], a["x"], a["times"], a["space"], a["mask"], a["constraint"],
            a["generator"], a["callback"], a["check_inputs"],
        )  # fmt: skip
        step = factory(problem, **{p.name: a[p.name] for p in options})
        return _loop(problem, step, resample)

    del sampler.__wrapped__  # the public signature is the shared one, not the factory's
    sampler.__signature__ = signature  # type: ignore[attr-defined]
    sampler.__doc__ = (
        f"{inspect.cleandoc(factory.__doc__ or '')}\n\nOptions: {accepted}. The shared arguments "
        "(denoise, x, times, space, mask, generator, callback, constraint, check_inputs, "
        "resample) are documented in :data:`SAMPLER_ARGUMENTS` and :func:`sample`."
    )
    sampler.options = {p.name: p.default for p in options}  # type: ignore[attr-defined]
    return sampler


@_sampler
def sample_ddpm(p: _Problem) -> Step:
    """DDPM ancestral sampling (Ho et al. 2020): draw ``x_s ~ q(x_s | x_t, x_0 = D(x_t))``.

    For a general Gaussian path ``alpha_{t|s} = alpha_t / alpha_s``,
    ``sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2`` and the posterior has mean
    ``(alpha_{t|s} sigma_s^2 x_t + alpha_s sigma_{t|s}^2 x_0) / sigma_t^2`` and variance
    ``sigma_{t|s}^2 sigma_s^2 / sigma_t^2``. Categorical components use their exact posterior,
    so this is also the categorical ancestral sampler.
    """

    def coefficients(k: str) -> tuple[tuple[Tensor, ...], ...]:
        """Per step ``(a_ts s_s^2, a_s var_ts, s_t^2, std)``: the mean is
        ``(c_x x_t + c_0 x_0) / s_t^2``; elementwise the same operations as per step."""
        alpha, sigma = p.grid(k)
        a_t, s_t, a_s, s_s = alpha[:-1], sigma[:-1], alpha[1:], sigma[1:]
        a_ts = a_t / a_s
        var_ts = (s_t**2 - a_ts**2 * s_s**2).clamp_min(0.0)
        std = (var_ts * s_s**2 / s_t**2).sqrt()
        terms = (a_ts * s_s**2, a_s * var_ts, s_t**2, std)
        return tuple(term.unbind(0) for term in terms)

    per_key = {k: p.memo("ddpm", k, functools.partial(coefficients, k)) for k in p.continuous()}

    def update(p: _Problem, x: dict, x0: dict, new: dict, i: int, t: Tensor, s: Tensor) -> None:
        for k, (c_x, c_0, s_t2, std) in per_key.items():
            mean = (c_x[i] * x[k] + c_0[i] * x0[k]) / s_t2[i]
            new[k] = mean + std[i] * p.noise(k, x[k])

    return _single_evaluation(p, update)


def _ddim_coefficients(p: _Problem, k: str) -> tuple[tuple[Tensor, ...], ...]:
    """Deterministic DDIM per step: ``x_s = c1 x_t + c2 x0``, ``(c1s, c2s)`` on the grid."""
    alpha, sigma = p.grid(k)
    c1 = sigma[1:] / sigma[:-1]
    return c1.unbind(0), (alpha[1:] - c1 * alpha[:-1]).unbind(0)


@_sampler
def sample_ddim(p: _Problem, *, eta: float = 0.0) -> Step:
    """DDIM (Song et al. 2021, eq. 12): ``x_s = alpha_s x_0 + sqrt(sigma_s^2 - c^2) eps + c z``.

    ``c = eta * sqrt(posterior variance)``; ``eta = 0`` is the deterministic probability-flow
    discretisation (identical to EDM's Euler step in ``sigma/alpha``), ``eta = 1`` matches DDPM.
    ``eta < 0`` raises ``ValueError``.
    """
    if not isinstance(eta, (int, float)) or not math.isfinite(eta) or eta < 0:
        raise ValueError(
            f"ddim's eta must be a finite number >= 0 (0 = deterministic DDIM, 1 = DDPM's "
            f"variance); got {eta!r}"
        )

    def stochastic(k: str) -> tuple[tuple[Tensor, ...], ...]:
        """Per step ``(alpha_t, sigma_t, alpha_s, c, sqrt(sigma_s^2 - c^2))``."""
        alpha, sigma = p.grid(k)
        a_t, s_t, a_s, s_s = alpha[:-1], sigma[:-1], alpha[1:], sigma[1:]
        var_ts = (s_t**2 - (a_t / a_s) ** 2 * s_s**2).clamp_min(0.0)
        c = eta * (var_ts * s_s**2 / s_t**2).sqrt()
        keep = (s_s**2 - c**2).clamp_min(0.0).sqrt()
        return tuple(term.unbind(0) for term in (a_t, s_t, a_s, c, keep))

    if eta == 0:  # x_s = c1 x_t + c2 x0, with both coefficients computed on the grid
        per_key = {k: p.memo("ddim", k, functools.partial(_ddim_coefficients, p, k))
                   for k in p.continuous()}  # fmt: skip

        def update(p: _Problem, x: dict, x0: dict, new: dict, i: int, t: Tensor, s: Tensor) -> None:
            for k, (c1s, c2s) in per_key.items():
                new[k] = torch.addcmul(c1s[i] * x[k], c2s[i], x0[k])

        return _single_evaluation(p, update)

    per_key = {k: p.memo(f"ddim eta={eta!r}", k, functools.partial(stochastic, k))
               for k in p.continuous()}  # fmt: skip

    def noisy_update(
        p: _Problem, x: dict, x0: dict, new: dict, i: int, t: Tensor, s: Tensor
    ) -> None:
        for k, (a_t, s_t, a_s, c, keep) in per_key.items():
            eps = _eps(x[k], x0[k], a_t[i], s_t[i])
            out = a_s[i] * x0[k] + keep[i] * eps
            new[k] = out + c[i] * p.noise(k, x[k])

    return _single_evaluation(p, noisy_update)


class _PreparedDDIM:
    """Deterministic DDIM (``eta = 0``) of one :class:`Denoiser` on one grid and state
    shape, with everything a :func:`sample_ddim` call does around its network calls done
    once (the argument handling, the grid's look-up and checks, the denoiser's conversion
    set-up, the step coefficients): a call is the loop alone, with the conditioning given per
    call. Built by :func:`_prepare_ddim`.

    ``prepared(x, {"obs": obs})`` is bitwise ``sample_ddim(denoiser.bind(obs=obs), x, times,
    space=space)`` (the same tensor operations on the same precomputed terms: per step the
    network, the prediction's conversion to x0 and ``addcmul(c1 x, c2, x0)``). With
    ``fuse=True`` the step is ``x_s = A x + B out`` instead (x0 is linear in ``(x, out)``,
    so ``c1 x + c2 x0`` folds into ``A = c1 + c2 p``, ``B = c2 q`` on the grid): two tensor
    operations per step instead of four to six, the same arithmetic up to float rounding
    (a few 1e-7 relative in float32), not bitwise.
    """

    def __init__(self, problem: _Problem, terms: _Terms, fuse: bool) -> None:
        prediction, net, base, t_batch, alphas, sigmas, denominators = terms
        c1s, c2s = problem.memo("ddim", "x", functools.partial(_ddim_coefficients, problem, "x"))
        n = len(c1s)
        x = problem.x["x"]
        self._entry = problem._entry
        self.shape, self.dtype, self.device = x.shape, x.dtype, x.device
        self.fuse = fuse
        self._net, self._base, self._prediction = net, base, prediction
        if fuse:
            scale_x, scale_out = problem.memo(
                f"ddim fused {prediction}", "x",
                functools.partial(_fused_ddim_coefficients, problem, prediction),
            )  # fmt: skip
            self._fused = tuple(zip(t_batch[:n], scale_x, scale_out, strict=True))
        self._steps = tuple(
            zip(t_batch[:n], alphas[:n], sigmas[:n], denominators[:n], c1s, c2s, strict=True)
        )

    def usable(self, x: Tensor) -> bool:
        """Whether ``x`` has the prepared shape, dtype and device and nothing has written
        into the grid since (else prepare again)."""
        return (
            x.shape == self.shape
            and x.dtype == self.dtype
            and x.device == self.device
            and self._entry.intact()
        )

    def __call__(self, x: Tensor, cond: dict[str, Any]) -> Tensor:
        """The sample from the prior draw ``x`` with the network's conditioning ``cond``
        (keywords other than the mask's; ``x`` must be :meth:`usable`)."""
        net = self._net
        kw = {**self._base, **cond} if self._base else cond
        y = x
        if self.fuse:
            for t, scale_x, scale_out in self._fused:
                y = torch.addcmul(scale_x * y, scale_out, net(y, t, **kw))
            return y
        prediction = self._prediction
        if prediction == "v":  # as _Problem._fast_denoise, then the DDIM update
            for t, a, s, d, c1, c2 in self._steps:
                x0 = a * y - s * net(y, t, **kw)
                if d is not None:
                    x0 = x0 / d
                y = torch.addcmul(c1 * y, c2, x0)
        elif prediction == "epsilon":
            for t, a, s, _, c1, c2 in self._steps:
                y = torch.addcmul(c1 * y, c2, (y - s * net(y, t, **kw)) / a)
        else:
            for t, _, _, _, c1, c2 in self._steps:
                y = torch.addcmul(c1 * y, c2, net(y, t, **kw))
        return y


def _fused_ddim_coefficients(p: _Problem, prediction: str) -> tuple[tuple[Tensor, ...], ...]:
    """``(A, B)`` per step of ``x_s = A x_t + B out``: deterministic DDIM with the
    prediction's ``x0 = P x_t + Q out`` folded in (``A = c1 + c2 P``, ``B = c2 Q``)."""
    alpha, sigma = p.grid("x")
    c1 = sigma[1:] / sigma[:-1]
    c2 = alpha[1:] - c1 * alpha[:-1]
    a_t, s_t = alpha[:-1], sigma[:-1]
    if prediction == "x0":
        scale, scale_out = torch.zeros_like(a_t), torch.ones_like(a_t)
    elif prediction == "epsilon":
        scale, scale_out = 1.0 / a_t, -s_t / a_t
    else:
        scale, scale_out = a_t / (a_t**2 + s_t**2), -s_t / (a_t**2 + s_t**2)
    return (c1 + c2 * scale).unbind(0), (c2 * scale_out).unbind(0)


def _prepare_ddim(
    denoiser: Any, x: Tensor, times: Tensor, *, space: Any, fuse: bool = False
) -> _PreparedDDIM | None:
    """Deterministic DDIM of ``denoiser`` on ``times`` for states like ``x``, prepared once
    (:class:`_PreparedDDIM`; ``x``, the grid and the space are checked here, as a sampler
    call checks them), or ``None`` where a :func:`sample_ddim` call would do more than the
    prepared loop: a denoiser other than a :class:`Denoiser` (unbound) on its fast path with
    an ``epsilon``, ``x0`` or ``v`` prediction, or a space other than an unmasked Euclidean
    one. Call :func:`sample_ddim` then."""
    if type(space) not in (Space, EuclideanSpace) or not isinstance(denoiser, Denoiser):
        return None
    if not isinstance(x, Tensor) or denoiser.prediction.get("x") not in ("epsilon", "x0", "v"):
        return None
    problem = _Problem(denoiser, x, times, space)
    if problem._fast is None or not problem._identity["x"]:
        return None
    terms = problem.conversion_terms()
    if terms is None:
        return None
    return _PreparedDDIM(problem, terms, fuse)


@_sampler
def sample_dpm_solver_pp_2m(p: _Problem) -> Step:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): second-order multistep in
    ``lambda = log(alpha / sigma)`` with data prediction. The first step and the final step
    to ``sigma = 0`` are first order (the latter lands exactly on ``x_0``). With ``resample``,
    the multistep history is the previous step's last pass."""
    history: dict[tuple[str, int], Tensor] = {}  # x0 estimate of each step's last pass

    def prepare(k: str) -> tuple[tuple[Tensor, ...], ...]:
        """Per step: ``x_s = c1 x_t + c2 D'`` with ``D' = D + w (D - D_prev)``."""
        alpha, sigma = p.grid(k)
        lam = torch.log(alpha) - torch.log(sigma)
        h = lam[1:] - lam[:-1]
        c1 = sigma[1:] / sigma[:-1]
        c2 = -alpha[1:] * torch.expm1(-h)
        ratio = torch.cat([torch.zeros_like(h[:1]), h[:-1] / h[1:]])  # r_i = h_{i-1} / h_i
        second_order = torch.isfinite(h) & (ratio > 0)  # not the first step, not into sigma=0
        w = torch.where(second_order, 0.5 / ratio.clamp_min(1e-30), torch.zeros_like(h))
        return c1.unbind(0), c2.unbind(0), w.unbind(0)

    per_key = {k: p.memo("dpm_solver_pp_2m", k, functools.partial(prepare, k))
               for k in p.continuous()}  # fmt: skip

    def update(p: _Problem, x: dict, x0: dict, new: dict, i: int, t: Tensor, s: Tensor) -> None:
        for k, coefficients in per_key.items():
            c1, c2, w = (c[i] for c in coefficients)
            d = x0[k] if i == 0 else x0[k] + w * (x0[k] - history[(k, i - 1)])
            history[(k, i)] = x0[k]
            history.pop((k, i - 2), None)
            new[k] = torch.addcmul(c1 * x[k], c2, d)

    return _single_evaluation(p, update)


def _churn(
    p: _Problem,
    x: dict,
    t: Tensor,
    steps: int,
    churn: float,
    s_tmin: float,
    s_tmax: float,
    s_noise: float,
) -> tuple[dict, Tensor]:
    """EDM's stochastic churn (Karras et al. 2022, Alg. 2 lines 5-7) in any schedule.

    Raises the noise level ``sigma/alpha`` by ``1 + gamma`` by moving to an earlier-in-noise
    time ``t_hat`` and adding exactly the forward-process noise between ``t`` and ``t_hat``.
    Returns the churned state and ``t_hat``. ``t_hat`` comes from the first continuous
    component's schedule; every continuous component is then noised to ``t_hat`` in its own.
    """
    if churn <= 0:
        return x, t
    gamma_max = min(churn / steps, math.sqrt(2.0) - 1.0)
    key = p.continuous()[0]
    schedule = p.spaces[key].schedule
    a_t, s_t = schedule.alpha_sigma(t)
    noise_level = s_t / a_t
    active = (noise_level >= s_tmin) & (noise_level <= s_tmax)
    gamma = torch.where(active, torch.full_like(t, gamma_max), torch.zeros_like(t))
    t_hat = schedule.t_from_log_snr(schedule.log_snr(t) - 2.0 * torch.log1p(gamma))
    t_hat = torch.where(gamma > 0, torch.maximum(t_hat, t), t)
    out = dict(x)
    for k in p.continuous():
        a_i, s_i = p.alpha_sigma(k, t)
        a_h, s_h = p.alpha_sigma(k, t_hat)
        ratio = torch.where(p.time_like(k, gamma) > 0, a_h / a_i, torch.ones_like(a_i))
        std = (s_h**2 - ratio**2 * s_i**2).clamp_min(0.0).sqrt()
        out[k] = ratio * x[k] + s_noise * std * p.noise(k, x[k])
    return out, t_hat


def _edm(
    problem: _Problem,
    name: str,
    second_order: bool,
    churn: float,
    s_tmin: float,
    s_tmax: float,
    s_noise: float,
) -> Step:
    if not isinstance(churn, (int, float)) or not churn >= 0:
        raise ValueError(f"{name}'s churn must be >= 0 (0 = deterministic); got {churn!r}")
    if churn > 0 and not problem.continuous():
        raise ValueError(
            f"{name} with churn > 0 raises the noise level of continuous components, and this "
            "space has none (categorical only); use churn=0 or the 'ddpm' / 'categorical' "
            "sampler"
        )
    times = problem.times
    if second_order or churn > 0:
        problem.require_positive_alpha(times[0], name)
    steps = times.shape[0] - 1
    last_corrected = steps - 2 if problem.ends_at_data() else steps - 1

    def step(state: dict, i: int, t: Tensor, s: Tensor) -> tuple[dict, dict]:
        state, t_hat = _churn(problem, state, t, steps, churn, s_tmin, s_tmax, s_noise)
        x0 = problem.denoise(state, t_hat, i if churn <= 0 else None)
        new = dict(state)
        problem.step_categorical(new, x0, t_hat, s)
        eps = {}
        for k in problem.continuous():
            a_h, s_h = problem.at(k, i) if churn <= 0 else problem.alpha_sigma(k, t_hat)
            a_s, s_s = problem.at(k, i + 1)
            eps[k] = _eps(state[k], x0[k], a_h, s_h)
            new[k] = a_s * x0[k] + s_s * eps[k]  # Euler step in sigma/alpha (= DDIM)
        if second_order and i <= last_corrected:
            predicted = problem.finish_step(new, s)
            x0_next = problem.denoise(predicted, s, i + 1)
            for k in problem.continuous():
                a_h, s_h = problem.at(k, i) if churn <= 0 else problem.alpha_sigma(k, t_hat)
                a_s, s_s = problem.at(k, i + 1)
                eps_next = _eps(predicted[k], x0_next[k], a_s, s_s)
                # Heun in x/alpha: x~_s = x~_hat + (sigma~_s - sigma~_hat) (d + d') / 2, d = eps
                heun = (
                    a_s * x0[k]
                    + a_s * (s_h / a_h) * (eps[k] - eps_next) / 2.0
                    + s_s * (eps[k] + eps_next) / 2.0
                )
                new[k] = torch.where(s_s > 0, heun, new[k])
        return problem.finish_step(new, s), x0

    return step


@_sampler
def sample_euler(
    p: _Problem,
    *,
    churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> Step:
    """EDM Euler (Karras et al. 2022, Alg. 2 without the correction) with optional churn.

    Steps the probability-flow ODE in the noise level ``sigma/alpha``; ``churn`` (EDM's
    ``S_churn``) adds noise within ``[s_tmin, s_tmax]`` (noise-level units) before each step.
    Churn needs a continuous component (a categorical-only product raises ``ValueError``).
    """
    return _edm(p, "euler", False, churn, s_tmin, s_tmax, s_noise)


@_sampler
def sample_heun(
    p: _Problem,
    *,
    churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> Step:
    """EDM Heun (Karras et al. 2022, Alg. 2): Euler plus a trapezoidal correction, skipped on
    the final step to ``sigma = 0``; ``2N - 1`` network evaluations for N steps (``2N`` when
    the grid ends above ``sigma = 0``). Needs ``alpha(times[0]) > 0`` (use ``flow_heun`` for
    rectified-flow schedules started at 1)."""
    return _edm(p, "heun", True, churn, s_tmin, s_tmax, s_noise)


def _velocity(p: _Problem, k: str, x: Tensor, x0: Tensor, t: Tensor, i: int) -> Tensor:
    """Probability-flow velocity ``alpha'(t) x_0 + sigma'(t) eps`` of any schedule at
    ``t = times[i]``."""
    alpha, sigma = p.at(k, i)
    d_alpha, d_sigma = p.spaces[k].schedule.d_alpha_sigma(p.time_like(k, t))
    return d_alpha * x0 + d_sigma * _eps(x, x0, alpha, sigma)


def _flow(problem: _Problem, second_order: bool) -> Step:
    steps = problem.times.shape[0] - 1
    last_corrected = steps - 2 if problem.ends_at_data() else steps - 1

    def step(state: dict, i: int, t: Tensor, s: Tensor) -> tuple[dict, dict]:
        x0 = problem.denoise(state, t, i)
        new = dict(state)
        problem.step_categorical(new, x0, t, s)
        velocity = {}
        for k in problem.continuous():
            velocity[k] = _velocity(problem, k, state[k], x0[k], t, i)
            new[k] = state[k] + problem.time_like(k, s - t) * velocity[k]
        if second_order and i <= last_corrected:
            predicted = problem.finish_step(new, s)
            x0_next = problem.denoise(predicted, s, i + 1)
            for k in problem.continuous():
                v_next = _velocity(problem, k, predicted[k], x0_next[k], s, i + 1)
                heun = state[k] + problem.time_like(k, s - t) * (velocity[k] + v_next) / 2.0
                _, s_s = problem.at(k, i + 1)
                new[k] = torch.where(s_s > 0, heun, new[k])
        return problem.finish_step(new, s), x0

    return step


@_sampler
def sample_flow_euler(p: _Problem) -> Step:
    """Euler on the flow ODE ``dx/dt = alpha'(t) x_0 + sigma'(t) eps`` in schedule time
    (flow matching's sampler; Lipman et al. 2023). Works from ``t = 1`` on every schedule."""
    return _flow(p, False)


@_sampler
def sample_flow_heun(p: _Problem) -> Step:
    """Heun (trapezoidal) on the flow ODE in schedule time; the final step to ``sigma = 0``
    is Euler, so N steps cost ``2N - 1`` evaluations (``2N`` when the grid ends above
    ``sigma = 0``)."""
    return _flow(p, True)


@_sampler
def sample_euler_maruyama(p: _Problem) -> Step:
    """Euler–Maruyama on the reverse-time SDE (Song et al. 2021, eq. 6).

    With drift ``f = alpha'/alpha`` and diffusion ``g^2 = 2 sigma^2 (sigma'/sigma - f)`` of the
    forward SDE and score ``-eps/sigma``:
    ``x_s = x_t + (f x_t + g^2 eps / sigma)(s - t) + g sqrt(t - s) z``. The last step adds no
    noise (the usual "denoised final step"). Needs ``alpha(times[0]) > 0``.
    """
    p.require_positive_alpha(p.times[0], "euler_maruyama")

    def update(p: _Problem, x: dict, x0: dict, new: dict, i: int, t: Tensor, s: Tensor) -> None:
        last = p.times.shape[0] - 2
        for k in p.continuous():
            alpha, sigma = p.at(k, i)
            d_alpha, d_sigma = p.spaces[k].schedule.d_alpha_sigma(p.time_like(k, t))
            f = d_alpha / alpha
            g2 = (2.0 * sigma * (d_sigma - f * sigma)).clamp_min(0.0)
            eps = _eps(x[k], x0[k], alpha, sigma)
            dt = p.time_like(k, s - t)
            out = x[k] + (f * x[k] + g2 * eps / sigma) * dt
            if i < last:
                out = out + (g2 * -dt).sqrt() * p.noise(k, x[k])
            new[k] = out

    return _single_evaluation(p, update)


SAMPLERS: dict[str, Callable[..., State]] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "dpm_solver_pp_2m": sample_dpm_solver_pp_2m,
    "euler": sample_euler,
    "heun": sample_heun,
    "flow_euler": sample_flow_euler,
    "flow_heun": sample_flow_heun,
    "euler_maruyama": sample_euler_maruyama,
    "categorical": sample_ddpm,
}
"""Every sampler by name. ``categorical`` is DDPM's loop, whose categorical rule is exact."""

_TWO_EVALUATIONS = {"heun", "flow_heun"}


def get_sampler(name: str) -> Callable[..., State]:
    """Look a sampler up by name; unknown names raise ``ValueError`` listing the accepted ones."""
    return choose("sampler", name, SAMPLERS)


def function_evaluations(
    name: str,
    steps: int,
    *,
    t_end: float = 0.0,
    schedule: Schedule | None = None,
    resample: int = 0,
) -> int:
    """Network evaluations (NFE) a sampler spends on ``steps`` steps.

    Heun variants skip their correction on a final step that lands on ``sigma = 0``: that is
    the case when ``t_end = 0`` and ``sigma(0) = 0`` (every built-in schedule except
    ``polynomial``, whose ``sigma(0) = sqrt(s) > 0``). Pass the grid's ``t_end`` and, to be
    exact for any schedule, the ``schedule``. ``resample`` multiplies the count by
    ``1 + resample``.
    """
    get_sampler(name)
    if name in _TWO_EVALUATIONS:
        if schedule is not None:
            _, sigma = schedule.alpha_sigma(torch.tensor(float(t_end), dtype=torch.float64))
            lands_on_data = bool(sigma == 0)
        else:
            lands_on_data = t_end == 0
        per_pass = 2 * steps - 1 if lands_on_data else 2 * steps
    else:
        per_pass = steps
    return per_pass * (1 + resample)


def sample(
    name: str,
    denoise: Denoise,
    x: State,
    times: Tensor,
    *,
    space: SpaceProtocol,
    **options: Any,
) -> State:
    """Run the sampler called ``name`` (see :data:`SAMPLERS`) with the common signature."""
    return get_sampler(name)(denoise, x, times, space=space, **options)


sample.__doc__ = (
    "Run the sampler called ``name`` (see :data:`SAMPLERS`) with the common signature.\n\n"
    + SAMPLER_ARGUMENTS
    + "\nOptions of each sampler (anything else raises :class:`SamplerOptionError`, a "
    "``ValueError``):\n\n" + SAMPLER_OPTIONS
)
