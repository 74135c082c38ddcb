"""Tasks are found by their config's ``task.kind``: a new task of an existing kind needs no
registry line, and run configs saved before ``task.kind`` existed still resolve."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf, open_dict

from sci_diffusion.config import compose
from sci_diffusion.tasks import KINDS, build_task, task_kind, task_names
from sci_diffusion.tasks.toy2d import Toy2DTask


@pytest.mark.parametrize("name", task_names())
def test_every_task_config_names_a_known_kind(name):
    cfg, _ = compose([f"task={name}"])
    assert cfg.task.name == name
    assert cfg.task.kind in KINDS


def test_a_renamed_task_of_a_known_kind_builds_without_a_registry_line():
    cfg, _ = compose(["task=toy2d", "task.data.size=64"])
    with open_dict(cfg):
        cfg.task.name = "my_toy"
    assert isinstance(build_task(cfg), Toy2DTask)


def test_saved_configs_without_kind_resolve_by_name_and_unknown_ones_are_refused():
    old = OmegaConf.create({"task": {"name": "qm9_3d_h"}})
    assert task_kind(old) == "molecule_3d"
    with pytest.raises(ValueError, match=r"has no task\.kind; set task\.kind to one of"):
        task_kind(OmegaConf.create({"task": {"name": "mine"}}))
    with pytest.raises(ValueError, match=r"unknown task\.kind 'nope'; available: toy2d"):
        task_kind(OmegaConf.create({"task": {"name": "mine", "kind": "nope"}}))
