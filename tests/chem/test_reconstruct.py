"""3D structures to molecules: EDM's distance table and RDKit's DetermineBonds, on real QM9."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rdkit")
pytest.importorskip("pandas")

from rdkit import Chem, rdBase

from sci_diffusion.chem.data import load_qm9
from sci_diffusion.chem.metrics import edm_stability
from sci_diffusion.chem.reconstruct import (
    EDM_DOUBLE_BOND_PM,
    EDM_MARGINS_PM,
    EDM_SINGLE_BOND_PM,
    EDM_TRIPLE_BOND_PM,
    edm_bond_matrix,
    edm_bond_order,
    mol_from_determine_bonds,
    mol_from_edm_distances,
    with_conformer,
)

N_QM9 = 300

# Methane, tetrahedral, C-H 1.09 Å; a planar methyl radical, C-H 1.08 Å.
METHANE = (["C", "H", "H", "H", "H"], 0.629 * np.array([[0, 0, 0], [1, 1, 1], [-1, -1, 1],
                                                        [-1, 1, -1], [1, -1, -1]]))  # fmt: skip
METHYL = [[0, 0, 0], [1.08, 0, 0], [-0.54, 0.93, 0], [-0.54, -0.93, 0]]


@pytest.fixture(scope="module")
def qm9(tmp_path_factory):
    """The first 300 QM9 test molecules (the split is built in a private cache, ~2 s)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCI_DIFFUSION_CACHE", str(tmp_path_factory.mktemp("cache")))
        records = load_qm9("test", limit=N_QM9)
    assert len(records) == N_QM9
    return records


@pytest.fixture(scope="module")
def reference_smiles(qm9):
    """Canonical non-isomeric RDKit SMILES of each record's GDB SMILES."""
    return [Chem.MolToSmiles(Chem.MolFromSmiles(r.smiles), isomericSmiles=False) for r in qm9]


def canonical(mol: Chem.Mol) -> str:
    with rdBase.BlockLogs():
        return Chem.MolToSmiles(Chem.RemoveHs(mol), isomericSmiles=False)


# ------------------------------------------------------------------------------ EDM tables


def test_edm_tables_hold_edm_values():
    """Spot values of EDM's qm9/bond_analyze.py (pm) and its margins 10, 5, 3."""
    assert EDM_SINGLE_BOND_PM["C"]["C"] == 154
    assert EDM_DOUBLE_BOND_PM["C"]["C"] == 134
    assert EDM_TRIPLE_BOND_PM["C"]["C"] == 120
    assert EDM_SINGLE_BOND_PM["C"]["H"] == EDM_SINGLE_BOND_PM["H"]["C"] == 109
    assert EDM_SINGLE_BOND_PM["O"]["H"] == 96
    assert EDM_SINGLE_BOND_PM["O"]["O"] == 148
    assert EDM_SINGLE_BOND_PM["I"]["I"] == 266
    assert EDM_DOUBLE_BOND_PM["C"]["O"] == EDM_DOUBLE_BOND_PM["O"]["C"] == 120
    assert EDM_TRIPLE_BOND_PM["C"]["N"] == 116 and EDM_TRIPLE_BOND_PM["N"]["N"] == 110
    assert EDM_MARGINS_PM == (10, 5, 3)
    # Sizes of EDM's tables (ordered pairs) and its one asymmetry: C=S listed under C only.
    assert sum(map(len, EDM_SINGLE_BOND_PM.values())) == 117
    assert sum(map(len, EDM_DOUBLE_BOND_PM.values())) == 14
    assert sum(map(len, EDM_TRIPLE_BOND_PM.values())) == 6
    assert EDM_DOUBLE_BOND_PM["C"]["S"] == 160 and "C" not in EDM_DOUBLE_BOND_PM["S"]
    with pytest.raises(TypeError):
        EDM_SINGLE_BOND_PM["C"]["C"] = 1  # read-only


@pytest.mark.parametrize(
    ("pair", "distance", "order"),
    [
        # C-C: triple below 120 + 3 pm, double below 134 + 5, single below 154 + 10.
        (("C", "C"), 1.2299, 3),
        (("C", "C"), 1.2301, 2),
        (("C", "C"), 1.3899, 2),
        (("C", "C"), 1.3901, 1),
        (("C", "C"), 1.6399, 1),
        (("C", "C"), 1.64, 0),  # strict <, as EDM
        (("C", "C"), 1.6401, 0),
        # C-H: single only, below 109 + 10 pm, however short.
        (("C", "H"), 0.50, 1),
        (("C", "H"), 1.1899, 1),
        (("C", "H"), 1.1901, 0),
        # O-O: a double bond but no triple bond in the tables.
        (("O", "O"), 1.00, 2),
        (("O", "O"), 1.2599, 2),
        (("O", "O"), 1.2601, 1),
        # Pairs missing from EDM's single-bond table are never bonded.
        (("C", "B"), 1.00, 0),
        (("Na", "Cl"), 1.00, 0),
        (("Al", "H"), 1.00, 0),
        # C=S is in EDM's double table under C only: the argument order matters.
        (("C", "S"), 1.60, 2),
        (("S", "C"), 1.60, 1),
    ],
)
def test_edm_bond_order_at_the_margins(pair, distance, order):
    assert edm_bond_order(*pair, distance) == order


