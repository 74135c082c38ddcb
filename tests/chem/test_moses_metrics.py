"""MOSES metrics re-implemented: filters, Tanimoto (SNN, IntDiv), Frag, Scaf, the entry point."""

from __future__ import annotations

import importlib.util
import math
import random
import warnings

import numpy as np
import pytest

Chem = pytest.importorskip("rdkit.Chem")
if importlib.util.find_spec("moses") is None:
    pytest.skip("molsets is not installed", allow_module_level=True)

from sci_diffusion.chem.data import load_moses  # noqa: E402
from sci_diffusion.chem.moses_metrics import (  # noqa: E402
    ReferenceStats,
    counts_cosine_similarity,
    fraction_passes_filters,
    fragment_counts,
    internal_diversity,
    load_moses_split,
    load_reference_stats,
    mol_passes_filters,
    morgan_fingerprints,
    moses_filter_patterns,
    moses_metrics,
    passes_filters,
    reference_stats,
    save_reference_stats,
    scaffold_counts,
    snn,
    tanimoto_matrix,
)


@pytest.fixture(scope="module")
def moses_sample() -> list[str]:
    """300 random SMILES of the MOSES test split."""
    return random.Random(0).sample(load_moses("test"), 300)


def test_moses_splits_load():
    test = load_moses("test")
    assert len(test) == 176_074
    assert test[0] == "CC1C2CCC(C2)C1CN(CCO)C(=O)c1ccc(Cl)cc1"
    with pytest.raises(ValueError, match="MOSES split must be one of"):
        load_moses("valid")
    with pytest.warns(DeprecationWarning, match="load_moses"):
        assert load_moses_split("test") == test  # the old name still works


# ----------------------------------------------------------------------------------- filters


def test_filter_tables_are_mcf_and_pains():
    assert len(moses_filter_patterns()) == 22 + 480


@pytest.mark.parametrize(
    ("smiles", "passes"),
    [
        ("CC(=O)Nc1ccccc1", True),
        ("CCN(CC)CC", True),
        ("CC[N+](C)(C)C", False),  # charged
        ("C[Si](C)(C)C", False),  # silicon is not allowed
        ("C1CCCCCCC1", False),  # ring of 8
        ("CCCCl", False),  # MCF4: CH2 between carbon and halogen
        ("O=C1C(=Cc2ccccc2)SC(=S)N1", False),  # PAINS: ene_rhod
        ("C(C)(C)(C)(C)C", False),  # does not parse
        ("", False),
    ],
)
def test_mol_passes_filters_hand_cases(smiles, passes):
    assert mol_passes_filters(smiles) is passes


def test_batched_filters_agree_with_one_by_one(moses_sample):
    smiles = [*moses_sample[:100], "CC[N+](C)(C)C", "CCCCl", "C1CCCCCCC1", "x", None]
    smiles += ["O=C1C(=Cc2ccccc2)SC(=S)N1", "Oc1ccc(N=Nc2ccccc2)cc1"]  # PAINS-like
    one_by_one = [mol_passes_filters(s) for s in smiles]
    assert passes_filters(smiles).tolist() == one_by_one
    assert not all(one_by_one[100:])


def test_moses_test_molecules_pass_the_filters(moses_sample):
    assert fraction_passes_filters(moses_sample) == 1.0


# ---------------------------------------------------------------------------------- Tanimoto


def test_tanimoto_of_hand_made_fingerprints():
    a, b, zero = [1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]
    sims = tanimoto_matrix(np.array([a, b, zero], np.uint8), np.array([a, b, zero], np.uint8))
    expected = [[1, 1 / 3, 0], [1 / 3, 1, 0], [0, 0, 1]]  # two empty fingerprints: 1, as MOSES
    np.testing.assert_allclose(sims, expected, rtol=1e-6)
    assert snn(np.array([a], np.uint8), np.array([b], np.uint8)) == pytest.approx(1 / 3)
    assert snn(np.array([a], np.uint8), np.array([b, a], np.uint8)) == pytest.approx(1.0)


def test_internal_diversity_of_two_fingerprints():
    fps = np.array([[1, 1, 0, 0], [1, 0, 1, 0]], np.uint8)  # T = [[1, 1/3], [1/3, 1]]
    assert internal_diversity(fps, 1) == pytest.approx(1 - 2 / 3)
    assert internal_diversity(fps, 2) == pytest.approx(1 - math.sqrt((1 + 1 / 9) / 2))
    assert internal_diversity(fps[:1].repeat(5, axis=0)) == pytest.approx(0.0)


