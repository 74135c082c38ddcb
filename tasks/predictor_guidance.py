"""Classifier guidance of a categorical (graph) denoiser by a differentiable property
predictor: steer sampling towards property targets with an *unconditional* model.

The predictor (:class:`~sci_diffusion.tasks.property_predictor.PropertyPredictor`) reads
noisy sampler states ``x_t`` (it is trained on graphs noised by the task's forward process),
so its error towards the targets,

    L(x_t) = sum over guided properties p of ((predictor(x_t, t)_p - y_p) / std_p)^2,

is differentiable in the one-hot state (fed as floats). Each evaluation tilts the x0 class
distribution of every categorical component the predictor reads by the first-order term::

    logits_k(x0 | x_t)  +=  -scale * dL/dx_t[k]          (per entry, per class k)
    p'(x0 | x_t)  ∝  p(x0 | x_t) * exp(-scale * dL/dx_t)

i.e. a class whose presence at that entry would lower the predicted error gets more
probability. For a symmetric (edge) component the derivative is the total one of the shared
bond variable, ``g_ij + g_ji``. Padded entries (mask false) get no tilt.

**How this differs from DiGress** (Vignac et al. 2023, section 4.4 and appendix): DiGress
uses the same first-order expansion of ``log p(y | G)`` around ``G_t`` but applies it to the
one-step reverse distribution, ``p(G_{t-1} | G_t, y) ∝ p(G_{t-1} | G_t) exp(-lambda
<grad_{G_t} ||y - g(G_t)||^2, G_{t-1}>)``, with an unnormalized squared error. Here the tilt
goes on the x0 estimate, which the sampler then carries through the exact posterior
``q(x_s | x_t, x0)`` (so the wrapper works with every sampler that takes x0 probabilities,
and under classifier-free guidance too); the tilt's effect on ``x_s`` is therefore damped
at high noise, where ``q(x_s | x_t, x0)`` depends little on x0, and full near t = 0. The
error is standardized by the predictor's training standard deviation per property, so one
scale serves properties of different units.

Cost per evaluation: one predictor forward + backward (no backward through the denoiser).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sci_diffusion.core.guidance import skip_non_finite_steps

_ADVICE = (
    "The property predictor's gradient overflowed: lower the guidance scale, or check the "
    "predictor file (trained on noisy graphs of this task?)."
)


def _base_denoiser(denoiser: Any) -> Any:
    """The :class:`~sci_diffusion.core.Denoiser` under wrappers (``.denoiser`` chains)."""
    inner = denoiser
    while not hasattr(inner, "to_x0") and hasattr(inner, "denoiser"):
        inner = inner.denoiser
    if not hasattr(inner, "to_x0") or not hasattr(inner, "components"):
        raise TypeError(
            "PredictorGuidance wraps a Denoiser (or a wrapper with network_output and a "
            f".denoiser chain ending at one), got {type(denoiser).__name__}"
        )
    return inner


class PredictorGuidance:
    """A denoiser (samplers' convention) whose categorical x0 distributions are tilted
    towards lower predicted error of ``predictor`` against ``targets`` (module docstring).

    Args:
        denoiser: a :class:`~sci_diffusion.core.Denoiser` on a product of categorical
            components, or a wrapper exposing ``network_output`` (e.g.
            :class:`~sci_diffusion.core.ClassifierFreeGuidance`).
        predictor: ``predictor(x, t, node_mask) -> (B, P)`` in the properties' units, with
            ``node_classes`` (the node components it reads, in order) and optionally a
            ``std`` buffer (P,) (the training standard deviation; 1 when absent).
        targets: (B, P) targets in the predictor's property order; NaN = not guided.
        scale: the guidance weight (0: the plain denoiser, bitwise).

    Returns x0 probabilities ``{component: (B, ..., K)}`` from ``__call__(x_t, t, mask=None)``
    and ``denoise_at``; :attr:`last_loss` holds the per-sample ``L`` of the latest call.
    """

    def __init__(self, denoiser: Any, predictor: Any, targets: Tensor, scale: float) -> None:
        if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
            raise ValueError(f"guidance scale must be a finite number >= 0, got {scale!r}")
        if targets.ndim != 2:
            raise ValueError(f"targets must be (n, P), got shape {tuple(targets.shape)}")
        names = getattr(predictor, "names", None)
        if names is not None and targets.shape[1] != len(names):
            raise ValueError(
                f"targets have {targets.shape[1]} columns; the predictor predicts "
                f"{len(names)} ({', '.join(names)})"
            )
        self.denoiser = denoiser
        self.predictor = predictor
        self.targets = targets
        self.scale = float(scale)
        self.base = _base_denoiser(denoiser)
        self.node_keys = tuple(predictor.node_classes)
        self.last_loss: Tensor | None = None

    def _output(self, x_t: Any, t: Tensor, mask: Any) -> Any:
        if hasattr(self.denoiser, "network_output"):
            return self.denoiser.network_output(x_t, t, mask=mask)
        raise TypeError(f"{type(self.denoiser).__name__} has no network_output")

    def loss(self, x: dict[str, Tensor], t: Tensor, mask: Any = None) -> Tensor:
        """Per-sample ``L`` (B,) of states or probabilities ``x`` at times ``t``."""
        first = x[self.node_keys[0]]
        t_batch = t.expand(first.shape[0]) if t.ndim == 0 else t
        node_mask = mask.get(self.node_keys[0]) if isinstance(mask, dict) else None
        pred = self.predictor(x, t_batch, node_mask)
        targets = self.targets.to(device=pred.device, dtype=pred.dtype)
        std = getattr(self.predictor, "std", None)
        std = torch.ones_like(targets[0]) if std is None else std.to(pred.dtype)
        guided = ~targets.isnan()
        # NaN targets are filled before the square (a NaN there would reach the gradient).
        filled = torch.where(guided, targets, torch.zeros_like(targets))
        return ((((pred - filled) / std) ** 2) * guided.to(pred.dtype)).sum(-1)

    def gradients(self, x_t: dict[str, Tensor], t: Tensor, mask: Any = None) -> dict[str, Tensor]:
        """``dL/dx_t`` per categorical component (total derivative for symmetric ones, zero on
        padding, zero for samples whose gradient is not finite, with a warning)."""
        keys = [k for k in x_t if self.base.components[k].is_categorical]
        with torch.enable_grad():
            inputs = {k: v.detach().float().requires_grad_(k in keys) for k, v in x_t.items()}
            loss = self.loss(inputs, t, mask)
            grads = torch.autograd.grad(loss.sum(), [inputs[k] for k in keys], allow_unused=True)
        self.last_loss = loss.detach()
        masks = mask if isinstance(mask, dict) else {}
        out = []
        for k, g in zip(keys, grads, strict=True):
            g = torch.zeros_like(inputs[k]) if g is None else g
            if getattr(self.base.components[k], "symmetric", False):
                g = g + g.transpose(1, 2)
            m = masks.get(k)
            if m is not None:
                g = g * m[..., None].to(g.dtype)
            out.append(g)
        out = skip_non_finite_steps(out, "PredictorGuidance", t, _ADVICE)
        return dict(zip(keys, out, strict=True))

    def network_output(self, x_t: Any, t: Tensor, *, mask: Any = None) -> Any:
        """The wrapped network output with the categorical logits tilted by
        ``-scale * dL/dx_t``."""
        output = self._output(x_t, t, mask)
        if self.scale == 0.0:
            return output
        grads = self.gradients(x_t, t, mask)
        return {
            k: v - self.scale * grads[k].to(v.dtype) if k in grads else v for k, v in output.items()
        }

    def __call__(self, x_t: Any, t: Tensor, mask: Any = None) -> Any:
        return self.base.to_x0(self.network_output(x_t, t, mask=mask), x_t, t)

    def denoise_at(
        self, x_t: Any, t: Tensor, alpha: Tensor, sigma: Tensor, mask: Any = None
    ) -> Any:
        return self(x_t, t, mask=mask)
