"""MOSES (molsets' files): 2D graphs (heavy atoms; the vocabulary has no H) and SMILES.

The loaders are :func:`sci_diffusion.chem.data.load_moses` and
:func:`sci_diffusion.chem.featurize.moses_graphs`. MOSES has no 3D structures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sci_diffusion.io.errors import UserInputError

from . import MoleculeDataset

if TYPE_CHECKING:
    from ..featurize import GraphDataset


class MOSES(MoleculeDataset):
    name = "moses"
    title = "MOSES"
    source = "molsets package data"
    split = "train split (molsets' train.csv.gz, the first rows up to task.data.limit)"

    def graphs(self, split: str = "train", *, hydrogens: bool = False, limit: int | None = None,
               cache: bool = True, aromatic: bool = False) -> GraphDataset:  # fmt: skip
        from ..featurize import moses_graphs

        if hydrogens:
            raise UserInputError(
                "moses: hydrogens as nodes are not available (MOSES_VOCAB has "
                "no H); set task.data.hydrogens=false"
            )
        return moses_graphs(split, limit=limit, cache=cache, aromatic=aromatic)

    def smiles(self, split: str = "train") -> list[str]:
        from ..data import load_moses

        return load_moses(split)

    def benchmark_metrics(self, smiles: list[str | None]) -> dict[str, Any]:
        """MOSES's metrics (Polykovskiy et al. 2020; :func:`~..moses_metrics.moses_metrics`):
        validity as MOSES defines it (the SMILES parses), unique@k, novelty against the whole
        MOSES training split, filters, SNN/Frag/Scaf and FCD against test and scaffold test,
        IntDiv. Reference statistics are cached under the package cache (once: minutes)."""
        from sci_diffusion.io.cache import cache_dir

        from ..moses_metrics import moses_metrics

        return moses_metrics(smiles, training=set(self.smiles("train")),
                             cache_dir=cache_dir() / "moses")  # fmt: skip


DATASET = MOSES()
