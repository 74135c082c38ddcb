"""A dense graph transformer for discrete graph diffusion (after DiGress, Vignac et al. 2023).

Graphs are dense and padded: node states ``X`` (B, N, Kx), edge states ``E`` (B, N, N, Ke) and a
node mask (B, N). Every layer carries three streams — nodes ``h``, edges ``e`` and a global
vector ``g`` (time and graph-level features) — and

* computes per-channel query-key products ``Y_ij = q_i * k_j / sqrt(d_head)`` (B, N, N, De);
* lets the edges modulate them, FiLM-like: ``Y <- Y * (1 + W_mul e_ij) + W_add e_ij``;
* updates the edges from ``Y`` (so edges see both endpoints) and the nodes by multi-head
  attention whose head score is the sum of ``Y`` over the head's channels;
* first pools nodes and edges into ``g``, then feeds ``g`` back into both by FiLM.

Optional structural features of the *noisy* graph (DiGress's "extra features") make the
network see rings, which message passing on one-hot inputs cannot count: k-cycle counts
(k = 3..6, per node and per graph, from adjacency-matrix powers) and Laplacian spectra.

:class:`GraphDenoiserNet` adapts the network to the core's :class:`~sci_diffusion.core.Denoiser`
for a :class:`~sci_diffusion.core.ProductSpace` of categorical node and edge components.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..core.errors import InvalidValueError
from ..core.parameterization import Denoiser
from .embeddings import SinusoidalTimeEmbedding
from .property_input import property_features, register_property_buffers, set_property_stats

CYCLE_NODE_FEATURES = 4  # 3-, 4-, 5-, 6-cycles through each node
CYCLE_GRAPH_FEATURES = 4  # 3-, 4-, 5-, 6-cycles per graph


# -- masks ------------------------------------------------------------------------------------
def pair_mask(node_mask: Tensor) -> Tensor:
    """Valid off-diagonal pairs (B, N, N) of a node mask (B, N): both ends real, ``i != j``."""
    n = node_mask.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=node_mask.device)
    return node_mask[:, :, None] & node_mask[:, None, :] & ~eye


def adjacency(edges: Tensor, node_mask: Tensor, non_edge_classes: Sequence[int] = (0,)) -> Tensor:
    """0/1 adjacency (B, N, N) of one-hot edges (B, N, N, Ke): a pair is bonded unless its class
    is one of ``non_edge_classes`` (e.g. "no bond", or the absorbing "masked" class)."""
    bonded = edges.sum(-1) - edges[..., list(non_edge_classes)].sum(-1)
    return bonded.clamp(0, 1) * pair_mask(node_mask).to(edges.dtype)


# -- structural features ----------------------------------------------------------------------
def _diag(m: Tensor) -> Tensor:
    return m.diagonal(dim1=-2, dim2=-1)


def _trace(m: Tensor) -> Tensor:
    return _diag(m).sum(-1)


def _matvec(m: Tensor, v: Tensor) -> Tensor:
    return (m @ v.unsqueeze(-1)).squeeze(-1)


def graph_six_cycles(adj: Tensor) -> Tensor:
    """Number of 6-cycles of simple graphs ``adj`` (..., N, N) -> (...).

    Closed 6-walks minus the degenerate ones, by inclusion-exclusion over walk shapes (the
    closed-walk formulas of Alon, Yuster & Zwick 1997); every term is a trace or sum of
    adjacency powers. Checked against brute-force enumeration in the tests.
    """
    a2 = adj @ adj
    a3 = a2 @ adj
    a4 = a3 @ adj
    deg = adj.sum(-1)
    terms = (
        _trace(a3 @ a3),
        -3 * _trace(a3 * a3),
        9 * (adj * a2 * a2).sum((-2, -1)),
        -6 * (deg * _diag(a4)).sum(-1),
        6 * _trace(a4),
        -4 * _trace(a3),
        4 * deg.pow(3).sum(-1),
        3 * a3.sum((-2, -1)),
        -12 * deg.pow(2).sum(-1),
        4 * deg.sum(-1),
    )
    return sum(terms) / 12


def node_six_cycles(adj: Tensor) -> Tensor:
    """6-cycles through each node (B, N): all 6-cycles minus those of the graph without it.

    Costs B*N small graph evaluations (measured: 20 ms for B=64, N=26 on one CPU thread).
    """
    n = adj.shape[-1]
    keep = 1.0 - torch.eye(n, dtype=adj.dtype, device=adj.device)  # keep[i, j]: j is not i
    without = adj[:, None] * keep[None, :, :, None] * keep[None, :, None, :]  # (B, N, N, N)
    return graph_six_cycles(adj)[:, None] - graph_six_cycles(without)


def cycle_counts(adj: Tensor) -> tuple[Tensor, Tensor]:
    """Exact k-cycle counts, k = 3, 4, 5, 6, of simple graphs ``adj`` (B, N, N) (0/1, symmetric,
    zero diagonal), from closed walks minus the walks that are not cycles.

    Returns
    -------
    per_node : (B, N, 4)
        Cycles of length 3, 4, 5, 6 that pass through each node.
    per_graph : (B, 4)
        Cycles of length 3, 4, 5, 6 in each graph.
    """
    adj = adj.double()  # powers of noisy dense graphs cancel catastrophically in float32
    deg = adj.sum(-1)
    a2 = adj @ adj
    a3 = a2 @ adj
    a4 = a3 @ adj
    a5 = a4 @ adj
    tri = _diag(a3) / 2  # a triangle is a closed 3-walk in both directions
    c3 = tri
    # closed 4-walks that backtrack: i-j-i-k-i (deg^2) and i-j-k-j-i with k != i
    c4 = (_diag(a4) - deg * (deg - 1) - _matvec(adj, deg)) / 2
    # closed 5-walks that are not cycles = a triangle plus one edge walked there and back:
    # around a triangle {i, a, b}, per direction, 2 d_i + d_a + d_b - 3 distinct walks (three
    # insertions coincide), and i -> j, around a triangle at j avoiding i, back: t_j - t_ij.
    # Summed over triangles and neighbours (sum_j t_ij = 2 t_i, t_ij = A2_ij on edges):
    degenerate5 = 2 * (2 * deg * tri + _matvec(adj * a2, deg) + _matvec(adj, tri) - 5 * tri)
    c5 = (_diag(a5) - degenerate5) / 2
    c6 = node_six_cycles(adj)
    per_node = torch.stack([c3, c4, c5, c6], dim=-1)
    per_graph = torch.stack(
        [c3.sum(-1) / 3, c4.sum(-1) / 4, c5.sum(-1) / 5, graph_six_cycles(adj)], dim=-1
    )
    return per_node.round().clamp_min(0), per_graph.round().clamp_min(0)


def spectral_features(
    adj: Tensor, node_mask: Tensor, num_eigvals: int = 5, num_eigvecs: int = 2
) -> tuple[Tensor, Tensor]:
    """Laplacian features of ``adj`` (B, N, N) over real nodes (DiGress's eigenfeatures).

    Padded nodes get a large diagonal so that their eigenvalues sort after every real one.
    Eigenvectors carry a sign (and, for repeated eigenvalues, a basis) ambiguity: the node
    features are not exactly permutation-equivariant.

    Returns
    -------
    per_node : (B, N, num_eigvecs)
        Entries of the first ``num_eigvecs`` eigenvectors with non-zero eigenvalue.
    per_graph : (B, 1 + num_eigvals)
        Number of connected components, then the first ``num_eigvals`` non-zero eigenvalues
        (0 where the graph has fewer).
    """
    n = adj.shape[-1]
    adj = adj.double()  # float32 eigh errors (~1e-7 * 2N) come close to small eigenvalues
    real = node_mask.to(adj.dtype)
    laplacian = torch.diag_embed(adj.sum(-1) + 2.0 * n * (1.0 - real)) - adj
    values, vectors = torch.linalg.eigh(laplacian)
    n_real = real.sum(-1, keepdim=True)
    # one zero eigenvalue per component; a connected graph's next one is >= 4 / n^2 (Mohar 1991)
    components = (values < 1e-6).sum(-1, keepdim=True)
    idx_vals = components + torch.arange(num_eigvals, device=adj.device)
    idx_vecs = components + torch.arange(num_eigvecs, device=adj.device)
    eigvals = values.gather(-1, idx_vals.clamp_max(n - 1)) * (idx_vals < n_real)
    index = idx_vecs.clamp_max(n - 1)[:, None, :].expand(-1, n, -1)
    eigvecs = vectors.gather(-1, index) * (idx_vecs < n_real)[:, None, :] * real[..., None]
    per_graph = torch.cat([components.to(adj.dtype), eigvals], dim=-1)
    return eigvecs.float(), per_graph.float()


# -- layers -----------------------------------------------------------------------------------
def _mlp(dim_in: int, dim_out: int, hidden: int | None = None) -> nn.Sequential:
    hidden = hidden or dim_out
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.SiLU(), nn.Linear(hidden, dim_out))


def _masked_pool(values: Tensor, mask: Tensor) -> Tensor:
    """Mean and max over the valid entries of ``values`` (B, ..., D) -> (B, 2D)."""
    weights = mask.unsqueeze(-1).to(values.dtype)
    flat_v, flat_w = values.flatten(1, -2), weights.flatten(1, -2)
    mean = (flat_v * flat_w).sum(1) / flat_w.sum(1).clamp_min(1.0)
    low = torch.finfo(values.dtype).min
    peak = flat_v.masked_fill(flat_w == 0, low).amax(1)
    peak = torch.where(flat_w.sum(1) > 0, peak, torch.zeros_like(peak))
    return torch.cat([mean, peak], dim=-1)


class _FiLM(nn.Module):
    """``x * (1 + scale(c)) + shift(c)`` with a conditioning vector ``c`` (B, Dc)."""

    def __init__(self, cond_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * dim)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale, shift = self.proj(cond).chunk(2, dim=-1)
        shape = (cond.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
        return x * (1 + scale.reshape(shape)) + shift.reshape(shape)


class GraphTransformerLayer(nn.Module):
    """One node/edge/global update (see the module docstring); post-norm residuals.

    Queries and keys live at the edge width: the per-pair products (B, N, N, De) are what costs
    on CPU, so they are kept as narrow as the edge stream they update. Values and the node
    stream keep the node width.
    """

    def __init__(
        self, node_dim: int, edge_dim: int, global_dim: int, heads: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if node_dim % heads or edge_dim % heads:
            raise ValueError(
                f"node_dim={node_dim} and edge_dim={edge_dim} must be divisible by heads={heads}"
            )
        self.heads = heads
        self.qk = nn.Linear(node_dim, 2 * edge_dim)
        self.value = nn.Linear(node_dim, node_dim)
        self.edge_film = nn.Linear(edge_dim, 2 * edge_dim)
        self.edge_global = _FiLM(global_dim, edge_dim)
        self.node_global = _FiLM(global_dim, node_dim)
        self.edge_msg = nn.Linear(edge_dim, edge_dim)
        self.node_msg = nn.Linear(node_dim, node_dim)
        self.global_msg = _mlp(global_dim + 2 * node_dim + 2 * edge_dim, global_dim)
        self.node_ffn = _mlp(node_dim, node_dim, 2 * node_dim)
        self.edge_ffn = _mlp(edge_dim, edge_dim, 2 * edge_dim)
        self.global_ffn = _mlp(global_dim, global_dim, 2 * global_dim)
        self.norms = nn.ModuleList(
            nn.LayerNorm(d)
            for d in (node_dim, node_dim, edge_dim, edge_dim, global_dim, global_dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self, h: Tensor, e: Tensor, g: Tensor, node_mask: Tensor, pairs: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``h`` (B, N, C), ``e`` (B, N, N, De), ``g`` (B, Dg), ``node_mask`` (B, N),
        ``pairs`` (B, N, N) -> updated ``(h, e, g)``; padded entries come out zero."""
        b, n, c = h.shape
        d_pair = e.shape[-1] // self.heads
        # the global state reads the graph first, so that every layer's update is used
        pooled = torch.cat([g, _masked_pool(h, node_mask), _masked_pool(e, pairs)], dim=-1)
        g = self.norms[4](g + self.drop(self.global_msg(pooled)))
        g = self.norms[5](g + self.drop(self.global_ffn(g)))
        q, k = self.qk(h).chunk(2, dim=-1)
        scores = q[:, :, None] * k[:, None] / math.sqrt(d_pair)  # (B, N, N, De)
        mul, add = self.edge_film(e).chunk(2, dim=-1)
        scores = scores * (1 + mul) + add
        # edges: read the modulated products, conditioned on the global state
        e_new = self.edge_msg(self.edge_global(scores, g))
        # nodes: one attention weight per head = the head's channels summed; padded keys never
        # receive weight, so padding cannot reach real nodes
        logits = scores.reshape(b, n, n, self.heads, d_pair).sum(-1)
        keys = node_mask[:, None, :, None]
        logits = logits.masked_fill(~keys, torch.finfo(logits.dtype).min)
        attn = torch.softmax(logits, dim=2)  # (B, N_query, N_key, H)
        heads_v = self.value(h).reshape(b, n, self.heads, c // self.heads)
        out = torch.einsum("bijh,bjhd->bihd", attn, heads_v).reshape(b, n, c)
        h_new = self.node_msg(self.node_global(out, g))
        node_w = node_mask[..., None].to(h.dtype)
        pair_w = pairs[..., None].to(e.dtype)
        h = self.norms[0](h + self.drop(h_new)) * node_w
        h = self.norms[1](h + self.drop(self.node_ffn(h))) * node_w
        e = self.norms[2](e + self.drop(e_new)) * pair_w
        e = self.norms[3](e + self.drop(self.edge_ffn(e))) * pair_w
        return h, e, g


class GraphTransformer(nn.Module):
    """Dense graph transformer: noisy one-hot graphs and times -> logits for clean nodes, edges.

    Args:
        node_in, edge_in: input classes Kx (node one-hots, concatenated if several) and Ke.
        node_out, edge_out: output classes (default: same as the inputs).
        layers, node_dim, edge_dim, global_dim, heads: depth and widths. The defaults (4
            layers, 128/64/64, 8 heads; 0.93 M parameters) are sized for CPU training on
            QM9 (see ``docs/_drafts/graph_denoiser.md`` for the timings behind them).
        cycle_features: feed k-cycle counts (k = 3..6) of the noisy graph, per node and per
            graph, as ``log1p(count)``.
        degree_weights: one weight per edge class; feeds each node's weighted degree in the
            noisy graph, ``sum_j w[class(E_ij)]``. With kekulized bond classes (none, single,
            double, triple) and ``(0, 1, 2, 3)`` it is the atom's valence, DiGress's molecular
            valency feature. None: off.
        spectral_features: feed Laplacian eigenfeatures of the noisy graph (not exactly
            permutation-equivariant: eigenvector signs are arbitrary).
        non_edge_classes: edge classes that mean "no bond" when building the adjacency for
            the structural features (add the absorbing class for absorbing transitions).
    """

    def __init__(
        self,
        node_in: int,
        edge_in: int,
        node_out: int | None = None,
        edge_out: int | None = None,
        *,
        layers: int = 4,
        node_dim: int = 128,
        edge_dim: int = 64,
        global_dim: int = 64,
        heads: int = 8,
        dropout: float = 0.0,
        cycle_features: bool = True,
        spectral_features: bool = False,
        num_eigvals: int = 5,
        num_eigvecs: int = 2,
        non_edge_classes: Sequence[int] = (0,),
        degree_weights: Sequence[float] | None = None,
        cond_dim: int = 0,
    ) -> None:
        super().__init__()
        self.node_out = node_out or node_in
        self.cond_dim = int(cond_dim)
        self.edge_out = edge_out or edge_in
        self.cycle_features = cycle_features
        self.spectral_features = spectral_features
        self.num_eigvals, self.num_eigvecs = num_eigvals, num_eigvecs
        self.non_edge_classes = tuple(non_edge_classes)
        if degree_weights is not None and len(degree_weights) != edge_in:
            raise InvalidValueError(
                f"model.degree_weights needs one weight per edge class ({edge_in}), "
                f"got {len(degree_weights)}: {list(degree_weights)}"
            )
        # a buffer, so it moves with the net: no host-to-device copy per denoiser call
        weights = None
        if degree_weights is not None:  # a list, a tuple or an OmegaConf ListConfig
            weights = torch.tensor([float(w) for w in degree_weights], dtype=torch.float32)
        self.register_buffer("degree_weights", weights, persistent=False)
        extra_node, extra_graph = self._extra_dims()
        self.time = SinusoidalTimeEmbedding(global_dim)
        self.node_in = _mlp(node_in + extra_node, node_dim)
        self.edge_in = _mlp(edge_in, edge_dim)
        self.global_in = _mlp(global_dim + 1 + extra_graph, global_dim)
        if self.cond_dim:
            # Zero-initialised, so a conditional net starts as the unconditional one it may be
            # fine-tuned from (trainer.init_from).
            self.cond_in = _mlp(self.cond_dim, global_dim)
            nn.init.zeros_(self.cond_in[-1].weight)
            nn.init.zeros_(self.cond_in[-1].bias)
        self.layers = nn.ModuleList(
            GraphTransformerLayer(node_dim, edge_dim, global_dim, heads, dropout)
            for _ in range(layers)
        )
        self.node_head = _mlp(node_dim, self.node_out, node_dim)
        self.edge_head = _mlp(edge_dim, self.edge_out, edge_dim)
        for head in (self.node_head, self.edge_head):  # start from uniform predictions
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)

    def _extra_dims(self) -> tuple[int, int]:
        node = CYCLE_NODE_FEATURES * self.cycle_features
        graph = CYCLE_GRAPH_FEATURES * self.cycle_features
        node += self.degree_weights is not None
        if self.spectral_features:
            node += self.num_eigvecs
            graph += 1 + self.num_eigvals
        return node, graph

    @torch.no_grad()
    def structural_features(self, e: Tensor, node_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Features of the noisy graph: per node (B, N, F_node) and per graph (B, F_graph)."""
        adj = adjacency(e.float(), node_mask, self.non_edge_classes)
        nodes, graphs = [], []
        if self.cycle_features:
            per_node, per_graph = cycle_counts(adj)
            nodes.append(per_node.log1p().float())  # counts explode in dense noisy graphs
            graphs.append(per_graph.log1p().float())
        if self.spectral_features:
            per_node, per_graph = spectral_features(
                adj, node_mask, self.num_eigvals, self.num_eigvecs
            )
            nodes.append(per_node)
            graphs.append(per_graph)
        if self.degree_weights is not None:
            degree = (e.float() @ self.degree_weights) * pair_mask(node_mask).float()
            nodes.append(degree.sum(-1, keepdim=True).log1p())
        b, n = node_mask.shape
        empty_n, empty_g = e.new_zeros(b, n, 0), e.new_zeros(b, 0)
        node_feats = torch.cat(nodes, -1).to(e.dtype) if nodes else empty_n
        graph_feats = torch.cat(graphs, -1).to(e.dtype) if graphs else empty_g
        return node_feats * node_mask[..., None].to(e.dtype), graph_feats

    def forward(
        self, x: Tensor, e: Tensor, node_mask: Tensor, t: Tensor, cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Logits of the clean graph given the noisy one.

        Parameters
        ----------
        x : (B, N, Kx)
            Noisy one-hot node classes (padded rows are ignored, whatever they hold).
        e : (B, N, N, Ke)
            Noisy one-hot edge classes; symmetric, diagonal ignored.
        node_mask : (B, N) bool
            True for real nodes.
        t : (B,)
            Diffusion time in [0, 1].
        cond : (B, cond_dim), optional
            Conditioning features (added to the global state); needed iff ``cond_dim > 0``.

        Returns
        -------
        node_logits : (B, N, Kx_out)
            Zero on padded nodes.
        edge_logits : (B, N, N, Ke_out)
            Symmetric (``(E + E^T) / 2``); zero on the diagonal and on pairs with a padded end.
        """
        pairs = pair_mask(node_mask)
        node_w = node_mask[..., None].to(x.dtype)
        pair_w = pairs[..., None].to(x.dtype)
        x, e = x * node_w, e * pair_w  # padding values must not reach anything
        node_feats, graph_feats = self.structural_features(e, node_mask)
        n_real = node_mask.sum(-1, keepdim=True).to(x.dtype)
        g = self.global_in(torch.cat([self.time(t).to(x.dtype), n_real.log1p(), graph_feats], -1))
        if self.cond_dim:
            if cond is None or cond.shape != (x.shape[0], self.cond_dim):
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(f"cond must be ({x.shape[0]}, {self.cond_dim}), got {got}")
            g = g + self.cond_in(cond.to(x.dtype))
        h = self.node_in(torch.cat([x, node_feats], -1)) * node_w
        z = self.edge_in(e) * pair_w
        for layer in self.layers:
            h, z, g = layer(h, z, g, node_mask, pairs)
        node_logits = self.node_head(h) * node_w
        edge_logits = self.edge_head(z)
        edge_logits = 0.5 * (edge_logits + edge_logits.transpose(1, 2)) * pair_w
        return node_logits, edge_logits


# -- adapter to the core ----------------------------------------------------------------------
class GraphDenoiserNet(nn.Module):
    """Dict-in, dict-out wrapper: ``net(x_t, t) -> {key: logits}`` for a product space of
    categorical node components (e.g. atom types and formal charges, concatenated) and one
    symmetric categorical edge component — what :class:`~sci_diffusion.core.Denoiser` expects
    (it applies the softmax; the categorical objective takes cross-entropy of the logits).

    The core's samplers call ``denoise(x_t, t)`` without masks, so the node mask is inferred from
    the state: padded nodes are all-zero rows (``CategoricalSpace.project``). An explicit
    ``node_mask`` keyword overrides it.

    **Property conditioning** (``properties=P > 0``): the call takes ``properties`` (B, P) in
    the properties' own units, NaN where a property is not given (a row of NaN is the
    unconditional model of classifier-free guidance). The net normalizes them with its buffers
    ``property_mean`` / ``property_std`` (set by :meth:`set_property_stats` from the training
    data, saved with the weights) and feeds the normalized values and a given/not-given flag
    per property to the global state.

    Args:
        node_classes: ``{key: K}`` of the node components, in input order.
        edge_key, edge_classes: the edge component and its K.
        properties: number of conditioning properties (0: unconditional).
        **kwargs: passed to :class:`GraphTransformer`.
    """

    def __init__(
        self,
        node_classes: Mapping[str, int],
        edge_key: str,
        edge_classes: int,
        properties: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if not node_classes:
            raise ValueError("GraphDenoiserNet needs at least one node component")
        self.node_classes = dict(node_classes)
        self.edge_key = edge_key
        total = sum(self.node_classes.values())
        self.transformer = GraphTransformer(total, edge_classes, cond_dim=2 * int(properties),
                                            **kwargs)  # fmt: skip
        register_property_buffers(self, properties)

    def set_property_stats(self, values: Tensor) -> None:
        """Normalization and range from the training values (M, P) (NaN rows ignored)."""
        set_property_stats(self, values)

    def property_features(self, properties: Tensor | None, batch: int) -> Tensor | None:
        """(B, 2P): normalized values (0 where not given) and given flags; None if P = 0."""
        return property_features(self, properties, batch)

    @classmethod
    def from_space(
        cls,
        space: Any,
        node_keys: Sequence[str] = ("atoms",),
        edge_key: str = "bonds",
        **kwargs: Any,
    ) -> GraphDenoiserNet:
        """Read the class counts from a ``ProductSpace`` of ``CategoricalSpace`` components."""
        classes = {k: space[k].num_classes for k in node_keys}
        if not getattr(space[edge_key], "symmetric", False):
            raise ValueError(
                f"edge component {edge_key!r} must be CategoricalSpace(symmetric=True)"
            )
        return cls(classes, edge_key, space[edge_key].num_classes, **kwargs)

    def forward(
        self,
        x: Mapping[str, Tensor],
        t: Tensor,
        node_mask: Tensor | None = None,
        properties: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """``x``: ``{node_key: (B, N, K_key), edge_key: (B, N, N, K_e)}`` one-hots, ``t`` (B,),
        optional ``node_mask`` (B, N) bool and ``properties`` (B, P) (NaN: not given) -> logits
        shaped like ``x`` (zero where masked)."""
        nodes = torch.cat([x[k] for k in self.node_classes], dim=-1)
        if node_mask is None:
            node_mask = nodes.abs().sum(-1) > 0
        cond = self.property_features(properties, nodes.shape[0])
        node_logits, edge_logits = self.transformer(nodes, x[self.edge_key], node_mask, t, cond)
        sizes = list(self.node_classes.values())
        out = dict(zip(self.node_classes, node_logits.split(sizes, -1), strict=True))
        out[self.edge_key] = edge_logits
        return out


def graph_denoiser(
    space: Any, node_keys: Sequence[str] = ("atoms",), edge_key: str = "bonds", **kwargs: Any
) -> Denoiser:
    """A :class:`~sci_diffusion.core.Denoiser` over ``space`` driving a :class:`GraphDenoiserNet`
    (``denoiser.net``), ready for ``DiffusionObjective`` and the samplers."""
    net = GraphDenoiserNet.from_space(space, node_keys, edge_key, **kwargs)
    return Denoiser(net, space)
