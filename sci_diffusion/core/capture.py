"""A whole fixed-shape sampling loop captured as one CUDA graph and replayed.

At batch 1 on a GPU, a sampling loop is bound by kernel launches, not by arithmetic: every
network call and every step's update launches kernels from Python, one at a time.
:class:`CapturedSampler` records the loop's kernels once (``torch.cuda.CUDAGraph``) for fixed
shapes and replays them with a single launch::

    captured = CapturedSampler("ddim", denoiser, x, times, space=space, cond={"obs": obs})
    chunk = captured(x_new, obs=obs_new)   # copies the inputs in, replays, copies out

The state ``x``, the grid ``times`` and the conditioning tensors ``cond`` live in static
buffers; a call copies new values into them (same shapes and dtypes) and replays. The grid
is fixed at construction: its coefficients are computed once, before the capture
(:func:`~sci_diffusion.core._grid.pin_grid`), so the graph holds only the network calls and
the steps' updates.

``fuse=True`` (DDIM with ``eta = 0``, a :class:`~.parameterization.Denoiser` predicting
``epsilon``, ``x0`` or ``v``, an unmasked Euclidean space) writes the step
``x_s = c1 x_t + c2 x0(x_t, out)``, whose ``x0`` is linear in ``(x_t, out)``, as
``x_s = A x_t + B out`` with ``A``, ``B`` precomputed on the grid: two kernels per step
instead of five or six. Same arithmetic up to float rounding (about 1e-6 relative); without
``fuse`` the replay computes bitwise what the eager loop computes.

``graph=False`` runs the same static-buffer loop eagerly on any device (debugging, and the
CPU tests); ``graph=True`` needs CUDA and raises :class:`CaptureUnavailableError` without.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from ._grid import pin_grid
from .errors import InvalidValueError
from .parameterization import Denoiser
from .samplers import get_sampler
from .spaces import EuclideanSpace, ProductSpace, Space

__all__ = ["CaptureUnavailableError", "CapturedSampler"]


class CaptureUnavailableError(RuntimeError):
    """Graph capture was asked for where it cannot run (no CUDA device)."""


class CapturedSampler:
    """One sampler call on fixed shapes, captured once and replayed (see the module doc).

    Args:
        name: the sampler (:data:`~.samplers.SAMPLERS`).
        denoise: a :class:`~.parameterization.Denoiser` (bound here to the static ``cond``),
            or any ``denoise(x_t, t, **cond)``.
        x: an example state, (B, ...) on the capture device: its shape, dtype and device are
            fixed; its values are the first input.
        times: the grid, (N+1,) or (N+1, B[, ...]) on ``x``'s device (fixed).
        space: the state's space (a single space; products are not captured).
        cond: conditioning tensors passed to the denoiser as keywords (static buffers; each
            call may give new values of the same shape).
        mask: as for the samplers (fixed).
        generator: a CUDA generator for stochastic samplers (registered with the graph), or
            ``None`` (the default CUDA generator, graph-safe: every replay draws new noise).
        warmup: eager runs on a side stream before the capture (PyTorch's recipe).
        graph: capture a CUDA graph (needs CUDA); ``False`` runs the loop eagerly.
        fuse: the two-kernel DDIM step (module doc); ``ddim`` with ``eta = 0`` only.
        **options: the sampler's options (e.g. ``eta``), and ``constraint``/``resample``.
            ``callback`` is refused (host code does not replay).
    """

    def __init__(
        self,
        name: str,
        denoise: Callable[..., Any],
        x: Tensor,
        times: Tensor,
        *,
        space: Any,
        cond: Mapping[str, Tensor] | None = None,
        mask: Tensor | None = None,
        generator: torch.Generator | None = None,
        warmup: int = 3,
        graph: bool = True,
        fuse: bool = False,
        **options: Any,
    ) -> None:
        if graph and not torch.cuda.is_available():
            raise CaptureUnavailableError(
                "CapturedSampler(graph=True) records a CUDA graph and needs a CUDA device; "
                f"torch.cuda.is_available() is False (torch {torch.__version__}). Use "
                "graph=False for the same fixed-shape loop run eagerly, or the samplers "
                "directly."
            )
        if "callback" in options:
            raise InvalidValueError(
                "CapturedSampler does not take callback: a captured loop replays kernels, not "
                "Python; sample eagerly to watch the steps"
            )
        if "check_inputs" in options:
            raise InvalidValueError(
                "CapturedSampler checks the inputs once, before the capture; leave check_inputs out"
            )
        if isinstance(space, ProductSpace) or not isinstance(x, Tensor):
            raise InvalidValueError("CapturedSampler captures single-tensor states, not products")
        if graph and x.device.type != "cuda":
            raise InvalidValueError(f"graph=True captures on CUDA; x is on {x.device}")
        if times.device != x.device:
            raise InvalidValueError(f"times is on {times.device}, x on {x.device}: use one device")
        get_sampler(name)  # unknown names fail here with the list
        self.name = name
        self.graph = graph
        self.fuse = fuse
        with torch.inference_mode(False):  # ordinary tensors, even if made in inference mode
            self.x = x.detach().clone()
            self.cond = {k: v.detach().clone() for k, v in (cond or {}).items()}
            self.times = times.detach().clone()
        pin_grid(self.times)  # coefficients computed eagerly, once, outside the graph
        if isinstance(denoise, Denoiser):
            bound: Callable[..., Any] = denoise.bind(**self.cond)
        elif self.cond:
            bound = functools.partial(denoise, **self.cond)
        else:
            bound = denoise
        kwargs = {"space": space, "mask": mask, "generator": generator, **options}
        if fuse:
            step = _fused_ddim(name, denoise, space, mask, self.x, self.times, self.cond, options)
            run: Callable[[], Tensor] = functools.partial(step, self.x)
        else:
            run = functools.partial(get_sampler(name), bound, self.x, self.times,
                                    check_inputs=False, **kwargs)  # fmt: skip
        with torch.no_grad():  # the one checked run: invalid inputs fail here, eagerly
            get_sampler(name)(bound, self.x, self.times, check_inputs=True, **kwargs)
        self._run = run
        self._graph: Any = None
        self.output: Tensor | None = None
        """The static output buffer (overwritten by every call; ``None`` before the first
        eager call with ``graph=False``)."""
        if graph:
            self._capture(run, generator, warmup)

    def _capture(self, run: Callable[[], Tensor], generator: Any, warmup: int) -> None:
        stream = torch.cuda.Stream(device=self.x.device)
        stream.wait_stream(torch.cuda.current_stream(self.x.device))
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(max(warmup, 1)):
                run()
        torch.cuda.current_stream(self.x.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        if generator is not None:
            register = getattr(graph, "register_generator_state", None)
            if register is None:
                raise InvalidValueError(
                    f"this torch ({torch.__version__}) cannot capture a custom generator; "
                    "pass generator=None (the default CUDA generator is graph-safe)"
                )
            register(generator)
        with torch.no_grad(), torch.cuda.graph(graph):
            self.output = run()
        self._graph = graph

    def __call__(self, x: Tensor | None = None, *, copy: bool = True, **cond: Tensor) -> Tensor:
        """Sample from ``x`` (default: the values already in :attr:`x`) with conditioning
        ``cond`` (default: the values already in :attr:`cond`); shapes as at construction.

        Returns a copy of the output, or with ``copy=False`` the static buffer itself
        (valid until the next call)."""
        if x is not None:
            _copy_into(self.x, x, "x")
        unknown = sorted(set(cond) - set(self.cond))
        if unknown:
            raise InvalidValueError(
                f"unknown conditioning {unknown}; captured with {sorted(self.cond)}"
            )
        for key, value in cond.items():
            _copy_into(self.cond[key], value, key)
        if self._graph is not None:
            self._graph.replay()
        else:
            with torch.no_grad():
                self.output = self._run()
        assert self.output is not None
        return self.output.clone() if copy else self.output


def _copy_into(buffer: Tensor, value: Tensor, what: str) -> None:
    if value.shape != buffer.shape or value.dtype != buffer.dtype:
        raise InvalidValueError(
            f"{what} of shape {tuple(value.shape)} and dtype {value.dtype} does not match the "
            f"captured {tuple(buffer.shape)}, {buffer.dtype}; capture again for new shapes"
        )
    buffer.copy_(value)


_LINEAR = ("epsilon", "x0", "v")


def _fused_ddim(
    name: str, denoise: Any, space: Any, mask: Any, x: Tensor, times: Tensor,
    cond: dict[str, Tensor], options: dict[str, Any],
) -> Callable[[Tensor], Tensor]:  # fmt: skip
    """``loop(x)`` for DDIM (eta 0): ``x <- A_i x + B_i net(x, t_i)``, with
    ``x0 = p x + q out`` (the prediction) folded into ``x_s = c1 x + c2 x0``."""
    eta = options.get("eta", 0.0)
    others = sorted(set(options) - {"eta"})
    problems = [
        (name != "ddim" or eta != 0, f"sampler {name!r} with eta={eta} (ddim, eta 0 only)"),
        (bool(others), f"options {others} (none besides eta)"),
        (not isinstance(denoise, Denoiser), f"a {type(denoise).__name__} (a Denoiser only)"),
        (type(space) not in (EuclideanSpace, Space) or mask is not None,
         "a mask or a space other than EuclideanSpace"),
    ]  # fmt: skip
    refused = [what for bad, what in problems if bad]
    if not refused and (not denoise._fast_path or denoise.prediction.get("x") not in _LINEAR):
        refused.append(f"prediction {denoise.prediction.get('x')!r} (epsilon, x0 or v only)")
    if refused:
        raise InvalidValueError("fuse=True cannot take " + "; ".join(refused))
    with torch.no_grad():
        grid = times.to(x.dtype)
        alpha, sigma = space.schedule.alpha_sigma(grid)
        shape = alpha.shape + (1,) * (x.ndim - times.ndim + 1)
        alpha, sigma = alpha.reshape(shape), sigma.reshape(shape)
        c1 = sigma[1:] / sigma[:-1]
        c2 = alpha[1:] - c1 * alpha[:-1]
        a_t, s_t = alpha[:-1], sigma[:-1]
        prediction = denoise.prediction["x"]
        if prediction == "x0":
            p, q = torch.zeros_like(a_t), torch.ones_like(a_t)
        elif prediction == "epsilon":
            p, q = 1.0 / a_t, -s_t / a_t
        else:
            p, q = a_t / (a_t**2 + s_t**2), -s_t / (a_t**2 + s_t**2)
        scale_x, scale_out = (c1 + c2 * p).unbind(0), (c2 * q).unbind(0)
    steps = times.unbind(0)[:-1]
    t_batch = [t.expand(x.shape[0]) if t.ndim == 0 else t for t in steps]
    network_output = denoise.network_output

    def loop(state: Tensor) -> Tensor:
        for i, t in enumerate(t_batch):
            out = network_output(state, t, **cond)
            state = torch.addcmul(scale_x[i] * state, scale_out[i], out)
        return state

    return loop
