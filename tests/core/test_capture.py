"""CapturedSampler: a fixed-shape sampling loop replayed from static buffers.

The CPU tests run the same static-buffer loop eagerly (``graph=False``) and check its
plumbing and refusals; the CUDA tests capture a real graph and are skipped without a device.
"""

from __future__ import annotations

import pytest
import torch

from sci_diffusion.core import (
    CapturedSampler,
    CaptureUnavailableError,
    CoMFreeSpace,
    CosineSchedule,
    Denoiser,
    EuclideanSpace,
    KarrasSchedule,
    LinearSchedule,
    ProductSpace,
    sample,
)

SCHEDULE = CosineSchedule()
SPACE = EuclideanSpace(SCHEDULE)
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="CUDA graph capture needs a CUDA device")


class Net(torch.nn.Module):
    """``net(x, t, obs)`` on (B, 4, 2) states, conditioned on ``obs`` (B, 3)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(12, 8)

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        flat = torch.cat([x.reshape(x.shape[0], -1), t.reshape(-1, 1), obs], -1)
        return torch.tanh(self.linear(flat)).reshape(x.shape)


def _inputs(seed: int, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 2, generator=g).to(device), torch.randn(2, 3, generator=g).to(device)


def _eager(name: str, net: torch.nn.Module, x: torch.Tensor, obs: torch.Tensor, times, **kw):
    denoiser = Denoiser(net, SPACE, prediction="v").bind(obs=obs)
    with torch.no_grad():
        return sample(name, denoiser, x, times, space=SPACE, **kw)


@pytest.mark.parametrize("name", ["ddim", "dpm_solver_pp_2m", "heun", "flow_euler"])
def test_eager_replay_is_bitwise_the_sampler_for_every_new_input(name: str) -> None:
    net, times = Net(), SCHEDULE.time_grid(6, t_start=0.98)
    x, obs = _inputs(0)
    captured = CapturedSampler(name, Denoiser(net, SPACE, prediction="v"), x, times,
                               space=SPACE, cond={"obs": obs}, graph=False)  # fmt: skip
    assert torch.equal(captured(), _eager(name, net, x, obs, times))
    for seed in (1, 2):
        x_new, obs_new = _inputs(seed)
        assert torch.equal(captured(x_new, obs=obs_new), _eager(name, net, x_new, obs_new, times))
    assert captured(copy=False) is captured.output


@pytest.mark.parametrize(
    ("schedule", "prediction", "t_start"),
    [(CosineSchedule(), "epsilon", 1.0), (CosineSchedule(), "v", 1.0),
     (LinearSchedule(), "epsilon", 0.8), (KarrasSchedule(), "x0", 1.0)],
)  # fmt: skip
def test_fused_ddim_is_the_same_arithmetic_up_to_rounding(schedule, prediction, t_start) -> None:
    """``x_s = A x_t + B out``: within 1e-5 of the eager result relative to its magnitude
    (measured: at most 1.2e-6 over 54 settings)."""
    space = EuclideanSpace(schedule)
    net, times = Net(), schedule.time_grid(10, t_start=t_start)
    x, obs = _inputs(3)
    x = x * space.prior((1,), t=t_start).abs().clamp_min(1.0)  # the prior's scale (Karras: 80)
    denoiser = Denoiser(net, space, prediction=prediction)
    fused = CapturedSampler("ddim", denoiser, x, times, space=space, cond={"obs": obs},
                            graph=False, fuse=True)()  # fmt: skip
    with torch.no_grad():
        eager = sample("ddim", denoiser.bind(obs=obs), x, times, space=space)
    assert (fused - eager).abs().max() <= 1e-5 * eager.abs().max()


def test_fuse_refuses_what_it_cannot_fold() -> None:
    net, times = Net(), SCHEDULE.time_grid(4)
    x, obs = _inputs(0)
    v = Denoiser(net, SPACE, prediction="v")
    cases = [
        (("ddpm", v, SPACE, {}), "sampler 'ddpm'"),
        (("ddim", v, SPACE, {"eta": 0.5}), "eta=0.5"),
        (("ddim", Denoiser(net, SPACE, prediction="velocity"), SPACE, {}), "prediction"),
        (("ddim", v, CoMFreeSpace(SCHEDULE), {}), "EuclideanSpace"),
        (("ddim", lambda x, t, obs: x, SPACE, {}), "a Denoiser only"),
    ]
    for (name, denoise, space, options), message in cases:
        with pytest.raises(ValueError, match=message):
            CapturedSampler(name, denoise, x, times, space=space, cond={"obs": obs},
                            graph=False, fuse=True, **options)  # fmt: skip


def test_refusals_name_the_fix() -> None:
    net, times = Net(), SCHEDULE.time_grid(4)
    x, obs = _inputs(0)
    denoiser = Denoiser(net, SPACE, prediction="v")
    captured = CapturedSampler("ddim", denoiser, x, times, space=SPACE, cond={"obs": obs},
                               graph=False)  # fmt: skip
    with pytest.raises(ValueError, match="capture again for new shapes"):
        captured(torch.zeros(3, 4, 2))
    with pytest.raises(ValueError, match="unknown conditioning"):
        captured(goal=obs)
    with pytest.raises(ValueError, match="callback"):
        CapturedSampler("ddim", denoiser, x, times, space=SPACE, cond={"obs": obs},
                        graph=False, callback=print)  # fmt: skip
    product = ProductSpace({"a": SPACE})
    with pytest.raises(ValueError, match="single-tensor"):
        CapturedSampler("ddim", denoiser, {"a": x}, times, space=product, graph=False)
    with pytest.raises(ValueError, match="non-increasing"):  # checked once, eagerly
        CapturedSampler("ddim", denoiser, x, times.flip(0), space=SPACE, cond={"obs": obs},
                        graph=False)  # fmt: skip


@pytest.mark.skipif(CUDA, reason="checks the error raised where CUDA is missing")
def test_graph_capture_without_cuda_says_so() -> None:
    x, obs = _inputs(0)
    with pytest.raises(CaptureUnavailableError, match=r"needs a CUDA device.*graph=False"):
        CapturedSampler("ddim", Denoiser(Net(), SPACE, prediction="v"), x,
                        SCHEDULE.time_grid(4), space=SPACE, cond={"obs": obs})  # fmt: skip


def test_bench_capture_runs_eagerly_on_a_cpu_and_refuses_graphs_there() -> None:
    from sci_diffusion.bench.capture import capture_records, table

    records = capture_records("cpu", graph=False, repeats=1, min_time=0.0,
                              cases=(("time_mlp", None), ("mlp", "reacher")))  # fmt: skip
    assert [r["net"] for r in records] == ["time_mlp", "mlp"]
    for r in records:
        assert r["nfe"] == 10 and r["ratio_to_forwards"] > 0
        assert r["ratio_to_forwards"] == pytest.approx(r["captured_ms"] / r["forward_captured_ms"])
    assert "| time_mlp (2-D points) |" in table(records)
    if not CUDA:
        with pytest.raises(CaptureUnavailableError):
            capture_records("cpu")


@needs_cuda
@pytest.mark.parametrize("name", ["ddim", "dpm_solver_pp_2m", "heun"])
def test_cuda_replay_is_bitwise_the_eager_loop(name: str) -> None:
    net, times = Net().cuda(), SCHEDULE.time_grid(8, device="cuda")
    x, obs = _inputs(0, "cuda")
    captured = CapturedSampler(name, Denoiser(net, SPACE, prediction="v"), x, times,
                               space=SPACE, cond={"obs": obs})  # fmt: skip
    for seed in (0, 1, 2):
        x_new, obs_new = _inputs(seed, "cuda")
        out = captured(x_new, obs=obs_new)  # the eager kernels replayed: expected bitwise
        torch.testing.assert_close(out, _eager(name, net, x_new, obs_new, times),
                                   rtol=1e-6, atol=1e-6)  # fmt: skip


@needs_cuda
def test_cuda_fused_replay_matches_and_stochastic_replays_draw_new_noise() -> None:
    net, times = Net().cuda(), SCHEDULE.time_grid(8, device="cuda")
    x, obs = _inputs(0, "cuda")
    denoiser = Denoiser(net, SPACE, prediction="v")
    fused = CapturedSampler("ddim", denoiser, x, times, space=SPACE, cond={"obs": obs},
                            fuse=True)(x, obs=obs)  # fmt: skip
    eager = _eager("ddim", net, x, obs, times)
    assert (fused - eager).abs().max() <= 1e-5 * eager.abs().max()
    noisy = CapturedSampler("ddpm", denoiser, x, times, space=SPACE, cond={"obs": obs})
    first, second = noisy(x, obs=obs), noisy(x, obs=obs)
    assert torch.isfinite(first).all() and not torch.equal(first, second)
