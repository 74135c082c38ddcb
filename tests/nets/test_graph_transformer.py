"""The dense graph transformer: shapes, permutation equivariance, symmetry, masking, exact cycle
counts, gradients, the adapter to the core, and a small overfit run with the core's objective."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from sci_diffusion.core import (
    CategoricalSpace,
    CosineSchedule,
    DiffusionObjective,
    ProductSpace,
    sample,
)
from sci_diffusion.nets.graph_transformer import (
    GraphTransformer,
    cycle_counts,
    graph_denoiser,
    pair_mask,
    spectral_features,
)

KX, KE = 4, 5
TOL = 1e-5  # float32: permuting nodes reorders sums of ~100 terms of size ~1
SMALL = {"layers": 2, "node_dim": 32, "edge_dim": 16, "global_dim": 16, "heads": 4}


def _symmetric(e: torch.Tensor) -> torch.Tensor:
    n = e.shape[1]
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)[..., None]
    return torch.where(upper, e, e.transpose(1, 2))


def random_graphs(
    b: int, n: int, sizes: list[int] | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One-hot nodes (B, N, KX), symmetric edges (B, N, N, KE) with an empty diagonal, a node
    mask with the real nodes first, and times."""
    gen = torch.Generator().manual_seed(seed)
    sizes = sizes or torch.randint(2, n + 1, (b,), generator=gen).tolist()
    mask = torch.arange(n)[None] < torch.tensor(sizes)[:, None]
    x = F.one_hot(torch.randint(0, KX, (b, n), generator=gen), KX).float() * mask[..., None]
    e = F.one_hot(torch.randint(0, KE, (b, n, n), generator=gen), KE).float()
    e = _symmetric(e) * pair_mask(mask)[..., None]
    return x, e, mask, torch.rand(b, generator=gen)


def adjacency_of(n: int, edges: list[tuple[int, int]]) -> torch.Tensor:
    adj = torch.zeros(1, n, n)
    for i, j in edges:
        adj[0, i, j] = adj[0, j, i] = 1.0
    return adj


def ring(n: int) -> list[tuple[int, int]]:
    return [(i, (i + 1) % n) for i in range(n)]


def brute_force_cycles(adj: torch.Tensor, k: int) -> tuple[int, list[int]]:
    """Simple k-cycles of one graph (N, N) by enumeration: total and per node."""
    n = adj.shape[0]
    total, per_node = 0, [0] * n
    for nodes in itertools.combinations(range(n), k):
        for rest in itertools.permutations(nodes[1:]):
            cycle = (nodes[0], *rest)
            if rest[0] < rest[-1] and all(adj[cycle[i], cycle[(i + 1) % k]] for i in range(k)):
                total += 1
                for v in cycle:
                    per_node[v] += 1
    return total, per_node


@pytest.fixture(scope="module")
def net() -> GraphTransformer:
    torch.manual_seed(0)
    model = GraphTransformer(KX, KE, **SMALL).eval()
    for head in (model.node_head, model.edge_head):  # zero-initialised: make outputs non-trivial
        torch.nn.init.normal_(head[-1].weight, std=0.5)
    return model


def test_shapes_and_masked_outputs(net: GraphTransformer) -> None:
    x, e, mask, t = random_graphs(5, 7)
    nodes, edges = net(x, e, mask, t)
    assert nodes.shape == (5, 7, KX) and edges.shape == (5, 7, 7, KE)
    assert torch.all(nodes[~mask] == 0)
    assert torch.all(edges[~pair_mask(mask)] == 0)  # padded pairs and the diagonal
    assert torch.all(edges.diagonal(dim1=1, dim2=2) == 0)
    assert nodes[mask].abs().sum() > 0 and edges[pair_mask(mask)].abs().sum() > 0


def test_edge_outputs_are_exactly_symmetric(net: GraphTransformer) -> None:
    x, e, mask, t = random_graphs(4, 6, seed=1)
    _, edges = net(x, e, mask, t)
    assert torch.equal(edges, edges.transpose(1, 2))


