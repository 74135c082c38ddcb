"""Classifier guidance by a property predictor (issue 16, item 7) on a tiny categorical graph
space: scale 0 is the plain denoiser, the tilt lowers the predicted error, padding stays put."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import Tensor, nn

from sci_diffusion.core import CategoricalSpace, Denoiser, ProductSpace, make_schedule
from sci_diffusion.core.sampler_config import run_sampler
from sci_diffusion.tasks.predictor_guidance import PredictorGuidance
from sci_diffusion.tasks.property_predictor import PropertyPredictor

CLASSES = {"atoms": 4, "charges": 3, "bonds": 5}
B, N = 6, 5


def _space() -> ProductSpace:
    schedule = make_schedule("cosine")
    return ProductSpace({
        k: CategoricalSpace(c, schedule, "uniform", symmetric=k == "bonds")
        for k, c in CLASSES.items()
    })  # fmt: skip


class TinyNet(nn.Module):
    """Logits per entry from a linear map of the entry's one-hot plus a time term."""

    def __init__(self) -> None:
        super().__init__()
        self.maps = nn.ModuleDict({k: nn.Linear(c + 1, c) for k, c in CLASSES.items()})

    def forward(self, x: dict[str, Tensor], t: Tensor, mask: dict | None = None) -> dict:
        out = {}
        for k, v in x.items():
            tt = t.reshape(-1, *([1] * (v.ndim - 1))).expand(*v.shape[:-1], 1)
            logits = self.maps[k](torch.cat([v, tt], -1))
            if k == "bonds":
                logits = 0.5 * (logits + logits.transpose(1, 2))
            out[k] = logits
        return out


class LinearPredictor(nn.Module):
    """Two properties, each a sum over real nodes / pairs of a fixed linear readout."""

    names = ("a", "b")

    def __init__(self) -> None:
        super().__init__()
        self.node_classes = {"atoms": 4, "charges": 3}
        g = torch.Generator().manual_seed(3)
        self.w = nn.ParameterDict({k: nn.Parameter(torch.randn(c, 2, generator=g))
                                   for k, c in CLASSES.items()})  # fmt: skip
        self.register_buffer("std", torch.tensor([2.0, 0.5]))

    def forward(self, x: dict[str, Tensor], t: Tensor, node_mask: Tensor | None = None) -> Tensor:
        total = x["atoms"].sum(1) @ self.w["atoms"] + x["charges"].sum(1) @ self.w["charges"]
        return total + x["bonds"].sum((1, 2)) @ self.w["bonds"]


def _masks() -> dict[str, Tensor]:
    counts = torch.tensor([5, 4, 3, 5, 2, 4])
    mask = torch.arange(N)[None] < counts[:, None]
    pair = mask[:, :, None] & mask[:, None, :] & ~torch.eye(N, dtype=torch.bool)[None]
    return {"atoms": mask, "charges": mask, "bonds": pair}


def _state(seed: int = 0) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    space, masks = _space(), _masks()
    g = torch.Generator().manual_seed(seed)
    x = {k: space[k].prior((B, *m.shape[1:], space[k].num_classes), m, generator=g)
         for k, m in masks.items()}  # fmt: skip
    return x, masks


def _denoiser() -> Denoiser:
    torch.manual_seed(0)
    return Denoiser(TinyNet(), _space())


def _tiny_predictor() -> PropertyPredictor:
    torch.manual_seed(1)
    net = PropertyPredictor({"atoms": 4, "charges": 3}, 5, ("a", "b"), layers=1, node_dim=16,
                            edge_dim=8, global_dim=8, heads=2).eval()  # fmt: skip
    with torch.no_grad():  # the readout starts at zero: give it something to differentiate
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


def test_scale_zero_is_the_plain_denoiser_exactly():
    den = _denoiser()
    x, masks = _state()
    t = torch.full((B,), 0.6)
    targets = torch.tensor([[1.0, math.nan]]).expand(B, -1)
    guided = PredictorGuidance(den, _tiny_predictor(), targets, 0.0)
    with torch.no_grad():
        plain, out = den(x, t, mask=masks), guided(x, t, mask=masks)
        at = guided.denoise_at(x, t, torch.ones(()), torch.zeros(()), mask=masks)
    for k in CLASSES:
        assert torch.equal(plain[k], out[k]) and torch.equal(plain[k], at[k])


