"""MOSES metrics re-implemented: filters, Tanimoto (SNN, IntDiv), Frag, Scaf, FCD, the entry
point."""

from __future__ import annotations

import importlib.util
import math
import pickle
import random
import warnings

import numpy as np
import pytest
import torch

Chem = pytest.importorskip("rdkit.Chem")
pytest.importorskip("fcd")  # ChemNet's weights; installed with the chem extra
if importlib.util.find_spec("moses") is None:
    pytest.skip("molsets is not installed", allow_module_level=True)

import sci_diffusion.chem.moses_metrics as mm  # noqa: E402
from sci_diffusion.chem.data import load_moses, load_qm9  # noqa: E402
from sci_diffusion.chem.moses_metrics import (  # noqa: E402
    FrechetStats,
    ReferenceStats,
    chemnet_activations,
    counts_cosine_similarity,
    fraction_passes_filters,
    fragment_counts,
    frechet_chemnet_distance,
    frechet_distance,
    frechet_stats,
    internal_diversity,
    load_chemnet,
    load_fcd_stats,
    load_moses_split,
    load_reference_stats,
    mol_passes_filters,
    morgan_fingerprints,
    moses_fcd_reference,
    moses_filter_patterns,
    moses_metrics,
    passes_filters,
    reference_stats,
    save_fcd_stats,
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


# --------------------------------------------------------------------------------------- FCD

_UNPICKLED: list[str] = []


def _record(tag: str) -> str:
    _UNPICKLED.append(tag)
    return tag


class _Payload:
    """Unpickling this calls ``_record``: the kind of code a pickle can run on load."""

    def __reduce__(self):
        return (_record, ("payload ran",))


def test_chemnet_loads_weights_only_and_refuses_pickled_code(monkeypatch, tmp_path):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    model = load_chemnet()
    assert calls and all(call.get("weights_only") is True for call in calls)
    with torch.no_grad():
        assert model(torch.zeros(2, 35, 350)).shape == (2, 512)
    evil = tmp_path / "evil.pt"
    torch.save([("Conv1d", (_Payload(), {}, {}))], evil)
    with pytest.raises(pickle.UnpicklingError):
        load_chemnet(evil)
    assert _UNPICKLED == []


def test_frechet_distance_closed_forms():
    a = FrechetStats(np.array([0.0, 1.0]), np.diag([4.0, 1.0]), 10)
    b = FrechetStats(np.array([1.0, 1.0]), np.diag([1.0, 9.0]), 10)
    # |mu_a - mu_b|^2 + sum (sqrt(s_a) - sqrt(s_b))^2 = 1 + (2 - 1)^2 + (1 - 3)^2
    assert frechet_distance(a, b) == pytest.approx(6.0)
    assert frechet_distance(b, a) == pytest.approx(6.0)
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    c = FrechetStats(rng.normal(size=6), x @ x.T, 10)
    d = FrechetStats(rng.normal(size=6), y @ y.T, 10)
    root = scipy_linalg.sqrtm(c.sigma @ d.sigma).real  # non-commuting covariances
    expected = ((c.mu - d.mu) ** 2).sum() + np.trace(c.sigma + d.sigma - 2 * root)
    assert frechet_distance(c, d) == pytest.approx(expected, rel=1e-9)


@pytest.fixture(scope="module")
def chemnet_sets() -> dict[str, np.ndarray]:
    """ChemNet activations: 1,000 MOSES test, 500 MOSES train, 500 QM9 molecules (~10 s)."""
    smiles = {
        "test": random.Random(1).sample(load_moses("test"), 1000),
        "train": random.Random(2).sample(load_moses("train"), 500),
        "qm9": [r.smiles for r in load_qm9("test", limit=500, coordinates=False)],
    }
    return {name: chemnet_activations(s) for name, s in smiles.items()}


def test_chemnet_activations_follow_canonical_smiles():
    acts = chemnet_activations(["OCC", "CCO", "c1ccccc1C"])
    assert acts.shape == (3, 512) and acts.dtype == np.float32
    np.testing.assert_array_equal(acts[0], acts[1])  # both are written "CCO"
    assert not np.array_equal(acts[0], acts[2])
    with pytest.raises(ValueError, match="does not parse"):
        chemnet_activations(["CCO", "C(C)(C)(C)(C)C"])


def test_fcd_of_a_set_against_itself_is_zero(chemnet_sets):
    stats = frechet_stats(chemnet_sets["test"])
    assert abs(frechet_distance(stats, stats)) < 1e-6 * np.trace(stats.sigma)
    shuffled = frechet_stats(np.random.default_rng(0).permutation(chemnet_sets["test"]))
    assert abs(frechet_distance(stats, shuffled)) < 1e-3
    assert frechet_chemnet_distance(stats, stats) == frechet_distance(stats, stats)


def test_fcd_separates_moses_from_qm9(chemnet_sets):
    """MOSES train (n=500) against MOSES test (n=1,000) is small; QM9 against MOSES is large.

    Both are FCDs between finite samples, so both carry the plug-in estimator's upward bias,
    about 1,300 (1/n_gen + 1/n_ref) for MOSES molecules (which is 0.008 for MOSES's full train
    against full test, its published "Train" row; docs/benchmarks.md, "FCD sanity").
    Measured at these sizes over 10 random draws: MOSES train vs test
    3.61-3.82 (sd 0.06), QM9 vs MOSES test 31.3-33.0. The limits, 6 and 20, sit more than 30
    standard deviations from either range, so the test does not flake; a broken encoding, a
    wrong layer or a wrong formula moves the first far from its range or brings the two
    together.
    """
    test = frechet_stats(chemnet_sets["test"])
    same = frechet_distance(frechet_stats(chemnet_sets["train"]), test)
    other = frechet_distance(frechet_stats(chemnet_sets["qm9"]), test)
    assert 0 < same < 6.0
    assert other > 20.0


def test_fcd_stats_round_trip(tmp_path, chemnet_sets):
    stats = frechet_stats(chemnet_sets["qm9"])
    save_fcd_stats(stats, tmp_path / "qm9.npz")
    loaded = load_fcd_stats(tmp_path / "qm9.npz")
    assert loaded.n == 500
    np.testing.assert_array_equal(loaded.mu, stats.mu)
    np.testing.assert_array_equal(loaded.sigma, stats.sigma)


def test_moses_fcd_reference_is_cached_on_disk(monkeypatch, tmp_path, moses_sample):
    monkeypatch.setattr(mm, "load_moses", lambda split: moses_sample[:40])
    moses_fcd_reference.cache_clear()
    try:
        first = moses_fcd_reference("test", tmp_path)
        (path,) = tmp_path.glob("moses_test_chemnet_*.npz")
        monkeypatch.setattr(mm, "fcd_stats", lambda *a, **k: pytest.fail("recomputed"))
        moses_fcd_reference.cache_clear()
        again = moses_fcd_reference("test", tmp_path)
    finally:
        moses_fcd_reference.cache_clear()
    assert first.n == again.n == 40
    np.testing.assert_array_equal(again.sigma, first.sigma)
    assert path.stat().st_size > 0


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
    assert out["FCD/Test"] == pytest.approx(0.0, abs=1e-3)  # against its own ChemNet statistics
    assert out["FCD/TestSF"] is None  # scaffold test only with the default reference
    no_fcd = moses_metrics(moses_sample[:20], reference=moses_sample, k=(20,), fcd=False)
    assert no_fcd["FCD/Test"] is None and no_fcd["FCD/TestSF"] is None


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
    assert out["FCD/Test"] > 0  # four molecules (three distinct) against twenty
    with pytest.warns(UserWarning, match="from only 0"):
        nothing = moses_metrics([None, "x"], reference=moses_sample[:5], training=[], k=(1,))
    assert nothing["validity"] == 0.0 and math.isnan(nothing["snn"])
    assert math.isnan(nothing["novelty"]) and math.isnan(nothing["FCD/Test"])
    with pytest.warns(UserWarning, match="FCD needs at least 2"):
        one = moses_metrics(["CCO"], reference=moses_sample[:5], k=(1,))
    assert math.isnan(one["FCD/Test"])


def test_reference_stats_round_trip(tmp_path, moses_sample):
    stats = reference_stats(moses_sample[:50])
    path = tmp_path / "ref.npz"
    save_reference_stats(stats, path)
    loaded = load_reference_stats(path)
    assert isinstance(loaded, ReferenceStats)
    np.testing.assert_array_equal(loaded.fingerprints, stats.fingerprints)
    assert loaded.fragments == stats.fragments
    assert loaded.scaffolds == stats.scaffolds
    assert loaded.chemnet is None
    with_chemnet = reference_stats(moses_sample[:50], chemnet=True)
    save_reference_stats(with_chemnet, path)
    loaded = load_reference_stats(path).chemnet
    assert loaded is not None and loaded.n == 50
    np.testing.assert_array_equal(loaded.sigma, with_chemnet.chemnet.sigma)
