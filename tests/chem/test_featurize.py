"""Graph featurization: round trips on real QM9/MOSES molecules, vocab errors, padded data
sets with their statistics, and the on-disk cache (hit, miss, corruption)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("rdkit")
pytest.importorskip("pandas")

from rdkit import Chem, rdBase

from sci_diffusion.chem import featurize as feat
from sci_diffusion.chem.data import load_moses, load_qm9
from sci_diffusion.chem.featurize import (
    MOSES_VOCAB,
    QM9_H_VOCAB,
    QM9_VOCAB,
    FeaturizationError,
    GraphDataset,
    GraphVocab,
    OutOfVocabError,
    featurize,
    graph_to_mol,
    mol_to_graph,
    moses_graphs,
    qm9_graphs,
)
from sci_diffusion.chem.molfiles import read_smiles_file

N_QM9 = 500


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCI_DIFFUSION_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache per module, so the QM9 split (~2 s) is built once."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("cache")
        mp.setenv("SCI_DIFFUSION_CACHE", str(path))
        yield path


def _round_trip(smiles: str, vocab: GraphVocab) -> str:
    mol = graph_to_mol(*mol_to_graph(Chem.MolFromSmiles(smiles), vocab), vocab)
    Chem.SanitizeMol(mol)
    return Chem.MolToSmiles(Chem.RemoveHs(mol))


def _round_trip_fraction(smiles: list[str], vocab: GraphVocab) -> float:
    same = [_round_trip(s, vocab) == Chem.CanonSmiles(s) for s in smiles]
    return sum(same) / len(same)


# ------------------------------------------------------------------------------ conversion


@pytest.mark.parametrize("vocab", [QM9_VOCAB, QM9_H_VOCAB], ids=["implicit-H", "explicit-H"])
def test_qm9_round_trip_is_exact(shared_cache, vocab):
    smiles = [r.smiles for r in load_qm9("train", limit=N_QM9, coordinates=False)]
    assert _round_trip_fraction(smiles, vocab) == 1.0  # all 130,831 pass too (docs)


def test_moses_round_trip_is_exact():
    assert _round_trip_fraction(load_moses("test", limit=300), MOSES_VOCAB) == 1.0


def test_zwitterions_and_charged_atoms_round_trip():
    for smiles in ["[NH3+]CCC([O-])=O", "NC(=[NH2+])[C-](C#N)C#N", "O=C1[CH-][NH+]2CCC2=C1"]:
        assert _round_trip(smiles, QM9_VOCAB) == Chem.CanonSmiles(smiles)
        assert _round_trip(smiles, QM9_H_VOCAB) == Chem.CanonSmiles(smiles)


def test_graph_layout_kekulized_symmetric_and_input_untouched():
    mol = Chem.MolFromSmiles("c1ccncc1C#N")  # pyridine ring, nitrile
    atoms, charges, bonds = mol_to_graph(mol, QM9_VOCAB)
    assert atoms.dtype == charges.dtype == bonds.dtype == np.int64
    assert [QM9_VOCAB.atoms[t] for t in atoms] == ["C", "C", "C", "N", "C", "C", "C", "N"]
    assert (charges == QM9_VOCAB.charges.index(0)).all()
    assert (bonds == bonds.T).all() and (np.diag(bonds) == 0).all()
    upper = bonds[np.triu_indices(8, 1)]
    # Aromatic ring kekulized: 3 single + 3 double; plus C-C single and C#N triple.
    assert np.bincount(upper, minlength=4).tolist() == [28 - 8, 4, 3, 1]
    assert mol.GetBondWithIdx(0).GetIsAromatic()  # the caller's molecule is not modified
    explicit = mol_to_graph(mol, QM9_H_VOCAB)[0]
    assert (explicit == QM9_H_VOCAB.atoms.index("H")).sum() == 4


def test_out_of_vocab_and_unrepresentable_molecules_raise():
    with pytest.raises(OutOfVocabError, match=r"atom 1 is Cl; vocabulary 'qm9' has C, N, O, F"):
        mol_to_graph(Chem.MolFromSmiles("CCl"), QM9_VOCAB)
    with pytest.raises(OutOfVocabError, match=r"formal charge \+2"):
        mol_to_graph(Chem.MolFromSmiles("C[N+2]"), QM9_VOCAB)
    with pytest.raises(OutOfVocabError, match="is H"):
        mol_to_graph(Chem.MolFromSmiles("[H][H]"), QM9_VOCAB)
    with pytest.raises(FeaturizationError, match="radical"):
        mol_to_graph(Chem.MolFromSmiles("C[CH2]"), QM9_VOCAB)
    assert issubclass(OutOfVocabError, FeaturizationError)
    assert issubclass(FeaturizationError, ValueError)


def test_graph_to_mol_is_unsanitized_and_accepts_masks_and_tensors():
    c, n = QM9_VOCAB.atoms.index("C"), QM9_VOCAB.atoms.index("N")
    zero = QM9_VOCAB.charges.index(0)
    atoms = torch.tensor([c, c, c, c, c, c, n])  # a pentavalent centre plus padding
    charges = torch.full((7,), zero)
    bonds = torch.zeros(7, 7, dtype=torch.int64)
    bonds[0, 1:5] = bonds[1:5, 0] = 1
    bonds[0, 5] = bonds[5, 0] = 2
    mask = torch.tensor([True] * 6 + [False])
    mol = graph_to_mol(atoms, charges, bonds, QM9_VOCAB, mask=mask)
    assert isinstance(mol, Chem.RWMol) and mol.GetNumAtoms() == 6  # built, not validated
    with pytest.raises(Chem.AtomValenceException):
        Chem.SanitizeMol(mol)
    bonds[0, 1] = 0  # one direction only
    with pytest.raises(ValueError, match="symmetric"):
        graph_to_mol(atoms, charges, bonds, QM9_VOCAB)
    with pytest.raises(ValueError, match=r"atom_types values must lie in \[0, 4\)"):
        graph_to_mol([7], [zero], [[0]], QM9_VOCAB)


def test_explicit_hydrogen_graphs_do_not_gain_implicit_hydrogens():
    h, c = QM9_H_VOCAB.atoms.index("H"), QM9_H_VOCAB.atoms.index("C")
    zero = QM9_H_VOCAB.charges.index(0)
    bonds = np.zeros((4, 4), np.int64)
    bonds[0, 1:] = bonds[1:, 0] = 1  # CH3: one hydrogen short
    mol = graph_to_mol([c, h, h, h], [zero] * 4, bonds, QM9_H_VOCAB)
    Chem.SanitizeMol(mol)
    assert mol.GetAtomWithIdx(0).GetNumRadicalElectrons() == 1


def test_vocab_serializes():
    for vocab in (QM9_VOCAB, QM9_H_VOCAB, MOSES_VOCAB):
        assert GraphVocab.from_dict(vocab.to_dict()) == vocab
    assert QM9_H_VOCAB.explicit_hydrogens and not MOSES_VOCAB.explicit_hydrogens
    assert (MOSES_VOCAB.num_atom_types, MOSES_VOCAB.num_charges, MOSES_VOCAB.num_bond_types) == (
        7,
        3,
        4,
    )


# ------------------------------------------------------------------------------- data sets


def test_featurize_skips_and_reports_bad_molecules(tmp_path):
    path = tmp_path / "mols.smi"
    path.write_text("CCO a\nCCCl b\nC1CC c\nc1ccccc1 d\n")
    molecules, problems = read_smiles_file(path)
    dataset = featurize(enumerate(molecules), QM9_VOCAB, source=str(path))
    assert len(dataset) == 2 and dataset.source_index.tolist() == [0, 2]
    assert [(p.line, p.text) for p in problems + dataset.problems] == [(3, "C1CC"), (2, "b")]
    assert "Cl" in dataset.problems[0].reason
    smiles = featurize(enumerate(["CCO", "C1CC", "[Si]"]), QM9_VOCAB, source="list")
    assert len(smiles) == 1
    assert [(p.record, p.reason.split(":")[0]) for p in smiles.problems] == [
        (1, "SMILES parse error"),
        (2, "atom 0 is Si; vocabulary 'qm9' has C, N, O, F"),
    ]


@pytest.mark.parametrize("hydrogens", [False, True])
def test_qm9_dataset_tensors_and_statistics(shared_cache, hydrogens):
    dataset = qm9_graphs("train", hydrogens, limit=N_QM9)
    vocab = dataset.vocab
    assert vocab == (QM9_H_VOCAB if hydrogens else QM9_VOCAB)
    m, n = len(dataset), dataset.max_nodes
    assert m == N_QM9 and n == (dataset.node_mask.sum(1).max())
    assert dataset.atom_types.dtype == dataset.bonds.dtype == torch.uint8
    assert dataset.bonds.shape == (m, n, n) and dataset.node_mask.dtype == torch.bool
    # Padding is class 0 with no bonds; bonds are symmetric.
    pad = ~dataset.node_mask
    assert (dataset.atom_types[pad] == 0).all() and (dataset.bonds.sum(2)[pad] == 0).all()
    assert torch.equal(dataset.bonds, dataset.bonds.transpose(1, 2))
    # The statistics agree with a direct count over the RDKit molecules.
    records = {r.index: r for r in load_qm9("train", limit=N_QM9, coordinates=False)}
    assert dataset.source_index.tolist() == list(records)
    mols = [Chem.MolFromSmiles(r.smiles) for r in records.values()]
    mols = [Chem.AddHs(x) for x in mols] if hydrogens else mols
    stats = dataset.stats
    sizes = [x.GetNumAtoms() for x in mols]
    assert stats.max_nodes == max(sizes) == n
    assert stats.node_counts.tolist() == np.bincount(sizes, minlength=n + 1).tolist()
    symbols = [a.GetSymbol() for x in mols for a in x.GetAtoms()]
    expected = np.array([symbols.count(s) for s in vocab.atoms]) / len(symbols)
    np.testing.assert_allclose(stats.atom_type_marginals.numpy(), expected)
    n_charged = sum(a.GetFormalCharge() != 0 for x in mols for a in x.GetAtoms())
    assert stats.charge_marginals[vocab.charges.index(0)] == 1 - n_charged / len(symbols)
    n_pairs = sum(k * (k - 1) // 2 for k in sizes)
    n_bonds = sum(x.GetNumBonds() for x in mols)
    assert stats.bond_marginals[0].item() == pytest.approx(1 - n_bonds / n_pairs)
    # Rows go back to the original molecules; batches come out as int64.
    for row in (0, m - 1):
        mol = dataset.to_mol(row)
        Chem.SanitizeMol(mol)
        assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == Chem.CanonSmiles(
            records[int(dataset.source_index[row])].smiles
        )
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=8)))
    assert batch["bonds"].shape == (8, n, n) and batch["bonds"].dtype == torch.int64


def test_moses_dataset(cache):
    dataset = moses_graphs("test", limit=200)
    assert len(dataset) == 200 and not dataset.problems
    assert dataset.source_index.tolist() == list(range(200))
    assert dataset.stats.charge_marginals.tolist() == [0.0, 1.0, 0.0]  # MOSES is neutral
    assert dataset.stats.atom_type_marginals.sum().item() == pytest.approx(1.0)


def test_empty_dataset():
    dataset = featurize([], QM9_VOCAB)
    assert len(dataset) == 0 and dataset.max_nodes == 0
    assert dataset.stats.node_counts.tolist() == [0]


# ----------------------------------------------------------------------------------- cache


def _no_rebuild(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(feat, "featurize", fail)


def _same(a: GraphDataset, b: GraphDataset) -> bool:
    return all(
        torch.equal(x, y) for x, y in zip(a.tensors().values(), b.tensors().values(), strict=True)
    )


def test_cache_hit_miss_and_corruption_rebuild(cache, monkeypatch):
    first = moses_graphs("test", limit=50)
    (path,) = (cache / "graphs").glob("moses-test-*.safetensors")
    with monkeypatch.context() as m:  # hit: loaded from disk, nothing featurized
        _no_rebuild(m)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert _same(moses_graphs("test", limit=50), first)
    assert len(moses_graphs("test", limit=20)) == 20  # another limit: another entry
    with monkeypatch.context() as m:  # a changed key (here the version) invalidates
        m.setattr(feat, "FEATURIZE_VERSION", feat.FEATURIZE_VERSION + 1)
        calls = []
        real = feat.featurize
        m.setattr(feat, "featurize", lambda *a, **k: calls.append(1) or real(*a, **k))
        assert _same(moses_graphs("test", limit=50), first) and calls == [1]
    moses_graphs("test", limit=50)  # back to the current version's entry
    # Flip one byte of tensor data: the checksum catches it and the entry is rebuilt.
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="checksum mismatch"):
        assert _same(moses_graphs("test", limit=50), first)
    path.write_bytes(path.read_bytes()[:100])  # truncated: unreadable header
    with pytest.warns(UserWarning, match="unreadable"):
        assert _same(moses_graphs("test", limit=50), first)
    assert _same(moses_graphs("test", limit=50, cache=False), first)
    assert not list((cache / "graphs").glob(".tmp-*"))  # no temp files left behind


# ------------------------------------------------------------------ aromatic bond class

AROMATIC = MOSES_VOCAB.with_aromatic_bonds()


def test_aromatic_vocab_serializes_and_keeps_kekule_cache_keys():
    assert AROMATIC.bonds == (*feat.BOND_NAMES, "aromatic") and AROMATIC.num_bond_types == 5
    assert AROMATIC.name == "moses-arom" and AROMATIC.with_aromatic_bonds() is AROMATIC
    assert GraphVocab.from_dict(AROMATIC.to_dict()) == AROMATIC
    # A Kekulé vocabulary's dictionary is what it was before the aromatic option existed, so
    # every cache key (and checkpoint) built from it stays valid.
    assert "aromatic" not in MOSES_VOCAB.to_dict()
    with pytest.raises(ValueError, match="unsupported bond classes"):
        GraphVocab.from_dict({**MOSES_VOCAB.to_dict(), "bonds": list(AROMATIC.bonds)})


def test_aromatic_graph_layout():
    atoms, _, bonds = mol_to_graph(Chem.MolFromSmiles("c1ccncc1C#N"), AROMATIC)
    upper = bonds[np.triu_indices(len(atoms), 1)]
    # Six aromatic ring bonds stay aromatic (class 4); C-C single and C#N triple as before.
    assert np.bincount(upper, minlength=5).tolist() == [28 - 8, 1, 0, 1, 6]


@pytest.mark.parametrize(
    ("smiles", "hydrogens"),
    [
        ("c1ccccc1", 0),  # kekulizes as built: nothing placed
        ("c1cc[nH]c1", 1),  # pyrrole
        ("Cn1ccnc1", 0),  # N-substituted: the graph says it all
        ("c1ccc2[nH]ccc2c1", 1),  # indole
        ("c1cc(-c2ccc[nH]2)[nH]c1", 2),  # two pyrroles: two hydrogens
        ("O=c1cc[nH]c(=O)[nH]1", 2),  # uracil
    ],
)
def test_aromatic_round_trip_places_pyrrole_hydrogens(smiles, hydrogens):
    mol = graph_to_mol(*mol_to_graph(Chem.MolFromSmiles(smiles), AROMATIC), AROMATIC)
    placed = sum(atom.GetNumExplicitHs() for atom in mol.GetAtoms())
    assert placed == hydrogens
    Chem.SanitizeMol(mol)
    assert Chem.MolToSmiles(mol) == Chem.CanonSmiles(smiles)


def test_hydrogen_placement_leaves_other_failures_alone():
    # A pentavalent carbon fails on valence, not kekulization: nothing is added.
    mol = Chem.RWMol(Chem.MolFromSmiles("C(C)(C)(C)C", sanitize=False))
    mol.AddAtom(Chem.Atom("C"))
    mol.AddBond(0, 5, Chem.BondType.SINGLE)
    assert feat.place_aromatic_hydrogens(mol) == []
    # An aromatic five-ring of carbons: no nitrogen can take a hydrogen, so it stays invalid.
    ring = Chem.RWMol()
    for _ in range(5):
        ring.AddAtom(Chem.Atom("C"))
    for i in range(5):
        ring.AddBond(i, (i + 1) % 5, Chem.BondType.AROMATIC)
    assert feat.place_aromatic_hydrogens(ring) == []
    with pytest.raises(Chem.KekulizeException):
        Chem.SanitizeMol(ring)


def test_aromatic_moses_round_trip():
    # Every molecule comes back valid; a few come back as another tautomer, because the
    # graph does not say which nitrogen of e.g. a benzimidazole carries the hydrogen
    # (1.0% of the first 20,000 training molecules; docs/molecules.md).
    smiles = load_moses("test", limit=300)
    exact = valid = 0
    with rdBase.BlockLogs():
        for text in smiles:
            mol = graph_to_mol(*mol_to_graph(Chem.MolFromSmiles(text), AROMATIC), AROMATIC)
            Chem.SanitizeMol(mol)
            valid += 1
            exact += Chem.MolToSmiles(mol) == Chem.CanonSmiles(text)
    assert valid == 300 and exact >= 0.95 * 300


def test_aromatic_moses_dataset(cache):
    dataset = moses_graphs("test", limit=200, aromatic=True)
    assert dataset.vocab == AROMATIC and dataset.stats.bond_marginals.numel() == 5
    kekule = moses_graphs("test", limit=200)
    # The same bonds: aromatic ones are split between single and double in the Kekulé set.
    aromatic_bonds = dataset.stats.bond_marginals
    assert aromatic_bonds[4] > 0 and kekule.stats.bond_marginals[0] == aromatic_bonds[0]
