"""Embedded default checkpoints: ``export_embedded`` / ``sci-diffusion export`` write a slim,
verified copy of a run; ``sci-diffusion sample`` without ``run=`` samples it into ``out=`` and
never writes into it; a modified copy is refused; the quickstart reports screened molecules.

One tiny ``qm9_graph`` run (200 real QM9 graphs, 3 steps) serves every test."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch

from sci_diffusion import quickstart
from sci_diffusion.cli import main
from sci_diffusion.config import compose
from sci_diffusion.io.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from sci_diffusion.train import embedded
from sci_diffusion.train.embedded import (
    available_embedded,
    embedded_run,
    export_embedded,
)
from sci_diffusion.train.evaluate import evaluate_run
from sci_diffusion.train.trainer import train

TINY = [
    "task=qm9_graph",
    "task.data.limit=200",
    "model.layers=1",
    "model.node_dim=16",
    "model.edge_dim=8",
    "model.global_dim=8",
    "model.heads=2",
    "trainer.batch_size=8",
    "trainer.max_steps=3",
    "trainer.checkpoint_every=3",
    "trainer.max_minutes=null",
    "trainer.progress=false",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh data cache (featurized graphs, the QM9 split) shared by the module's tests."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Path:
    mp = pytest.MonkeyPatch()
    mp.setenv("SCI_DIFFUSION_CACHE", str(cache))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_dir = tmp_path_factory.mktemp("qm9_graph_run")
        cfg, _ = compose(TINY)
        train(cfg, run_dir)
        yield run_dir
    finally:
        torch.set_num_threads(threads)
        mp.undo()


@pytest.fixture(scope="module")
def exported(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<root>/qm9_graph``: the slim copy of ``run`` (``root`` stands for EMBEDDED_DIR)."""
    root = tmp_path_factory.mktemp("embedded")
    return export_embedded(run, root / "qm9_graph")


@pytest.fixture
def package_dir(exported: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """EMBEDDED_DIR pointed at the exported copy; the data cache of ``run``."""
    monkeypatch.setattr(embedded, "EMBEDDED_DIR", exported.parent)
    monkeypatch.setenv("SCI_DIFFUSION_CACHE", str(cache))
    return exported.parent


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}  # fmt: skip


def _set_read_only(root: Path, read_only: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222 if read_only else mode | stat.S_IWUSR)


# -- export ----------------------------------------------------------------------------------


def test_slim_checkpoint_holds_ema_weights_only(run: Path, exported: Path) -> None:
    (source,) = list_checkpoints(run / "checkpoints")
    (slim,) = list_checkpoints(exported / "checkpoints")
    assert slim.name == source.name
    assert slim.stat().st_size < 0.35 * source.stat().st_size
    tensors, meta = load_checkpoint(slim)
    assert tensors and all(name.startswith("ema.") for name in tensors)
    assert all(t.dtype == torch.float32 for t in tensors.values() if t.is_floating_point())
    full, _ = load_checkpoint(source)
    assert sum(name.startswith("optim.") for name in full) > 0  # what was dropped
    assert all(torch.equal(tensors[k], full[k]) for k in tensors)
    assert "optimizer" not in meta and "rng" not in meta
    assert meta["step"] == 3 and meta["config"]["task"]["name"] == "qm9_graph"
    record = meta["embedded"]
    assert record["source_checkpoint"] == source.name and record["task"] == "qm9_graph"
    assert (exported / "config.yaml").is_file()
    card = (exported / "model_card.md").read_text()
    assert "Embedded default checkpoint" in card and "step 3" in card
    assert "# Model card: qm9_graph" in card  # the run's own card follows the header