def test_edm_bond_order_rejects_bad_input():
    for bad in ("Xx", "c", "", "D", 6):
        with pytest.raises(ValueError, match="element"):
            edm_bond_order(bad, "C", 1.5)
    for distance in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="distance"):
            edm_bond_order("C", "C", distance)


def test_edm_bond_matrix_is_edm_bond_order_of_sorted_pairs(qm9):
    """Each entry is edm_bond_order with the pair in EDM's vocabulary order (H, C, N, O, F)."""
    rank = {"H": 0, "C": 1, "N": 2, "O": 3, "F": 4}
    for record in qm9[:40]:
        orders = edm_bond_matrix(record.elements, record.positions)
        n = len(record.elements)
        assert orders.shape == (n, n) and orders.dtype == np.int64
        assert np.array_equal(orders, orders.T) and not orders.diagonal().any()
        for i in range(n):
            for j in range(i):
                a, b = sorted((record.elements[i], record.elements[j]), key=rank.get)
                distance = np.linalg.norm(record.positions[i] - record.positions[j])
                assert orders[i, j] == edm_bond_order(a, b, distance)
    # Atom order does not matter, C=S included (sorted to C first, as EDM's build_molecule).
    positions = np.array([[0.0, 0.0, 0.0], [1.6, 0.0, 0.0]])
    assert edm_bond_matrix(["S", "C"], positions)[0, 1] == 2
    assert edm_bond_matrix(["C", "S"], positions)[0, 1] == 2
    assert edm_bond_matrix([], np.zeros((0, 3))).shape == (0, 0)


def test_mol_from_edm_distances_builds_unsanitized_molecule_with_conformer(qm9):
    record = next(r for r in qm9 if "=" in r.smiles and "1" in r.smiles)
    orders = edm_bond_matrix(record.elements, record.positions)
    charges = np.zeros(len(record.elements), dtype=int)
    charges[0] = 1
    mol = mol_from_edm_distances(record.elements, record.positions, charges)
    assert isinstance(mol, Chem.RWMol)
    assert [a.GetSymbol() for a in mol.GetAtoms()] == record.elements.tolist()
    assert [a.GetFormalCharge() for a in mol.GetAtoms()] == charges.tolist()
    kinds = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
    bonds = {(b.GetBeginAtomIdx(), b.GetEndAtomIdx()): b.GetBondType() for b in mol.GetBonds()}
    upper = zip(*np.nonzero(np.triu(orders)), strict=True)
    expected = {(int(i), int(j)): kinds[int(orders[i, j])] for i, j in upper}
    assert bonds == expected
    assert mol.GetNumConformers() == 1 and mol.GetConformer().Is3D()
    assert np.array_equal(mol.GetConformer().GetPositions(), record.positions)
    # Not sanitized: valences are not computed until the caller sanitizes.
    assert mol.NeedsUpdatePropertyCache()
    neutral = mol_from_edm_distances(record.elements, record.positions)
    assert all(a.GetFormalCharge() == 0 for a in neutral.GetAtoms())
    Chem.SanitizeMol(neutral)
    assert not neutral.NeedsUpdatePropertyCache()
    assert canonical(neutral) == Chem.MolToSmiles(Chem.MolFromSmiles(record.smiles))
    with pytest.raises(ValueError, match="charges"):
        mol_from_edm_distances(record.elements, record.positions, charges[:-1])
    with pytest.raises(ValueError, match="integers"):
        mol_from_edm_distances(record.elements, record.positions, charges + 0.5)


# ------------------------------------------------------------------- agreement with QM9


def test_edm_distances_recover_qm9_smiles(qm9, reference_smiles):
    """EDM's distance bonds, then sanitization, give the GDB SMILES for 280/300 = 93.3%.

    Measured: 280/300 (93.3%) here; 1,917/2,000 (95.9%) on the first 2,000 test molecules
    (docs/molecules.md). The misses are EDM's method, not noise: lengths of conjugated and
    aromatic bonds (tetrazoles, pyridines) fall between the single and double thresholds, so
    bonds come out single and sanitization adds implicit hydrogens (11 give another molecule),
    or conjugated single bonds come out double (polyynes such as CCC#CC#C: pentavalent C; 9 fail
    to sanitize). Threshold 91%: a few molecules below the measurement, so that only a real
    change (RDKit's sanitization, the tables) fails it.
    """
    agree = 0
    for record, reference in zip(qm9, reference_smiles, strict=True):
        mol = mol_from_edm_distances(record.elements, record.positions)
        try:
            with rdBase.BlockLogs():
                Chem.SanitizeMol(mol)
        except ValueError:
            continue
        agree += canonical(mol) == reference
    assert agree / N_QM9 >= 0.91, agree


