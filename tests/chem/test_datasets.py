"""The molecule data set registry: names from task configs, plugins outside the package."""

from __future__ import annotations

import sys
import textwrap

import pytest

pytest.importorskip("rdkit")

from sci_diffusion.chem.datasets import MoleculeDataset, dataset_names, get_dataset


def test_builtin_data_sets_are_found_by_name():
    assert dataset_names() == ["moses", "qm9"]
    qm9, moses = get_dataset("qm9"), get_dataset("moses")
    assert (qm9.name, qm9.source, moses.source) == ("qm9", "qm9pack package data",
                                                    "molsets package data")  # fmt: skip
    assert qm9.has_3d and not moses.has_3d
    with pytest.raises(ValueError, match=r"'moses' has no 3D structures.*available: qm9"):
        moses.structures("train", limit=5)
    with pytest.raises(ValueError, match="no H"):
        moses.graphs("train", hydrogens=True, limit=5)


def test_unknown_names_list_the_available_ones():
    with pytest.raises(ValueError, match=r"data set .zinc.; available: moses, qm9"):
        get_dataset("zinc")
    with pytest.raises(ValueError, match="cannot import"):
        get_dataset("no_such_package.zinc")


def test_a_data_set_module_outside_the_package_is_a_plugin(tmp_path, monkeypatch):
    package = tmp_path / "labdata"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tiny.py").write_text(textwrap.dedent('''
        from sci_diffusion.chem.datasets import MoleculeDataset
        from sci_diffusion.chem.featurize import QM9_VOCAB, featurize

        class Tiny(MoleculeDataset):
            name, title, source = "tiny", "Tiny", "two SMILES"

            def smiles(self, split="train"):
                return ["CCO", "c1ccccc1"]

            def graphs(self, split="train", *, hydrogens=False, limit=None, cache=True):
                return featurize(enumerate(self.smiles(split)), QM9_VOCAB, source="tiny")

        DATASET = Tiny()
    '''))
    (package / "empty.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        tiny = get_dataset("labdata.tiny")
        assert isinstance(tiny, MoleculeDataset) and len(tiny.graphs()) == 2
        assert not tiny.has_3d
        with pytest.raises(ValueError, match=r"labdata\.empty defines no DATASET"):
            get_dataset("labdata.empty")
    finally:
        for name in ("labdata", "labdata.tiny", "labdata.empty"):
            sys.modules.pop(name, None)
