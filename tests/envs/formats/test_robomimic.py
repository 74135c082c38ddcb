"""robomimic HDF5 import (envs/formats/robomimic.py) on small files written here with h5py in
robomimic's layout (data/demo_<k>/{obs,next_obs,actions,rewards,dones,states}, num_samples,
env_args, mask/<filter>): what maps where, demo order, filter keys, one clear error per
malformed file, and a set of another env's action dimension refused when training. A few
seconds on 2 cores."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import sci_diffusion.envs  # noqa: F401  (headless GL before mujoco loads)

h5py = pytest.importorskip("h5py")

from sci_diffusion.cli import main  # noqa: E402
from sci_diffusion.envs.demos import load_demos  # noqa: E402
from sci_diffusion.envs.formats import DataFormatError, import_robomimic  # noqa: E402

ENV_ARGS = {"env_name": "Lift", "type": 1, "env_kwargs": {"control_freq": 20}}
LENGTHS = {"demo_0": 5, "demo_2": 7, "demo_10": 4}  # numeric order: 0, 2, 10


def _demo_arrays(k: int, n: int, action_dim: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(k)
    return {
        "obs/robot0_eef_pos": rng.normal(size=(n + 1, 3)),
        "obs/object": rng.normal(size=(n + 1, 4)).astype(np.float32),
        "obs/agentview_image": rng.integers(0, 256, (n + 1, 8, 10, 3), dtype=np.uint8),
        "obs/depth": rng.normal(size=(n + 1, 8, 10, 1)).astype(np.float32),  # ignored
        "actions": rng.uniform(-1, 1, (n, action_dim)),
        "rewards": rng.normal(size=n),
    }


def write_robomimic(path: Path, action_dim: int = 7, lengths: dict[str, int] = LENGTHS) -> Path:
    """A robomimic-layout file; obs/<key> holds rows 0..n-1, next_obs/<key> rows 1..n."""
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps(ENV_ARGS)
        data.attrs["total"] = sum(lengths.values())
        for name, n in lengths.items():
            g = data.create_group(name)
            g.attrs["num_samples"] = n
            arrays = _demo_arrays(int(name[5:]), n, action_dim)
            for key, value in arrays.items():
                if key.startswith("obs/"):
                    g.create_dataset(key, data=value[:n])
                    g.create_dataset("next_" + key, data=value[1:])
                else:
                    g.create_dataset(key, data=value)
            g.create_dataset("dones", data=np.eye(1, n, n - 1)[0])
            g.create_dataset("states", data=np.zeros((n, 32)))
        f.create_dataset("mask/train", data=np.array([b"demo_0", b"demo_10"]))
    return path


def test_import_maps_obs_actions_rewards_cameras_and_env_args(tmp_path: Path) -> None:
    src = write_robomimic(tmp_path / "lift.hdf5")
    meta = import_robomimic(src, tmp_path / "out")
    demos = load_demos(tmp_path / "out", images=True)
    assert list(demos.lengths) == [5, 7, 4]  # demo_0, demo_2, demo_10
    assert meta["env_id"] == "robomimic/Lift" and meta["robomimic"]["env_args"] == ENV_ARGS
    assert meta["robomimic"]["obs_keys"] == ["object", "robot0_eef_pos"]  # sorted
    assert meta["robomimic"]["cameras"] == ["agentview_image"]
    assert meta["robomimic"]["ignored_obs_keys"] == ["depth"]
    assert meta["expert_success_rate"] is None and (meta["obs_dim"], meta["action_dim"]) == (7, 7)
    for i, (name, n) in enumerate(LENGTHS.items()):
        arrays = _demo_arrays(int(name[5:]), n, 7)
        # o_0..o_{N-1} from obs, o_N from next_obs: N+1 observations as in our own sets
        expected = np.concatenate([arrays["obs/object"], arrays["obs/robot0_eef_pos"]], axis=1)
        np.testing.assert_allclose(demos.obs[i], expected.astype(np.float32))
        np.testing.assert_array_equal(demos.actions[i], arrays["actions"].astype(np.float32))
        np.testing.assert_array_equal(demos.rewards[i], arrays["rewards"].astype(np.float32))
        np.testing.assert_array_equal(demos.images[i]["agentview_image"],
                                      arrays["obs/agentview_image"])  # fmt: skip


def test_filter_key_and_obs_keys(tmp_path: Path) -> None:
    src = write_robomimic(tmp_path / "lift.hdf5")
    meta = import_robomimic(src, tmp_path / "out", obs_keys=["robot0_eef_pos"], filter_key="train")
    demos = load_demos(tmp_path / "out")
    assert list(demos.lengths) == [5, 4] and meta["obs_dim"] == 3 and "cameras" not in meta
    with pytest.raises(DataFormatError, match=r"mask/valid: filter key missing"):
        import_robomimic(src, tmp_path / "x", filter_key="valid")


def _edit(change: Callable[[Any], None]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        with h5py.File(path, "a") as f:
            change(f)

    return apply


def _reshape(f: Any) -> None:
    del f["data/demo_10/obs/object"]
    f["data/demo_10/obs/object"] = np.zeros((4, 5), np.float32)


MALFORMED = [
    ("missing actions", _edit(lambda f: f["data/demo_2"].pop("actions")), "data/demo_2/actions",
     "missing"),
    ("missing obs key", _edit(lambda f: f["data/demo_10/obs"].pop("object")),
     "data/demo_10/obs/object", "dataset missing"),
    ("obs shape", _edit(_reshape), "data/demo_10/obs/object", "shape (4, 5)"),
    ("num_samples", _edit(lambda f: f["data/demo_2"].attrs.modify("num_samples", 9)),
     "data/demo_2.attrs['num_samples']", "shape mismatch"),
    ("missing num_samples", _edit(lambda f: f["data/demo_0"].attrs.pop("num_samples")),
     "data/demo_0.attrs['num_samples']", "attribute missing"),
    ("env_args", _edit(lambda f: f["data"].attrs.modify("env_args", "{not json")),
     "data.attrs['env_args']", "not valid JSON"),
    ("no data", _edit(lambda f: f.pop("data")), "data", "group missing"),
    ("not hdf5", lambda p: p.write_bytes(b"not an hdf5 file"), "file", "not a readable HDF5"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "damage", "field", "problem"), MALFORMED,
                         ids=[m[0] for m in MALFORMED])  # fmt: skip
def test_malformed_file_names_file_and_field(
    tmp_path: Path, name: str, damage, field: str, problem: str
) -> None:
    src = write_robomimic(tmp_path / "lift.hdf5")
    damage(src)
    dest = tmp_path / "dest"
    with pytest.raises(DataFormatError) as err:
        import_robomimic(src, dest)
    assert err.value.path == src and err.value.field == field, str(err.value)
    assert f"{src}: {field}: " in str(err.value) and problem in str(err.value)
    assert not dest.exists()


def test_action_dimension_mismatch_is_refused_at_import_and_at_training(
    tmp_path: Path, capsys
) -> None:
    pytest.importorskip("gymnasium")
    pytest.importorskip("mujoco")
    src = write_robomimic(tmp_path / "lift.hdf5", action_dim=7)
    dest = tmp_path / "checked"
    argv = ["demos", f"import={src}", "format=robomimic", f"out={dest}", "task=multimodal"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data/demo_0/actions: action dimension 7" in err[0], err
    assert "task=multimodal" in err[0] and not dest.exists()
    # imported unchecked, then trained on an env of 2-D actions: refused before any output
    unchecked = tmp_path / "unchecked"
    assert main(["demos", f"import={src}", "format=robomimic", f"out={unchecked}"]) == 0
    run = tmp_path / "run"
    argv = ["train", "task=multimodal", f"task.data.demos={unchecked}", "trainer.max_steps=1",
            f"hydra.run.dir={run}"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "meta.json: action_dim: 7, but task multimodal" in err[-1], err
    assert not run.exists()
