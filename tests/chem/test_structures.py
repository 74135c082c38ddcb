"""QM9 3D graphs: the SMILES's graph at the DFT geometry, aligned by isomorphism. Checked on
real QM9 test molecules against their own bond lengths and against the 2D featurization."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

pytest.importorskip("rdkit")
pytest.importorskip("pandas")

from sci_diffusion.chem.data import load_qm9
from sci_diffusion.chem.featurize import QM9_H_VOCAB, QM9_VOCAB, FeaturizationError, qm9_graphs
from sci_diffusion.chem.structures import align_record, qm9_structures

N = 400


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCI_DIFFUSION_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def with_h() -> object:
    return qm9_structures("test", hydrogens=True, limit=N, cache=False)


def test_every_molecule_aligns_with_physical_bond_lengths(with_h) -> None:
    """All of the first 400 test molecules align (measured: 2,000 / 2,000). Under the
    mapping every SMILES bond is 0.95-1.65 Å long (covalent bonds of H, C, N, O, F), and no
    two unbonded atoms are closer than 1.5 Å (the shortest 1,3 contact of QM9 is ~1.6 Å):
    a wrong atom mapping would put bonds across non-bonded distances."""
    assert len(with_h) == N and not with_h.problems
    pos, bonds, mask = with_h.positions, with_h.bonds > 0, with_h.node_mask
    dist = torch.cdist(pos, pos)
    assert dist[bonds].min() > 0.95 and dist[bonds].max() < 1.65
    pair = mask[:, :, None] & mask[:, None, :] & ~torch.eye(mask.shape[1], dtype=torch.bool)
    assert dist[pair & ~bonds].min() > 1.5
    centre = (pos * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    assert centre.abs().max() < 1e-5
    assert (pos[~mask] == 0).all()


def test_heavy_atoms_match_the_2d_featurization(cache) -> None:
    """Without hydrogens the graph is exactly qm9_graph's (same SMILES, same order)."""
    heavy = qm9_structures("test", hydrogens=False, limit=100)
    graphs = qm9_graphs("test", hydrogens=False, limit=100)
    assert torch.equal(heavy.source_index, graphs.source_index)
    for label in ("atom_types", "charges", "bonds", "node_mask"):
        assert torch.equal(getattr(heavy, label), getattr(graphs, label)), label
    again = qm9_structures("test", hydrogens=False, limit=100)  # from the cache
    assert torch.equal(again.positions, heavy.positions)
    assert heavy.positions.shape == (100, heavy.max_nodes, 3)


def test_heavy_positions_are_the_heavy_rows_of_the_full_geometry(with_h) -> None:
    record = load_qm9("test", limit=1)[0]
    atoms, _, _, positions = align_record(record, QM9_VOCAB)
    full = align_record(record, QM9_H_VOCAB)[3]
    n = len(atoms)
    shift = full[:n].mean(0) - positions.mean(0)
    np.testing.assert_allclose(positions + shift, full[:n], atol=1e-5)


def test_inconsistent_geometry_is_reported_not_guessed() -> None:
    record = load_qm9("test", limit=1)[0]
    moved = record.positions.copy()
    moved[0] += 5.0  # atom 0 leaves the molecule: its bonds are gone
    with pytest.raises(FeaturizationError, match="connectivity changed"):
        align_record(dataclasses.replace(record, positions=moved), QM9_H_VOCAB)
    fewer = dataclasses.replace(record, elements=record.elements[:-1],
                                positions=record.positions[:-1])  # fmt: skip
    with pytest.raises(FeaturizationError, match="atoms with H"):
        align_record(fewer, QM9_H_VOCAB)
    with pytest.raises(ValueError, match="with coordinates"):
        align_record(dataclasses.replace(record, positions=None), QM9_H_VOCAB)
