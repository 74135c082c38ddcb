import math

import pytest

from sci_diffusion.bench.policy import PAIRS, latency_records
from sci_diffusion.cli import main


def test_latency_records_cover_every_sampler_and_step_count():
    pytest.importorskip("diffusers")
    records = latency_records("mlp", steps=(1, 3), repeats=1, min_time=0.0)
    assert {(r["sampler"], r["steps"]) for r in records} == {
        (name, n) for name, _ in PAIRS for n in (1, 3)
    }
    for r in records:
        for key in ("ours_ms", "diffusers_ms", "network_ms", "ratio"):
            assert math.isfinite(r[key]) and r[key] > 0
        assert r["sampler_overhead_ms"] == pytest.approx(r["ours_ms"] - r["network_ms"])


def test_bench_policy_rejects_unknown_model(capsys):
    assert main(["bench", "policy", "model=resnet"]) == 2
    assert "model must be one of" in capsys.readouterr().err


def test_loop_records_time_the_policy_path_against_its_network_calls():
    from sci_diffusion.bench.policy_loop import loop_records, loop_table

    records = loop_records(("mlp",), ("reacher",), repeats=1, min_time=0.0)
    (r,) = records
    assert (r["task"], r["model"], r["sampler"], r["steps"], r["nfe"]) == (
        "reacher", "mlp", "ddim", 10, 10,
    )  # fmt: skip
    assert (r["eta"], r["t_start"], r["prediction"], r["schedule"]) == (0.0, 1.0, "v", "cosine")
    for key in (
        "loop_ms",
        "core_ms",
        "network_ms",
        "empty_loop_ms",
        "loop_cpu_ms",
        "network_cpu_ms",
        "config_cpu_ms",
        "hand_cpu_ms",
        "fused_cpu_ms",
    ):
        assert math.isfinite(r[key]) and r[key] > 0
    assert r["config_overhead_cpu"] == pytest.approx(r["config_cpu_ms"] / r["network_cpu_ms"] - 1)
    assert r["overhead"] == pytest.approx(r["loop_ms"] / r["network_ms"] - 1)
    assert r["overhead_cpu"] == pytest.approx(r["loop_cpu_ms"] / r["network_cpu_ms"] - 1)
    assert "| reacher (4, 1, 2, 10) | mlp |" in loop_table(records)


def test_loop_task_sizes_are_the_task_configs_and_environments():
    """Horizon, observation steps and sampler come from configs/task; the action and
    observation sizes of TASK_DIMS are those of the environments (checked where they build)."""
    from sci_diffusion.bench.policy_loop import LOOP_TASKS, TASK_DIMS, task_settings

    assert set(TASK_DIMS) == set(LOOP_TASKS)
    for task in LOOP_TASKS:
        s = task_settings(task)
        assert s["horizon"] >= 1 and s["n_obs_steps"] >= 1 and s["model"] in ("mlp", "unet1d")
        assert (s["sampler"].name, s["sampler"].steps) == ("ddim", 10)
    try:  # first the registry: importing sci_diffusion.envs picks MuJoCo's GL backend
        from sci_diffusion.envs.registry import get_task
    except ImportError:
        pytest.skip("the environments' packages are not installed")
    pytest.importorskip("mujoco")

    for task in ("multimodal", "reacher", "pusher"):
        env = get_task(task).make_env(0)
        try:
            shape = (env.action_space.shape[0], env.observation_space.shape[0])
        finally:
            env.close()
        assert shape == TASK_DIMS[task]


def test_bench_part_option_belongs_to_bench_policy(capsys):
    assert main(["bench", "sampler", "part=loop"]) == 2
    assert "part applies to bench policy only" in capsys.readouterr().err


def test_the_hand_written_floor_computes_what_the_policy_loop_computes():
    """``hand`` is the same arithmetic without the sampler's bookkeeping: bitwise the same
    chunk as the policy path (``loop``) and the core call (``core``)."""
    import torch

    from sci_diffusion.bench.policy_loop import _case, _config, task_settings
    from sci_diffusion.core import Denoiser, EuclideanSpace, make_schedule
    from sci_diffusion.core.sampler_config import SamplerSettings
    from sci_diffusion.policy.backbones import build_backbone

    s = task_settings("reacher")
    space = EuclideanSpace(make_schedule(s["schedule"]))
    net = build_backbone(_config("model", "mlp"), action_dim=2, obs_dim=10, n_obs_steps=1,
                         horizon=4).eval()  # fmt: skip
    obs, x = torch.randn(1, 1, 10), torch.randn(1, 4, 2)
    denoiser = Denoiser(net, space, prediction=s["prediction"])
    fns = _case(denoiser, net, space, x, obs, space.schedule.time_grid(10), 10,
                SamplerSettings.from_config(s["sampler"]), torch.Generator())  # fmt: skip
    with torch.inference_mode():
        hand, loop, core = fns["hand"](), fns["loop"](), fns["core"]()
    assert torch.equal(hand, loop) and torch.equal(hand, core)


def test_pixel_part_times_whole_pixel_chunks_beside_the_state_policy():
    from sci_diffusion.bench.policy_pixels import pixel_latency_records, pixel_table

    records = pixel_latency_records(repeats=2, min_time=0.0, quick=True)
    by_name = {r["name"]: r for r in records}
    pixels, state = by_name["ours pixels (small_cnn)"], by_name["ours state"]
    assert pixels["encoder_parameters"] > 0 and state["encoder_parameters"] == 0
    assert pixels["chunk_ms"] > 0 and state["chunk_ms"] > 0
    assert "ours pixels (small_cnn)" in pixel_table(records)


def test_reference_case_has_diffusion_policys_unet_size():
    from sci_diffusion.bench.policy_pixels import _case

    ref = _case("ref", camera=(96, 96), backbone="resnet18", crop=84 / 96, state_dim=2,
                proprio=(0, 1), reference_unet=True)  # fmt: skip
    # Chi et al.'s U-Net is 65.8M parameters with Push-T's state conditioning (20 x 2); the
    # image conditioning (64 keypoint features + 2 proprio, x 2 steps) widens its FiLM layers
    assert 65.8e6 < ref["denoiser_parameters"] < 70e6
    assert ref["encoder_parameters"] > 11_176_512  # the ResNet-18 trunk plus keypoints/linear
