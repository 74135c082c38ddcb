"""Molecular properties recorded (and optionally thresholded) by the screening gate.

Every property is computed on the sanitized molecule *without explicit hydrogen atoms* (a
3D structure with hydrogens and its 2D graph give the same values):

=======================  =====================================================================
``qed``                  quantitative estimate of drug-likeness (Bickerton et al. 2012), RDKit
                         ``QED.qed`` with the mean weights; 0 (unlike drugs) to 1.
``sa_score``             synthetic accessibility (Ertl & Schuffenhauer 2009), the ``sascorer``
                         shipped in ``rdkit.Contrib/SA_Score``; 1 (easy) to 10 (hard).
``mw``                   average molecular weight, g/mol (``Descriptors.MolWt``).
``logp``                 Wildman-Crippen logP (``Crippen.MolLogP``).
``hbd``                  hydrogen-bond donors, Lipinski's definition: number of N-H and O-H.
``hba``                  hydrogen-bond acceptors, Lipinski's definition: number of N and O.
``rotatable_bonds``      ``rdMolDescriptors.CalcNumRotatableBonds`` (RDKit's strict definition).
``lipinski_violations``  how many of MW > 500, logP > 5, HBD > 5, HBA > 10 hold (rule of five).
=======================  =====================================================================

HBD/HBA use Lipinski's original counts because their only use here is the rule of five;
``Descriptors.NumHDonors``/``NumHAcceptors`` use a different, SMARTS-based definition.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

from rdkit import Chem, RDConfig
from rdkit.Chem import QED, rdMolDescriptors

PROPERTY_NAMES: tuple[str, ...] = (
    "qed",
    "sa_score",
    "mw",
    "logp",
    "hbd",
    "hba",
    "rotatable_bonds",
    "lipinski_violations",
)
"""Keys of :func:`compute_properties`' result, in output-column order."""

LIPINSKI_LIMITS = {"mw": 500.0, "logp": 5.0, "hbd": 5, "hba": 10}
"""Rule of five (Lipinski et al. 1997): a property above its limit is one violation."""


@functools.cache
def sascorer() -> ModuleType:
    """RDKit's contributed ``sascorer`` module, imported from ``RDConfig.RDContribDir``.

    The fragment-score table is loaded here, once per process, so that worker processes forked
    afterwards share it instead of each reading it again (about 0.3 s).

    Raises
    ------
    ImportError
        If this RDKit installation does not ship ``Contrib/SA_Score/sascorer.py``.
    """
    path = Path(RDConfig.RDContribDir) / "SA_Score" / "sascorer.py"
    spec = importlib.util.spec_from_file_location("_sci_diffusion_sascorer", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ImportError(
            f"RDKit's SA score module was not found at {path}; the SA score needs an RDKit "
            "installation with its Contrib directory (the PyPI 'rdkit' wheel ships it)"
        )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.readFragmentScores()
    return module


def without_hydrogens(mol: Chem.Mol) -> Chem.Mol:
    """``mol`` itself when it has no explicit hydrogen atoms, else a copy without them.

    Parameters
    ----------
    mol
        A sanitized molecule.
    """
    if mol.GetNumAtoms() == mol.GetNumHeavyAtoms():
        return mol  # the common case; RemoveHs would copy and re-sanitize for nothing
    return Chem.RemoveHs(mol)


def sa_score(mol: Chem.Mol) -> float:
    """Synthetic accessibility score of a sanitized molecule (1 easy ... 10 hard).

    Parameters
    ----------
    mol
        A sanitized molecule; explicit hydrogens are removed first.
    """
    return float(sascorer().calculateScore(without_hydrogens(mol)))


def lipinski_violations(mw: float, logp: float, hbd: int, hba: int) -> int:
    """Number of rule-of-five limits exceeded (see :data:`LIPINSKI_LIMITS`)."""
    values = {"mw": mw, "logp": logp, "hbd": hbd, "hba": hba}
    return sum(values[key] > limit for key, limit in LIPINSKI_LIMITS.items())


def compute_properties(mol: Chem.Mol) -> dict[str, float | int]:
    """All of :data:`PROPERTY_NAMES` for one sanitized molecule.

    Parameters
    ----------
    mol
        A sanitized RDKit molecule (explicit hydrogens allowed).

    Returns
    -------
    dict
        ``{name: value}`` in :data:`PROPERTY_NAMES` order; floats are not rounded.

    Raises
    ------
    Exception
        Whatever RDKit raises for a molecule it cannot describe (the gate records it).
    """
    heavy = without_hydrogens(mol)
    # QED's own descriptor pass already computes MW, logP and rotatable bonds with the same
    # RDKit functions as listed above; reusing it saves a third of the property time.
    qed_inputs = QED.properties(heavy)
    mw = float(qed_inputs.MW)
    logp = float(qed_inputs.ALOGP)
    hbd = int(rdMolDescriptors.CalcNumLipinskiHBD(heavy))
    hba = int(rdMolDescriptors.CalcNumLipinskiHBA(heavy))
    return {
        "qed": float(QED.qed(heavy, qedProperties=qed_inputs)),
        "sa_score": float(sascorer().calculateScore(heavy)),
        "mw": mw,
        "logp": logp,
        "hbd": hbd,
        "hba": hba,
        "rotatable_bonds": int(qed_inputs.ROTB),
        "lipinski_violations": lipinski_violations(mw, logp, hbd, hba),
    }