@pytest.mark.parametrize(("spectral", "degree"), [(False, False), (True, False), (False, True)])
def test_permuting_real_nodes_permutes_outputs(spectral: bool, degree: bool) -> None:
    torch.manual_seed(0)
    # eigenvector signs are arbitrary: only the (invariant) eigenvalue features are tested
    weights = (0.0, 1.0, 2.0, 3.0, 1.5) if degree else None
    model = GraphTransformer(
        KX, KE, **SMALL, spectral_features=spectral, num_eigvecs=0, degree_weights=weights
    ).eval()
    for head in (model.node_head, model.edge_head):
        torch.nn.init.normal_(head[-1].weight, std=0.5)
    x, e, mask, t = random_graphs(3, 8, sizes=[8, 6, 5], seed=2)
    nodes, edges = model(x, e, mask, t)
    perm = torch.arange(8)
    perm[:5] = torch.randperm(5, generator=torch.Generator().manual_seed(3))  # real in all
    px, pe, pm = x[:, perm], e[:, perm][:, :, perm], mask[:, perm]
    p_nodes, p_edges = model(px, pe, pm, t)
    torch.testing.assert_close(p_nodes, nodes[:, perm], atol=TOL, rtol=0)
    torch.testing.assert_close(p_edges, edges[:, perm][:, :, perm], atol=TOL, rtol=0)


def test_padding_values_and_amount_do_not_change_real_outputs(net: GraphTransformer) -> None:
    x, e, mask, t = random_graphs(3, 6, seed=4)
    nodes, edges = net(x, e, mask, t)
    garbage = torch.Generator().manual_seed(5)
    pairs = pair_mask(mask)
    gx = torch.where(mask[..., None], x, torch.rand(x.shape, generator=garbage))
    ge = torch.where(pairs[..., None], e, torch.rand(e.shape, generator=garbage))
    g_nodes, g_edges = net(gx, ge, mask, t)
    torch.testing.assert_close(g_nodes, nodes, atol=TOL, rtol=0)
    torch.testing.assert_close(g_edges, edges, atol=TOL, rtol=0)
    # three more padded slots: the real outputs are those of the smaller tensors
    wide_x, wide_e = F.pad(x, (0, 0, 0, 3)), F.pad(e, (0, 0, 0, 3, 0, 3))
    w_nodes, w_edges = net(wide_x, wide_e, F.pad(mask, (0, 3)), t)
    torch.testing.assert_close(w_nodes[:, :6], nodes, atol=TOL, rtol=0)
    torch.testing.assert_close(w_edges[:, :6, :6], edges, atol=TOL, rtol=0)


@pytest.mark.parametrize(
    ("n", "edges", "per_node", "per_graph"),
    [
        (3, ring(3), [1, 0, 0, 0], [1, 0, 0, 0]),  # triangle
        (4, ring(4), [0, 1, 0, 0], [0, 1, 0, 0]),  # square
        (6, ring(6), [0, 0, 0, 1], [0, 0, 0, 1]),  # benzene's ring
        (5, ring(5), [0, 0, 1, 0], [0, 0, 1, 0]),
    ],
)
def test_cycle_counts_of_rings(n, edges, per_node, per_graph) -> None:
    nodes, graphs = cycle_counts(adjacency_of(n, edges))
    assert nodes[0].tolist() == [per_node] * n
    assert graphs[0].tolist() == per_graph


def test_cycle_counts_of_naphthalene_and_k4() -> None:
    # naphthalene: two fused 6-rings (and the 10-ring around them, not counted)
    fused = [*ring(6), (0, 6), (6, 7), (7, 8), (8, 9), (9, 5)]
    _, graphs = cycle_counts(adjacency_of(10, fused))
    assert graphs[0].tolist() == [0, 0, 0, 2]
    nodes, graphs = cycle_counts(adjacency_of(4, list(itertools.combinations(range(4), 2))))
    assert graphs[0].tolist() == [4, 3, 0, 0]  # K4: 4 triangles, 3 squares
    assert nodes[0].tolist() == [[3, 3, 0, 0]] * 4


def test_cycle_counts_match_brute_force_on_random_graphs() -> None:
    gen = torch.Generator().manual_seed(0)
    for _ in range(12):
        n = int(torch.randint(4, 8, (1,), generator=gen))
        upper = torch.triu(torch.rand(n, n, generator=gen) < 0.5, 1).float()
        adj = upper + upper.T
        nodes, graphs = cycle_counts(adj[None])
        for col, k in enumerate((3, 4, 5, 6)):
            total, per_node = brute_force_cycles(adj, k)
            assert graphs[0, col] == total
            assert nodes[0, :, col].tolist() == per_node


