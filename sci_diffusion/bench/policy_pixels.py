"""Pixel policy latency: one action chunk at batch 1, image encoder + sampler, side by side.

Every row is a whole :meth:`~sci_diffusion.policy.policy.Policy.predict_chunk` call (state
normalization, the image encoder once, the sampler's network calls, un-normalization) with
random weights — timing does not depend on training — and a DDIM plan of
:data:`PIXEL_STEPS` steps, timed interleaved with the others (medians):

* ``ours pixels (small_cnn)`` — the ``multimodal`` pixel recipe: one 64x64 camera (58x58 centre
  crop), the small CNN, our CPU-sized U-Net (``configs/model/unet1d.yaml``);
* ``ours pixels (resnet18)`` — the same with the ResNet-18 encoder;
* ``Diffusion Policy reference`` — Chi et al.'s image policy at its size: ResNet-18 (GroupNorm,
  spatial softmax) on one 96x96 camera cropped to 84x84 plus 2-D proprioception (Push-T image),
  and Chi et al.'s U-Net (down dims 256/512/1024, time embedding 256: 65.8M parameters with
  Push-T's state conditioning, 69.1M with this image conditioning of 2 x 66 features);
* ``ours state`` — the state policy of the same task for scale.

``ratio`` is a row's median over the reference's, measured in the same run.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from .policy_nets import count_parameters

__all__ = ["PIXEL_STEPS", "pixel_latency_records", "pixel_table"]

PIXEL_STEPS = 10
"""DDIM steps per chunk (the policy tasks' default)."""

_HORIZON, _TO, _DA = 16, 2, 2
"""Chunk of 16 2-D actions from 2 observations (multimodal's and Push-T's sizes)."""


def _case(name: str, *, camera: tuple[int, int] | None, backbone: str, crop: float,
          state_dim: int, proprio: tuple[int, ...],
          reference_unet: bool) -> dict[str, Any]:  # fmt: skip
    from sci_diffusion.core import Denoiser, EuclideanSpace, make_schedule
    from sci_diffusion.nets.unet1d import ConditionalUnet1D
    from sci_diffusion.nets.vision import ObservationEncoder
    from sci_diffusion.policy.backbones import build_backbone
    from sci_diffusion.policy.network import PolicyNetwork
    from sci_diffusion.policy.policy import Policy

    torch.manual_seed(0)
    encoder = None
    cond_dim = state_dim
    if camera is not None:
        encoder = ObservationEncoder({"cam": (*camera, 3)}, state_dim, proprio,
                                     backbone=backbone, crop=crop)  # fmt: skip
        cond_dim = encoder.out_dim
    if reference_unet:
        unet: torch.nn.Module = ConditionalUnet1D(
            action_dim=_DA, obs_dim=cond_dim, n_obs_steps=_TO, horizon=_HORIZON,
            down_dims=(256, 512, 1024), time_embed_dim=256)  # fmt: skip
    else:
        cfg = OmegaConf.load(resources.files("sci_diffusion.configs") / "model" / "unet1d.yaml")
        unet = build_backbone(cfg, action_dim=_DA, obs_dim=cond_dim, n_obs_steps=_TO,
                              horizon=_HORIZON)  # fmt: skip
    net = PolicyNetwork(unet, state_dim, _DA, encoder).eval()
    denoiser = Denoiser(net, EuclideanSpace(make_schedule("cosine")), prediction="v")
    sampler = OmegaConf.create({"name": "ddim", "steps": PIXEL_STEPS})
    policy = Policy(net, denoiser, "diffusion", sampler, _TO, _HORIZON, 8,
                    -np.ones(_DA, np.float32), np.ones(_DA, np.float32))  # fmt: skip
    rng = np.random.default_rng(0)
    history: Any = rng.normal(size=(1, _TO, state_dim)).astype(np.float32)
    if camera is not None:
        frames = rng.integers(0, 256, (1, _TO, *camera, 3), dtype=np.uint8)
        history = {"state": history, "cam": frames}
    return {
        "name": name,
        "image": "none" if camera is None else f"{camera[0]}x{camera[1]} (crop {crop:g})",
        "encoder": "none" if encoder is None else backbone,
        "encoder_parameters": 0 if encoder is None else count_parameters(encoder),
        "denoiser_parameters": count_parameters(unet),
        "policy": policy,
        "history": history,
    }


def pixel_latency_records(repeats: int = 15, min_time: float = 0.05,
                          quick: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Batch-1 chunk latency of each case (module docstring), medians in ms, with the ratio to
    Diffusion Policy's reference measured in the same run. ``quick`` leaves out the reference
    and ResNet-18 rows (tests)."""
    from .sampler import _time_interleaved

    cases = [
        _case("ours pixels (small_cnn)", camera=(64, 64), backbone="small_cnn", crop=0.9,
              state_dim=6, proprio=(), reference_unet=False),
        _case("ours state", camera=None, backbone="", crop=1.0, state_dim=6, proprio=(),
              reference_unet=False),
    ]  # fmt: skip
    if not quick:
        cases += [
            _case("ours pixels (resnet18)", camera=(64, 64), backbone="resnet18", crop=0.9,
                  state_dim=6, proprio=(), reference_unet=False),
            _case("Diffusion Policy reference", camera=(96, 96), backbone="resnet18",
                  crop=84 / 96, state_dim=2, proprio=(0, 1), reference_unet=True),
        ]  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    fns = {c["name"]: (lambda c=c: c["policy"].predict_chunk(c["history"], generator))
           for c in cases}  # fmt: skip
    with torch.inference_mode():
        timing = _time_interleaved(fns, repeats, min_time)
    reference = timing.get("Diffusion Policy reference")
    return [{
        **{k: v for k, v in c.items() if k not in ("policy", "history")},
        "steps": PIXEL_STEPS,
        "chunk_ms": 1e3 * timing[c["name"]],
        "ratio_to_reference": None if reference is None else timing[c["name"]] / reference,
    } for c in cases]  # fmt: skip


def pixel_table(records: list[dict[str, Any]]) -> str:
    """Plain-text table of :func:`pixel_latency_records`."""
    lines = [f"{'policy':<28}{'image':>18}{'encoder':>11}{'enc params':>12}{'unet params':>13}"
             f"{'chunk ms':>10}{'/ ref':>7}"]  # fmt: skip
    for r in records:
        ratio = "-" if r["ratio_to_reference"] is None else f"{r['ratio_to_reference']:.3f}"
        lines.append(f"{r['name']:<28}{r['image']:>18}{r['encoder']:>11}"
                     f"{r['encoder_parameters']:>12,}{r['denoiser_parameters']:>13,}"
                     f"{r['chunk_ms']:>10.1f}{ratio:>7}")  # fmt: skip
    return "\n".join(lines)
