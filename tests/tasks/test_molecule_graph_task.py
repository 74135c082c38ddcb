"""``qm9_graph`` end to end at CI size: train a few steps on 500 real QM9 graphs, sample, and
check the outputs' contract (not quality: that needs the 60-minute run in benchmarks.md)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from support import train_in_private_cache

from sci_diffusion.cli import main

TINY = [
    "task=qm9_graph",
    "task.data.limit=500",
    "model.layers=2",
    "model.node_dim=32",
    "model.edge_dim=16",
    "model.global_dim=16",
    "model.heads=4",
    "trainer.batch_size=32",
    "trainer.max_steps=30",
    "trainer.checkpoint_every=30",
    "trainer.progress=false",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    yield from train_in_private_cache(tmp_path_factory, TINY, "qm9_graph")


def test_sample_writes_screened_candidates_and_literature_metrics(run: Path, tmp_path: Path):
    out = tmp_path / "samples"
    assert main(["sample", f"run={run}", "n=40", "steps=5", f"out={out}"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("n_samples", "n_candidates", "validity", "validity_strict", "uniqueness",
                "novelty", "sampler", "steps"):  # fmt: skip
        assert key in metrics, key
    assert metrics["n_samples"] == 40 and metrics["steps"] == 5
    assert 0.0 <= metrics["validity_strict"] <= metrics["validity"] <= 1.0
    for name in ("candidates.sdf", "candidates.csv", "rejected.csv", "grid.svg", "report.md"):
        assert (out / name).exists(), name
    with (out / "candidates.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == metrics["n_candidates"]
    assert all(r["validation_status"] == "in_silico_screened" for r in rows)
    with (out / "rejected.csv").open() as f:
        rejected = list(csv.DictReader(f))
    assert len(rows) + len(rejected) == 40
    assert all(r["failed_gate"] for r in rejected)


def test_model_card_states_the_validation_status(run: Path):
    card = json.loads((run / "card.json").read_text())
    assert "never synthesized or assayed" in card["use"]["validation_status"]
    assert card["model"]["task"] == "qm9_graph"


def test_whole_molecule_smiles_keeps_fragments_and_marks_failures():
    from rdkit import Chem

    from sci_diffusion.tasks.molecule_graph import whole_molecule_smiles

    pentavalent = Chem.RWMol(Chem.MolFromSmiles("C", sanitize=False))
    for _ in range(5):
        pentavalent.AddAtom(Chem.Atom(9))
    for i in range(1, 6):
        pentavalent.AddBond(0, i, Chem.BondType.SINGLE)
    mols = [Chem.MolFromSmiles("CCO.N", sanitize=False), None, pentavalent.GetMol()]
    assert whole_molecule_smiles(mols) == ["CCO.N", None, None]
    assert mols[0].NeedsUpdatePropertyCache()  # the caller's molecule is not sanitized in place


def test_aromatic_bond_class_trains_and_samples(tmp_path_factory: pytest.TempPathFactory):
    """``task.data.aromatic_bonds=true``: five bond classes end to end (network, sampler,
    decoding with pyrrole hydrogens, gate)."""
    options = [*TINY, "task.data.aromatic_bonds=true", "model.degree_weights=[0,1,2,3,1.5]"]
    for run in train_in_private_cache(tmp_path_factory, options, "qm9_graph_arom"):
        card = json.loads((run / "card.json").read_text())
        assert card["data"]["name"].endswith("(qm9-arom)")  # the data card names the vocabulary
        out = tmp_path_factory.mktemp("arom_samples")
        assert main(["sample", f"run={run}", "n=8", "steps=5", f"out={out}"]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["n_samples"] == 8
        nh = metrics["aromatic_hydrogens"]
        assert 0 <= nh["valid_with_placed_nh"] <= nh["molecules_with_placed_nh"] <= 8
        assert nh["validity_without_placement"] <= metrics["validity"]

