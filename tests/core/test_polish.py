"""Sampler-config extras: ``time_spacing`` (grid denser near t = 0) and low-noise polishing.

Both are off by default and then leave ``run_sampler`` exactly as it was."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sci_diffusion.core import CategoricalSpace, EuclideanSpace, ProductSpace, make_schedule
from sci_diffusion.core.errors import InvalidValueError
from sci_diffusion.core.polish import polish, polish_levels, polish_settings
from sci_diffusion.core.sampler_config import describe_sampler, run_sampler
from sci_diffusion.core.time_spacing import TIME_SPACINGS, spaced_time_grid, time_spacing


class Cfg(dict):
    """A ``cfg.sampler`` stand-in: a dict with attribute reads."""

    __getattr__ = dict.__getitem__


def point_mass_denoiser(target: torch.Tensor):
    """The exact denoiser of data concentrated at ``target``: D(x, t) = target for all x."""

    def denoise(x, t):
        return target.expand_as(x).clone()

    return denoise


def test_schema_lists_the_same_spacings() -> None:
    from sci_diffusion.configs import schema

    assert set(schema.TIME_SPACINGS) == set(TIME_SPACINGS)


@pytest.mark.parametrize("spacing", list(TIME_SPACINGS))
def test_spaced_grids(spacing: str) -> None:
    schedule = make_schedule("polynomial")
    grid = spaced_time_grid(schedule, 10, t_start=0.9, spacing=spacing)
    linear = schedule.time_grid(10, t_start=0.9)
    assert grid.shape == linear.shape and grid.dtype == linear.dtype
    assert grid[0] == pytest.approx(0.9) and grid[-1] == 0.0
    assert bool((grid[1:] < grid[:-1]).all())
    if spacing == "linear":
        assert torch.equal(grid, linear)
    else:  # more of the steps near t = 0
        assert int((grid < 0.1).sum()) > int((linear < 0.1).sum())
    with pytest.raises(InvalidValueError, match="linear, quadratic, cubic"):
        spaced_time_grid(schedule, 10, spacing="log")


def test_settings_are_read_and_checked() -> None:
    assert time_spacing(Cfg(name="ddpm")) == "linear"
    assert time_spacing(Cfg(time_spacing="cubic")) == "cubic"
    with pytest.raises(InvalidValueError, match="linear, quadratic, cubic"):
        time_spacing(Cfg(time_spacing="cosine"))
    assert polish_settings(Cfg(name="ddpm")) == [] == polish_settings(Cfg(polish_steps=0))
    levels = polish_settings(Cfg(polish_steps=3, polish_t=0.08, polish_t_min=0.02))
    assert levels == pytest.approx([0.08, 0.04, 0.02])
    assert polish_levels(1) == [0.005] and polish_levels(0) == []
    assert polish_levels(40)[0] == 0.05 and polish_levels(40)[-1] == 0.005
    for bad in (dict(polish_steps=-1), dict(polish_steps=2, polish_t=0.01, polish_t_min=0.1),
                dict(polish_steps=2, polish_t="x")):  # fmt: skip
        with pytest.raises(InvalidValueError):
            polish_settings(Cfg(bad))


def test_polish_moves_continuous_parts_only() -> None:
    schedule = make_schedule("polynomial")
    space = ProductSpace({
        "pos": EuclideanSpace(schedule),
        "kind": CategoricalSpace(3, make_schedule("cosine"), "uniform"),
    })  # fmt: skip
    target = torch.tensor([[1.0, -2.0]])
    kind = torch.nn.functional.one_hot(torch.tensor([2, 0]), 3).float()
    x = {"pos": torch.zeros(2, 2), "kind": kind.clone()}
    calls = []

    def denoise(state, t):
        calls.append(float(t))
        return {"pos": target.expand(2, 2).clone(), "kind": torch.full((2, 3), 1 / 3)}

    out = polish(denoise, space, x, polish_levels(4))
    assert torch.allclose(out["pos"], target.expand(2, 2))
    assert torch.equal(out["kind"], kind)  # categorical components are held fixed
    assert calls == pytest.approx(polish_levels(4))
    assert polish(denoise, space, x, []) is x


def test_run_sampler_defaults_unchanged_and_polish_applied() -> None:
    space = EuclideanSpace(make_schedule("polynomial"))
    target = torch.tensor([[0.5, 0.25]])
    denoise = point_mass_denoiser(target)
    x = space.prior((4, 2), generator=torch.Generator().manual_seed(0))
    plain = Cfg(name="ddpm", steps=5, t_start=1.0, options={})
    explicit = Cfg(plain, time_spacing="linear", polish_steps=0)
    a = run_sampler(denoise, space, x, plain, torch.Generator().manual_seed(1))
    b = run_sampler(denoise, space, x, explicit, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert describe_sampler(plain) == describe_sampler(explicit)
    polished = Cfg(plain, time_spacing="cubic", polish_steps=3)
    c = run_sampler(denoise, space, x, polished, torch.Generator().manual_seed(1))
    assert torch.allclose(c, target.expand(4, 2), atol=1e-5)
    described = describe_sampler(polished)
    assert described["time_spacing"] == "cubic" and described["polish_steps"] == 3
    assert described["nfe"] == describe_sampler(plain)["nfe"] + 3


def test_namespace_configs_without_get_use_the_defaults() -> None:
    node = SimpleNamespace(name="ddpm", steps=2)
    assert time_spacing(node) == "linear" and polish_settings(node) == []
