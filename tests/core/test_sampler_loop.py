"""The sampler loop's per-call work is done once, and that changes no result.

The grid's checks and derived tensors are shared between calls on the same CPU grid
(``core._grid``); a ``Denoiser`` of a single continuous space is converted with
precomputed terms; DDIM and DDPM precompute their coefficients on the grid. Each test
compares against the per-step formulas the samplers used before (bitwise: the same float
operations on the same values), or checks that sharing is invisible.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sci_diffusion.core import (
    SAMPLERS,
    CosineSchedule,
    Denoiser,
    EuclideanSpace,
    KarrasSchedule,
    LinearSchedule,
    sample,
)
from sci_diffusion.core._grid import clear_grid_cache, grid_entry
from sci_diffusion.core.sampler_config import SamplerSettings, run_sampler, sampler_settings

SCHEDULE = CosineSchedule()
SPACE = EuclideanSpace(SCHEDULE)


class Net(torch.nn.Module):
    """A small deterministic ``net(x, t, obs)`` on (B, 4, 2) states."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(9, 8)

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        flat = torch.cat([x.reshape(x.shape[0], -1), t.reshape(-1, 1)], -1)
        return (self.linear(flat) + obs.sum()).reshape(x.shape)


def _x(seed: int = 0, batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, 4, 2, generator=torch.Generator().manual_seed(seed))


