"""Dict-in, dict-out EGNN denoiser for 3D molecules: positions jointly with categorical atoms.

The state of a 3D molecule is a product space (see ``tasks/molecule_3d.py``)::

    {"pos": (B, N, 3) on the zero-CoM subspace,
     "atoms": (B, N, K_a), "charges": (B, N, K_c) noisy one-hots,
     "bonds": (B, N, N, K_b) noisy one-hot bond types (optional)}

:class:`EGNNDenoiserNet` feeds the node one-hots as EGNN node features and the bond one-hots as
pair features, and returns what :class:`~sci_diffusion.core.Denoiser` expects: for positions
the EGNN's equivariant displacement (read as the predicted noise, ``prediction="epsilon"``,
as in EDM), for each categorical component invariant logits. The node mask is inferred from
the state (padded nodes are all-zero one-hot rows after ``CategoricalSpace.project``), because
the core's samplers call ``denoise(x_t, t)`` without masks; ``node_mask=`` overrides it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..core.errors import InvalidValueError
from .egnn import EGNN
from .property_input import property_features, register_property_buffers, set_property_stats

__all__ = ["IMPLEMENTATIONS", "EGNNDenoiserNet", "resolve_implementation"]

IMPLEMENTATIONS = ("auto", "torch", "pyg")


def resolve_implementation(name: str) -> str:
    """``torch`` or ``pyg`` for ``name`` (``auto``: ``pyg`` when torch-geometric imports)."""
    if name not in IMPLEMENTATIONS:
        raise InvalidValueError(
            f"model.implementation={name!r}: expected one of {', '.join(IMPLEMENTATIONS)}"
        )
    if name != "auto":
        return name
    return "pyg" if importlib.util.find_spec("torch_geometric") is not None else "torch"


class EGNNDenoiserNet(nn.Module):
    """EGNN over ``{position_key, node components..., [edge component]}``.

    Args:
        node_classes: ``{key: K}`` of the categorical node components, in input order.
        edge_key, edge_classes: the symmetric categorical edge component and its K (``None`` /
            0: positions and node types only, bonds left to reconstruction from distances).
        position_key: the continuous (B, N, 3) component.
        implementation: ``torch`` (:class:`~sci_diffusion.nets.egnn.EGNN`, plain torch),
            ``pyg`` (:class:`~sci_diffusion.nets.egnn_pyg.PyGEGNN`, torch-geometric's
            ``MessagePassing``: the same function and parameter names, 4-12% faster to train on
            CPU, docs/networks.md) or ``auto`` (``pyg`` when torch-geometric can be imported).
            The task configs say ``auto`` since 2026-12-03; a run saved before has no key and
            keeps ``torch``, so its samples stay bitwise reproducible.
        properties: number of conditioning properties P (0: unconditional). A conditional net
            takes ``properties`` (B, P) in their units, NaN = not given
            (:mod:`~sci_diffusion.nets.property_input`), and appends their features to every
            node's input, as EDM does with its context.
        **kwargs: passed to :class:`~sci_diffusion.nets.egnn.EGNN` (``hidden``, ``n_layers``,
            ``attention``, ``coords_range``, ``aggregation_norm``, ``edges``).
    """

    def __init__(
        self,
        node_classes: Mapping[str, int],
        edge_key: str | None = None,
        edge_classes: int = 0,
        position_key: str = "pos",
        implementation: str = "torch",
        properties: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        register_property_buffers(self, properties)
        if not node_classes:
            raise ValueError("EGNNDenoiserNet needs at least one categorical node component")
        if (edge_key is None) != (edge_classes == 0):
            raise ValueError("give both edge_key and edge_classes > 0, or neither")
        self.node_classes = dict(node_classes)
        self.edge_key = edge_key
        self.position_key = position_key
        total = sum(self.node_classes.values())
        self.implementation = resolve_implementation(implementation)
        if self.implementation == "pyg":
            from .egnn_pyg import PyGEGNN as network
        else:
            network = EGNN
        self.egnn = network(
            total + 2 * self.properties,
            total,
            edge_features=edge_classes,
            edge_out_features=edge_classes,
            **kwargs,
        )

    def set_property_stats(self, values: Tensor) -> None:
        """Normalization and range from the training values (M, P) (NaN rows ignored)."""
        set_property_stats(self, values)

    @classmethod
    def from_space(
        cls,
        space: Any,
        node_keys: tuple[str, ...] = ("atoms", "charges"),
        edge_key: str | None = "bonds",
        position_key: str = "pos",
        **kwargs: Any,
    ) -> EGNNDenoiserNet:
        """Read the class counts from a ``ProductSpace`` (``edge_key`` ignored if absent)."""
        classes = {k: space[k].num_classes for k in node_keys}
        if edge_key is not None and edge_key not in space.spaces:
            edge_key = None
        if edge_key is not None and not getattr(space[edge_key], "symmetric", False):
            raise ValueError(
                f"edge component {edge_key!r} must be CategoricalSpace(symmetric=True)"
            )
        edge_classes = space[edge_key].num_classes if edge_key is not None else 0
        return cls(classes, edge_key, edge_classes, position_key, **kwargs)

    def forward(
        self,
        x: Mapping[str, Tensor],
        t: Tensor,
        node_mask: Tensor | None = None,
        properties: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """``x``: the state dict (shapes in the module docstring), ``t`` (B,), optional
        ``properties`` (B, P) -> a dict shaped like ``x``: the position output (B, N, 3) and
        logits per categorical component; padded entries zero."""
        expected = {self.position_key, *self.node_classes} | (
            {self.edge_key} if self.edge_key else set()
        )
        if set(x) != expected:
            raise ValueError(f"state components {sorted(x)} != the network's {sorted(expected)}")
        nodes = torch.cat([x[k] for k in self.node_classes], dim=-1)
        if node_mask is None:
            node_mask = nodes.abs().sum(-1) > 0
        edge_attr = x[self.edge_key] if self.edge_key else None
        features = property_features(self, properties, nodes.shape[0])
        inputs = nodes
        if features is not None:
            per_node = features[:, None, :].expand(-1, nodes.shape[1], -1)
            inputs = torch.cat([nodes, per_node * node_mask[..., None].to(nodes.dtype)], -1)
        out = self.egnn(x[self.position_key], inputs, t, node_mask, edge_attr)
        sizes = list(self.node_classes.values())
        result = dict(zip(self.node_classes, out.h.split(sizes, -1), strict=True))
        result[self.position_key] = out.pos
        if self.edge_key:
            result[self.edge_key] = out.edges
        return result
