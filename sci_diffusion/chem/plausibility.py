"""3D plausibility checks for generated molecules with coordinates (PoseBusters' molecule checks).

A molecule with a 3D conformer passes when its bond lengths, bond angles and non-bonded
distances respect RDKit's distance-geometry (DG) bounds, its aromatic rings and C=C double
bonds are flat, its non-aromatic six-membered rings are puckered, and its UFF energy is not
far above that of ETKDG conformers of the same molecule. These are the geometric checks of
PoseBusters' molecule-only ("``mol``") configuration (Buttenschoen, Morris & Deane,
"PoseBusters: AI-based docking methods fail to generate physically valid poses or generalise
to novel sequences", Chem. Sci. 15, 3130-3139, 2024), with the thresholds of its
``config/mol.yml`` in posebusters 0.6.5 (lb, ub: DG lower and upper bounds):

=====================================  ======================================================
check (True = passes)                  passes when
=====================================  ======================================================
``bond_lengths``                       every bond length d is within [0.75 lb, 1.25 ub]
                                       (``threshold_bad_bond_length: 0.25``)
``bond_angles``                        every 1-3 distance (the side opposite a bond angle)
                                       is within [0.75 lb, 1.25 ub] (``threshold_bad_angle``)
``internal_clash``                     every pair more than two bonds apart has d >= 0.7 lb
                                       (``threshold_clash: 0.3``)
``aromatic_ring_flatness``             every sp2 aromatic 5- and 6-ring lies within 0.25 Å of
                                       its least-squares plane (``threshold_flatness``)
``double_bond_flatness``               every trigonal C=C with its four substituents lies
                                       within 0.25 Å of its plane
``non_aromatic_ring_non_flatness``     every non-aromatic 6-ring of C/N/O/S (PoseBusters'
                                       five SMARTS) has an atom >= 0.05 Å off its plane
``energy_ratio``                       E_UFF(input) / mean E_UFF(ETKDG conformers, UFF-
                                       minimized) <= 100 (``threshold_energy_ratio``)
=====================================  ======================================================

With ``profile="strict"`` (:class:`PlausibilityConfig`; the gate's ``geometry_profile``) two
more checks run, ``strict_bond_lengths`` and ``strict_bond_angles``: every bond length and bond
angle within the range QM9's own DFT geometries show for its kind of bond or angle
(:mod:`.geometry_bounds`), and ``plausible`` needs them too. The default profile leaves the
result exactly as above.

The DG bounds come from :func:`rdkit.Chem.rdDistGeom.GetMoleculeBoundsMatrix` with
PoseBusters' parameters (``set15bounds``, ``scaleVDW``, triangle smoothing, no macrocycle 1-4
configuration); bounds of bonds to terminal O/N of conjugated groups (carboxylates, nitro
groups) are symmetrized per element pair, as PoseBusters does. A check with nothing to look
at (no aromatic ring, say) passes. ``plausible`` is True when every check passes.

Decision: RDKit directly, not posebusters' module functions
-----------------------------------------------------------
posebusters 0.6.5 works offline: ``check_geometry``, ``check_flatness`` and
``check_energy_ratio`` (``posebusters.modules.{distance_geometry,flatness,energy_ratio}``)
take a bare RDKit molecule and need no files. Measured on 59 QM9 test molecules with
hydrogens, one process on a shared 2-core machine (2026-11-26): ``check_geometry`` 10 ms per
molecule (a pandas ``DataFrame.apply`` over atom pairs), ``check_flatness`` 0.2 ms,
``check_energy_ratio`` 1.9 s with its default 50 conformers (1.4 s on 78 molecules in a later
run) and 0.36 s with 10. The same definitions are implemented here with RDKit and numpy
(geometry and flatness about 1-2 ms per molecule), because of what posebusters' energy ratio
does with small strained molecules and because of side effects:

* **ETKDG fails on 9 of those 59 molecules** (strained fused small rings such as
  ``CC1C(C#C)C2OC12C``): with chirality enforced, ETKDG cannot embed all requested
  conformers, posebusters asserts that it did and returns NaN, after 1-4 s of retries per
  such molecule. Here conformers are embedded with ``enforceChirality=False`` and, after UFF
  minimization, only those whose stereo (canonical isomeric SMILES perceived from 3D) equals
  the input's, or that of the input after UFF minimization, are kept. (UFF moves some
  strained bridgeheads, as in bicyclo[1.1.0]butanes, through the plane of their neighbours,
  which flips the perceived parity of the very same structure: 13 of 950 QM9 molecules.) On
  950 QM9 test molecules with 10 conformers, 9.95 conformers per molecule are kept on
  average; one molecule (``N#CC12CC3=CCC1C23``) gets no ETKDG conformer at all, and then the
  reference is the input itself, UFF-minimized (``energy_reference="minimized_input"``).
* posebusters builds its reference ensemble from an InChI round trip, which turns amides and
  ureas into imidic acids (``CC1CCNC(=O)N1`` comes back as ``CC1CCN=C(O)N1``), so it
  compares the input's energy to that of another tautomer: its ratios are up to 39% off ours
  for such molecules (median difference 0.1%, 66 QM9 molecules where it gives a number).
  Here the reference is the input molecule itself.
* importing ``posebusters.modules`` calls ``rdBase.LogToPythonLogger()``, rerouting RDKit's
  log for the whole process, and imports pandas.
* PoseBusters' flatness takes the largest *signed* distance to the plane, whose sign follows
  the arbitrary orientation of the SVD normal; the largest absolute distance is used here
  (never more lenient on flatness). On 950 QM9 test molecules two verdicts differ: C=C
  groups 0.253 and 0.271 Å off their plane fail here and pass in posebusters.
* The energy ratio divides by the reference energy, which for small molecules is near or
  below zero (CH4, CF4; 4 of 950 QM9 test molecules, polyynes such as ``CC#CC#CC#CC#C``, have
  -1.3 to 0 kcal/mol): PoseBusters then reports ratios of 1e6 for a good methane and negative
  ratios, which always pass, for any geometry of those polyynes. Here the denominator is at
  least ``min_reference_energy`` (1 kcal/mol); 0 restores PoseBusters' arithmetic.

``tests/chem/test_plausibility.py`` checks that the geometry numbers and the flatness verdicts
equal posebusters' on QM9 molecules, with and without hydrogens and with jittered coordinates
(on all 950, the bond, angle and clash numbers agree to 1e-9; geometry and flatness take
0.7 ms per molecule here, 9.6 ms in posebusters' ``check_geometry`` alone).

Energy ratio and hydrogens
--------------------------
As in PoseBusters: the molecule is sanitized, radicals become hydrogens, missing hydrogens
are added (``AddHs(addCoords=True)``) and only those are UFF-minimized, heavy atoms fixed;
E(input) is the UFF energy of the result (with all hydrogens given, nothing moves). The
reference is the mean UFF energy of ``n_conformers`` ETKDGv3 conformers (random seed
``seed``, random starting coordinates as PoseBusters, one thread, so results are
deterministic), each UFF-minimized for up to 200 iterations as PoseBusters does.

The bond, angle and clash checks skip every pair that involves a hydrogen (PoseBusters'
``ignore_hydrogens: True``): with or without explicit hydrogens they look at the same heavy
atoms, though the DG bounds are computed on the molecule as given. The double-bond SMARTS
needs four explicit substituents, so without explicit hydrogens fewer C=C groups are checked.

Number of conformers
--------------------
PoseBusters uses 50. For QM9-sized molecules (up to 9 heavy atoms, mostly rigid) the mean
converges fast: against 50 conformers, 10 give ratios within 3.6% for 95% of 78 QM9 test
molecules (largest difference 14%, median 0.08%), 20 within 2.1% (largest 4.8%); the QM9
ratios themselves stay below 14, far from the threshold of 100. One process, per molecule:
32 ms with 10 conformers, 59 ms with 20, 144 ms with 50. The default, 10, checks 950 QM9
molecules in 33 s on 2 processes of a shared 2-core machine (20: 60 s), leaving room for
generated molecules that embed slowly within ~2 minutes per 1,000. ``n_conformers=0`` skips
the energy check (its keys are None and ``plausible`` covers the other checks).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers

from .geometry_bounds import GEOMETRY_PROFILES, STRICT_CHECKS, check_strict_geometry
from .parallel import map_chunks

__all__ = [
    "PLAUSIBILITY_CHECKS",
    "PLAUSIBILITY_VALUES",
    "PlausibilityConfig",
    "check_plausibility",
    "check_plausibility_many",
    "plausibility_pass_rate",
]

#: The checks, in the order they are run; each is a boolean key of a result.
PLAUSIBILITY_CHECKS: tuple[str, ...] = (
    "bond_lengths",
    "bond_angles",
    "internal_clash",
    "aromatic_ring_flatness",
    "double_bond_flatness",
    "non_aromatic_ring_non_flatness",
    "energy_ratio",
)

#: The numeric keys of a result (None when not computed or nothing to measure).
PLAUSIBILITY_VALUES: tuple[str, ...] = (
    "n_atoms",
    "n_hydrogens_added",
    "bond_length_min_ratio",
    "bond_length_max_ratio",
    "bond_angle_extreme_ratio",
    "nonbonded_min_ratio",
    "aromatic_ring_max_deviation",
    "double_bond_max_deviation",
    "non_aromatic_ring_min_deviation",
    "energy",
    "reference_energy",
    "energy_ratio_value",
    "n_reference_conformers",
    "energy_reference",
)

# PoseBusters' DG bound parameters (config/mol.yml, modules/distance_geometry.py).
_BOUNDS_PARAMS = {
    "set15bounds": True,
    "scaleVDW": True,
    "doTriangleSmoothing": True,
    "useMacrocycle14config": False,
}
# Terminal O/N of conjugated groups, whose bond bounds PoseBusters symmetrizes per element pair.
_TERMINAL_SMARTS = "[O,N;D1;$([O,N;D1]-[*]=[O,N;D1]),$([O,N;D1]=[*]-[O,N;D1])]~[*]"
_AROMATIC_RING_SMARTS = (
    "[ar5^2]1[ar5^2][ar5^2][ar5^2][ar5^2]1",
    "[ar6^2]1[ar6^2][ar6^2][ar6^2][ar6^2][ar6^2]1",
)
_DOUBLE_BOND_SMARTS = ("[C;X3;^2](*)(*)=[C;X3;^2](*)(*)",)
_NON_AROMATIC_RING_SMARTS = (
    "[C,O,S,N;R1]~1[C,O,S,N;R1][C,O,S,N;R1][C,O,S,N;R1][C,O,S,N;R1][C,O,S,N;R1]1",
    "[C;R1]~1[C;R1][C,O,S,N;R1]~[C,O,S,N;R1][C;R1][C;R1]1",
    "[C;R1]~1[C;R1][C;R1]~[C;R1][C,O,S,N;R1][C;R1]1",
    "[C;R1]~1[C;R1][C;R1][C,O,S,N;R1]~[C,O,S,N;R1][C;R1]1",
    "[C;R1]~1[C;R1][C,O,S,N;R1][C;R1]~[C;R1][C;R1]1",
)
_UFF_MAX_ITERS = 200  # RDKit's default, used by PoseBusters for the ensemble
_ENERGY_EPSILON = 1e-10


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class PlausibilityConfig:
    """Thresholds of the plausibility checks (defaults: PoseBusters' ``mol`` config).

    Parameters
    ----------
    bond_length_tolerance
        A bond fails when it is shorter than ``(1 - t) * lb`` or longer than ``(1 + t) * ub``.
    bond_angle_tolerance
        Same for the 1-3 distance spanning each bond angle.
    clash_tolerance
        A pair of atoms more than two bonds apart clashes when closer than ``(1 - t) * lb``.
    ignore_hydrogens
        Skip pairs involving hydrogen in the three distance checks (PoseBusters: True).
    flatness_tolerance
        Largest distance (Å) of an atom of an aromatic ring or a C=C group from its plane.
    non_flatness_min_deviation
        Smallest largest-distance (Å) from the plane a non-aromatic 6-ring must show.
    energy_ratio_threshold
        Largest allowed ratio of the input's UFF energy to the reference energy.
    min_reference_energy
        The ratio's denominator is at least this (kcal/mol), so that molecules whose UFF
        minimum is near or below zero (CH4, CF4, silanes, boronic acids) get a meaningful
        ratio; 0 reproduces PoseBusters (a zero reference clipped to 1e-10, negative ones kept).
    n_conformers
        ETKDG conformers in the energy reference (PoseBusters: 50); 0 skips the energy check.
    seed
        ETKDG random seed.
    profile
        ``"default"`` (the checks above) or ``"strict"``: also every bond length and angle
        within QM9's DFT range (:mod:`.geometry_bounds`).
    """

    bond_length_tolerance: float = 0.25
    bond_angle_tolerance: float = 0.25
    clash_tolerance: float = 0.3
    ignore_hydrogens: bool = True
    flatness_tolerance: float = 0.25
    non_flatness_min_deviation: float = 0.05
    energy_ratio_threshold: float = 100.0
    min_reference_energy: float = 1.0
    n_conformers: int = 10
    seed: int = 42
    profile: str = "default"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "profile":
                if value not in GEOMETRY_PROFILES:
                    raise ValueError(
                        f"plausibility config: profile must be one of "
                        f"{', '.join(GEOMETRY_PROFILES)}, got {value!r}"
                    )
            elif f.name == "ignore_hydrogens":
                if not isinstance(value, bool):
                    raise ValueError(
                        f"plausibility config: ignore_hydrogens must be a bool, got {value!r}"
                    )
            elif f.name in ("n_conformers", "seed"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(
                        f"plausibility config: {f.name} must be an integer >= 0, got {value!r}"
                    )
            elif (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(
                    f"plausibility config: {f.name} must be a finite number >= 0, got {value!r}"
                )
        if self.bond_length_tolerance >= 1 or self.bond_angle_tolerance >= 1:
            raise ValueError("plausibility config: bond length/angle tolerances must be < 1")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlausibilityConfig:
        """Build a config from a plain mapping (JSON/YAML); missing keys keep their defaults.

        Raises
        ------
        ValueError
            For an unknown key (the message lists the known ones) or a bad value.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"plausibility config must be a mapping, got {type(data).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(k) for k in set(data) - set(known))
        if unknown:
            raise ValueError(
                f"unknown plausibility config key(s) {', '.join(map(repr, unknown))}; "
                f"known keys: {', '.join(known)}"
            )
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{field: value}``."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# Single molecule


def _empty_result(error: str | None) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(PLAUSIBILITY_CHECKS)
    out.update(dict.fromkeys(PLAUSIBILITY_VALUES))
    out["plausible"] = False
    out["error"] = error
    return out


def _message(err: Exception) -> str:
    """An RDKit exception as one line (its invariant violations span several)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return ": ".join(lines[:2]) or type(err).__name__


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class _Patterns:
    terminal: Chem.Mol
    aromatic: tuple[Chem.Mol, ...]
    double_bond: tuple[Chem.Mol, ...]
    non_aromatic: tuple[Chem.Mol, ...]


_PATTERNS: _Patterns | None = None


def _patterns() -> _Patterns:
    global _PATTERNS
    if _PATTERNS is None:

        def compile_all(smarts: Sequence[str]) -> tuple[Chem.Mol, ...]:
            return tuple(Chem.MolFromSmarts(s) for s in smarts)

        _PATTERNS = _Patterns(
            terminal=Chem.MolFromSmarts(_TERMINAL_SMARTS),
            aromatic=compile_all(_AROMATIC_RING_SMARTS),
            double_bond=compile_all(_DOUBLE_BOND_SMARTS),
            non_aromatic=compile_all(_NON_AROMATIC_RING_SMARTS),
        )
    return _PATTERNS


def _geometry(mol: Chem.Mol, positions: np.ndarray, config: PlausibilityConfig) -> dict[str, Any]:
    """Bond lengths, bond angles and internal clashes against DG bounds (PoseBusters)."""
    n = mol.GetNumAtoms()
    out: dict[str, Any] = {}
    if n == 1:
        return {"bond_lengths": True, "bond_angles": True, "internal_clash": True}
    bounds = rdDistGeom.GetMoleculeBoundsMatrix(mol, **_BOUNDS_PARAMS)
    upper = np.triu(bounds, 1)
    upper = upper + upper.T  # ub[i, j] for i != j
    lower = np.tril(bounds, -1)
    lower = lower + lower.T  # lb[i, j]

    bonded = np.zeros((n, n), dtype=bool)
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        bonded[i, j] = bonded[j, i] = True

    # PoseBusters: symmetrize the bounds of terminal conjugated bonds per element pair.
    groups: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for i, j in {tuple(sorted(m)) for m in mol.GetSubstructMatches(_patterns().terminal)}:
        symbols = tuple(
            sorted((mol.GetAtomWithIdx(i).GetSymbol(), mol.GetAtomWithIdx(j).GetSymbol()))
        )
        groups.setdefault(symbols, []).append((i, j))  # type: ignore[arg-type]
    for pairs in groups.values():
        rows, cols = np.array(pairs).T
        lb, ub = lower[rows, cols].min(), upper[rows, cols].max()
        lower[rows, cols] = lower[cols, rows] = lb
        upper[rows, cols] = upper[cols, rows] = ub

    distance = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    angle = (bonded.astype(np.int64) @ bonded.astype(np.int64)) > 0
    pair = np.triu(np.ones((n, n), dtype=bool), 1)
    if config.ignore_hydrogens:
        heavy = np.array([a.GetAtomicNum() != 1 for a in mol.GetAtoms()])
        pair &= heavy[:, None] & heavy[None, :]
    bond_pairs = pair & bonded
    angle_pairs = pair & ~bonded & angle
    other_pairs = pair & ~bonded & ~angle

    with np.errstate(divide="ignore", invalid="ignore"):
        d, lb, ub = distance[bond_pairs], lower[bond_pairs], upper[bond_pairs]
        t = config.bond_length_tolerance
        # PoseBusters fails a bond at a relative error *strictly* beyond the tolerance.
        short = np.where(d < lb, (d - lb) / lb, 0.0) < -t
        long = np.where(d > ub, (d - ub) / ub, 0.0) > t
        out["bond_lengths"] = not bool(np.any(short | long))
        if d.size:
            out["bond_length_min_ratio"] = _finite_or_none(np.min(d / lb))
            out["bond_length_max_ratio"] = _finite_or_none(np.max(d / ub))

        d, lb, ub = distance[angle_pairs], lower[angle_pairs], upper[angle_pairs]
        t = config.bond_angle_tolerance
        error = np.where(d < lb, (lb - d) / lb, np.where(d > ub, (d - ub) / ub, 0.0))
        out["bond_angles"] = not bool(np.any(error > t))
        if d.size:
            out["bond_angle_extreme_ratio"] = _finite_or_none(
                max(2 - np.min(d / lb), np.max(d / ub))
            )

        d, lb = distance[other_pairs], lower[other_pairs]
        t = config.clash_tolerance
        error = np.where(d < lb, (d - lb) / lb, 0.0)
        out["internal_clash"] = not bool(np.any(error < -t))
        if d.size:
            out["nonbonded_min_ratio"] = _finite_or_none(np.min(d / lb))
    return out


def _plane_deviations(
    mol: Chem.Mol, positions: np.ndarray, patterns: Sequence[Chem.Mol]
) -> list[float]:
    """Largest absolute distance from the least-squares plane, per matched atom group."""
    out = []
    for pattern in patterns:
        for match in mol.GetSubstructMatches(pattern):
            x = positions[list(match)]
            x = x - x.mean(axis=0)
            normal = np.linalg.svd(x)[2][-1]
            out.append(float(np.abs(x @ normal).max()))
    return out


def _flatness(mol: Chem.Mol, positions: np.ndarray, config: PlausibilityConfig) -> dict[str, Any]:
    patterns = _patterns()
    out: dict[str, Any] = {}
    for check, key, group in (
        ("aromatic_ring_flatness", "aromatic_ring_max_deviation", patterns.aromatic),
        ("double_bond_flatness", "double_bond_max_deviation", patterns.double_bond),
    ):
        deviations = _plane_deviations(mol, positions, group)
        out[check] = all(d <= config.flatness_tolerance for d in deviations)
        out[key] = max(deviations) if deviations else None
    deviations = _plane_deviations(mol, positions, patterns.non_aromatic)
    out["non_aromatic_ring_non_flatness"] = all(
        d >= config.non_flatness_min_deviation for d in deviations
    )
    out["non_aromatic_ring_min_deviation"] = min(deviations) if deviations else None
    return out


def _stereo_key(mol: Chem.Mol, conf_id: int) -> str:
    """Canonical isomeric SMILES with stereo perceived from one conformer's coordinates."""
    copy = Chem.Mol(mol)
    Chem.AssignStereochemistryFrom3D(copy, confId=conf_id, replaceExistingTags=True)
    return Chem.MolToSmiles(Chem.RemoveHs(copy, sanitize=False))


def _energy(mol: Chem.Mol, config: PlausibilityConfig) -> tuple[dict[str, Any], str | None]:
    """PoseBusters' energy ratio; (values, None) or ({}, reason it could not be computed)."""
    mol = Chem.Mol(mol)
    if any(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms()):
        for atom in mol.GetAtoms():  # PoseBusters: radicals become hydrogens
            radicals = atom.GetNumRadicalElectrons()
            if radicals:
                atom.SetNumExplicitHs(atom.GetNumExplicitHs() + radicals)
                atom.SetNumRadicalElectrons(0)
        Chem.SanitizeMol(mol)
    n_before = mol.GetNumAtoms()
    mol = Chem.AddHs(mol, addCoords=True)
    conf_id = mol.GetConformer().GetId()
    if not rdForceFieldHelpers.UFFHasAllMoleculeParams(mol):
        elements = sorted({atom.GetSymbol() for atom in mol.GetAtoms()})
        return {}, f"energy: no UFF parameters for some atom (elements {', '.join(elements)})"
    field = rdForceFieldHelpers.UFFGetMoleculeForceField(mol, confId=conf_id)
    if mol.GetNumAtoms() > n_before:  # place the added hydrogens, heavy atoms fixed
        for i in range(n_before):
            field.AddFixedPoint(i)
        field.Minimize()
    energy = float(field.CalcEnergy())
    values: dict[str, Any] = {"n_hydrogens_added": mol.GetNumAtoms() - n_before, "energy": energy}

    # The input's nearest UFF minimum: the fallback reference, and a second stereo key (UFF
    # moves some strained bridgeheads, e.g. of bicyclo[1.1.0]butanes, through the plane).
    local = Chem.Mol(mol)
    field = rdForceFieldHelpers.UFFGetMoleculeForceField(local, confId=conf_id)
    field.Minimize(maxIts=_UFF_MAX_ITERS)
    local_energy = float(field.CalcEnergy())
    keys = {_stereo_key(mol, conf_id), _stereo_key(local, conf_id)}

    ensemble = Chem.Mol(mol)
    Chem.AssignStereochemistryFrom3D(ensemble, confId=conf_id, replaceExistingTags=True)
    ensemble.RemoveAllConformers()
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = config.seed
    params.useRandomCoords = True  # as PoseBusters
    params.enforceChirality = False  # stereo is checked after minimization instead
    params.numThreads = 1
    conf_ids = list(rdDistGeom.EmbedMultipleConfs(ensemble, config.n_conformers, params))
    energies: list[float] = []
    if conf_ids:
        minimized = rdForceFieldHelpers.UFFOptimizeMoleculeConfs(
            ensemble, numThreads=1, maxIters=_UFF_MAX_ITERS
        )
        energies = [
            float(e)
            for cid, (_, e) in zip(conf_ids, minimized, strict=True)
            if _stereo_key(ensemble, cid) in keys
        ]
    if energies:
        reference, kind = sum(energies) / len(energies), "etkdg"
    else:  # no ETKDG conformer of the input's stereoisomer: its own nearest minimum
        reference, kind = local_energy, "minimized_input"
    if config.min_reference_energy > 0:
        ratio = energy / max(reference, config.min_reference_energy)
    else:  # PoseBusters exactly
        ratio = energy / (reference if reference != 0 else _ENERGY_EPSILON)
    values.update(
        reference_energy=reference,
        energy_ratio_value=_finite_or_none(ratio),
        n_reference_conformers=len(energies),
        energy_reference=kind,
    )
    if not math.isfinite(ratio):
        return values, "energy: non-finite energy ratio"
    values["energy_ratio"] = ratio <= config.energy_ratio_threshold
    return values, None


def check_plausibility(
    mol: Chem.Mol | None, config: PlausibilityConfig | None = None
) -> dict[str, Any]:
    """Run every plausibility check on the first conformer of one molecule.

    Parameters
    ----------
    mol
        An RDKit molecule with a 3D conformer, explicit hydrogens or heavy atoms only,
        sanitized or not (it is not modified). ``None`` stands for a generated structure that
        could not be built.
    config
        Thresholds (default :class:`PlausibilityConfig()`, PoseBusters' ``mol`` config).

    Returns
    -------
    dict
        One boolean per name in :data:`PLAUSIBILITY_CHECKS` (True = passes; None = could not
        be computed), the numbers in :data:`PLAUSIBILITY_VALUES` (ratios are distance over DG
        bound: ``bond_length_min_ratio`` = min d/lb over bonds, ``bond_length_max_ratio`` =
        max d/ub, ``bond_angle_extreme_ratio`` = max(2 - min d/lb, max d/ub) over 1-3
        distances, ``nonbonded_min_ratio`` = min d/lb over other pairs; deviations in Å;
        energies in kcal/mol), ``plausible`` (every check True; the energy check is left out
        when ``n_conformers`` is 0) and ``error`` (None, or why some check is None). With
        ``profile="strict"`` also the keys of
        :func:`~sci_diffusion.chem.geometry_bounds.check_strict_geometry` (its two checks count
        towards ``plausible``).

    Notes
    -----
    Never raises for chemistry problems: a molecule that is None, empty, unsanitizable or
    without a 3D conformer gives ``plausible=False``, an ``error`` and every other key None.
    """
    config = config or PlausibilityConfig()
    if mol is None:
        return _empty_result("not constructed")
    if not isinstance(mol, Chem.Mol):
        raise TypeError(f"check_plausibility needs an rdkit Mol or None, got {type(mol).__name__}")
    if mol.GetNumAtoms() == 0:
        return _empty_result("empty molecule")
    if mol.GetNumConformers() == 0:
        return _empty_result("no conformer")
    conformer = mol.GetConformer(mol.GetConformers()[0].GetId())
    if not conformer.Is3D():
        return _empty_result("conformer is not 3D")
    positions = np.asarray(conformer.GetPositions(), dtype=np.float64)
    if not np.all(np.isfinite(positions)):
        return _empty_result("non-finite coordinates")

    work = Chem.Mol(mol)
    work.RemoveAllConformers()
    work.AddConformer(Chem.Conformer(conformer), assignId=True)
    result = _empty_result(None)
    result["n_atoms"] = work.GetNumAtoms()
    errors: list[str] = []
    with rdBase.BlockLogs():
        try:
            Chem.SanitizeMol(work)
        except Exception as err:  # RDKit raises several types; all mean "not a valid molecule"
            return _empty_result(f"sanitization failed: {_message(err)}")
        try:
            result.update(_geometry(work, positions, config))
        except Exception as err:  # e.g. triangle smoothing failure of the DG bounds
            errors.append(f"distance geometry: {_message(err)}")
        result.update(_flatness(work, positions, config))
        if config.profile == "strict":
            result.update(check_strict_geometry(
                work, positions, ignore_hydrogens=config.ignore_hydrogens
            ))  # fmt: skip
        if config.n_conformers > 0:
            try:
                values, reason = _energy(work, config)
            except Exception as err:
                values, reason = {}, f"energy: {_message(err)}"
            result.update(values)
            if reason:
                errors.append(reason)
    checks = [c for c in PLAUSIBILITY_CHECKS if c != "energy_ratio" or config.n_conformers > 0]
    if config.profile == "strict":
        checks += STRICT_CHECKS
    result["plausible"] = all(result[c] is True for c in checks)
    result["error"] = "; ".join(errors) or None
    return result


# --------------------------------------------------------------------------------------------
# Many molecules


def _check_encoded(
    config: PlausibilityConfig, chunk: Sequence[bytes | None]
) -> list[dict[str, Any]]:
    return [check_plausibility(None if b is None else Chem.Mol(b), config) for b in chunk]


def check_plausibility_many(
    mols: Sequence[Chem.Mol | None],
    config: PlausibilityConfig | None = None,
    processes: int | None = None,
    *,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """:func:`check_plausibility` over many molecules in worker processes, in input order.

    Parameters
    ----------
    mols
        RDKit molecules with a 3D conformer; ``None`` for structures that could not be built
        (result: ``plausible=False``, ``error="not constructed"``).
    config
        Thresholds (default :class:`PlausibilityConfig()`).
    processes
        Worker processes; None uses every available core, 1 runs inline. Molecules travel to
        the workers in RDKit's binary format (``Mol.ToBinary``, coordinates as doubles), not as
        pickled objects; results equal those of :func:`check_plausibility`.
    progress
        Show progress (about 30 ms per QM9-sized molecule and core).

    Returns
    -------
    list of dict
        One result per input, in input order.
    """
    config = config or PlausibilityConfig()
    for i, mol in enumerate(mols):
        if mol is not None and not isinstance(mol, Chem.Mol):
            raise TypeError(f"input {i} is {type(mol).__name__}, not an rdkit Mol or None")
    # Coordinates as doubles: RDKit's default binary keeps them in single precision.
    flags = Chem.PropertyPickleOptions.CoordsAsDouble
    encoded = [None if m is None else m.ToBinary(flags) for m in mols]
    # Small chunks: a molecule takes ~30 ms here, against well under 1 ms in the gate's checks.
    desc = "3D plausibility" if progress else None
    return map_chunks(_check_encoded, config, encoded, processes,
                      per_worker=8, smallest=1, largest=64, progress=desc)  # fmt: skip


def plausibility_pass_rate(results: Sequence[Mapping[str, Any]]) -> float:
    """Fraction of results with ``plausible`` True (inputs that were None count as failures).

    Raises
    ------
    ValueError
        If ``results`` is empty.
    """
    if len(results) == 0:
        raise ValueError("no plausibility results")
    return sum(r.get("plausible") is True for r in results) / len(results)