def test_blocked_products_match_the_full_matrix():
    rng = np.random.default_rng(0)
    gen = (rng.random((37, 64)) < 0.2).astype(np.uint8)
    ref = (rng.random((53, 64)) < 0.2).astype(np.uint8)
    full = tanimoto_matrix(gen, ref)
    assert snn(gen, ref, block_size=4) == pytest.approx(full.max(1).mean(), rel=1e-6)
    self_sims = tanimoto_matrix(gen, gen)
    assert internal_diversity(gen, 2, block_size=5) == pytest.approx(
        1 - np.sqrt((self_sims**2).mean(1)).mean(), rel=1e-6
    )


def test_bfloat16_products_are_exact_up_to_256_bits():
    rng = np.random.default_rng(1)
    gen = (rng.random((40, 1024)) < 0.2).astype(np.uint8)
    ref = (rng.random((90, 1024)) < 0.2).astype(np.uint8)
    assert snn(gen, ref, bf16=True) == snn(gen, ref, bf16=False)
    assert internal_diversity(gen, 2, bf16=True) == internal_diversity(gen, 2, bf16=False)
    dense = np.ones((2, 1024), np.uint8)
    with pytest.raises(ValueError, match="256"):
        snn(dense, dense, bf16=True)
    assert snn(dense, dense) == 1.0  # falls back to float32


def test_morgan_fingerprints_are_1024_bits_of_radius_2():
    fps = morgan_fingerprints([Chem.MolFromSmiles("CCO"), Chem.MolFromSmiles("c1ccccc1")])
    assert fps.shape == (2, 1024) and fps.dtype == np.uint8
    assert fps[1].sum() == 3  # benzene: one environment per radius 0, 1, 2
    with pytest.raises(ValueError, match="None"):
        morgan_fingerprints([None])


# ------------------------------------------------------------------------ fragments, scaffolds


def test_brics_fragments_of_acetanilide():
    counts = fragment_counts([Chem.MolFromSmiles("CC(=O)Nc1ccccc1")])
    assert counts == {"[1*]C(C)=O": 1, "[5*]N[5*]": 1, "[16*]c1ccccc1": 1}


def test_scaffolds_need_two_rings():
    mols = [Chem.MolFromSmiles(s) for s in ("c1ccccc1", "CCO", "CCc1ccc(Cc2ccccc2)cc1")]
    assert scaffold_counts(mols) == {"c1ccc(Cc2ccccc2)cc1": 1}
    assert scaffold_counts(mols, min_rings=1) == {"c1ccccc1": 1, "c1ccc(Cc2ccccc2)cc1": 1}


def test_cosine_similarity_of_counts():
    assert counts_cosine_similarity({"a": 1, "b": 1}, {"a": 1}) == pytest.approx(1 / math.sqrt(2))
    assert counts_cosine_similarity({"a": 2}, {"a": 5}) == pytest.approx(1.0)
    assert math.isnan(counts_cosine_similarity({}, {"a": 1}))


# ------------------------------------------------------------------------------- entry point


def test_moses_test_molecules_against_themselves(moses_sample):
    out = moses_metrics(moses_sample, reference=moses_sample, training=moses_sample, k=(100,))
    assert out["n_samples"] == out["n_valid"] == 300
    assert out["validity"] == 1.0
    assert out["unique@100"] == 1.0
    assert out["novelty"] == 0.0
    assert out["filters"] == 1.0
    assert out["snn"] == pytest.approx(1.0)
    assert out["frag"] == pytest.approx(1.0)
    assert out["scaf"] == pytest.approx(1.0)
    assert 0.8 < out["intdiv1"] < 0.9 and out["intdiv2"] < out["intdiv1"]


def test_invalid_and_duplicate_samples(moses_sample):
    smiles = ["CCO", "OCC", "C(C)(C)(C)(C)C", None, "", "CC(=O)Nc1ccccc1", "CCN(CC)CC"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = moses_metrics(smiles, reference=moses_sample[:20], training=["CCO"], k=(3, 10))
    assert any("unique@10 from only 4" in str(w.message) for w in caught)
    assert out["validity"] == pytest.approx(4 / 7)
    assert out["unique@3"] == pytest.approx(2 / 3)  # CCO, CCO, acetanilide
    assert out["unique@10"] == pytest.approx(3 / 4)
    assert out["novelty"] == pytest.approx(2 / 3)
    assert out["filters"] == 1.0
    with pytest.warns(UserWarning, match="from only 0"):
        nothing = moses_metrics([None, "x"], reference=moses_sample[:5], training=[], k=(1,))
    assert nothing["validity"] == 0.0 and math.isnan(nothing["snn"])
    assert math.isnan(nothing["novelty"])


def test_reference_stats_round_trip(tmp_path, moses_sample):
    stats = reference_stats(moses_sample[:50])
    path = tmp_path / "ref.npz"
    save_reference_stats(stats, path)
    loaded = load_reference_stats(path)
    assert isinstance(loaded, ReferenceStats)
    np.testing.assert_array_equal(loaded.fingerprints, stats.fingerprints)
    assert loaded.fragments == stats.fragments
    assert loaded.scaffolds == stats.scaffolds
