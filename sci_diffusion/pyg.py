"""torch-geometric graphs into the core's spaces and back (optional: needs torch-geometric).

The core works on dense padded tensors with masks; PyG keeps a batch of graphs flat
(``Data`` / ``Batch``: nodes ``(num_nodes, ...)``, an ``edge_index`` (2, E) and a ``batch``
vector). This module converts between the two:

* :func:`to_dense` — a ``Batch``, a ``Data`` or a ``list[Data]`` to :class:`DenseGraphs`:
  positions (B, N, d) with each graph's centre of mass removed over its real nodes (the
  ``CoMFreeSpace`` convention), node categories as one-hot (B, N, K_node) (or float node
  features as they are), edge categories as one-hot (B, N, N, K_edge) with class 0 = "no
  edge" on every real off-diagonal pair, and the node mask (B, N) / pair mask (B, N, N).
  Padding is zero everywhere.
* :func:`from_dense` (and :meth:`DenseGraphs.to_data_list`) — dense tensors (a sampler's
  output) back to a ``list[Data]``: categories by ``argmax``, edges where the class is not 0.

Edge categories follow PyG's habit of listing only the edges that exist: ``edge_attr`` holds a
type ``0 .. K_edge - 2`` per listed edge (an integer (E,) or a one-hot (E, K_edge - 1)), which
becomes dense class ``type + 1``; undirected graphs list both directions (both are written,
and :func:`from_dense` writes both back). Example::

    from sci_diffusion import pyg

    dense = pyg.to_dense(data_list, node_classes=4, edge_classes=4)
    x0 = dense.state()        # {"pos": (B, N, 3), "atoms": (B, N, 4), "bonds": (B, N, N, 4)}
    masks = dense.masks()     # {"pos": (B, N), "atoms": (B, N), "bonds": (B, N, N)}
    ...
    graphs = pyg.from_dense(masks["pos"], pos=out["pos"], nodes=out["atoms"], edges=out["bonds"])

Importing this module needs only torch; every function imports torch-geometric when called and
raises ``ImportError`` saying how to install it when it is missing.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

__all__ = ["NODE_FORMATS", "DenseGraphs", "from_dense", "require_torch_geometric", "to_dense"]

NODE_FORMATS = ("index", "one_hot", "features")
"""How :func:`from_dense` writes node values: class indices (N,), one-hot (N, K) or the raw
float values (N, F)."""

INSTALL_HINT = "pip install torch-geometric (or pip install 'sci-diffusion[chem]')"


def require_torch_geometric() -> ModuleType:
    """Import and return ``torch_geometric``; ``ImportError`` with the install command if
    it is missing."""
    try:
        return importlib.import_module("torch_geometric")
    except ImportError as err:
        raise ImportError(
            f"sci_diffusion.pyg needs torch-geometric, which is not installed: {INSTALL_HINT}. "
            "The core (sci_diffusion.core) works without it on dense tensors."
        ) from err


@dataclass
class DenseGraphs:
    """A batch of graphs as dense padded tensors (see :func:`to_dense`).

    Attributes
    ----------
    mask
        (B, N) bool, True for real nodes (real nodes first in each row).
    pos
        (B, N, d) positions, each graph's centre of mass over real nodes at 0 (when
        ``centre=True``), padding 0; ``None`` when the graphs have no ``pos``.
    nodes
        (B, N, K) one-hot node categories (``node_classes`` given) or (B, N, F) float node
        features, padding 0; ``None`` when the graphs have no node attribute.
    edges
        (B, N, N, K_edge) one-hot edge categories, class 0 = no edge, on real off-diagonal
        pairs; 0 on the diagonal and padding; ``None`` unless ``edge_classes`` was given.
    centre
        (B, d) the removed centres (add them back for absolute positions); ``None`` without
        positions or with ``centre=False``.
    """

    mask: Tensor
    pos: Tensor | None = None
    nodes: Tensor | None = None
    edges: Tensor | None = None
    centre: Tensor | None = None

    @property
    def num_nodes(self) -> Tensor:
        """(B,) real nodes per graph."""
        return self.mask.sum(dim=1)

    @property
    def pair_mask(self) -> Tensor:
        """(B, N, N) bool: real off-diagonal pairs (the mask of a symmetric edge space)."""
        n = self.mask.shape[1]
        eye = torch.eye(n, dtype=torch.bool, device=self.mask.device)
        return self.mask[:, :, None] & self.mask[:, None, :] & ~eye

    def state(
        self, pos: str = "pos", nodes: str = "atoms", edges: str = "bonds"
    ) -> dict[str, Tensor]:
        """The present components as a ``ProductSpace`` state dict under these names."""
        values = {pos: self.pos, nodes: self.nodes, edges: self.edges}
        return {k: v for k, v in values.items() if v is not None}

    def masks(
        self, pos: str = "pos", nodes: str = "atoms", edges: str = "bonds"
    ) -> dict[str, Tensor]:
        """Masks keyed like :meth:`state`: node masks for positions and nodes, the pair mask
        for edges (``CategoricalSpace(symmetric=True)`` refuses a node mask)."""
        values = {pos: self.pos, nodes: self.nodes, edges: self.edges}
        return {
            k: (self.pair_mask if k == edges else self.mask)
            for k, v in values.items()
            if v is not None
        }

    def to(self, *args: Any, **kwargs: Any) -> DenseGraphs:
        """Every tensor moved/cast like ``Tensor.to`` (the mask keeps its bool dtype)."""

        def move(t: Tensor | None) -> Tensor | None:
            if t is None:
                return None
            return t.to(*args, **kwargs) if torch.is_floating_point(t) else t.to(t.device)

        device = next((a for a in args if isinstance(a, (str, torch.device))), None)
        device = kwargs.get("device", device)
        mask = self.mask if device is None else self.mask.to(device)
        return DenseGraphs(mask, move(self.pos), move(self.nodes), move(self.edges),
                           move(self.centre))  # fmt: skip

    def to_data_list(self, nodes_as: str = "index", node_attr: str = "x") -> list[Any]:
        """Back to ``list[Data]`` (see :func:`from_dense`); positions get their centre back."""
        return from_dense(
            self.mask, pos=self.pos, nodes=self.nodes, edges=self.edges, centre=self.centre,
            nodes_as=nodes_as, node_attr=node_attr,
        )  # fmt: skip


def _as_batch(graphs: Any) -> Any:
    geometric = require_torch_geometric()
    from torch_geometric.data import Batch, Data

    if isinstance(graphs, Batch):
        return graphs
    if isinstance(graphs, Data):
        return Batch.from_data_list([graphs])
    if isinstance(graphs, Sequence) and all(isinstance(g, Data) for g in graphs):
        if not graphs:
            raise ValueError("to_dense needs at least one graph; got an empty list")
        return Batch.from_data_list(list(graphs))
    raise TypeError(
        f"to_dense takes a torch_geometric Batch, a Data or a list of Data (torch-geometric "
        f"{geometric.__version__}); got {type(graphs).__name__}"
    )


def _node_categories(values: Tensor, classes: int, attr: str) -> Tensor:
    """Integer (M,) / (M, 1) indices or one-hot (M, classes) -> one-hot float (M, classes)."""
    if values.ndim == 2 and values.shape[1] == 1 and not torch.is_floating_point(values):
        values = values[:, 0]
    if values.ndim == 1:
        if torch.is_floating_point(values):
            raise ValueError(f"node categories {attr!r} must be integers, got {values.dtype}")
        if values.numel() and (int(values.min()) < 0 or int(values.max()) >= classes):
            raise ValueError(
                f"node categories {attr!r} must lie in 0..{classes - 1} (node_classes="
                f"{classes}); got {int(values.min())}..{int(values.max())}"
            )
        return torch.nn.functional.one_hot(values.long(), classes).float()
    if values.ndim == 2 and values.shape[1] == classes:
        return values.float()
    raise ValueError(
        f"node categories {attr!r} must be class indices (num_nodes,) or one-hot "
        f"(num_nodes, {classes}); got shape {tuple(values.shape)}"
    )


def _edge_types(edge_attr: Tensor | None, num_edges: int, classes: int) -> Tensor:
    """PyG edge types (E,) in 0..classes-2 from ``edge_attr`` (None: every edge type 0)."""
    if edge_attr is None:
        return torch.zeros(num_edges, dtype=torch.long)
    if edge_attr.ndim == 2 and edge_attr.shape[1] == classes - 1:
        if not bool(((edge_attr == 0) | (edge_attr == 1)).all()) or not bool(
            (edge_attr.sum(1) == 1).all()
        ):
            raise ValueError("one-hot edge_attr must have exactly one 1 per edge")
        return edge_attr.argmax(dim=1)
    if edge_attr.ndim == 2 and edge_attr.shape[1] == 1:
        edge_attr = edge_attr[:, 0]
    if edge_attr.ndim == 1 and not torch.is_floating_point(edge_attr):
        low, high = (int(edge_attr.min()), int(edge_attr.max())) if edge_attr.numel() else (0, 0)
        if low < 0 or high > classes - 2:
            raise ValueError(
                f"edge types must lie in 0..{classes - 2} (edge_classes={classes}, class 0 of "
                f"the dense tensor is 'no edge'); got {low}..{high}"
            )
        return edge_attr.long()
    raise ValueError(
        f"edge_attr must be integer edge types (E,) in 0..{classes - 2} or one-hot "
        f"(E, {classes - 1}) (edge_classes={classes} counts 'no edge' as class 0); got "
        f"{tuple(edge_attr.shape)} {edge_attr.dtype}"
    )


def to_dense(
    graphs: Any,
    *,
    node_classes: int | None = None,
    edge_classes: int | None = None,
    node_attr: str = "x",
    centre: bool = True,
    max_nodes: int | None = None,
    undirected: bool = True,
) -> DenseGraphs:
    """Dense padded tensors and masks for a batch of PyG graphs.

    Parameters
    ----------
    graphs
        A ``torch_geometric.data.Batch``, one ``Data``, or a list of ``Data``.
    node_classes
        K: ``graphs.<node_attr>`` holds node categories (class indices (num_nodes,) or
        one-hot (num_nodes, K)), returned one-hot (B, N, K). ``None``: the attribute holds
        float features (num_nodes, F), returned as they are.
    edge_classes
        K_edge, counting "no edge" as class 0: ``edge_attr`` holds a type ``0 .. K_edge - 2``
        per listed edge (integers (E,) or one-hot (E, K_edge - 1); no ``edge_attr``: every
        edge has type 0), returned one-hot (B, N, N, K_edge) at dense class ``type + 1``.
        ``None``: edges are not converted.
    node_attr
        The node attribute (``"x"``; PyG's QM9 keeps atomic numbers in ``"z"``).
    centre
        Remove each graph's centre of mass over its real nodes from ``pos`` (``CoMFreeSpace``
        states are centred); the centres are kept in :attr:`DenseGraphs.centre`.
    max_nodes
        N (default: the largest graph). Smaller than a graph raises ``ValueError``.
    undirected
        Write every edge in both directions (PyG lists undirected edges twice; a graph that
        lists only one direction is mirrored). ``False``: only as listed.

    Returns
    -------
    DenseGraphs
    """
    batch = _as_batch(graphs)
    from torch_geometric.utils import to_dense_batch

    sizes = torch.bincount(batch.batch, minlength=batch.num_graphs)
    largest = int(sizes.max()) if sizes.numel() else 0
    n = largest if max_nodes is None else max_nodes
    if n < largest:
        raise ValueError(f"max_nodes={max_nodes} is smaller than the largest graph ({largest})")
    b = batch.num_graphs

    def dense(values: Tensor) -> Tensor:
        out, _ = to_dense_batch(values, batch.batch, batch_size=b, max_num_nodes=n)
        return out

    mask = torch.arange(n, device=sizes.device)[None] < sizes[:, None]
    pos = centres = None
    if getattr(batch, "pos", None) is not None:
        pos = dense(batch.pos if torch.is_floating_point(batch.pos) else batch.pos.float())
        if centre:
            node = mask.unsqueeze(-1).to(pos.dtype)
            centres = (pos * node).sum(1) / node.sum(1).clamp_min(1.0)
            pos = (pos - centres[:, None]) * node
    nodes = None
    values = getattr(batch, node_attr, None)
    if values is not None:
        if node_classes is not None:
            values = _node_categories(values, node_classes, node_attr)
        elif not torch.is_floating_point(values):
            raise ValueError(
                f"{node_attr!r} holds integers {tuple(values.shape)}: pass node_classes=K to "
                "read them as categories, or store float features"
            )
        nodes = dense(values if values.ndim > 1 else values[:, None])
    elif node_classes is not None:
        raise ValueError(f"node_classes given but the graphs have no {node_attr!r} attribute")
    edges = None
    if edge_classes is not None:
        edges = _dense_edges(batch, mask, edge_classes, undirected)
    return DenseGraphs(mask, pos, nodes, edges, centres)


def _dense_edges(batch: Any, mask: Tensor, classes: int, undirected: bool) -> Tensor:
    if classes < 2:
        raise ValueError(
            f"edge_classes counts 'no edge' as class 0 and must be >= 2; got {classes}"
        )
    b, n = mask.shape
    src, dst = batch.edge_index
    if bool((src == dst).any()):
        raise ValueError("self-loops cannot be represented: the dense diagonal is not an edge")
    types = _edge_types(getattr(batch, "edge_attr", None), src.numel(), classes).to(src.device)
    graph = batch.batch[src]
    start = batch.ptr[:-1]  # first node of each graph
    i, j = src - start[graph], dst - start[graph]
    dense_class = torch.zeros(b, n, n, dtype=torch.long, device=mask.device)
    seen = torch.zeros(b, n, n, dtype=torch.bool, device=mask.device)
    for a, c in ((i, j), (j, i)) if undirected else ((i, j),):
        clash = seen[graph, a, c] & (dense_class[graph, a, c] != types + 1)
        if bool(clash.any()):
            raise ValueError("an edge is listed twice with different types (or its reverse is)")
        dense_class[graph, a, c] = types + 1
        seen[graph, a, c] = True
    eye = torch.eye(n, dtype=torch.bool, device=mask.device)
    pair = mask[:, :, None] & mask[:, None, :] & ~eye
    return torch.nn.functional.one_hot(dense_class, classes).float() * pair[..., None]


def from_dense(
    mask: Tensor,
    *,
    pos: Tensor | None = None,
    nodes: Tensor | None = None,
    edges: Tensor | None = None,
    centre: Tensor | None = None,
    nodes_as: str = "index",
    node_attr: str = "x",
) -> list[Any]:
    """A ``list[Data]`` from dense padded tensors (e.g. a sampler's output).

    Parameters
    ----------
    mask
        (B, N) bool node mask.
    pos
        (B, N, d) positions -> ``Data.pos`` (num_nodes, d) (+ ``centre`` (B, d) if given).
    nodes
        (B, N, K) node categories (one-hot or probabilities) or features -> ``Data.<node_attr>``
        as class indices (num_nodes,) (``nodes_as="index"``), one-hot (``"one_hot"``) or the
        values as they are (``"features"``).
    edges
        (B, N, N, K_edge) edge categories (class 0 = no edge): ``argmax`` per real pair; every
        pair with class > 0 becomes an edge (both directions when ``edges`` is symmetric, as
        a ``CategoricalSpace(symmetric=True)`` state is), ``edge_index`` sorted by source,
        ``edge_attr`` the type ``class - 1`` (int64 (E,)).
    """
    require_torch_geometric()
    from torch_geometric.data import Data

    if nodes_as not in NODE_FORMATS:
        raise ValueError(f"nodes_as must be one of {NODE_FORMATS}; got {nodes_as!r}")
    if mask.dtype != torch.bool or mask.ndim != 2:
        raise ValueError(f"mask must be a (B, N) bool tensor; got {mask.dtype} {tuple(mask.shape)}")
    b, n = mask.shape
    for name, value, lead in (("pos", pos, (b, n)), ("nodes", nodes, (b, n)),
                              ("edges", edges, (b, n, n))):  # fmt: skip
        if value is not None and tuple(value.shape[: len(lead)]) != lead:
            raise ValueError(f"{name} must start with shape {lead}; got {tuple(value.shape)}")
    mask_cpu = mask.cpu()
    out = []
    for g in range(b):
        real = mask_cpu[g]
        k = int(real.sum())
        fields: dict[str, Any] = {"num_nodes": k}
        if pos is not None:
            p = pos[g].detach().cpu()[real]
            fields["pos"] = p + centre[g].detach().cpu() if centre is not None else p
        if nodes is not None:
            v = nodes[g].detach().cpu()[real]
            if nodes_as == "index":
                v = v.argmax(-1)
            elif nodes_as == "one_hot":
                v = torch.nn.functional.one_hot(v.argmax(-1), v.shape[-1]).float()
            fields[node_attr] = v
        if edges is not None:
            e = edges[g].detach().cpu()[real][:, real]
            cls = e.argmax(-1) * ~torch.eye(k, dtype=torch.bool)
            src, dst = cls.nonzero(as_tuple=True)
            fields["edge_index"] = torch.stack([src, dst])
            fields["edge_attr"] = cls[src, dst] - 1
        out.append(Data(**fields))
    return out
