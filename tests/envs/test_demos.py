"""Demonstration data sets: collect/load round trip, validation, atomicity, npz import, videos,
CLI. Budget: a few seconds on 2 cores (multimodal episodes take ~0.1 s each)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import sci_diffusion.envs  # noqa: F401  (chooses the headless GL backend before mujoco loads)

pytest.importorskip("gymnasium")
pytest.importorskip("mujoco")
h5py = pytest.importorskip("h5py")

from sci_diffusion.cli import main  # noqa: E402
from sci_diffusion.envs import demos as demos_mod  # noqa: E402
from sci_diffusion.envs.demos import (  # noqa: E402
    DEMOS_FILE,
    META_FILE,
    DemoFormatError,
    collect_demos,
    import_npz_folder,
    load_demos,
)
from sci_diffusion.envs.registry import ENV_TASKS, get_task  # noqa: E402


@pytest.fixture(scope="module")
def multimodal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demos") / "multimodal"
    collect_demos("multimodal", 5, out, seed=3, progress=False)
    return out


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in (DEMOS_FILE, META_FILE):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_registry_names_and_unknown_task() -> None:
    assert set(ENV_TASKS) == {"multimodal", "reacher", "pusher", "metaworld"}
    assert ENV_TASKS["pusher"].max_steps == 300
    with pytest.raises(ValueError, match="available: multimodal, reacher, pusher, metaworld"):
        get_task("nope")


def test_round_trip_matches_fresh_rollouts(multimodal_dir: Path) -> None:
    demos = load_demos(multimodal_dir)
    meta = demos.meta
    for key in (
        "env_id",
        "task",
        "episodes",
        "expert_success_rate",
        "obs_dim",
        "action_dim",
        "action_low",
        "action_high",
        "seed_start",
        "seed_end",
        "versions",
        "date",
        "format_version",
    ):
        assert key in meta, key
    assert meta["env_id"] == "sci_diffusion/MultimodalReach-v0"
    assert (meta["episodes"], meta["seed_start"], meta["seed_end"]) == (5, 3, 7)
    assert {"sci_diffusion", "mujoco", "gymnasium", "numpy", "h5py"} <= set(meta["versions"])
    assert len(demos) == 5
    assert list(demos.seeds) == [3, 4, 5, 6, 7]
    assert meta["expert_success_rate"] == pytest.approx(demos.success.mean())

    # An independent in-memory rollout with the same seeds gives the same arrays.
    import gymnasium as gym

    from sci_diffusion.envs.experts.multimodal import MultimodalReachExpert

    env, expert = gym.make("sci_diffusion/MultimodalReach-v0"), MultimodalReachExpert()
    for i, seed in enumerate(range(3, 8)):
        obs, _ = env.reset(seed=seed)
        expert.reset(seed)
        observations, actions, rewards, done, info = [obs], [], [], False, {}
        while not done:
            action = expert.act(obs, env)
            obs, reward, term, trunc, info = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            done = term or trunc
        assert demos.obs[i].dtype == np.float32 and demos.actions[i].dtype == np.float32
        np.testing.assert_array_equal(demos.obs[i], np.asarray(observations, np.float32))
        np.testing.assert_array_equal(demos.actions[i], np.asarray(actions, np.float32))
        np.testing.assert_allclose(demos.rewards[i], rewards, rtol=1e-6)
        assert demos.lengths[i] == len(actions)
        assert demos.success[i] == bool(info["is_success"])
    env.close()


def test_truncated_file_is_reported(multimodal_dir: Path, tmp_path: Path) -> None:
    d = _copy(multimodal_dir, tmp_path / "d")
    data = (d / DEMOS_FILE).read_bytes()
    (d / DEMOS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(DemoFormatError, match=r"demos\.hdf5.*(truncated|corrupt)"):
        load_demos(d)


def test_episode_count_mismatch_is_reported(multimodal_dir: Path, tmp_path: Path) -> None:
    d = _copy(multimodal_dir, tmp_path / "d")
    meta = json.loads((d / META_FILE).read_text())
    meta["episodes"] = 6
    (d / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(DemoFormatError, match=r"holds 5 episodes but meta\.json says 6"):
        load_demos(d)


def test_wrong_dtype_is_reported(multimodal_dir: Path, tmp_path: Path) -> None:
    d = _copy(multimodal_dir, tmp_path / "d")
    with h5py.File(d / DEMOS_FILE, "r+") as f:
        actions = f["episodes/000002/actions"][()]
        del f["episodes/000002/actions"]
        f["episodes/000002"].create_dataset("actions", data=actions.astype(np.float64))
    with pytest.raises(DemoFormatError, match="episode 000002: actions has dtype float64"):
        load_demos(d)


def test_missing_files_and_unknown_version(multimodal_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DemoFormatError, match=r"meta\.json: file not found"):
        load_demos(tmp_path / "nothing")
    d = _copy(multimodal_dir, tmp_path / "d")
    meta = json.loads((d / META_FILE).read_text())
    meta["format_version"] = 99
    (d / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(DemoFormatError, match="unknown format_version 99"):
        load_demos(d)


def test_no_partial_output_when_collection_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sci_diffusion.envs.experts.multimodal import MultimodalReachExpert

    calls = {"n": 0}
    original = MultimodalReachExpert.reset

    def reset(self: MultimodalReachExpert, seed: int | None = None) -> None:
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("expert broke")
        original(self, seed)

    monkeypatch.setattr(MultimodalReachExpert, "reset", reset)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="expert broke"):
        collect_demos("multimodal", 4, out, render=1, progress=False)
    assert not out.exists() or list(out.iterdir()) == []


def test_no_partial_output_when_writing_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(path: Path, data: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(demos_mod, "_write_json_tmp", broken)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        collect_demos("multimodal", 2, out, progress=False)
    assert list(out.iterdir()) == []


def _npz_episode(path: Path, t: int, seed: int, **extra: object) -> None:
    rng = np.random.default_rng(seed)
    arrays = {"obs": rng.normal(size=(t + 1, 4)), "actions": rng.uniform(-1, 1, (t, 2))}
    arrays.update(extra)
    np.savez(path, **arrays)


def test_npz_import_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _npz_episode(src / "a.npz", 7, 0, rewards=np.arange(7.0), success=np.array(True))
    _npz_episode(src / "b.npz", 4, 1, success=np.array(False))
    meta = import_npz_folder(src, tmp_path / "out", env_id="MyEnv-v0")
    assert (meta["episodes"], meta["expert_success_rate"]) == (2, 0.5)
    demos = load_demos(tmp_path / "out")
    with np.load(src / "a.npz") as z:
        np.testing.assert_array_equal(demos.obs[0], z["obs"].astype(np.float32))
        np.testing.assert_array_equal(demos.actions[0], z["actions"].astype(np.float32))
    np.testing.assert_array_equal(demos.rewards[0], np.arange(7.0, dtype=np.float32))
    np.testing.assert_array_equal(demos.rewards[1], np.zeros(4, np.float32))
    assert list(demos.success) == [True, False] and list(demos.lengths) == [7, 4]
    assert demos.meta["env_id"] == "MyEnv-v0"


def test_npz_import_reports_bad_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _npz_episode(src / "good.npz", 5, 0)
    np.savez(src / "no_actions.npz", obs=np.zeros((3, 4)))
    np.savez(
        src / "pickled.npz", obs=np.zeros((3, 4)), actions=np.array([{"a": 1}, None], dtype=object)
    )
    out = tmp_path / "out"
    with pytest.raises(DemoFormatError) as err:
        import_npz_folder(src, out, env_id="MyEnv-v0")
    message = str(err.value)
    assert "2 bad file(s)" in message
    assert "no_actions.npz: missing key(s) actions" in message
    assert "pickled.npz: contains an object (pickled) array" in message
    assert "good.npz" not in message
    assert not out.exists()


def test_render_writes_a_readable_video(tmp_path: Path) -> None:
    iio = pytest.importorskip("imageio.v3")
    meta = collect_demos("multimodal", 2, tmp_path, render=1, progress=False)
    assert len(meta["videos"]) == 1
    video = tmp_path / meta["videos"][0]
    assert video.suffix in (".mp4", ".gif") and video.stat().st_size > 0
    frame = iio.imread(video, index=0)
    assert frame.ndim == 3 and frame.shape[-1] in (3, 4) and frame.std() > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([DEMOS_FILE, META_FILE, video.name])


def test_cli_demos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["demos", "task=multimodal", "episodes=2", f"out={out}", "progress=false"]) == 0
    assert "2 episodes, expert success 100%" in capsys.readouterr().out
    assert len(load_demos(out)) == 2
    assert main(["demos", "task=multimodal", "episodes=two", f"out={out}"]) == 2
    assert main(["demos", "task=multimodal", "episodes=2", f"out={out}", "bogus=1"]) == 2
    assert main(["demos", "task=nope", "episodes=2", f"out={tmp_path / 'x'}"]) == 2
    assert main(["demos", "episodes=2"]) == 2
    assert "task=..." in capsys.readouterr().err
    for bad in ("action_noise=-0.1", "action_noise=lots", "action_noise=nan"):
        target = tmp_path / "noisy"
        assert main(["demos", "task=multimodal", "episodes=1", f"out={target}", bad]) == 2
        assert "action_noise" in capsys.readouterr().err
        assert not target.exists()
    noisy = tmp_path / "noisy"
    args = ["demos", "task=multimodal", "episodes=1", f"out={noisy}", "action_noise=0.1"]
    assert main([*args, "progress=false"]) == 0
    assert load_demos(noisy).meta["action_noise"] == 0.1


class _RecordingExpert:
    """The real expert, remembering every clean action it returned."""

    def __init__(self, expert) -> None:
        self.expert, self.returned = expert, []

    def reset(self, seed=None) -> None:
        self.expert.reset(seed)

    def act(self, obs, env):
        action = self.expert.act(obs, env)
        self.returned.append(np.array(action))
        return action


class _RecordingEnv:
    """The real env, remembering every action it executed."""

    def __init__(self, env) -> None:
        self.env, self.executed = env, []
        self.action_space = env.action_space

    def reset(self, **kwargs):
        return self.env.reset(**kwargs)

    def step(self, action):
        self.executed.append(np.array(action))
        return self.env.step(action)


def _noisy_rollout(noise: float, seed: int = 4) -> tuple[dict, np.ndarray, np.ndarray]:
    spec = get_task("multimodal")
    env, expert = _RecordingEnv(spec.make_env(0)), _RecordingExpert(spec.make_expert())
    record = demos_mod.rollout(env, expert, spec, seed, action_noise=noise)
    env.env.close()
    return record, np.stack(expert.returned), np.stack(env.executed)


def test_action_noise_executes_perturbed_actions_but_records_clean_labels() -> None:
    clean, labels0, executed0 = _noisy_rollout(0.0)
    np.testing.assert_array_equal(executed0, labels0)  # no noise: what is recorded is executed
    record, labels, executed = _noisy_rollout(0.2)
    np.testing.assert_array_equal(record["actions"], labels)  # labels: the expert's clean output
    space = get_task("multimodal").make_env(0).action_space
    low, high = space.low, space.high
    assert (executed >= low).all() and (executed <= high).all()
    # sigma 0.2 of the half range: the executed actions differ by about that much on average.
    gap = np.abs(executed - labels).mean() / ((high - low) / 2).mean()
    assert 0.05 < gap < 0.3, gap
    assert not np.allclose(record["obs"][: len(clean["obs"])][1:5], clean["obs"][1:5])
    again, _, executed_again = _noisy_rollout(0.2)  # seeded by the episode seed
    np.testing.assert_array_equal(executed_again, executed)
    np.testing.assert_array_equal(again["obs"], record["obs"])


def test_action_noise_is_recorded_and_validated(tmp_path: Path) -> None:
    meta = collect_demos("multimodal", 2, tmp_path / "noisy", action_noise=0.1, progress=False)
    assert meta["action_noise"] == 0.1
    assert json.loads((tmp_path / "noisy" / META_FILE).read_text())["action_noise"] == 0.1
    with pytest.raises(ValueError, match="action_noise must be >= 0"):
        collect_demos("multimodal", 1, tmp_path / "bad", action_noise=-0.1, progress=False)
    assert not (tmp_path / "bad").exists()


def test_images_are_optional_checked_and_read_on_request(tmp_path: Path) -> None:
    out = tmp_path / "pixels"
    meta = collect_demos("multimodal", 1, out, images=True, progress=False)
    assert meta["cameras"] == {"render": [240, 240, 3]} and meta["fps"] == 20
    assert load_demos(out).images == []  # state-only loading never reads the frames
    demos = load_demos(out, images=True)
    frames = demos.images[0]["render"]
    assert frames.dtype == np.uint8 and frames.shape == (len(demos.obs[0]), 240, 240, 3)
    with h5py.File(out / DEMOS_FILE, "r") as f:
        ds = f["episodes/000000/images/render"]
        assert ds.compression == "gzip" and ds.chunks == (1, 240, 240, 3)
    with h5py.File(out / DEMOS_FILE, "a") as f:  # one frame short of the observations
        g = f["episodes/000000/images"]
        short = g["render"][1:]
        del g["render"]
        g["render"] = short
    with pytest.raises(DemoFormatError, match=r"episode 000000: images/render is uint8"):
        load_demos(out)
