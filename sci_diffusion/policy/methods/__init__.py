"""Policy methods, selected by ``policy=<name>``: the module ``<name>`` of this package, with
its options in ``configs/policy/<name>.yaml`` (``name`` plus any method options).

A method is how a chunk policy is trained and how it plans: its training objective over
normalized demonstration chunks, and its prediction of a chunk from a normalized observation
history. It works with every policy task and every backbone
(:mod:`sci_diffusion.policy.backbones`); the task and :class:`~sci_diffusion.policy.policy.Policy`
only call the methods below.

Adding a method: one module here defining ``METHOD`` (a :class:`PolicyMethod` subclass) and
one ``configs/policy/<name>.yaml``.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor

from sci_diffusion.core import Denoiser
from sci_diffusion.io.errors import UserInputError

from ..plugins import load_plugin, plugin_names

if TYPE_CHECKING:
    import torch

    from ..policy import Policy

__all__ = ["PolicyMethod", "build_method", "method_class", "method_name", "method_names"]


class PolicyMethod(ABC):
    """One way to train and run an action-chunk policy.

    Args:
        options: the method's settings (``cfg.policy`` without ``name``).
    """

    #: the registry name (``policy=<name>``), equal to the module's name.
    name: ClassVar[str] = ""
    #: one line for the model card: what is trained and how a chunk is produced.
    summary: ClassVar[str] = ""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    @abstractmethod
    def objective(self, denoiser: Denoiser, diffusion: Any) -> Any:
        """The training objective: ``objective(x0, mask, generator, **cond) -> LossOutput``
        over normalized chunks ``x0`` (B, H, Da) with ``cond["obs"]`` (B, To, Do).

        ``denoiser`` wraps the (possibly DDP-wrapped) network with the task's space and
        prediction; ``diffusion`` is the task's ``task.diffusion`` node (weighting, time
        distribution, ...)."""

    @abstractmethod
    def predict(self, policy: Policy, obs: Tensor, generator: torch.Generator) -> Tensor:
        """(B, H, Da) normalized actions for the normalized histories ``obs`` (B, To, Do);
        ``policy`` gives the network, the denoiser, the sampler settings and the sizes."""

    @abstractmethod
    def describe(self, sampler_cfg: Any) -> dict[str, Any]:
        """Metrics fields naming the method and how it plans (``policy``, ``sampler``,
        ``steps``, ...)."""

    def evaluation_label(self, sampler_cfg: Any) -> str | None:
        """The evaluation's name (folder and model-card entry); None: the sampler's label."""
        return None


def method_names() -> list[str]:
    """The registered methods (``policy=`` choices)."""
    return plugin_names(__name__)


def method_class(name: str) -> type[PolicyMethod]:
    """The class of the method ``name`` (``UserInputError`` listing the choices if unknown)."""
    return load_plugin(__name__, str(name), "policy method", "policy").METHOD


def method_name(policy_cfg: Any) -> str:
    """The method a ``cfg.policy`` node selects: ``name``, or ``kind`` in configs saved before
    methods became a registry (deprecated key, still read so old runs evaluate)."""
    name = policy_cfg.get("name")
    if name is None and policy_cfg.get("kind") is not None:
        warnings.warn("policy.kind (in configs saved before methods became a registry) is "
                      "deprecated; it is read as policy.name (policy=<method>)",
                      DeprecationWarning, stacklevel=3)  # fmt: skip
        name = policy_cfg.get("kind")
    if name is None:
        raise UserInputError(f"policy.name is missing; choose policy=<{'|'.join(method_names())}>")
    return str(name)


def build_method(policy_cfg: Any) -> PolicyMethod:
    """The method configured by a ``cfg.policy`` node (or a plain dict)."""
    options = {str(k): v for k, v in policy_cfg.items() if k not in ("name", "kind")}
    return method_class(method_name(policy_cfg))(options)
