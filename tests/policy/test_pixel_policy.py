"""Pixel policies: the encoder lives in PolicyNetwork, is used once per planned chunk, and bad
images are refused with the camera, dtype or shape named."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from sci_diffusion.core import Denoiser, EuclideanSpace, make_schedule
from sci_diffusion.io.errors import UserInputError
from sci_diffusion.nets.vision import ObservationEncoder
from sci_diffusion.policy.backbones import build_backbone
from sci_diffusion.policy.methods.mse_bc import RegressionObjective
from sci_diffusion.policy.network import PolicyNetwork
from sci_diffusion.policy.policy import Policy, stack_observations

CONFIGS = Path(str(resources.files("sci_diffusion.configs")))
TO, H, DA, DO = 2, 8, 2, 6


def _policy(method: str = "diffusion") -> Policy:
    torch.manual_seed(0)
    encoder = ObservationEncoder({"top": (32, 32, 3)}, DO, proprio=(0, 1), crop=0.9)
    backbone = build_backbone(OmegaConf.load(CONFIGS / "model" / "mlp.yaml"), action_dim=DA,
                              obs_dim=encoder.out_dim, n_obs_steps=TO, horizon=H)  # fmt: skip
    with torch.no_grad():  # the MLP's output layer starts at zero: nothing would reach the input
        for p in backbone.parameters():
            p.normal_(0.0, 0.2)
    net = PolicyNetwork(backbone, DO, DA, encoder).eval()
    denoiser = Denoiser(net, EuclideanSpace(make_schedule("cosine")), prediction="v")
    sampler = OmegaConf.create({"name": "ddim", "steps": 3})
    return Policy(net, denoiser, method, sampler, TO, H, 4, -np.ones(DA, np.float32),
                  np.ones(DA, np.float32))  # fmt: skip


def _history(batch: int = 3) -> dict:
    rng = np.random.default_rng(0)
    steps = [[{"state": rng.normal(size=DO).astype(np.float32),
               "top": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)} for _ in range(TO)]
             for _ in range(batch)]  # fmt: skip
    return stack_observations(steps)


@pytest.mark.parametrize("method", ["diffusion", "mse_bc"])
def test_pixel_policy_plans_clipped_chunks_from_dict_histories(method):
    policy = _policy(method)
    history = _history()
    assert history["state"].shape == (3, TO, DO) and history["top"].shape == (3, TO, 32, 32, 3)
    chunk = policy.predict_chunk(history, torch.Generator().manual_seed(0))
    assert chunk.shape == (3, H, DA) and np.all(np.abs(chunk) <= 1)


def test_the_encoder_runs_once_per_chunk_not_per_denoising_step(monkeypatch):
    policy = _policy()
    calls = []
    original = policy.net.encoder.forward
    monkeypatch.setattr(policy.net.encoder, "forward",
                        lambda *a, **k: calls.append(1) or original(*a, **k))  # fmt: skip
    policy.predict_chunk(_history(), torch.Generator().manual_seed(0))
    assert len(calls) == 1


def test_images_change_the_plan():
    policy = _policy("mse_bc")
    history = _history(1)
    a = policy.predict_chunk(history, torch.Generator().manual_seed(0))
    history["top"] = 255 - history["top"]
    b = policy.predict_chunk(history, torch.Generator().manual_seed(0))
    assert not np.allclose(a, b)


def test_training_passes_images_through_the_encoder_and_trains_it():
    policy = _policy("mse_bc")
    net = policy.net.train()
    history = _history(4)
    cond = {"obs": torch.from_numpy(history["state"]),
            "images": {"top": torch.from_numpy(history["top"])}}  # fmt: skip
    out = RegressionObjective(net)(torch.zeros(4, H, DA), **cond)
    out.loss.backward()
    first_conv = next(p for n, p in net.encoder.named_parameters() if "weight" in n)
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


def test_bad_images_are_refused_with_a_clear_message():
    policy = _policy()
    g = torch.Generator().manual_seed(0)
    history = _history(2)
    with pytest.raises(UserInputError, match=r"cameras \['side'\].*\['top'\]"):
        policy.predict_chunk({"state": history["state"], "side": history["top"]}, g)
    with pytest.raises(UserInputError, match="camera 'top': image float32"):
        policy.predict_chunk({**history, "top": history["top"].astype(np.float32)}, g)
    with pytest.raises(UserInputError, match=r"expects uint8 \(..., 32, 32, 3\)"):
        policy.predict_chunk({**history, "top": history["top"][:, :, :16]}, g)
    with pytest.raises(ValueError, match=r"frames .* expected \(B, To\)"):
        policy.predict_chunk({**history, "top": history["top"][:1]}, g)
    with pytest.raises(ValueError, match="needs its 'state' entry"):
        policy.predict_chunk({"top": history["top"]}, g)
    with pytest.raises(ValueError, match="trained on images"):
        policy.predict_chunk(history["state"], g)
    with pytest.raises(ValueError, match=r"obs_history must be \(B, 2, 6\)"):
        policy.predict_chunk({**history, "state": history["state"][..., :4]}, g)