def test_tilt_lowers_the_predicted_error_of_the_x0_estimate():
    den, pred = _denoiser(), LinearPredictor()
    x, masks = _state(1)
    t = torch.full((B,), 0.5)
    # Targets far above what any graph reaches: dL/dx has one sign everywhere, so the
    # first-order tilt must lower L on the x0 estimate; NaN: the second property is free.
    targets = torch.tensor([[100.0, math.nan]]).expand(B, -1)
    with torch.no_grad():
        base = den(x, t, mask=masks)
        losses = []
        for scale in (0.0, 0.01, 0.05):
            guide = PredictorGuidance(den, pred, targets, scale)
            x0 = guide(x, t, mask=masks)
            x0 = {k: v * masks[k][..., None] for k, v in x0.items()}
            losses.append(guide.loss(x0, t, masks))
            assert all(torch.allclose(v.sum(-1), torch.ones(())) for v in guide(x, t).values())
    assert (losses[1] < losses[0]).all() and (losses[2] < losses[1]).all()
    # The unguided property is not what moved: a target only on "b" tilts differently.
    only_b = PredictorGuidance(den, pred, torch.tensor([[math.nan, -100.0]]).expand(B, -1), 0.05)
    with torch.no_grad():
        assert not torch.allclose(only_b(x, t, mask=masks)["atoms"], x0["atoms"])
        assert not torch.allclose(base["atoms"], x0["atoms"])


def test_padding_is_untouched_and_grads_work_under_no_grad():
    den, pred = _denoiser(), _tiny_predictor()
    x, masks = _state(2)
    t = torch.full((B,), 0.3)
    guide = PredictorGuidance(den, pred, torch.tensor([[2.0, -1.0]]).expand(B, -1), 5.0)
    with torch.no_grad():
        plain, out = den(x, t, mask=masks), guide(x, t, mask=masks)
        grads = guide.gradients(x, t, masks)
    changed = False
    for k in CLASSES:
        pad = ~masks[k]
        assert torch.equal(out[k][pad], plain[k][pad])
        assert (grads[k][pad] == 0).all()
        changed |= not torch.allclose(out[k][masks[k]], plain[k][masks[k]])
    assert changed
    g = grads["bonds"]
    assert torch.equal(g, g.transpose(1, 2))  # total derivative of the shared bond variable


def test_non_finite_gradients_warn_and_skip_that_sample():
    den, pred = _denoiser(), LinearPredictor()
    x, masks = _state(3)
    t = torch.full((B,), 0.5)
    targets = torch.tensor([[1.0, math.nan]]).expand(B, -1).clone()
    targets[2, 0] = math.inf
    guide = PredictorGuidance(den, pred, targets, 1.0)
    with torch.no_grad(), pytest.warns(RuntimeWarning, match="1 of 6 samples"):
        out = guide(x, t, mask=masks)
        plain = den(x, t, mask=masks)
    assert all(torch.equal(out[k][2], plain[k][2]) for k in CLASSES)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_runs_inside_a_sampler():
    from omegaconf import OmegaConf

    den, pred = _denoiser(), _tiny_predictor()
    x, masks = _state(4)
    guide = PredictorGuidance(den, pred, torch.tensor([[1.0, 0.0]]).expand(B, -1), 2.0)
    cfg = OmegaConf.create({"name": "categorical", "steps": 4})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = run_sampler(guide, _space(), x, cfg, torch.Generator().manual_seed(0), mask=masks)
    for k, v in out.items():
        assert (v[~masks[k]] == 0).all() and (v[masks[k]].sum(-1) == 1).all()
    assert guide.last_loss is not None and guide.last_loss.shape == (B,)


def test_bad_arguments():
    den = _denoiser()
    with pytest.raises(ValueError, match="scale"):
        PredictorGuidance(den, LinearPredictor(), torch.zeros(B, 2), -1.0)
    with pytest.raises(ValueError, match="columns"):
        PredictorGuidance(den, LinearPredictor(), torch.zeros(B, 3), 1.0)