def test_spectral_features_count_components_and_ignore_padding() -> None:
    two_triangles = adjacency_of(6, [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)])
    mask = torch.ones(1, 6, dtype=torch.bool)
    _, graph = spectral_features(two_triangles, mask, num_eigvals=5)
    assert graph[0, 0] == 2  # two components
    torch.testing.assert_close(graph[0, 1:], torch.tensor([3.0, 3.0, 3.0, 3.0, 0.0]))
    padded = F.pad(two_triangles, (0, 2, 0, 2))
    _, graph_padded = spectral_features(padded, F.pad(mask, (0, 2)), num_eigvals=5)
    torch.testing.assert_close(graph_padded, graph)


def test_degree_feature_is_the_valence_of_a_kekulized_molecule() -> None:
    """Acetic acid's heavy atoms, CC(=O)O, with bond classes (none, single, double, triple):
    weights (0, 1, 2, 3) give valences 1, 4, 2, 1 (as RDKit's explicit valence), padding 0."""
    n, bonds = 6, {(0, 1): 1, (1, 2): 2, (1, 3): 1}
    e = torch.zeros(1, n, n, 4)
    e[..., 0] = 1.0
    for (i, j), order in bonds.items():
        for a, b in ((i, j), (j, i)):
            e[0, a, b] = F.one_hot(torch.tensor(order), 4).float()
    mask = torch.arange(n)[None] < 4
    e = e * pair_mask(mask)[..., None]
    model = GraphTransformer(4, 4, **SMALL, cycle_features=False, degree_weights=(0, 1, 2, 3))
    nodes, _ = model.structural_features(e, mask)
    assert nodes.shape == (1, n, 1)
    torch.testing.assert_close(nodes[0, :, 0].expm1(), torch.tensor([1.0, 4, 2, 1, 0, 0]))
    with pytest.raises(ValueError, match="one weight per edge class"):
        GraphTransformer(4, 4, **SMALL, degree_weights=(0, 1, 2))


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model = GraphTransformer(KX, KE, **SMALL, spectral_features=True)
    x, e, mask, t = random_graphs(4, 6, seed=6)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):  # the heads start at zero: one step opens the path to the trunk
        opt.zero_grad()
        nodes, edges = model(x, e, mask, t)
        loss = F.cross_entropy(nodes[mask], x[mask].argmax(-1))
        pairs = pair_mask(mask)
        loss = loss + F.cross_entropy(edges[pairs], e[pairs].argmax(-1))
        loss.backward()
        opt.step()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


# -- the adapter to the core ------------------------------------------------------------------
def molecule_space(transition: str = "uniform") -> ProductSpace:
    schedule = CosineSchedule()
    return ProductSpace(
        {
            "atoms": CategoricalSpace(KX, schedule, transition),
            "charges": CategoricalSpace(3, schedule, transition),
            "bonds": CategoricalSpace(KE, schedule, transition, symmetric=True),
        }
    )


def test_adapter_infers_the_mask_and_plugs_into_the_denoiser() -> None:
    torch.manual_seed(0)
    space = molecule_space()
    denoiser = graph_denoiser(space, node_keys=("atoms", "charges"), **SMALL)
    x, e, mask, t = random_graphs(3, 5, seed=7)
    charges = F.one_hot(torch.randint(0, 3, (3, 5)), 3).float() * mask[..., None]
    state = {"atoms": x, "charges": charges, "bonds": e}
    inferred = denoiser.net(state, t)
    explicit = denoiser.net(state, t, node_mask=mask)
    assert {k: v.shape for k, v in inferred.items()} == {k: v.shape for k, v in state.items()}
    for key in state:
        torch.testing.assert_close(inferred[key], explicit[key])
    probs = denoiser(state, t)
    torch.testing.assert_close(probs["charges"].sum(-1), torch.ones(3, 5))


def test_categorical_sampler_runs_on_the_adapter() -> None:
    torch.manual_seed(0)
    space = molecule_space()
    denoiser = graph_denoiser(space, node_keys=("atoms", "charges"), **SMALL)
    _, _, mask, _ = random_graphs(2, 5, sizes=[5, 3], seed=8)
    masks = {"atoms": mask, "charges": mask, "bonds": pair_mask(mask)}
    gen = torch.Generator().manual_seed(0)
    x = {
        "atoms": space["atoms"].prior((2, 5, KX), mask, generator=gen),
        "charges": space["charges"].prior((2, 5, 3), mask, generator=gen),
        "bonds": space["bonds"].prior((2, 5, 5, KE), masks["bonds"], generator=gen),
    }
    times = torch.linspace(1.0, 0.0, 6)
    with torch.no_grad():
        out = sample("categorical", denoiser, x, times, space=space, mask=masks, generator=gen)
    assert torch.equal(out["bonds"], out["bonds"].transpose(1, 2))
    assert torch.equal(out["atoms"].sum(-1), mask.float())
    assert torch.equal(out["bonds"].sum(-1), pair_mask(mask).float())


