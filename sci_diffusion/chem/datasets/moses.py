"""MOSES (molsets' files): 2D graphs (heavy atoms; the vocabulary has no H) and SMILES.

The loaders are :func:`sci_diffusion.chem.data.load_moses` and
:func:`sci_diffusion.chem.featurize.moses_graphs`. MOSES has no 3D structures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sci_diffusion.io.errors import UserInputError

from . import MoleculeDataset

if TYPE_CHECKING:
    from ..featurize import GraphDataset


class MOSES(MoleculeDataset):
    name = "moses"
    title = "MOSES"
    source = "molsets package data"
    split = "train split (molsets' train.csv.gz, the first rows up to task.data.limit)"

    def graphs(self, split: str = "train", *, hydrogens: bool = False,
               limit: int | None = None, cache: bool = True) -> GraphDataset:  # fmt: skip
        from ..featurize import moses_graphs

        if hydrogens:
            raise UserInputError(
                "moses: hydrogens as nodes are not available (MOSES_VOCAB has "
                "no H); set task.data.hydrogens=false"
            )
        return moses_graphs(split, limit=limit, cache=cache)

    def smiles(self, split: str = "train") -> list[str]:
        from ..data import load_moses

        return load_moses(split)


DATASET = MOSES()