def test_edm_stability_of_qm9_matches_published_data_row(qm9):
    """EDM stability of these 300 molecules with EDM's distance bonds: atom 98.97%, mol 93.33%.

    Population values: EDM's check recomputed on all 130,831 qm9pack molecules gives atom
    99.36% / molecule 95.28% (ANCHORS.md; edm_bond_matrix reproduces both to all four digits;
    EDM's published data row is 99.0 / 95.2). A sample of n = 300 molecules scatters around
    them with a binomial noise floor of sqrt(0.9528 * 0.0472 / 300) = 1.22 points for molecule
    stability. For atom stability the binomial floor over the ~5,400 atoms is 0.11 points, but
    unstable atoms come in clusters (a misread ring makes several), so the honest standard
    error treats molecules as the sampling unit: 0.18 points (design effect 2.8; both checked
    against 20,000 random 300-molecule subsets of QM9). Margins are 3 standard errors (0.3%
    of random subsets fall outside); this subset sits at -2.2 (atom) and -1.6 (molecule).
    """
    graphs = [(list(r.elements), edm_bond_matrix(r.elements, r.positions)) for r in qm9]
    atom, molecule = edm_stability(graphs)
    assert abs(atom - 0.9936) <= 3 * 0.0018, atom
    assert abs(molecule - 0.9528) <= 3 * math.sqrt(0.9528 * 0.0472 / N_QM9), molecule


def test_determine_bonds_recovers_qm9_smiles(qm9, reference_smiles):
    """DetermineBonds gives the GDB SMILES for 286/300 = 95.3%, with Hückel for 300/300.

    Measured: 286/300 here (2,000 test molecules: 1,897 = 94.9%); every miss is a failure
    with a reason, none is a wrong molecule. The failures are strained cages (bicyclo[1.1.1]
    pentanes, oxetanes and aziridines fused to small rings) where covalent radii x 1.3 add a
    transannular bond and no valid bond order is left. Hückel connectivity (use_huckel=True)
    fixes all of them: 300/300 (2,000: 1,998; the two misses are zwitterions drawn in another
    resonance form, [N-]-C=O against N=C-[O-]). Thresholds 93% and 98%: a few molecules below
    the measurements. QM9's relaxed geometries disagree with the GDB SMILES for a few % of
    molecules in general (zwitterions, cages), which is why no threshold is 100%.
    """
    agree = agree_huckel = 0
    for record, reference in zip(qm9, reference_smiles, strict=True):
        mol, reason = mol_from_determine_bonds(record.elements, record.positions)
        if mol is None:
            assert reason.startswith("DetermineBonds failed"), reason
        else:
            assert reason is None
            agree += canonical(mol) == reference
        mol, _ = mol_from_determine_bonds(record.elements, record.positions, use_huckel=True)
        agree_huckel += mol is not None and canonical(mol) == reference
    assert agree / N_QM9 >= 0.93, agree
    assert agree_huckel / N_QM9 >= 0.98, agree_huckel


def test_determine_bonds_keeps_atoms_and_coordinates(qm9):
    record = qm9[0]
    mol, reason = mol_from_determine_bonds(record.elements, record.positions)
    assert reason is None
    assert [a.GetSymbol() for a in mol.GetAtoms()] == record.elements.tolist()
    assert mol.GetNumConformers() == 1 and mol.GetConformer().Is3D()
    assert np.array_equal(mol.GetConformer().GetPositions(), record.positions)
    assert all(a.GetNoImplicit() for a in mol.GetAtoms())


def test_huckel_warnings_stay_off_stderr(capfd):
    """YAeHMOP warns about O-H bonds under 0.97 Å from C; the call silences file descriptor 2."""
    water = (["O", "H", "H"], [[0.0, 0.0, 0.0], [0.95, 0.0, 0.0], [-0.3, 0.9, 0.0]])
    mol, reason = mol_from_determine_bonds(*water, use_huckel=True)
    assert reason is None and canonical(mol) == "O"
    print("still here", file=sys.stderr)
    err = capfd.readouterr().err
    assert "suspicious" not in err and "still here" in err


