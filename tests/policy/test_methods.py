"""Policy methods and backbones are registries by module name, each with its config yaml; the
task and the runtime policy only call a method, never name one."""

from __future__ import annotations

import ast
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from sci_diffusion.policy.backbones import backbone_class, backbone_names, build_backbone
from sci_diffusion.policy.methods import PolicyMethod, build_method, method_class, method_names
from sci_diffusion.policy.methods.mse_bc import regress
from sci_diffusion.policy.network import PolicyNetwork
from sci_diffusion.policy.policy import Policy

CONFIGS = Path(str(resources.files("sci_diffusion.configs")))
ROOT = Path(__file__).resolve().parents[2]
SHAPE = {"action_dim": 2, "obs_dim": 3, "n_obs_steps": 2, "horizon": 8}


def test_every_method_has_its_yaml_and_every_policy_yaml_a_method() -> None:
    yamls = {p.stem: OmegaConf.load(p) for p in (CONFIGS / "policy").glob("*.yaml")}
    assert set(method_names()) == set(yamls) and {"diffusion", "mse_bc"} <= set(yamls)
    for name, cfg in yamls.items():
        assert cfg.name == name and method_class(name).name == name
        assert issubclass(method_class(name), PolicyMethod) and method_class(name).summary


def test_every_backbone_has_its_model_yaml_and_builds_with_the_calling_convention() -> None:
    assert {"unet1d", "transformer", "mlp"} <= set(backbone_names())
    x, t = torch.randn(3, SHAPE["horizon"], 2), torch.rand(3)
    obs = torch.randn(3, SHAPE["n_obs_steps"], SHAPE["obs_dim"])
    for name in backbone_names():
        cfg = OmegaConf.load(CONFIGS / "model" / f"{name}.yaml")
        assert cfg.name == name
        net = build_backbone(cfg, **SHAPE)
        assert isinstance(net, backbone_class(name))
        assert net(x, t, obs).shape == x.shape


def test_unknown_names_list_the_registered_ones() -> None:
    with pytest.raises(ValueError, match="model 'egnn' is not a policy backbone; available: mlp"):
        build_backbone(OmegaConf.create({"name": "egnn"}), **SHAPE)
    with pytest.raises(ValueError, match="policy 'ppo' is not a policy method; available: diff"):
        build_method({"name": "ppo"})


def test_saved_configs_with_policy_kind_still_select_their_method() -> None:
    with pytest.warns(DeprecationWarning, match="policy.kind"):
        method = build_method(OmegaConf.create({"kind": "mse_bc"}))
    assert method.name == "mse_bc"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build_method(OmegaConf.create({"name": "diffusion"})).name == "diffusion"


def test_old_names_warn_and_still_work() -> None:
    import sci_diffusion.policy.network as network
    import sci_diffusion.policy.policy as policy_module
    import sci_diffusion.tasks.policy as task_module
    from sci_diffusion.policy.methods.mse_bc import RegressionObjective

    with pytest.warns(DeprecationWarning):
        assert task_module.BACKBONES["unet1d"] == ("sci_diffusion.nets.unet1d", "ConditionalUnet1D")
    with pytest.warns(DeprecationWarning):
        assert policy_module.KINDS == ("diffusion", "mse_bc")
    with pytest.warns(DeprecationWarning):
        assert network.RegressionObjective is RegressionObjective
    net = PolicyNetwork(backbone_class("mlp")(**SHAPE, width=16, depth=1), 3, 2)
    obs = torch.randn(4, 2, 3)
    with pytest.warns(DeprecationWarning):
        torch.testing.assert_close(net.regress(obs, 8), regress(net, obs, (4, 8, 2)))


