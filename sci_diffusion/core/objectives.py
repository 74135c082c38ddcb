"""Training objectives: denoising regression with weightings, flow matching, categorical CE.

Weightings are defined on the *x0 error* (Kingma et al. 2021's view) and converted to the
network's own target by :func:`~.parameterization.x0_error_scale`:

* ``uniform`` — plain MSE on the network's target (DDPM's "simple" loss for epsilon models);
* ``snr`` — ``SNR(t) = alpha^2/sigma^2`` on the x0 error (= epsilon-MSE);
* ``min_snr`` — ``min(SNR, gamma)`` on the x0 error (Hang et al. 2023, Min-SNR-gamma);
* ``edm`` — ``(sigma~^2 + sigma_data^2) / (sigma~ sigma_data)^2`` with ``sigma~ = sigma/alpha``
  (Karras et al. 2022, eq. 8 with their lambda).

Every reduction is a masked mean over valid elements (see :func:`~.spaces.masked_mean`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import choose
from .parameterization import Denoiser, expand_like, target, x0_error_scale
from .schedules import RectifiedFlowSchedule, Schedule
from .spaces import EuclideanSpace, masked_mean

WEIGHTINGS = ("uniform", "snr", "min_snr", "edm")
TIME_DISTRIBUTIONS = ("uniform", "lognormal")


def sample_times(
    batch: int,
    *,
    schedule: Schedule | None = None,
    distribution: str = "uniform",
    t_min: float = 1e-5,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Training times, shape (B,), in ``[t_min, 1]``.

    ``uniform``: ``U(t_min, 1)``. ``lognormal``: EDM's ``ln(sigma/alpha) ~ N(p_mean, p_std^2)``
    mapped to time through the schedule's inverse log-SNR (needs ``schedule``).
    """
    choose("time distribution", distribution, {d: d for d in TIME_DISTRIBUTIONS})
    if distribution == "uniform":
        u = torch.rand(batch, generator=generator, device=device)
        return t_min + (1.0 - t_min) * u
    if schedule is None:
        raise ValueError("the 'lognormal' time distribution needs the schedule")
    n = torch.randn(batch, generator=generator, device=device)
    log_sigma = p_mean + p_std * n
    return schedule.t_from_log_snr(-2.0 * log_sigma).clamp(t_min, 1.0)


def loss_weight(
    weighting: str,
    prediction: str,
    t: Tensor,
    schedule: Schedule,
    *,
    min_snr_gamma: float = 5.0,
    sigma_data: float = 0.5,
) -> Tensor:
    """Per-sample weight on the squared error of the network's own target, shape of ``t``."""
    choose("weighting", weighting, {w: w for w in WEIGHTINGS})
    if weighting == "uniform":
        return torch.ones_like(t)
    alpha, sigma = schedule.alpha_sigma(t)
    snr = (alpha / sigma) ** 2
    if weighting == "snr":
        on_x0 = snr
    elif weighting == "min_snr":
        on_x0 = snr.clamp_max(min_snr_gamma)
    else:
        noise_level = sigma / alpha
        on_x0 = (noise_level**2 + sigma_data**2) / (noise_level * sigma_data) ** 2
    scale = x0_error_scale(prediction, t, schedule, sigma_data)
    return (on_x0.clamp_max(1e12) / scale.clamp_min(1e-12)).nan_to_num(0.0)


@dataclass
class LossOutput:
    """The scalar loss to minimise and each component's (unweighted-by-component) loss."""

    loss: Tensor
    components: dict[str, Tensor]


