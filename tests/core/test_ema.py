"""EMA of weights: warmup schedule, convergence to a fixed model, averaging of oscillations."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from sci_diffusion.core import EMA


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    return model


def test_decay_warmup_schedule():
    ema = EMA(_model(), max_decay=0.999, power=0.75)
    assert ema.decay(0) == 0.0 and ema.decay() == 0.0
    steps = [1, 2, 5, 10, 100, 1000, 5000, 10000, 9000, 20000]
    values = [ema.decay(s) for s in sorted(steps)]
    # Strictly increasing until the cap, then flat at max_decay.
    for a, b in itertools.pairwise(values):
        assert b > a or (a == b == 0.999)
    assert ema.decay(10**6) == 0.999
    assert max(ema.decay(s) for s in range(0, 20000, 37)) == 0.999
    # The documented closed form: 1 - (1 + step / inv_gamma) ** -power before the cap.
    assert ema.decay(10) == pytest.approx(1 - 11**-0.75, rel=1e-12)
    # power = 3/4 reaches 0.999 after ~10k steps (the docstring's figure): 10000^-0.75 = 1e-3.
    assert ema.decay(9000) < 0.999 and ema.decay(11000) == 0.999


def test_decay_respects_min_decay_and_validates():
    ema = EMA(_model(), max_decay=0.99, min_decay=0.5)
    assert ema.decay(1) == 0.5 and ema.decay(10**6) == 0.99
    for bad in ({"max_decay": 1.0}, {"min_decay": 0.9, "max_decay": 0.5}, {"min_decay": -0.1}):
        with pytest.raises(ValueError):
            EMA(_model(), **bad)


def test_constant_model_is_reproduced_exactly():
    model = _model(1)
    ema = EMA(_model(2))  # start from different weights
    for _ in range(50):
        ema.update(model)
    # The first update has decay 0 (copy); lerp between equal values stays exact.
    for averaged, current in zip(ema.module.parameters(), model.parameters(), strict=True):
        assert torch.equal(averaged, current)
    assert ema.step == 50
    assert all(not p.requires_grad for p in ema.module.parameters())


def test_ema_converges_to_new_constant_weights():
    model = _model(1)
    ema = EMA(model, max_decay=0.99)
    ema.update(model)
    target = _model(3)
    for _ in range(3000):
        ema.update(target)
    # The old weights' share after n updates is prod(decay) <= 0.99 ** 2500 ~ 1e-11, but a
    # float32 lerp stalls once (1 - d) |target - ema| drops below half an ulp of the weight
    # (<= 6e-8 for |w| <= 1): the residual is at most 6e-8 / 0.01 = 6e-6, hence atol 1e-5.
    for averaged, current in zip(ema.module.parameters(), target.parameters(), strict=True):
        assert current.abs().max() <= 1.0
        torch.testing.assert_close(averaged, current, rtol=0, atol=1e-5)


def test_ema_of_alternating_parameter_tracks_its_mean():
    model = nn.Linear(1, 1, bias=False)
    ema = EMA(model, max_decay=0.99)
    low, high = -1.0, 3.0
    for step in range(3000):
        with torch.no_grad():
            model.weight.fill_(high if step % 2 else low)
        ema.update(model)
    # Steady state of x <- d x + (1 - d) u for u alternating +-2 around the mean 1 is a
    # 2-cycle of amplitude 2 (1 - d) / (1 + d) = 0.01 for d = 0.99; warmup is forgotten after
    # 3000 steps (0.99^2500 ~ 1e-11). So |ema - 1| <= 0.0101.
    assert abs(float(ema.module.weight) - 1.0) < 0.0101
    assert float(ema.module.weight) != pytest.approx(1.0, abs=1e-4)  # it does oscillate


def test_buffers_are_copied_and_state_round_trips():
    model = _model(4)
    model.train()
    model(torch.randn(8, 3))  # updates BatchNorm running stats
    ema = EMA(_model(5))
    ema.update(model)
    torch.testing.assert_close(ema.module[1].running_mean, model[1].running_mean, rtol=0, atol=0)
    fresh = EMA(_model(6))
    fresh.load_state_dict(ema.state_dict(), step=ema.step)
    assert fresh.step == 1
    for a, b in zip(fresh.module.state_dict().values(), ema.state_dict().values(), strict=True):
        assert torch.equal(a, b)
