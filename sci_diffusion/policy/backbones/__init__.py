"""Policy backbones, selected by ``model=<name>``: the module ``<name>`` of this package, with
its options in ``configs/model/<name>.yaml`` (every key but ``name`` is passed on).

A backbone module defines ``BACKBONE``, an ``nn.Module`` class constructed as
``BACKBONE(action_dim=Da, obs_dim=Do, n_obs_steps=To, horizon=H, **options)`` and called as
``net(x (B, H, Da), t (B,), obs (B, To, Do)) -> (B, H, Da)`` in normalized units. Every
policy method (:mod:`sci_diffusion.policy.methods`) trains and runs every backbone.

Adding a backbone: one module here (defining the network, or naming one from
:mod:`sci_diffusion.nets`) and one ``configs/model/<name>.yaml``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sci_diffusion.io.errors import UserInputError

from ..plugins import load_plugin, plugin_names

__all__ = ["backbone_class", "backbone_names", "build_backbone"]


def backbone_names() -> list[str]:
    """The registered backbones (``model=`` choices for a policy task)."""
    return plugin_names(__name__)


def backbone_class(name: str) -> type[nn.Module]:
    """The class of the backbone ``name`` (``UserInputError`` listing the choices if unknown)."""
    return load_plugin(__name__, str(name), "policy backbone", "model").BACKBONE


def _plain(value: Any) -> Any:
    """YAML lists (OmegaConf ``ListConfig``) become tuples, as the constructors expect."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return tuple(value)
    return value


def build_backbone(
    model_cfg: Any, *, action_dim: int, obs_dim: int, n_obs_steps: int, horizon: int
) -> nn.Module:
    """A fresh backbone from a ``cfg.model`` node (``name`` plus the backbone's options).

    The backbones check their options in their constructors with ``ValueError`` (the networks
    live in :mod:`sci_diffusion.nets`, below the error family); such a refusal is a config
    mistake and is raised again as :class:`UserInputError` naming ``model=``."""
    name = str(model_cfg["name"])
    cls = backbone_class(name)
    options = {str(k): _plain(v) for k, v in model_cfg.items() if k != "name"}
    try:
        return cls(action_dim=action_dim, obs_dim=obs_dim, n_obs_steps=n_obs_steps,
                   horizon=horizon, **options)  # fmt: skip
    except UserInputError:
        raise
    except ValueError as err:
        raise UserInputError(f"model={name}: {err}; change the model.* option it names") from err
