"""Optional force-field refinement of generated 3D molecules, kept beside the raw structure.

A generated molecule's coordinates are the model's own; :func:`refine_molecule` relaxes a
*copy* with a classical force field and records what that changed, so that a user can see how
far the model's geometry is from a force-field minimum and take the relaxed structure if they
want it. The model's output is never replaced: the raw structure stays the candidate (and the
gate's verdicts are about it); the refined one is returned separately and written to its own
file (``candidates_refined.sdf`` in a 3D task's outputs, metrics under ``"refinement"``).

Procedure, per molecule (heavy atoms only or with hydrogens, as generated):

1. sanitize a copy; add the missing hydrogens with coordinates (``Chem.AddHs(addCoords=
   True)``);
2. force field: **MMFF94** (``rdForceFieldHelpers``, ``mmffVariant="MMFF94"``) when it has
   parameters for every atom, else **UFF**; neither: not refined (``error`` says why);
3. relax the added hydrogens with every heavy atom fixed (up to ``max_iterations``
   iterations): ``energy_before`` is the energy of that structure, the model's heavy atoms with
   hydrogens where the force field wants them (as PoseBusters' energy check does);
4. minimize everything (up to ``max_iterations``): ``energy_after`` and ``converged`` (RDKit's
   minimizer returned 0, i.e. it met its convergence criteria within the iterations);
5. ``heavy_atom_rmsd``: the RMSD of the heavy atoms between raw and refined after optimal
   superposition (same atom order, no symmetry search); ``stereo_preserved``: the canonical
   isomeric SMILES perceived from the 3D coordinates is the same before and after.

Energies are in kcal/mol, in the named force field's own terms (MMFF94 and UFF energies are not
comparable with each other).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdForceFieldHelpers, rdMolAlign

from .parallel import map_chunks
from .sanitize import one_line

__all__ = [
    "REFINED_SDF",
    "Refinement",
    "refine_many",
    "refine_molecule",
    "refined_sdf_text",
    "refinement_summary",
]

REFINED_SDF = "candidates_refined.sdf"
"""The file a 3D task writes the refined candidates to, beside ``candidates.sdf``."""

REFINEMENT_FIELDS: tuple[str, ...] = (
    "force_field",
    "energy_before",
    "energy_after",
    "heavy_atom_rmsd",
    "converged",
    "stereo_preserved",
    "n_hydrogens_added",
    "error",
)
"""The recorded fields of a :class:`Refinement`, in order (SD tags of the refined SDF)."""

_COORDS = Chem.PropertyPickleOptions.CoordsAsDouble


@dataclass(frozen=True)
class Refinement:
    """What refining one molecule did (see the module docstring).

    Attributes
    ----------
    force_field
        ``"MMFF94"``, ``"UFF"``, or None when the molecule was not refined.
    energy_before, energy_after
        kcal/mol in that force field: the raw heavy atoms with relaxed hydrogens, and the
        minimum reached.
    heavy_atom_rmsd
        Å between the raw and refined heavy atoms, superposed.
    converged
        The minimizer met its convergence criteria within ``max_iterations``.
    stereo_preserved
        Stereochemistry perceived from 3D is the same before and after.
    n_hydrogens_added
        Hydrogens the refinement added (0 for a molecule with all its hydrogens).
    error
        Why the molecule was not refined (None when it was).
    mol_binary
        The refined molecule with explicit hydrogens (``Chem.Mol.ToBinary``, coordinates as
        doubles); None when not refined.
    """

    force_field: str | None = None
    energy_before: float | None = None
    energy_after: float | None = None
    heavy_atom_rmsd: float | None = None
    converged: bool | None = None
    stereo_preserved: bool | None = None
    n_hydrogens_added: int | None = None
    error: str | None = None
    mol_binary: bytes | None = field(default=None, repr=False)

    def mol(self) -> Chem.Mol | None:
        """The refined molecule (explicit hydrogens, one 3D conformer), or None."""
        return None if self.mol_binary is None else Chem.Mol(self.mol_binary)

    def to_dict(self) -> dict[str, Any]:
        """The recorded fields (:data:`REFINEMENT_FIELDS`), JSON-ready."""
        return {name: getattr(self, name) for name in REFINEMENT_FIELDS}


def _stereo_smiles(mol: Chem.Mol) -> str:
    copy = Chem.Mol(mol)
    Chem.AssignStereochemistryFrom3D(copy, replaceExistingTags=True)
    return Chem.MolToSmiles(Chem.RemoveHs(copy, sanitize=False))


def _force_field(mol: Chem.Mol, kind: str) -> Any:
    if kind == "MMFF94":
        props = rdForceFieldHelpers.MMFFGetMoleculeProperties(mol, mmffVariant="MMFF94")
        return rdForceFieldHelpers.MMFFGetMoleculeForceField(mol, props)
    return rdForceFieldHelpers.UFFGetMoleculeForceField(mol)


def _choose_force_field(mol: Chem.Mol) -> str | None:
    if rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol):
        return "MMFF94"
    if rdForceFieldHelpers.UFFHasAllMoleculeParams(mol):
        return "UFF"
    return None


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def refine_molecule(mol: Chem.Mol | None, *, max_iterations: int = 2000) -> Refinement:
    """Relax a copy of ``mol`` (first 3D conformer) with MMFF94, or UFF where MMFF94 has no
    parameters; ``mol`` itself is not modified. Never raises for chemistry problems: a
    molecule that cannot be refined gives a :class:`Refinement` with ``error`` set.

    Parameters
    ----------
    mol
        An RDKit molecule with a 3D conformer (heavy atoms only or with hydrogens); None gives
        ``error="no molecule"``.
    max_iterations
        Iterations of each minimization (hydrogens, then everything).
    """
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) \
            or max_iterations < 1:  # fmt: skip
        raise ValueError(f"max_iterations must be an integer >= 1, got {max_iterations!r}")
    if mol is None:
        return Refinement(error="no molecule")
    if mol.GetNumConformers() == 0 or not mol.GetConformer().Is3D():
        return Refinement(error="no 3D conformer")
    with rdBase.BlockLogs():
        try:
            return _refine(mol, max_iterations)
        except Exception as err:  # RDKit raises several types; recorded, never raised
            return Refinement(error=one_line(f"{type(err).__name__}: {err}"))


def _refine(mol: Chem.Mol, max_iterations: int) -> Refinement:
    conformer = Chem.Conformer(mol.GetConformer())  # the first one, copied
    raw = Chem.Mol(mol)
    raw.RemoveAllConformers()
    raw.AddConformer(conformer, assignId=True)
    Chem.SanitizeMol(raw)
    n_before = raw.GetNumAtoms()
    with_h = Chem.AddHs(raw, addCoords=True)
    added = with_h.GetNumAtoms() - n_before
    kind = _choose_force_field(with_h)
    if kind is None:
        elements = sorted({a.GetSymbol() for a in with_h.GetAtoms()})
        return Refinement(n_hydrogens_added=added,
                          error=f"no MMFF94 or UFF parameters (elements {', '.join(elements)})")
    heavy = [a.GetIdx() for a in with_h.GetAtoms() if a.GetAtomicNum() > 1]
    # 1. hydrogens only (heavy atoms fixed): the energy of the raw structure
    start = _force_field(with_h, kind)
    if added:
        for i in heavy:
            start.AddFixedPoint(i)
        start.Minimize(maxIts=max_iterations)
    energy_before = start.CalcEnergy()
    before = Chem.Mol(with_h)
    # 2. everything
    refined = Chem.Mol(with_h)
    field_ = _force_field(refined, kind)
    status = field_.Minimize(maxIts=max_iterations)
    energy_after = field_.CalcEnergy()
    probe = Chem.Mol(refined)
    rmsd = rdMolAlign.AlignMol(probe, before, atomMap=[(i, i) for i in heavy])
    preserved = _stereo_smiles(before) == _stereo_smiles(refined)
    return Refinement(
        force_field=kind,
        energy_before=_finite(energy_before),
        energy_after=_finite(energy_after),
        heavy_atom_rmsd=_finite(rmsd),
        converged=status == 0,
        stereo_preserved=preserved,
        n_hydrogens_added=added,
        mol_binary=refined.ToBinary(_COORDS),
    )


def _refine_chunk(max_iterations: int, chunk: Sequence[bytes | None]) -> list[Refinement]:
    return [refine_molecule(None if b is None else Chem.Mol(b), max_iterations=max_iterations)
            for b in chunk]  # fmt: skip


def refine_many(
    mols: Sequence[Chem.Mol | None],
    *,
    max_iterations: int = 2000,
    processes: int | None = 1,
    progress: bool = False,
) -> list[Refinement]:
    """:func:`refine_molecule` over many molecules (worker processes; input order kept)."""
    encoded = [None if m is None else m.ToBinary(_COORDS) for m in mols]
    desc = "force-field refinement" if progress else None
    return map_chunks(_refine_chunk, max_iterations, encoded, processes,
                      per_worker=8, smallest=1, largest=64, progress=desc)  # fmt: skip


def refinement_summary(refinements: Sequence[Refinement]) -> dict[str, Any]:
    """Counts and medians of a batch: refined, converged, force fields, stereo kept, energy
    before / after / drop (kcal/mol, per force field) and heavy-atom RMSD (Å)."""
    done = [r for r in refinements if r.force_field is not None]
    out: dict[str, Any] = {
        "n": len(refinements),
        "n_refined": len(done),
        "n_converged": sum(r.converged is True for r in done),
        "n_stereo_preserved": sum(r.stereo_preserved is True for r in done),
        "force_fields": dict(Counter(r.force_field for r in done)),
        "errors": dict(Counter(r.error for r in refinements if r.error).most_common(5)),
    }
    rmsd = [r.heavy_atom_rmsd for r in done if r.heavy_atom_rmsd is not None]
    if rmsd:
        out["heavy_atom_rmsd_median"] = round(float(np.median(rmsd)), 4)
        out["heavy_atom_rmsd_p90"] = round(float(np.percentile(rmsd, 90)), 4)
    for kind in sorted(out["force_fields"]):
        pairs = [(r.energy_before, r.energy_after) for r in done if r.force_field == kind
                 and r.energy_before is not None and r.energy_after is not None]  # fmt: skip
        if pairs:
            before, after = np.array(pairs).T
            out[f"energy_{kind}"] = {
                "before_median": round(float(np.median(before)), 2),
                "after_median": round(float(np.median(after)), 2),
                "drop_median": round(float(np.median(before - after)), 2),
            }
    return out


def refined_sdf_text(
    items: Iterable[tuple[Mapping[str, Any], Refinement]],
) -> str:
    """SD records of refined molecules: each item is (tags, refinement); the tags (e.g. the
    candidate's ``index`` and ``canonical_smiles``) come first, then :data:`REFINEMENT_FIELDS`.
    Molecules that were not refined are left out (their record says why in the metrics).
    Stereochemistry is assigned from the refined coordinates."""
    from .outputs import _cell, sdf_tags

    parts = []
    for tags, refinement in items:
        mol = refinement.mol()
        if mol is None:
            continue
        Chem.AssignStereochemistryFrom3D(mol, replaceExistingTags=True)
        mol.SetProp("_Name", _cell(tags.get("name") or tags.get("canonical_smiles") or ""))
        cells = {k: _cell(v) for k, v in tags.items()}
        cells.update({k: _cell(v) for k, v in refinement.to_dict().items()})
        parts.append(Chem.MolToMolBlock(mol) + sdf_tags(cells) + "$$$$\n")
    return "".join(parts)
