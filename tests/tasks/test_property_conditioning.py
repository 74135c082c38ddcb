"""Property-conditioned ``qm9_graph`` at CI size: train a few steps with ``task.condition``,
sample with targets, and check the records, the report and every refusal (issue 16)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from sci_diffusion.cli import main
from sci_diffusion.config import compose
from sci_diffusion.train.trainer import train

TINY = [
    "task=qm9_graph",
    "task.data.limit=300",
    "task.condition=[qed,logp]",
    "model.layers=1",
    "model.node_dim=32",
    "model.edge_dim=16",
    "model.global_dim=16",
    "model.heads=4",
    "trainer.batch_size=16",
    "trainer.max_steps=10",
    "trainer.checkpoint_every=10",
    "trainer.progress=false",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mp = pytest.MonkeyPatch()
    mp.setenv("SCI_DIFFUSION_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        cfg, _ = compose(TINY)
        run_dir = tmp_path_factory.mktemp("qm9_graph_cond")
        train(cfg, run_dir)
        yield run_dir
    finally:
        mp.undo()


def test_card_names_the_conditioning(run: Path):
    card = json.loads((run / "card.json").read_text())
    assert "qed" in card["model"]["conditioning"] and "logp" in card["model"]["conditioning"]
    assert "classifier-free" in card["model"]["conditioning"]


def test_targets_reach_every_candidate_record_and_the_report(run: Path, tmp_path: Path):
    out = tmp_path / "guided"
    args = ["sample", f"run={run}", "n=24", "steps=4", f"out={out}", "target.qed=0.45",
            "target.logp=0.5", "guidance.scale=2"]  # fmt: skip
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    report = metrics["conditioning"]
    assert report["scale"] == 2.0
    for name, target in (("qed", 0.45), ("logp", 0.5)):
        figures = report["properties"][name]
        assert figures["target"] == target
        assert figures["n"] == metrics["n_candidates"]
        assert "unconditional" in figures and figures["unconditional"]["n"] >= 0
    with (out / "candidates_conditioning.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == metrics["n_candidates"]
    for row in rows:  # achieved values recomputed independently from the SMILES
        from rdkit import Chem
        from rdkit.Chem import QED

        mol = Chem.MolFromSmiles(row["canonical_smiles"])
        assert float(row["achieved_qed"]) == pytest.approx(QED.qed(mol), abs=1e-5)
        assert float(row["error_qed"]) == pytest.approx(float(row["achieved_qed"]) - 0.45,
                                                        abs=1e-5)  # fmt: skip
    if rows:
        mae = sum(abs(float(r["error_qed"])) for r in rows) / len(rows)
        assert report["properties"]["qed"]["mae"] == pytest.approx(mae, abs=1e-5)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("target.foo=1", "unknown property"),
        ("target.mw=100", "not conditioned on mw"),
        ("target.qed=nan", "finite"),
    ],
)
def test_bad_targets_fail_before_sampling_and_write_nothing(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, message: str
):
    out = tmp_path / "bad"
    assert main(["sample", f"run={run}", "n=4", "steps=2", f"out={out}", override]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_target_outside_the_training_range_warns(run: Path, tmp_path: Path):
    out = tmp_path / "far"
    with pytest.warns(UserWarning, match="outside the training range"):
        assert main(["sample", f"run={run}", "n=4", "steps=2", f"out={out}",
                     "target.logp=40", "task.eval.compare_unconditional=false"]) == 0  # fmt: skip


def test_a_target_for_an_unconditional_checkpoint_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "uncond"
    assert main(["sample", "task=qm9_3d", "n=4", f"out={out}", "target.qed=0.5"]) == 2
    err = capsys.readouterr().err
    assert "not conditioned on qed" in err and "unconditional" in err
    assert not out.exists()


def test_condition_dropout_drops_properties_and_whole_rows():
    from sci_diffusion.tasks.property_conditioning import PropertyConditioning

    cond = PropertyConditioning(["qed", "logp"], 0.3, "qm9")
    cond._values = torch.arange(20_000.0).reshape(10_000, 2)
    values = cond.batch_values(torch.arange(10_000), torch.Generator().manual_seed(0))
    dropped = values.isnan()
    # per property: 1 - (1 - 0.3)^2 = 0.51 (own draw or the row's); 10,000 draws: sd 0.005
    assert dropped.float().mean(0).sub(0.51).abs().max() < 0.02
    both = dropped.all(1).float().mean()  # 0.3 + 0.7 * 0.09 = 0.363
    assert abs(float(both) - 0.363) < 0.02
    kept = ~dropped
    assert torch.equal(values[kept], cond._values[kept])


def test_unknown_condition_name_lists_the_valid_ones():
    from sci_diffusion.chem.conditioning import ConditionError
    from sci_diffusion.tasks.property_conditioning import PropertyConditioning

    with pytest.raises(ConditionError, match="valid: qed, logp"):
        PropertyConditioning(["qedd"], 0.1, "qm9")
    with pytest.raises(ConditionError, match="QM9 DFT label"):
        PropertyConditioning(["alpha"], 0.1, "moses")
    assert math.isclose(PropertyConditioning(["qed"], 0.0, "qm9").dropout, 0.0)


def test_a_conditional_3d_model_trains_and_samples_towards_targets(tmp_path: Path):
    """qm9_3d takes the same conditioning (properties appended to every node's EGNN input)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SCI_DIFFUSION_CACHE", str(tmp_path / "cache"))
    try:
        cfg, _ = compose(["task=qm9_3d", "task.data.limit=200", "task.condition=[qed,alpha]",
                          "model.hidden=16", "model.n_layers=1", "trainer.batch_size=8",
                          "trainer.max_steps=4", "trainer.checkpoint_every=4",
                          "trainer.progress=false"])  # fmt: skip
        run_dir = tmp_path / "run"
        train(cfg, run_dir)
        out = tmp_path / "guided"
        assert main(["sample", f"run={run_dir}", "n=6", "steps=3", f"out={out}",
                     "target.qed=0.45", "guidance.scale=1.5"]) == 0  # fmt: skip
    finally:
        mp.undo()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["conditioning"]["properties"]["qed"]["target"] == 0.45
    assert "geometry" in metrics  # the 3D report is kept beside the conditioning one
    assert (out / "candidates_conditioning.csv").exists()


def test_predictor_guidance_steers_an_unconditional_checkpoint(run: Path, tmp_path: Path):
    """guidance.method=predictor: a target for a property the predictor predicts is accepted
    even by a checkpoint not conditioned on it; the report names the method."""
    from sci_diffusion.chem.conditioning import property_table
    from sci_diffusion.config import compose as compose_cfg
    from sci_diffusion.tasks import build_task
    from sci_diffusion.tasks.property_predictor import save_predictor, train_property_predictor

    mp = pytest.MonkeyPatch()
    mp.setenv("SCI_DIFFUSION_CACHE", str(tmp_path / "cache"))
    try:
        cfg, _ = compose_cfg(["task=qm9_graph", "task.data.limit=200"])
        task = build_task(cfg)
        rows = torch.arange(200)
        index = task.data().source_index.numpy()
        values = torch.from_numpy(property_table("qm9", "train", index, ["mw"])).float()
        net = train_property_predictor(task, rows, values, ("mw",), steps=3, batch_size=8,
                                       layers=1, node_dim=16, edge_dim=8, global_dim=8,
                                       heads=2)  # fmt: skip
        path = save_predictor(net, tmp_path / "mw.safetensors", {})
    finally:
        mp.undo()
    out = tmp_path / "steered"
    assert main(["sample", f"run={run}", "n=6", "steps=3", f"out={out}", "target.mw=120",
                 "guidance.method=predictor", f"guidance.predictor={path}",
                 "guidance.scale=1"]) == 0  # fmt: skip
    report = json.loads((out / "metrics.json").read_text())["conditioning"]
    assert report["method"].startswith("classifier guidance")
    assert report["properties"]["mw"]["target"] == 120.0
    missing = tmp_path / "none"
    head = ["sample", f"run={run}", "n=2", f"out={missing}", "guidance.method=predictor"]
    assert main([*head, "target.mw=120", f"guidance.predictor={tmp_path}/nope"]) == 2
    assert main([*head, "target.qed=0.5", f"guidance.predictor={path}"]) == 2
    assert not missing.exists()
