"""Property conditioning inputs shared by the molecule denoisers.

A conditional network takes ``properties`` (B, P) in the properties' own units, NaN where a
property is not given (a row of NaN is the unconditional model of classifier-free guidance).
It keeps buffers ``property_mean`` / ``property_std`` (normalization) and ``property_low`` /
``property_high`` (the training range, for warnings), set from the training data by
:func:`set_property_stats` and saved with the weights, and feeds :func:`property_features` —
the normalized values (0 where not given) and a given / not-given flag per property.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

_BUFFERS = (("mean", 0.0), ("std", 1.0), ("low", -math.inf), ("high", math.inf))


def register_property_buffers(module: nn.Module, count: int) -> None:
    """Give ``module`` the four (count,) property buffers (nothing for ``count == 0``)."""
    module.properties = int(count)
    if count:
        for name, value in _BUFFERS:
            module.register_buffer(f"property_{name}", torch.full((count,), value))


@torch.no_grad()
def set_property_stats(module: nn.Module, values: Tensor) -> None:
    """Normalization and range from training values (M, P); rows with a NaN are left out."""
    count = int(getattr(module, "properties", 0))
    if values.ndim != 2 or values.shape[1] != count:
        raise ValueError(f"values must be (M, {count}), got {tuple(values.shape)}")
    finite = values[torch.isfinite(values).all(1)].double()
    module.property_mean.copy_(finite.mean(0))
    module.property_std.copy_(finite.std(0).clamp_min(1e-6))
    module.property_low.copy_(finite.min(0).values)
    module.property_high.copy_(finite.max(0).values)


def property_features(module: nn.Module, properties: Tensor | None, batch: int) -> Tensor | None:
    """(B, 2P) features of ``properties`` (B, P) (None: none given); None for P = 0.

    Raises
    ------
    ValueError
        properties given to an unconditional module, or of the wrong shape.
    """
    count = int(getattr(module, "properties", 0))
    if not count:
        if properties is not None:
            raise ValueError("this network is unconditional; it takes no properties")
        return None
    if properties is None:
        properties = module.property_mean.new_full((batch, count), math.nan)
    if properties.shape != (batch, count):
        raise ValueError(f"properties must be ({batch}, {count}), got {tuple(properties.shape)}")
    given = torch.isfinite(properties)
    z = (properties - module.property_mean) / module.property_std
    z = torch.where(given, z, torch.zeros_like(z))
    return torch.cat([z, given.to(z.dtype)], -1)