def _grid_terms(steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    times = SCHEDULE.time_grid(steps)
    alpha, sigma = SCHEDULE.alpha_sigma(times)
    return times, alpha.reshape(-1, 1, 1), sigma.reshape(-1, 1, 1)


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_ddim_with_a_bound_denoiser_is_bitwise_the_per_step_formula(prediction: str) -> None:
    """What the loop did per step before: the conversion of ``x0_from_alpha_sigma`` with
    ``(alpha, sigma)`` views of the grid, then ``x_s = c1 x_t + c2 x0``."""
    net, obs, x = Net(), torch.ones(1), _x()
    times, alpha, sigma = _grid_terms(10)
    c1 = sigma[1:] / sigma[:-1]
    c2 = alpha[1:] - c1 * alpha[:-1]
    expected = x
    for i in range(10):
        a, s = alpha.unbind(0)[i], sigma.unbind(0)[i]
        out = net(expected, times[i].expand(3), obs)
        x0 = {"x0": out, "epsilon": (expected - s * out) / a,
              "v": (a * expected - s * out) / (a**2 + s**2)}[prediction]  # fmt: skip
        expected = torch.addcmul(c1.unbind(0)[i] * expected, c2.unbind(0)[i], x0)
    denoiser = Denoiser(net, SPACE, prediction=prediction).bind(obs=obs)
    with torch.no_grad():
        first = sample("ddim", denoiser, x, times, space=SPACE)
        again = sample("ddim", denoiser, x, SCHEDULE.time_grid(10), space=SPACE)  # shared grid
    assert torch.equal(first, expected.detach())
    assert torch.equal(again, first)


def test_ddpm_and_stochastic_ddim_are_bitwise_the_per_step_formulas() -> None:
    net, obs, x = Net(), torch.zeros(1), _x(1)
    times, alpha, sigma = _grid_terms(6)
    denoiser = Denoiser(net, SPACE, prediction="v").bind(obs=obs)
    a_, s_ = alpha.unbind(0), sigma.unbind(0)

    def x0_of(y: torch.Tensor, i: int) -> torch.Tensor:
        out = net(y, times[i].expand(3), obs)
        return (a_[i] * y - s_[i] * out) / (a_[i] ** 2 + s_[i] ** 2)

    for name, eta in (("ddpm", None), ("ddim", 0.7)):
        generator = torch.Generator().manual_seed(5)
        expected = x
        for i in range(6):
            a_t, s_t, a_s, s_s = a_[i], s_[i], a_[i + 1], s_[i + 1]
            x0 = x0_of(expected, i)
            noise = torch.randn(expected.shape, generator=generator)
            if name == "ddpm":
                a_ts = a_t / a_s
                var_ts = (s_t**2 - a_ts**2 * s_s**2).clamp_min(0.0)
                mean = (a_ts * s_s**2 * expected + a_s * var_ts * x0) / s_t**2
                expected = mean + (var_ts * s_s**2 / s_t**2).sqrt() * noise
            else:
                eps = (expected - a_t * x0) / s_t
                var_ts = (s_t**2 - (a_t / a_s) ** 2 * s_s**2).clamp_min(0.0)
                c = eta * (var_ts * s_s**2 / s_t**2).sqrt()
                out = a_s * x0 + (s_s**2 - c**2).clamp_min(0.0).sqrt() * eps
                expected = out + c * noise
        options = {} if eta is None else {"eta": eta}
        with torch.no_grad():
            got = sample(name, denoiser, x, times, space=SPACE,
                         generator=torch.Generator().manual_seed(5), **options)  # fmt: skip
        assert torch.equal(got, expected.detach()), name


@pytest.mark.parametrize("name", sorted(set(SAMPLERS) - {"categorical"}))
def test_repeated_calls_share_the_grid_and_give_the_same_result(name: str) -> None:
    """The first call builds the shared entry, later ones reuse it: same result bitwise,
    for a fresh grid tensor with the same values, under inference mode too."""
    clear_grid_cache()
    denoiser = Denoiser(Net(), SPACE, prediction="v").bind(obs=torch.ones(1))
    outs = []
    for mode in (torch.no_grad, torch.no_grad, torch.inference_mode):
        times = SCHEDULE.time_grid(8, t_start=0.95)
        with mode():
            outs.append(sample(name, denoiser, _x(2), times, space=SPACE,
                               generator=torch.Generator().manual_seed(0)))  # fmt: skip
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


def test_shared_tensors_are_plain_tensors_usable_with_gradients() -> None:
    """An entry first built under inference mode holds ordinary tensors: a later call with
    gradients enabled (guidance) may use them in autograd."""
    clear_grid_cache()
    times = SCHEDULE.time_grid(5)
    net = Net()
    with torch.inference_mode():
        sample("ddim", Denoiser(net, SPACE, prediction="v").bind(obs=torch.ones(1)), _x(),
               times, space=SPACE)  # fmt: skip
    x = _x().requires_grad_(True)
    out = sample("ddim", Denoiser(net, SPACE, prediction="v").bind(obs=torch.ones(1)), x,
                 SCHEDULE.time_grid(5), space=SPACE)  # fmt: skip
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_grids_differing_in_value_schedule_or_dtype_do_not_share() -> None:
    clear_grid_cache()
    net, obs, x = Net(), torch.ones(1), _x()
    with torch.no_grad():
        results = {}
        for label, schedule, times in (
            ("cosine", CosineSchedule(), CosineSchedule().time_grid(6)),
            ("cosine s=0.02", CosineSchedule(s=0.02), CosineSchedule().time_grid(6)),
            ("linear", LinearSchedule(), CosineSchedule().time_grid(6)),
            ("t_start", CosineSchedule(), CosineSchedule().time_grid(6, t_start=0.9)),
        ):
            space = EuclideanSpace(schedule)
            den = Denoiser(net, space, prediction="v").bind(obs=obs)
            results[label] = sample("ddim", den, x, times, space=space)
            clear_grid_cache()
            fresh = sample("ddim", den, x, times, space=space)
            assert torch.equal(results[label], fresh), label
        x64 = sample("ddim", Denoiser(net.double(), SPACE, prediction="v").bind(obs=obs),
                     x.double(), CosineSchedule().time_grid(6), space=SPACE)  # fmt: skip
    assert x64.dtype == torch.float64
    values = list(results.values())
    assert all(not torch.equal(values[0], v) for v in values[1:])


def test_a_network_writing_into_its_time_gets_a_rebuilt_grid() -> None:
    """A network that modifies ``t`` in place alters the shared grid; the next call notices
    and rebuilds it, so it returns what a fresh grid gives."""
    clear_grid_cache()

    def rude(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t.mul_(0.5)
        return x * 0.1

    def polite(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x * 0.1

    x = _x()
    with torch.no_grad():
        sample("ddim", Denoiser(rude, SCHEDULE, prediction="v"), x[:1], SCHEDULE.time_grid(4),
               space=SPACE, check_inputs=False)  # fmt: skip
        after = sample("ddim", Denoiser(polite, SCHEDULE, prediction="v"), x[:1],
                       SCHEDULE.time_grid(4), space=SPACE)  # fmt: skip
        clear_grid_cache()
        fresh = sample("ddim", Denoiser(polite, SCHEDULE, prediction="v"), x[:1],
                       SCHEDULE.time_grid(4), space=SPACE)  # fmt: skip
    assert torch.equal(after, fresh)


def test_an_invalid_grid_is_refused_every_time_even_after_an_unchecked_call() -> None:
    clear_grid_cache()
    bad = torch.tensor([1.0, 0.2, 0.5, 0.0])
    denoise = Denoiser(lambda x, t: x, SCHEDULE, prediction="x0")
    sample("ddim", denoise, _x(), bad, space=SPACE, check_inputs=False)
    for _ in range(2):
        with pytest.raises(ValueError, match="non-increasing"):
            sample("ddim", denoise, _x(), bad.clone(), space=SPACE)


def test_only_cpu_grids_of_one_dimension_are_shared() -> None:
    assert grid_entry(SCHEDULE.time_grid(3), check=True).shared
    per_sample = torch.stack([SCHEDULE.time_grid(3)] * 2, 1)
    assert not grid_entry(per_sample, check=True).shared
    assert not grid_entry(torch.empty(4, device="meta"), check=False).shared
    assert not grid_entry(SCHEDULE.time_grid(3).requires_grad_(True), check=False).shared


def test_custom_schedules_do_not_share_their_coefficients() -> None:
    """A schedule that is not a built-in one may compute from state of its own: its
    coefficients are recomputed on every call."""

    class Shifted(CosineSchedule):
        shift = 0.0

        def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return super().alpha_sigma((t + self.shift).clamp(0, 1))

    schedule = Shifted()
    space = EuclideanSpace(schedule)
    denoise = Denoiser(lambda x, t: x * 0.3, schedule, prediction="x0")
    with torch.no_grad():
        first = sample("ddim", denoise, _x(), schedule.time_grid(5), space=space)
        Shifted.shift = 0.05
        second = sample("ddim", denoise, _x(), schedule.time_grid(5), space=space)
    assert not torch.equal(first, second)


def test_sampler_settings_read_once_give_the_same_samples() -> None:
    node = {"name": "ddim", "steps": 6, "t_start": 0.9, "options": {"eta": 0.0},
            "spacing": "uniform"}  # fmt: skip
    cfg = SimpleNamespace(**node, get=node.get, keys=node.keys)
    settings = SamplerSettings.from_config(cfg)
    assert SamplerSettings.from_config(settings) is settings
    assert sampler_settings(settings) == ("ddim", 6, {"eta": 0.0})
    assert settings.get("t_start") == 0.9 and settings.get("spacing") == "uniform"
    assert settings.spacing == "uniform" and settings.get("missing", 3) == 3
    with pytest.raises(AttributeError):
        settings.missing  # noqa: B018
    with pytest.raises(AttributeError):
        settings.steps = 4  # type: ignore[misc]
    denoiser = Denoiser(Net(), SPACE, prediction="v").bind(obs=torch.ones(1))
    a = run_sampler(denoiser, SPACE, _x(), cfg, torch.Generator().manual_seed(0))
    b = run_sampler(denoiser, SPACE, _x(), settings, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="steps"):
        SamplerSettings.from_config(SimpleNamespace(name="ddim", steps=0, get={}.get))


def test_karras_heun_repeated_calls_agree() -> None:
    """A second-order sampler on a variance-exploding grid: the memoized grid and the
    per-call decisions (final correction skipped at sigma = 0) hold from call to call."""
    space = EuclideanSpace(KarrasSchedule())
    denoise = Denoiser(lambda x, t: x * 0.2, space, prediction="x0")
    with torch.no_grad():
        a = sample("heun", denoise, _x(), space.schedule.time_grid(5), space=space)
        b = sample("heun", denoise, _x(), space.schedule.time_grid(5), space=space)
    assert torch.equal(a, b)


def test_sync_free_heun_skips_the_final_correction_once_a_checked_call_read_the_grid() -> None:
    """Without input checks nothing reads the grid's values, so Heun cannot know that the last
    step lands on sigma = 0 and corrects it too (2N evaluations); once a checked call on the
    same shared grid has read it, the sync-free calls know (2N - 1), with the same result."""
    clear_grid_cache()
    calls = [0]

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return x * 0.2

    def run(check: bool) -> tuple[int, torch.Tensor]:
        calls[0] = 0
        out = sample("heun", denoise, _x(), SCHEDULE.time_grid(5), space=SPACE,
                     check_inputs=check)  # fmt: skip
        return calls[0], out

    unchecked, first = run(False)
    checked, second = run(True)
    again, third = run(False)
    assert (unchecked, checked, again) == (10, 9, 9)
    assert torch.equal(first, second) and torch.equal(second, third)


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
@pytest.mark.parametrize("schedule", [CosineSchedule(), LinearSchedule()])
def test_prepared_ddim_is_bitwise_sample_ddim_and_fused_agrees_to_rounding(
    prediction: str, schedule
) -> None:
    """The prepared loop (a policy's chunk: everything but the loop done once) runs the same
    float operations as ``sample_ddim``: bitwise equal. ``fuse=True`` folds the prediction's
    x0 into the step (``x_s = A x + B out``): the same arithmetic with its roundings in other
    places, so equal to float32 rounding only. Each step's few operations add ~1 ulp
    (6e-8 relative) and the steps carry it on: ten steps stay under 1e-5 of the sample's
    scale (measured: ~2e-6 relative)."""
    from sci_diffusion.core.samplers import _prepare_ddim

    space = EuclideanSpace(schedule)
    denoiser = Denoiser(Net(), space, prediction=prediction)
    times = schedule.time_grid(10, t_start=0.9 if prediction == "epsilon" else 1.0)
    prepared = _prepare_ddim(denoiser, _x(), times, space=space)
    fused = _prepare_ddim(denoiser, _x(), times, space=space, fuse=True)
    assert prepared is not None and fused is not None and fused.fuse
    with torch.no_grad():
        for seed in range(3):
            x, obs = _x(seed), torch.full((1,), 0.1 * seed)
            expected = sample("ddim", denoiser.bind(obs=obs), x, times, space=space)
            assert torch.equal(prepared(x, {"obs": obs}), expected)
            got = fused(x, {"obs": obs})
            assert not torch.equal(got, expected) or prediction == "x0"
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max())


def test_prepared_ddim_declines_what_it_does_not_do_and_notices_a_written_grid() -> None:
    """``None`` (run the sampler) for a masked space, a plain function, an EDM prediction or a
    product state; ``usable`` is False for another shape, dtype or a grid written into."""
    from sci_diffusion.core import ProductSpace
    from sci_diffusion.core.samplers import _prepare_ddim

    times = SCHEDULE.time_grid(4)
    denoiser = Denoiser(Net(), SPACE, prediction="v")
    assert _prepare_ddim(lambda x, t: x, _x(), times, space=SPACE) is None
    assert _prepare_ddim(Denoiser(Net(), SPACE, prediction="edm"), _x(), times, space=SPACE) is None
    product = ProductSpace({"x": SPACE})
    assert _prepare_ddim(denoiser, {"x": _x()}, times, space=product) is None
    prepared = _prepare_ddim(denoiser, _x(), times, space=SPACE)
    assert prepared is not None and prepared.usable(_x(1))
    assert not prepared.usable(_x(batch=2)) and not prepared.usable(_x().double())

    class Rude(torch.nn.Module):  # writes into the times it is given
        def forward(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
            t.add_(0.0)
            return x

    x = _x(batch=1)  # a batch-1 t is a writable view of the grid
    rude = _prepare_ddim(Denoiser(Rude(), SPACE, prediction="v"), x, times, space=SPACE)
    assert rude is not None and rude.usable(x)
    with torch.no_grad():
        rude(x, {"obs": torch.ones(1)})
    assert not rude.usable(x)
