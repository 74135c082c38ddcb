"""Molecule data sets by name: one module per data set, looked up from the task config.

A task config names its data set (``task.data.dataset: qm9``). :func:`get_dataset` imports
``sci_diffusion.chem.datasets.<name>`` (a dotted name is imported as it is, so a data set may
also live outside this package) and returns that module's ``DATASET``, a
:class:`MoleculeDataset`. The molecule tasks get everything through it: training graphs
(:meth:`~MoleculeDataset.graphs`), 3D structures (:meth:`~MoleculeDataset.structures`), the
training SMILES for novelty (:meth:`~MoleculeDataset.smiles`) and the words of the data card.

Adding a data set therefore touches two files: its module here, which reads the data and
featurizes it (:func:`sci_diffusion.chem.featurize.featurize` and
:func:`~sci_diffusion.chem.featurize.cached_dataset` do the work), and the task config that
names it. See ``docs/molecules.md`` ("Adding a data set").
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

from sci_diffusion.io.errors import UserInputError

if TYPE_CHECKING:
    from ..featurize import GraphDataset

__all__ = ["MoleculeDataset", "dataset_names", "get_dataset"]


class MoleculeDataset:
    """One molecule data set; a module of this package defines ``DATASET = <instance>``.

    Attributes
    ----------
    name
        The name task configs use (``task.data.dataset``).
    title
        How data cards name it (``"QM9"``).
    source
        Where the data come from, for data cards (``"qm9pack package data"``).
    split
        How the training split is defined, for data cards.
    structures_note
        What its 3D structures are, for data cards (data sets with :meth:`structures`).
    """

    name: str = ""
    title: str = ""
    source: str = ""
    split: str = "train split"
    structures_note: str = ""

    def graphs(
        self,
        split: str = "train",
        *,
        hydrogens: bool = False,
        limit: int | None = None,
        cache: bool = True,
        aromatic: bool = False,
    ) -> GraphDataset:
        """Molecular graphs of one split (a padded :class:`~..featurize.GraphDataset`);
        ``aromatic``: aromatic bonds as their own bond class (``task.data.aromatic_bonds``)."""
        raise NotImplementedError(f"data set {self.name!r} has no molecular graphs")

    def structures(
        self,
        split: str = "train",
        *,
        hydrogens: bool = False,
        limit: int | None = None,
        cache: bool = True,
    ) -> GraphDataset:
        """3D graphs of one split: a :class:`~..featurize.GraphDataset` with ``positions``."""
        raise UserInputError(
            f"data set {self.name!r} has no 3D structures; set task.data.dataset to one that has "
            f"(available: {', '.join(n for n in dataset_names() if get_dataset(n).has_3d)})"
        )

    def smiles(self, split: str = "train") -> list[str]:
        """The SMILES of one split, for novelty (made canonical by the caller)."""
        raise NotImplementedError(f"data set {self.name!r} lists no SMILES")

    def benchmark_metrics(self, smiles: list[str | None]) -> dict[str, Any]:
        """The data set's own benchmark metrics of generated SMILES (None: invalid), added to
        an evaluation's ``metrics.json`` under the data set's name. Default: none."""
        return {}

    @property
    def has_3d(self) -> bool:
        return type(self).structures is not MoleculeDataset.structures


def dataset_names() -> list[str]:
    """The data sets of this package (its public modules)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get_dataset(name: str) -> MoleculeDataset:
    """The data set called ``name`` (a module of this package, or a dotted module path).

    Raises
    ------
    UserInputError
        No such data set, or its module defines no ``DATASET``.
    """
    module_name = name if "." in name else f"{__name__}.{name}"
    if "." not in name and name not in dataset_names():
        raise UserInputError(
            f"unknown molecule data set {name!r}; available: {', '.join(dataset_names())} "
            "(or the dotted path of a module that defines DATASET)"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise UserInputError(
            f"molecule data set {name!r}: cannot import it: {err}; check task.data.dataset"
        ) from None
    dataset = getattr(module, "DATASET", None)
    if not isinstance(dataset, MoleculeDataset):
        raise UserInputError(
            f"molecule data set module {module_name} defines no DATASET "
            "(a MoleculeDataset instance); check task.data.dataset"
        )
    return dataset
