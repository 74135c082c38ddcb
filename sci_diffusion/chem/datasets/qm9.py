"""QM9 (qm9pack's files): 2D graphs, 3D structures and SMILES of the fixed SHA-256 split.

The loaders are :func:`sci_diffusion.chem.data.load_qm9` and
:func:`~sci_diffusion.chem.data.qm9_split` (split pinned by
:data:`~sci_diffusion.chem.data.QM9_SPLIT_FINGERPRINT`),
:func:`sci_diffusion.chem.featurize.qm9_graphs` and
:func:`sci_diffusion.chem.structures.qm9_structures`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import MoleculeDataset

if TYPE_CHECKING:
    from ..featurize import GraphDataset


class QM9(MoleculeDataset):
    name = "qm9"
    title = "QM9"
    source = "qm9pack package data"
    split = "train split (QM9: fixed SHA-256-ordered split, docs/molecules.md)"
    structures_note = "SMILES graph at DFT geometry"

    def graphs(self, split: str = "train", *, hydrogens: bool = False, limit: int | None = None,
               cache: bool = True, aromatic: bool = False) -> GraphDataset:  # fmt: skip
        from ..featurize import qm9_graphs

        return qm9_graphs(split, hydrogens=hydrogens, limit=limit, cache=cache, aromatic=aromatic)

    def structures(self, split: str = "train", *, hydrogens: bool = False,
                   limit: int | None = None, cache: bool = True) -> GraphDataset:  # fmt: skip
        from ..structures import qm9_structures

        return qm9_structures(split, hydrogens=hydrogens, limit=limit, cache=cache)

    def smiles(self, split: str = "train") -> list[str]:
        from ..data import load_qm9

        return [r.smiles for r in load_qm9(split, coordinates=False)]


DATASET = QM9()