class DiffusionObjective:
    """Denoising objective for any space, including products with categorical components.

    Args:
        denoiser: binds the network, the space(s) and the prediction type(s).
        weighting: ``uniform``, ``snr``, ``min_snr`` or ``edm`` (continuous components).
        time_distribution: ``uniform`` or ``lognormal`` (EDM's training distribution).
        component_weights: multiplies each component's loss (default 1 each).
    """

    def __init__(
        self,
        denoiser: Denoiser,
        weighting: str = "uniform",
        *,
        time_distribution: str = "uniform",
        min_snr_gamma: float = 5.0,
        component_weights: Mapping[str, float] | None = None,
        t_min: float = 1e-5,
    ) -> None:
        choose("weighting", weighting, {w: w for w in WEIGHTINGS})
        choose("time distribution", time_distribution, {d: d for d in TIME_DISTRIBUTIONS})
        self.denoiser = denoiser
        self.weighting = weighting
        self.time_distribution = time_distribution
        self.min_snr_gamma = min_snr_gamma
        self.component_weights = dict(component_weights or {})
        self.t_min = t_min

    def __call__(
        self,
        x0: Any,
        *,
        mask: Any = None,
        t: Tensor | None = None,
        generator: torch.Generator | None = None,
        **cond: Any,
    ) -> LossOutput:
        """Loss for a batch ``x0`` (tensor (B, ...) or dict of them) with optional masks."""
        single = isinstance(x0, Tensor)
        data = {"x": x0} if single else dict(x0)
        masks = {"x": mask} if single else {k: (mask or {}).get(k) for k in data}
        spaces = self.denoiser.components
        if set(data) != set(spaces):
            raise ValueError(
                f"x0 components {sorted(data)} do not match the space's {sorted(spaces)}"
            )
        first = next(iter(data.values()))
        batch, device = first.shape[0], first.device
        if t is None:
            first_schedule = next(iter(spaces.values())).schedule
            t = sample_times(
                batch, schedule=first_schedule, distribution=self.time_distribution,
                t_min=self.t_min, generator=generator, device=device,
            )  # fmt: skip
        noisy, eps = {}, {}
        for k, value in data.items():
            space = spaces[k]
            space.validate(value, masks[k])
            if space.is_categorical:
                noisy[k] = space.sample_xt(value, t, masks[k], generator)
            else:
                value = data[k] = space.project(value, masks[k])  # e.g. centre point clouds
                eps[k] = space.noise(value, masks[k], generator)
                noisy[k] = space.project(space.add_noise(value, t, eps[k]), masks[k])
        x_t = noisy["x"] if single else noisy
        # The network sees the mask as samplers show it (see Denoiser); its continuous outputs
        # come back projected, so e.g. a CoM-free space's centre-of-mass error counts nothing.
        out = self.denoiser.network_output(x_t, t, mask=masks["x"] if single else masks, **cond)
        outputs = {"x": out} if single else out
        losses = {}
        for k, value in data.items():
            space = spaces[k]
            if space.is_categorical:
                ce = F.cross_entropy(
                    outputs[k].reshape(-1, outputs[k].shape[-1]),
                    value.argmax(-1).reshape(-1),
                    reduction="none",
                ).reshape(value.shape[:-1])
                losses[k] = masked_mean(ce, masks[k])
                continue
            prediction = self.denoiser.prediction[k]
            sigma_data = self.denoiser.sigma_data
            goal = target(prediction, value, eps[k], t, space.schedule, sigma_data)
            weight = loss_weight(
                self.weighting, prediction, t, space.schedule,
                min_snr_gamma=self.min_snr_gamma, sigma_data=sigma_data,
            )  # fmt: skip
            squared = expand_like(weight, value) * (outputs[k] - goal) ** 2
            losses[k] = masked_mean(squared, masks[k])
        total = sum(self.component_weights.get(k, 1.0) * v for k, v in losses.items())
        return LossOutput(loss=total, components=losses)  # type: ignore[arg-type]


def flow_matching_objective(net: Any, space: Any | None = None) -> DiffusionObjective:
    """Conditional flow matching (Lipman et al. 2023) / rectified flow (Liu et al. 2022):
    velocity prediction on the straight path, uniform weighting. ``space`` defaults to a
    Euclidean space with the rectified-flow schedule."""
    space = space if space is not None else EuclideanSpace(RectifiedFlowSchedule())
    return DiffusionObjective(Denoiser(net, space, prediction="velocity"), "uniform")
