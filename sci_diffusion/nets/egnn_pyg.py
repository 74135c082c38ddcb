"""The EGNN of :mod:`.egnn` on torch-geometric's ``MessagePassing`` (optional dependency).

:class:`EGNNConv` is :class:`~sci_diffusion.nets.egnn.EGNNLayer` written as a PyG message
passing layer: ``message`` builds ``m_ij`` and the coordinate shift from ``(h_i, h_j, x_i,
x_j, edge scalars)``, PyG gathers the endpoints and sums the messages at each destination
(its ``"sum"`` aggregation), and ``update`` applies the node MLP. It takes PyG's flat layout
(nodes (num_nodes, ...), ``edge_index`` (2, E) as ``[source, destination]``) and can be used
in any PyG model.

:class:`PyGEGNN` is :class:`~sci_diffusion.nets.egnn.EGNN` with its layers replaced by
:class:`EGNNConv`: the same constructor, the same ``forward`` (dense padded inputs and
outputs, so it plugs into the core's spaces and samplers unchanged) and **the same parameter
names**, so a state dict moves between the two either way (:meth:`PyGEGNN.from_egnn`). Inside,
the real nodes are packed into PyG's flat layout and every pair of real nodes of a graph is an
edge (the complete graph, as in :class:`EGNN`).

Which one is faster is measured by ``python -m sci_diffusion.bench.egnn`` (docs/networks.md):
on CPU the PyG layers train 4-12% faster, so the 3D tasks build this network
(``model.implementation: auto`` in ``configs/model/egnn.yaml``; ``EGNNDenoiserNet``).

Importing this module needs torch-geometric; ``sci_diffusion.nets`` itself does not.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .egnn import DIST_EPS, EGNN, EGNNLayer, EGNNOutput, _remove_com, _squared_norm

try:
    from torch_geometric.nn import MessagePassing
except ImportError as err:  # pragma: no cover - exercised only without torch-geometric
    raise ImportError(
        "sci_diffusion.nets.egnn_pyg needs torch-geometric (pip install torch-geometric, or "
        "pip install 'sci-diffusion[chem]'); sci_diffusion.nets.egnn.EGNN is the same network "
        "in plain torch"
    ) from err

__all__ = ["EGNNConv", "PyGEGNN", "complete_edge_index"]

_LAYER_MODULES = ("msg_dst", "msg_src", "msg_edge", "msg", "gate", "node", "coord")


class EGNNConv(MessagePassing):
    """One equivariant graph convolution (EDM's EGNN layer) as a PyG ``MessagePassing``.

    Arguments as :class:`~sci_diffusion.nets.egnn.EGNNLayer`; ``layer=`` instead wraps an
    existing layer and **shares** its parameters (same names, so state dicts are compatible).

    Call as ``conv(h, pos, edge_index, edge_scalars)`` with ``h`` (num_nodes, hidden), ``pos``
    (num_nodes, d), ``edge_index`` (2, E) ``[source j, destination i]`` (PyG's
    ``source_to_target`` flow) and ``edge_scalars`` (E, S) invariant edge inputs; returns the
    updated ``(h, pos)``:

    * ``m_ij = phi_e(h_i, h_j, |x_i - x_j|^2, edge scalars)``, gated by attention if enabled;
    * ``x_i += sum_j (x_i - x_j) / (|x_i - x_j| + 1) * tanh(phi_x(m_ij)) * r / Z``;
    * ``h_i += phi_h(h_i, sum_j m_ij / Z)``.
    """

    def __init__(
        self,
        hidden: int = 0,
        edge_scalars: int = 0,
        attention: bool = True,
        coord_step: float = 15.0 / 4,
        aggregation_norm: float = 16.0,
        *,
        layer: EGNNLayer | None = None,
    ) -> None:
        super().__init__(aggr="sum")
        if layer is None:
            if hidden < 1:
                raise ValueError(f"need hidden >= 1 (or layer=); got {hidden}")
            layer = EGNNLayer(hidden, edge_scalars, attention, coord_step, aggregation_norm)
        for name in _LAYER_MODULES:
            setattr(self, name, getattr(layer, name))
        self.hidden = layer.msg_dst.out_features
        self.coord_step = layer.coord_step
        self.aggregation_norm = layer.aggregation_norm

    @classmethod
    def from_layer(cls, layer: EGNNLayer) -> EGNNConv:
        """This layer on PyG, sharing ``layer``'s parameters."""
        return cls(layer=layer)

    def forward(  # type: ignore[override]
        self, h: Tensor, pos: Tensor, edge_index: Tensor, edge_scalars: Tensor
    ) -> tuple[Tensor, Tensor]:
        # The node parts of phi_e's first linear map run per node, not per edge.
        summed = self.propagate(
            edge_index, a=self.msg_dst(h), b=self.msg_src(h), pos=pos, scalars=edge_scalars,
            size=(h.shape[0], h.shape[0]),
        )  # fmt: skip
        m_sum, shift_sum = summed.split([self.hidden, pos.shape[-1]], dim=-1)
        pos = pos + shift_sum / self.aggregation_norm
        h = h + self.node(torch.cat([h, m_sum / self.aggregation_norm], dim=-1))
        return h, pos

    def message(  # type: ignore[override]
        self, a_i: Tensor, b_j: Tensor, pos_i: Tensor, pos_j: Tensor, scalars: Tensor
    ) -> Tensor:
        """``[m_ij, shift_ij]`` per edge: one aggregation sums both."""
        diff = pos_i - pos_j
        dist2 = _squared_norm(diff)
        m = self.msg(a_i + b_j + self.msg_edge(torch.cat([dist2, scalars], dim=-1)))
        if self.gate is not None:
            m = m * torch.sigmoid(self.gate(m))
        unit = diff / (torch.sqrt(dist2 + DIST_EPS) + 1.0)
        shift = unit * torch.tanh(self.coord(m)) * self.coord_step
        return torch.cat([m, shift], dim=-1)


def complete_edge_index(mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Every ordered pair of distinct real nodes of each graph, in PyG's flat layout.

    ``mask`` (B, N) bool -> ``edge_index`` (2, E) ``[source, destination]`` over the flat
    index of real nodes (``x[mask]`` order), ``flat_pair`` (E,) the position of each pair
    ``(b, i, j)`` in a (B * N * N) dense tensor, and ``node_index`` (B, N) the flat index of
    each real node (-1 for padding). Reads the mask (``nonzero``): one host sync.
    """
    batch, n = mask.shape
    eye = torch.eye(n, dtype=torch.bool, device=mask.device)
    pairs = mask[:, :, None] & mask[:, None, :] & ~eye
    b, i, j = pairs.nonzero(as_tuple=True)  # sorted by destination (b, i)
    node_index = torch.full((batch, n), -1, dtype=torch.long, device=mask.device)
    node_index[mask] = torch.arange(int(mask.sum()), device=mask.device)
    edge_index = torch.stack([node_index[b, j], node_index[b, i]])
    return edge_index, (b * n + i) * n + j, node_index


class _FlatEdges:
    """The edge-backend interface of :mod:`.egnn` (used by its edge head) on flat nodes."""

    def __init__(self, edge_index: Tensor, flat_pair: Tensor, batch: int, n: int) -> None:
        self.src, self.dst = edge_index
        self.flat_pair, self.batch, self.n = flat_pair, batch, n

    def pair_sum(self, a: Tensor, b: Tensor) -> Tensor:
        return a.index_select(0, self.dst) + b.index_select(0, self.src)

    def pair_product(self, a: Tensor) -> Tensor:
        return a.index_select(0, self.dst) * a.index_select(0, self.src)

    def diff(self, x: Tensor) -> Tensor:
        return x.index_select(0, self.dst) - x.index_select(0, self.src)

    def to_dense(self, v: Tensor) -> Tensor:
        out = v.new_zeros(self.batch * self.n * self.n, v.shape[-1])
        return out.index_copy(0, self.flat_pair, v).reshape(self.batch, self.n, self.n, -1)


def _scatter_nodes(flat: Tensor, mask: Tensor) -> Tensor:
    """Flat real-node rows (M, C) back to a padded (B, N, C) tensor, padding zero."""
    out = flat.new_zeros(*mask.shape, flat.shape[-1])
    return out.masked_scatter(mask.unsqueeze(-1), flat)


class PyGEGNN(EGNN):
    """:class:`~sci_diffusion.nets.egnn.EGNN` with :class:`EGNNConv` layers (torch-geometric).

    Same constructor (``edges`` has no effect: the edges are always PyG's list of real pairs),
    same ``forward`` and outputs, same parameter names: ``PyGEGNN(...).load_state_dict(
    egnn.state_dict())`` gives the same function up to float rounding (tested at 1e-12 in
    float64). ``from_egnn(net)`` builds the twin of a trained ``EGNN``.
    """

    def __init__(self, node_features: int, out_features: int | None = None, **kwargs: Any) -> None:
        super().__init__(node_features, out_features, **kwargs)
        self.edges = "pyg"
        self.layers = nn.ModuleList(EGNNConv.from_layer(layer) for layer in self.layers)

    @classmethod
    def from_egnn(cls, net: EGNN) -> PyGEGNN:
        """A :class:`PyGEGNN` with ``net``'s hyperparameters and a copy of its weights."""
        first = net.layers[0]
        twin = cls(
            net.node_features,
            net.out_features,
            hidden=net.start.numel(),
            n_layers=len(net.layers),
            edge_features=net.edge_features,
            edge_out_features=net.edge_out_features,
            attention=first.gate is not None,
            coords_range=first.coord_step * len(net.layers),
            aggregation_norm=first.aggregation_norm,
        )
        twin.to(net.start.device, net.start.dtype)  # before loading: keep every digit
        twin.load_state_dict(net.state_dict())
        return twin

    def forward(
        self,
        x: Tensor,
        h: Tensor | None,
        t: Tensor,
        mask: Tensor | None = None,
        edge_attr: Tensor | None = None,
    ) -> EGNNOutput:
        """As :meth:`EGNN.forward <sci_diffusion.nets.egnn.EGNN.forward>`: (B, N, d) positions,
        (B, N, F) features, (B,) times, (B, N) mask, (B, N, N, E) pair features."""
        mask = self._check(x, h, t, mask, edge_attr)
        batch, n = mask.shape
        node = mask.unsqueeze(-1).to(x.dtype)
        x0 = _remove_com(torch.where(mask[..., None], x, 0.0), node)
        feats = self._embed(h, t, mask, x)[mask]  # (M, hidden), real nodes only
        edge_index, flat_pair, _ = complete_edge_index(mask)
        edges = _FlatEdges(edge_index, flat_pair, batch, n)
        pos0 = x0[mask]
        scalars = _squared_norm(edges.diff(pos0))
        if edge_attr is not None:
            attr = edge_attr.reshape(batch * n * n, -1)[flat_pair].to(x.dtype)
            scalars = torch.cat([scalars, attr], dim=-1)
        pos = pos0
        for layer in self.layers:
            feats, pos = layer(feats, pos, edge_index, scalars)
        if self.out is not None:
            out_h = _scatter_nodes(self.out(feats), mask)
        else:
            out_h = feats.new_zeros(batch, n, 0)
        out_e = self.edge_head(feats, pos, edges) if self.edge_head is not None else None
        return EGNNOutput(_remove_com(_scatter_nodes(pos - pos0, mask), node), out_h, out_e)