def test_huckel_never_reaches_yaehmop_with_what_kills_the_process():
    """YAeHMOP calls exit() on an unparameterised element (Xe) or an impossible electron count
    (H2 with charge +3: -1 electrons); both must come back as reasons. Run in a subprocess so a
    regression fails this test instead of killing pytest."""
    script = (
        "from sci_diffusion.chem.reconstruct import mol_from_determine_bonds as f\n"
        "xe = f(['Xe', 'F', 'F'], [[0, 0, 0], [2, 0, 0], [-2, 0, 0]], use_huckel=True)\n"
        "h2 = f(['H', 'H'], [[0, 0, 0], [0.74, 0, 0]], 3, use_huckel=True)\n"
        "big = f(['C', 'H'], [[0, 0, 0], [1.1, 0, 0]], -6, use_huckel=True)\n"
        "print(repr((xe, h2, big)))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(None, 'use_huckel: element(s) Xe not supported" in done.stdout
    assert "leaves -1 valence electrons for 2 valence orbitals" in done.stdout
    assert "leaves 11 valence electrons for 5 valence orbitals (need 1 to 10)" in done.stdout


# ------------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("symbols", "positions", "charge", "message"),
    [
        # Two carbons on top of each other.
        (["C", "C"], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], 0, "DetermineBonds failed"),
        # Methane cannot carry +5.
        (*METHANE, 5, "charge"),
        # A methyl radical: an odd electron count has no closed-shell answer.
        (["C", "H", "H", "H"], METHYL, 0, "DetermineBonds failed"),
        ([], np.zeros((0, 3)), 0, "no atoms"),
    ],
)
def test_determine_bonds_failures_are_reasons_not_exceptions(symbols, positions, charge, message):
    mol, reason = mol_from_determine_bonds(symbols, positions, charge)
    assert mol is None and message in reason


def test_determine_bonds_iteration_bound_is_a_reason(qm9):
    record = next(r for r in qm9 if "=" in r.smiles)
    mol, reason = mol_from_determine_bonds(record.elements, record.positions, max_iterations=1)
    assert mol is None and "Max Iterations" in reason
    mol, reason = mol_from_determine_bonds(record.elements, record.positions)
    assert reason is None


def test_determine_bonds_without_hydrogens_is_not_the_molecule():
    """Six ring carbons without their hydrogens: xyz2mol fills valences, not with H."""
    angles = np.arange(6) * np.pi / 3
    ring = 1.39 * np.stack([np.cos(angles), np.sin(angles), np.zeros(6)], axis=1)
    mol, _ = mol_from_determine_bonds(["C"] * 6, ring)
    assert mol is None or canonical(mol) != "c1ccccc1"


@pytest.mark.parametrize(
    "build",
    [
        lambda s, p: mol_from_edm_distances(s, p),
        lambda s, p: mol_from_determine_bonds(s, p),
        lambda s, p: edm_bond_matrix(s, p),
    ],
)
def test_bad_inputs_raise_value_errors(build):
    symbols, positions = METHANE
    with pytest.raises(ValueError, match=r"shape \(N, 3\) = \(5, 3\)"):
        build(symbols, positions[:4])
    with pytest.raises(ValueError, match="shape"):
        build(symbols, positions.ravel())
    with pytest.raises(ValueError, match="unknown element symbol 'Xx'"):
        build(["Xx", *symbols[1:]], positions)
    with pytest.raises(ValueError, match="one string"):
        build("CHHHH", positions)
    with pytest.raises(ValueError, match="NaN"):
        build(symbols, np.where(np.eye(5, 3, dtype=bool), np.nan, positions))
    with pytest.raises(ValueError, match="numeric"):
        build(symbols, [["a", "b", "c"]] * 5)


# ----------------------------------------------------------------------------- conformers


def test_with_conformer_keeps_coordinates_exactly():
    mol = Chem.AddHs(Chem.MolFromSmiles("OCC#N"))
    positions = np.random.default_rng(0).normal(size=(mol.GetNumAtoms(), 3)) * 1.234567891
    placed = with_conformer(mol, positions)
    assert placed.GetNumConformers() == 1 and placed.GetConformer().Is3D()
    assert np.array_equal(placed.GetConformer().GetPositions(), positions)
    assert mol.GetNumConformers() == 0  # the input is not modified
    again = with_conformer(placed, positions[::-1])  # replaces the existing conformer
    assert again.GetNumConformers() == 1
    assert np.array_equal(again.GetConformer().GetPositions(), positions[::-1])
    assert Chem.MolToSmiles(again) == Chem.MolToSmiles(mol)
    with pytest.raises(ValueError, match="molecule has 7 atoms"):
        with_conformer(mol, positions[:-1])
    with pytest.raises(ValueError, match="shape"):
        with_conformer(mol, positions[:, :2])