def test_export_refuses_to_overwrite_unless_forced(run: Path, exported: Path) -> None:
    with pytest.raises(ValueError, match="force"):
        export_embedded(run, exported)
    before = (exported / "model_card.md").read_text()
    assert export_embedded(run, exported, force=True) == exported
    assert (exported / "model_card.md").read_text().splitlines()[2:] == before.splitlines()[2:]
    leftovers = [p.name for p in exported.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    with pytest.raises(ValueError, match="toy2d"):
        export_embedded(run, exported.parent / "other", task="toy2d")
    assert not (exported.parent / "other").exists()


def test_export_command_writes_the_package_default(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(embedded, "EMBEDDED_DIR", tmp_path / "embedded")
    assert available_embedded() == [] and embedded_run("qm9_graph") is None
    assert main(["export", f"run={run}", "task=qm9_graph"]) == 0
    assert "qm9_graph" in capsys.readouterr().out
    assert embedded_run("qm9_graph") == tmp_path / "embedded" / "qm9_graph"
    assert available_embedded() == ["qm9_graph"]
    assert main(["export", f"run={run}"]) == 2  # exists: needs force=true
    assert "force=true" in capsys.readouterr().err
    assert main(["export", f"run={run}", "force=true"]) == 0
    assert main(["export"]) == 2
    assert "run=" in capsys.readouterr().err


def test_export_can_set_the_sampler_the_copy_samples_with(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``export ... time_spacing=cubic steps=7`` writes those settings into the copy's config
    (what ``sample`` composes from) and records them; the run's own config is untouched, and
    a re-export of the copy keeps them."""
    monkeypatch.setattr(embedded, "EMBEDDED_DIR", tmp_path / "embedded")
    assert main(["export", f"run={run}", "time_spacing=cubic", "steps=7"]) == 0
    copy = tmp_path / "embedded" / "qm9_graph"
    (slim,) = list_checkpoints(copy / "checkpoints")
    _, meta = load_checkpoint(slim)
    assert meta["config"]["sampler"]["time_spacing"] == "cubic"
    assert meta["config"]["sampler"]["steps"] == 7
    assert meta["embedded"]["sampler_overrides"] == {"time_spacing": "cubic", "steps": 7}
    assert "time_spacing: cubic" in (copy / "config.yaml").read_text()
    assert "`sampler.time_spacing=cubic`" in (copy / "model_card.md").read_text()
    (source,) = list_checkpoints(run / "checkpoints")
    assert load_checkpoint(source)[1]["config"]["sampler"].get("time_spacing") != "cubic"
    again = export_embedded(copy, tmp_path / "again")
    _, meta = load_checkpoint(list_checkpoints(again / "checkpoints")[0])
    assert meta["config"]["sampler"]["time_spacing"] == "cubic"
    capsys.readouterr()
    assert main(["export", f"run={run}", "force=true", "time_spacing=log"]) == 2
    assert "time_spacing" in capsys.readouterr().err
    assert main(["export", f"run={run}", "force=true", "steps=0"]) == 2


# -- sample ----------------------------------------------------------------------------------


def test_sample_without_run_uses_the_embedded_default_read_only(
    package_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "samples"
    before = _snapshot(package_dir)
    _set_read_only(package_dir, True)
    try:
        assert main(["sample", "n=12", "steps=3", f"out={out}"]) == 0
    finally:
        _set_read_only(package_dir, False)
    assert _snapshot(package_dir) == before  # nothing written, nothing touched
    stdout = capsys.readouterr().out
    assert "embedded default checkpoint" in stdout and f"samples written to {out}" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_samples"] == 12 and metrics["steps"] == 3
    assert metrics["embedded_default"]["task"] == "qm9_graph"
    assert (out / "candidates.csv").is_file() and (out / "grid.svg").is_file()


def test_flipped_byte_in_the_embedded_checkpoint_is_refused(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "embedded"
    shutil.copytree(exported, root / "qm9_graph")
    (path,) = list_checkpoints(root / "qm9_graph" / "checkpoints")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="hash mismatch"):
        load_checkpoint(path)
    monkeypatch.setattr(embedded, "EMBEDDED_DIR", root)
    out = tmp_path / "samples"
    assert main(["sample", "n=4", "steps=2", f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert "embedded qm9_graph default checkpoint is damaged" in err
    assert "hash mismatch" in err
    assert not out.exists()


def test_sample_for_a_task_without_a_default_is_a_usage_error(
    package_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "samples"
    assert main(["sample", "task=toy2d", "n=5", f"out={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "toy2d" in err and "qm9_graph" in err and "run=<run dir>" in err
    assert not out.exists()


def test_sample_without_out_is_a_usage_error(
    package_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    before = _snapshot(package_dir)
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert main(["sample", "n=5"]) == 2
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert "out=<dir>" in err and "run=" in err
    assert list(tmp_path.iterdir()) == [] and _snapshot(package_dir) == before
    assert main(["sample", "n=5", f"out={package_dir / 'qm9_graph' / 'x'}"]) == 2
    assert "inside the package" in capsys.readouterr().err


def test_evaluating_an_embedded_default_needs_an_out_dir(package_dir: Path) -> None:
    run_dir = package_dir / "qm9_graph"
    overrides = ["task=qm9_graph", "n=2", "steps=1"]
    cfg, _ = compose(overrides)
    before = _snapshot(package_dir)
    with pytest.raises(ValueError, match="out="):
        evaluate_run(run_dir, cfg, overrides)
    assert _snapshot(package_dir) == before


# -- quickstart ------------------------------------------------------------------------------


def test_quickstart_molecules_section(
    package_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quickstart, "MOLECULE_SAMPLES", 10)
    monkeypatch.setattr(quickstart, "MOLECULE_STEPS", 2)
    text = "\n".join(quickstart._molecules_section(tmp_path))
    for needle in ("validity (literature)", "validity (strict)", "uniqueness", "novelty",
                   "/ 10 |", "molecules/grid.png", "molecules/candidates.csv"):  # fmt: skip
        assert needle in text, needle
    metrics = json.loads((tmp_path / "molecules" / "metrics.json").read_text())
    if metrics["n_candidates"] < 10:
        assert "Top rejection reasons" in text
    assert (tmp_path / "molecules" / "grid.svg").is_file()
    assert (tmp_path / "molecules" / "grid.png").read_bytes()[:4] == b"\x89PNG"

    monkeypatch.setattr(embedded, "EMBEDDED_DIR", tmp_path / "none")
    lines = [ln for ln in quickstart._molecules_section(tmp_path) if ln and ln[0] != "#"]
    assert len(lines) == 1 and "no embedded `qm9_graph` checkpoint" in lines[0]


def test_conditional_runs_embed_beside_the_unconditional_default() -> None:
    from sci_diffusion.train.embedded import (
        embedded_for_sampling,
        embedded_name,
        embedded_run,
    )

    assert embedded_name({"task": {"name": "qm9_graph", "condition": []}}) == "qm9_graph"
    assert embedded_name({"task": {"name": "qm9_graph", "condition": ["qed"]}}) == (
        "qm9_graph_conditional"
    )
    # without targets sampling always uses the unconditional default
    assert embedded_for_sampling("qm9_graph", conditional=False) == embedded_run("qm9_graph")
    # with targets: the conditional default where one ships, else the task's own (which then
    # refuses the targets with a clear message: tests/tasks/test_property_conditioning.py)
    expected = embedded_run("qm9_graph_conditional") or embedded_run("qm9_graph")
    assert embedded_for_sampling("qm9_graph", conditional=True) == expected
    assert embedded_for_sampling("qm9_3d", conditional=True) == embedded_run("qm9_3d")


def test_targets_out_of_the_box_use_the_conditional_default(tmp_path: Path) -> None:
    """README's promise: ``sample target.qed=0.6 target.logp=1.5 n=... out=...`` works on a
    fresh install (the embedded qm9_graph_conditional default), records per candidate."""
    import json

    from sci_diffusion.cli import main
    from sci_diffusion.train.embedded import embedded_run

    if embedded_run("qm9_graph_conditional") is None:
        pytest.skip("no embedded conditional default in this installation")
    out = tmp_path / "targets"
    assert main(["sample", "target.qed=0.6", "target.logp=1.5", "n=12", "steps=4",
                 f"out={out}"]) == 0  # fmt: skip
    report = json.loads((out / "metrics.json").read_text())["conditioning"]
    assert set(report["properties"]) == {"qed", "logp"}
    assert (out / "candidates_conditioning.csv").is_file()