def test_policy_accepts_a_method_name_and_plans_with_it() -> None:
    torch.manual_seed(0)
    net = PolicyNetwork(backbone_class("mlp")(**SHAPE, width=16, depth=1), 3, 2).eval()
    low, high = -np.ones(2, np.float32), np.ones(2, np.float32)
    policy = Policy(net, None, "mse_bc", None, 2, 8, 4, low, high)
    assert policy.kind == "mse_bc" and isinstance(policy.method, PolicyMethod)
    chunk = policy.predict_chunk(np.zeros((5, 2, 3), np.float32), torch.Generator())
    assert chunk.shape == (5, 8, 2) and np.isfinite(chunk).all()
    with pytest.raises(ValueError, match="is not a policy method"):
        Policy(net, None, "ppo", None, 2, 8, 4, low, high)


@pytest.mark.parametrize("path", ["tasks/policy.py", "sci_diffusion/policy/policy.py"])
def test_the_task_and_the_policy_branch_on_no_method(path: str) -> None:
    """Methods are plugged in: no comparison in the code that uses them names a method."""
    names = set(method_names())
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                constants = {c.value for c in ast.walk(operand) if isinstance(c, ast.Constant)}
                assert not constants & names, f"{path}:{node.lineno} compares with a method name"


@pytest.mark.parametrize(
    ("options", "steps", "extra"),
    [({"eta": 0.0}, 6, {}), ({"eta": 0.0}, 4, {"polish_steps": 2}), ({"eta": 0.5}, 5, {}),
     ({}, 3, {"time_spacing": "quadratic"})],
)  # fmt: skip
def test_a_diffusion_policy_plans_from_its_settings_bitwise_as_run_sampler(
    options: dict, steps: int, extra: dict
) -> None:
    """With settings read once (``SamplerSettings``, as tasks/policy.py builds them) a policy
    keeps its grid and, for deterministic DDIM, the prepared loop: the chunks are bitwise
    those of the config node, which goes through ``run_sampler`` on every chunk; replacing
    the settings (or the denoiser) makes a new plan."""
    from sci_diffusion.core import CosineSchedule, Denoiser, EuclideanSpace
    from sci_diffusion.core.sampler_config import SamplerSettings

    torch.manual_seed(0)
    net = PolicyNetwork(backbone_class("mlp")(**SHAPE, width=16, depth=1), 3, 2).eval()
    for p in net.parameters():  # the output layer starts at zero: give it something to say
        torch.nn.init.normal_(p, std=0.3)
    denoiser = Denoiser(net, EuclideanSpace(CosineSchedule()), prediction="v")
    name = "ddim" if "eta" in options else "dpm_solver_pp_2m"
    node = OmegaConf.create({"name": name, "steps": steps, "t_start": 1.0,
                             "options": options, **extra})  # fmt: skip
    low, high = -10 * np.ones(2, np.float32), 10 * np.ones(2, np.float32)
    by_node = Policy(net, denoiser, "diffusion", node, 2, 8, 4, low, high)
    settings = SamplerSettings.from_config(node)
    planned = Policy(net, denoiser, "diffusion", settings, 2, 8, 4, low, high)
    obs = np.random.default_rng(0).normal(size=(3, 2, 3)).astype(np.float32)
    for seed in range(3):
        expected = by_node.predict_chunk(obs, torch.Generator().manual_seed(seed))
        got = planned.predict_chunk(obs, torch.Generator().manual_seed(seed))
        np.testing.assert_array_equal(got, expected)
        assert np.isfinite(got).all() and np.abs(got).max() > 0
    plan = planned.__dict__["_diffusion_chunk_plan"]
    prepared = [p for p in plan._prepared.values() if p is not None]
    assert len(prepared) == (options == {"eta": 0.0})  # deterministic DDIM only
    planned.predict_chunk(obs[:1], torch.Generator())  # another batch: prepared again
    assert planned.__dict__["_diffusion_chunk_plan"] is plan
    planned.sampler_cfg = SamplerSettings.from_config(node)
    planned.predict_chunk(obs, torch.Generator())
    assert planned.__dict__["_diffusion_chunk_plan"] is not plan
