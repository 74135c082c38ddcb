"""Molecular properties a generator can be conditioned on, with their units and sources.

Two kinds (:data:`CONDITION_PROPERTIES`):

* **RDKit** properties, computed from the molecule itself — for a training molecule from its
  SMILES, for a candidate from the generated molecule with the same function, so a target and
  an achieved value are always the same quantity. Computed on the sanitized molecule without
  explicit hydrogens (as :mod:`sci_diffusion.chem.properties`).
Hit tolerances (``ConditionProperty.tolerance``) are 0.2-0.7 standard deviations of the
property on QM9's training split for the continuous ones (qed 0.05 of sd 0.072, logp 0.5 of
0.94, alpha 2 of 8.2 Bohr^3, gap 250 of 1,270 meV) and half a count for counts (an exact hit).

* **QM9's DFT labels** (B3LYP/6-31G(2df,p), shipped by ``qm9pack``), in the units of EDM's
  property experiments (Hoogeboom et al. 2022, section 5.2): ``alpha`` in Bohr^3, ``mu`` in
  Debye, ``cv`` in cal/(mol K), ``homo``/``lumo``/``gap`` in meV. They exist for QM9's own
  molecules only; a candidate's value needs a predictor (:mod:`sci_diffusion.chem.predictor`).

Tables of training values are cached (``<cache_dir>/properties/``, ``.npz`` without pickle),
keyed by the data set, split and the molecules' source indices.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sci_diffusion.io.cache import cache_dir
from sci_diffusion.io.errors import UserInputError
from sci_diffusion.io.files import atomic_open

#: Hartree -> meV (CODATA 2018: 1 Eh = 27.211386245988 eV).
HARTREE_TO_MEV = 27_211.386245988


@dataclass(frozen=True)
class ConditionProperty:
    """One property: its name, unit, source (``rdkit`` or ``qm9_dft``) and definition."""

    name: str
    unit: str
    source: str
    definition: str
    #: a candidate "hits" its target when ``|achieved - target| <= tolerance``.
    tolerance: float = 0.0
    #: qm9pack column and the factor to our unit (DFT labels only).
    column: str = ""
    factor: float = 1.0


CONDITION_PROPERTIES: dict[str, ConditionProperty] = {
    p.name: p
    for p in (
        ConditionProperty(
            "qed", "unitless (0-1)", "rdkit", "QED, mean weights (Bickerton 2012)", 0.05
        ),
        ConditionProperty("logp", "unitless (log10)", "rdkit", "Wildman-Crippen logP", 0.5),
        ConditionProperty("mw", "g/mol", "rdkit", "average molecular weight (MolWt)", 10.0),
        ConditionProperty(
            "tpsa", "Å^2", "rdkit", "topological polar surface area (Ertl 2000)", 10.0
        ),
        ConditionProperty("hbd", "count", "rdkit", "Lipinski H-bond donors (N-H, O-H)", 0.5),
        ConditionProperty("hba", "count", "rdkit", "Lipinski H-bond acceptors (N, O)", 0.5),
        ConditionProperty("rings", "count", "rdkit", "number of rings (SSSR)", 0.5),
        ConditionProperty("sa", "unitless (1-10)", "rdkit", "SA score (Ertl 2009)", 0.5),
        ConditionProperty(
            "alpha", "Bohr^3", "qm9_dft", "isotropic polarizability", 2.0, "Polarizability_bohr3"
        ),
        ConditionProperty(
            "gap", "meV", "qm9_dft", "HOMO-LUMO gap", 250.0, "HOMO_LUMO_gap_au", HARTREE_TO_MEV
        ),
        ConditionProperty(
            "homo", "meV", "qm9_dft", "HOMO energy", 100.0, "HOMO_au", HARTREE_TO_MEV
        ),
        ConditionProperty(
            "lumo", "meV", "qm9_dft", "LUMO energy", 250.0, "LUMO_au", HARTREE_TO_MEV
        ),
        ConditionProperty("mu", "D", "qm9_dft", "dipole moment", 0.5, "Dipole_debye"),
        ConditionProperty(
            "cv",
            "cal/(mol K)",
            "qm9_dft",
            "heat capacity at 298 K",
            1.0,
            "Heatcapacity_Cv_cal_mol_K",
        ),
    )
}
RDKIT_PROPERTIES = tuple(k for k, p in CONDITION_PROPERTIES.items() if p.source == "rdkit")
DFT_PROPERTIES = tuple(k for k, p in CONDITION_PROPERTIES.items() if p.source == "qm9_dft")


class ConditionError(UserInputError):
    """An unknown property, a property the data set does not have, or a bad target."""


def check_property_names(names: Sequence[str], dataset: str = "qm9") -> tuple[str, ...]:
    """``names`` as a tuple, after checking each is known and available for ``dataset``.

    Raises
    ------
    ConditionError
        naming the unknown property and listing the valid ones.
    """
    names = tuple(str(n) for n in names)
    for name in names:
        if name not in CONDITION_PROPERTIES:
            raise ConditionError(
                f"unknown property {name!r}; valid: {', '.join(CONDITION_PROPERTIES)}"
            )
        if CONDITION_PROPERTIES[name].source == "qm9_dft" and dataset != "qm9":
            raise ConditionError(
                f"property {name!r} is a QM9 DFT label; data set {dataset!r} has only the "
                f"RDKit properties {', '.join(RDKIT_PROPERTIES)}"
            )
    if len(set(names)) != len(names):
        raise ConditionError(f"a property is named twice in {list(names)}")
    return names


def rdkit_values(mol: Any, names: Sequence[str]) -> dict[str, float]:
    """RDKit properties ``names`` of one sanitized molecule (explicit hydrogens allowed)."""
    from rdkit.Chem import QED, Crippen, Descriptors, rdMolDescriptors

    from .properties import sa_score, without_hydrogens

    heavy = without_hydrogens(mol)
    functions = {
        "qed": lambda m: QED.qed(m),
        "logp": Crippen.MolLogP,
        "mw": Descriptors.MolWt,
        "tpsa": rdMolDescriptors.CalcTPSA,
        "hbd": rdMolDescriptors.CalcNumLipinskiHBD,
        "hba": rdMolDescriptors.CalcNumLipinskiHBA,
        "rings": rdMolDescriptors.CalcNumRings,
        "sa": sa_score,
    }
    return {name: float(functions[name](heavy)) for name in names}


def _rdkit_chunk(names: tuple[str, ...], smiles: Sequence[str]) -> list[list[float]]:
    from rdkit import Chem

    rows = []
    for s in smiles:
        mol = Chem.MolFromSmiles(s)
        if mol is None:
            rows.append([math.nan] * len(names))
        else:
            values = rdkit_values(mol, names)
            rows.append([values[n] for n in names])
    return rows


def _labelled_smiles(dataset: str, split: str, source_index: np.ndarray) -> tuple[list[str], Any]:
    """SMILES (and for QM9 the DFT table) of the molecules ``source_index`` of ``split``."""
    if dataset == "qm9":
        import pandas as pd

        from .data import qm9_source_files

        columns = ["Index", "SMILES", *(CONDITION_PROPERTIES[k].column for k in DFT_PROPERTIES)]
        table = pd.concat([pd.read_csv(p, usecols=columns) for p in qm9_source_files()])
        table = table.set_index("Index").loc[source_index]
        return table["SMILES"].astype(str).tolist(), table
    if dataset == "moses":
        from .datasets import get_dataset

        smiles = get_dataset("moses").smiles(split)
        return [smiles[int(i)] for i in source_index], None
    raise ConditionError(f"property tables exist for the data sets qm9 and moses, not {dataset!r}")


def property_table(
    dataset: str,
    split: str,
    source_index: np.ndarray,
    names: Sequence[str],
    *,
    cache: bool = True,
    processes: int | None = None,
) -> np.ndarray:
    """Values of properties ``names`` for the molecules ``source_index`` of a data set's split.

    Parameters
    ----------
    dataset, split
        ``"qm9"`` or ``"moses"`` and its split name.
    source_index : (M,) int
        The graphs' ``source_index`` (GDB-9 index for QM9, data row for MOSES).
    names
        Properties (:data:`CONDITION_PROPERTIES`).

    Returns
    -------
    (M, P) float64 array in ``names`` order, in the properties' units; NaN where RDKit could
    not parse a SMILES (none for QM9 or MOSES).
    """
    from .parallel import map_chunks

    names = check_property_names(names, dataset)
    source_index = np.asarray(source_index, dtype=np.int64)
    key = hashlib.sha256(source_index.tobytes()).hexdigest()[:16]
    columns: dict[str, np.ndarray] = {}
    folder = cache_dir() / "properties"
    paths = {n: folder / f"{dataset}_{split}_{n}_{key}.npz" for n in names}
    for name, path in paths.items():
        if cache and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as stored:
                    columns[name] = stored["values"]
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache file is rebuilt below
    missing = [n for n in names if n not in columns]
    if missing:
        smiles, table = _labelled_smiles(dataset, split, source_index)
        rdkit = tuple(n for n in missing if CONDITION_PROPERTIES[n].source == "rdkit")
        if rdkit:
            rows = map_chunks(_rdkit_chunk, rdkit, smiles, processes, largest=2000,
                              progress=f"{dataset} {split}: {', '.join(rdkit)}")  # fmt: skip
            values = np.asarray(rows, dtype=np.float64).reshape(len(smiles), len(rdkit))
            columns.update({n: values[:, i] for i, n in enumerate(rdkit)})
        for name in missing:
            spec = CONDITION_PROPERTIES[name]
            if spec.source == "qm9_dft":
                columns[name] = table[spec.column].to_numpy(np.float64) * spec.factor
        if cache:
            folder.mkdir(parents=True, exist_ok=True)
            for name in missing:
                with atomic_open(paths[name], "wb") as f:
                    np.savez(f, values=columns[name])
    return np.stack([columns[n] for n in names], axis=1)