def small_molecules(seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """8 fixed graphs of 3-6 nodes: chains and rings with random atom and bond types."""
    gen = torch.Generator().manual_seed(seed)
    n, sizes = 6, [3, 4, 5, 6, 6, 5, 4, 6]
    atoms = torch.zeros(8, n, dtype=torch.long)
    bonds = torch.zeros(8, n, n, dtype=torch.long)
    for b, size in enumerate(sizes):
        atoms[b, :size] = torch.randint(0, KX, (size,), generator=gen)
        links = ring(size) if b % 2 else ring(size)[:-1]
        for i, j in links:
            bonds[b, i, j] = bonds[b, j, i] = int(torch.randint(1, KE, (1,), generator=gen))
    mask = torch.arange(n)[None] < torch.tensor(sizes)[:, None]
    pairs = pair_mask(mask)
    x0 = {
        "atoms": F.one_hot(atoms, KX).float() * mask[..., None],
        "bonds": F.one_hot(bonds, KE).float() * pairs[..., None],
    }
    return x0, {"atoms": mask, "bonds": pairs}


def test_overfits_a_fixed_batch_with_the_core_objective() -> None:
    torch.manual_seed(0)
    schedule = CosineSchedule()
    space = ProductSpace(
        {
            "atoms": CategoricalSpace(KX, schedule),
            "bonds": CategoricalSpace(KE, schedule, symmetric=True),
        }
    )
    denoiser = graph_denoiser(space, **SMALL)
    objective = DiffusionObjective(denoiser)
    x0, masks = small_molecules()
    # Times where x_t still says much about x_0: at larger t the per-element Bayes floor
    # (~1/3 of the initial loss on t in [0.02, 0.5]) leaves no room to show a 50% drop.
    t_eval = torch.linspace(0.02, 0.3, 8)

    def eval_loss() -> float:
        with torch.no_grad():
            gen = torch.Generator().manual_seed(123)
            return float(objective(x0, mask=masks, t=t_eval, generator=gen).loss)

    before = eval_loss()
    opt = torch.optim.Adam(denoiser.net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(100):
        opt.zero_grad()
        t = 0.02 + 0.28 * torch.rand(8, generator=gen)
        objective(x0, mask=masks, t=t, generator=gen).loss.backward()
        opt.step()
    after = eval_loss()
    assert after < 0.5 * before, (before, after)


def test_property_conditioning_starts_as_the_unconditional_net() -> None:
    """Zero-initialised conditioning: a conditional net loaded with an unconditional net's
    weights (the new tensors at their init) gives the same logits for any properties, so a
    fine-tune starts from the unconditional model (trainer.init_from)."""
    from sci_diffusion.nets.graph_transformer import GraphDenoiserNet

    torch.manual_seed(0)
    kw = dict(layers=1, node_dim=16, edge_dim=8, global_dim=8, heads=2)
    plain = GraphDenoiserNet({"atoms": 4}, "bonds", 3, **kw)
    cond = GraphDenoiserNet({"atoms": 4}, "bonds", 3, properties=2, **kw)
    missing, unexpected = cond.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all("cond_in" in k or "property_" in k for k in missing)
    cond.set_property_stats(torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, float("nan")]]))
    assert cond.property_mean.tolist() == [1.0, 2.0]  # NaN rows are left out
    x = {"atoms": F.one_hot(torch.randint(4, (3, 5)), 4).float(),
         "bonds": F.one_hot(torch.randint(3, (3, 5, 5)), 3).float()}  # fmt: skip
    x["bonds"] = (x["bonds"] + x["bonds"].transpose(1, 2)).clamp(max=1)
    t = torch.rand(3)
    props = torch.tensor([[0.5, float("nan")], [float("nan")] * 2, [3.0, 9.0]])
    for key, value in plain(x, t).items():
        torch.testing.assert_close(cond(x, t, properties=props)[key], value)
    features = cond.property_features(props, 3)
    assert features[1].tolist() == [0.0, 0.0, 0.0, 0.0]  # not given: zero value, flag 0
    assert features[0, 2:].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="properties must be"):
        cond(x, t, properties=torch.zeros(3, 5))
    with pytest.raises(ValueError, match="unconditional"):
        plain(x, t, properties=props)
