"""A pixel policy end to end at CI size on the real ``multimodal`` task: demonstrations are
collected with their camera frames, training reads them lazily, evaluation renders the same
camera, the card names the modality, and a data set without the cameras is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import train_in_private_cache

from sci_diffusion.config import compose
from sci_diffusion.envs.demos import DemoFormatError, collect_demos
from sci_diffusion.train.evaluate import evaluate_run
from sci_diffusion.train.trainer import train

PIXELS = [
    "task=multimodal",
    "task.obs=pixels+proprio",
    "task.image_size=24",
    "task.data.episodes=4",
    "task.data.progress=false",
    "task.eval.videos=1",
    "task.eval.latency_repeats=2",
    "trainer.max_steps=6",
    "trainer.checkpoint_every=6",
    "trainer.batch_size=8",
    "trainer.progress=false",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    yield from train_in_private_cache(tmp_path_factory, PIXELS, "pixels")


def test_pixel_policy_evaluates_from_rendered_frames_with_and_without_workers(run: Path) -> None:
    tables = []
    for workers in (0, 1):
        overrides = ["task=multimodal", "episodes=2", f"task.eval.workers={workers}"]
        cfg, _ = compose(overrides)
        metrics = evaluate_run(run, cfg, overrides, out_dir=run / "eval" / f"w{workers}")
        assert metrics["episodes"] == 2
        assert metrics["observation_modality"] == "pixels+proprio"
        assert metrics["cameras"] == {"top": [24, 24, 3]}
        assert metrics["chunk_latency_ms"] > 0
        tables.append(json.loads((run / "eval" / f"w{workers}" / "episodes.json").read_text()))
    assert tables[0] == tables[1]  # worker processes render and step the same episodes
    card = json.loads((run / "card.json").read_text())
    modality = card["policy"]["observation_modality"]
    assert "camera(s) top at 24x24" in modality and "random crop 0.9" in modality
    assert "proprioception" in modality


def test_a_data_set_without_the_cameras_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SCI_DIFFUSION_CACHE", str(tmp_path / "cache"))
    demos = tmp_path / "state_demos"
    collect_demos("multimodal", 2, demos, progress=False)
    cfg, _ = compose([*PIXELS, f"task.data.demos={demos}"])
    with pytest.raises(DemoFormatError, match=r"cameras: task.obs=pixels\+proprio needs camera "
                                              r"'top' at \[24, 24, 3\].*no camera frames"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
