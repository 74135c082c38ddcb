"""CameraRig and PixelObservations on real MuJoCo envs (software EGL in CI)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from sci_diffusion.envs.cameras import CameraRig, FreeCamera, RenderError, check_frames
from sci_diffusion.envs.pixels import STATE_KEY, PixelSpec, make_env, pixel_spec
from sci_diffusion.envs.registry import ENV_TASKS, get_task
from sci_diffusion.io.errors import UserInputError


@contextlib.contextmanager
def opened(task: str = "multimodal") -> Iterator[Any]:
    """The task's env (no cameras of its own), closed afterwards."""
    env = get_task(task).make_env(0)
    try:
        yield env
    finally:
        env.close()


def test_rig_renders_the_named_camera_and_follows_the_state():
    with opened() as env:
        env.reset(seed=3)
        u = env.unwrapped
        rig = CameraRig(u.model, u.data, {"top": None}, 32, 48)
        first = rig.render()["top"]
        assert first.dtype == np.uint8 and first.shape == (32, 48, 3)
        again = rig.render()["top"]
        assert np.array_equal(first, again)  # same state, same frame
        assert again is not first  # a fresh array per frame
        for _ in range(10):
            env.step(np.array([1.0, 1.0], np.float32))
        moved = rig.render()["top"]
        assert not np.array_equal(first, moved)  # the puck moved in the image
        rig.close()


def test_rig_turns_the_slow_scene_flags_off():
    import mujoco

    with opened() as env:
        env.reset(seed=0)
        u = env.unwrapped
        rig = CameraRig(u.model, u.data, {"top": None}, 16, 16)
        rig.render()
        for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX"):
            assert rig._renderer.scene.flags[getattr(mujoco.mjtRndFlag, flag)] == 0
        rig.close()


def test_free_camera_renders_models_without_cameras():
    with opened("reacher") as env:
        env.reset(seed=0)
        u = env.unwrapped
        rig = CameraRig(u.model, u.data, {"overhead": FreeCamera((0, 0, 0), 0.75, 90, -90)},
                        24, 24)  # fmt: skip
        frame = rig.render()["overhead"]
        assert frame.std() > 0  # not a blank image
        rig.close()


def test_unknown_camera_and_bad_sizes_are_refused_with_the_fix():
    with opened() as env:
        u = env.unwrapped
        with pytest.raises(RenderError, match=r"camera 'side' does not exist.*top"):
            CameraRig(u.model, u.data, {"side": None}, 32, 32)
        with pytest.raises(RenderError, match="too small"):
            CameraRig(u.model, u.data, {"top": None}, 4, 4)
        with pytest.raises(RenderError, match="exceeds the model's offscreen buffer"):
            CameraRig(u.model, u.data, {"top": None}, 2000, 2000)
        with pytest.raises(RenderError, match="no camera"):
            CameraRig(u.model, u.data, {}, 32, 32)


def test_a_missing_gl_backend_names_mujoco_gl(monkeypatch):
    import mujoco

    def broken(*args, **kwargs):
        raise Exception("eglInitialize failed")

    monkeypatch.setattr(mujoco, "Renderer", broken)
    with opened() as env:
        u = env.unwrapped
        rig = CameraRig(u.model, u.data, {"top": None}, 16, 16)
        with pytest.raises(RenderError, match=r"MUJOCO_GL=.*set MUJOCO_GL=egl"):
            rig.render()


def test_pixel_observations_are_state_plus_frames():
    spec = pixel_spec(get_task("multimodal"))
    env = make_env("multimodal", 0, pixels=spec)
    try:
        obs, _ = env.reset(seed=1)
        assert sorted(obs) == [STATE_KEY, "top"]
        assert obs[STATE_KEY].shape == (6,) and obs["top"].shape == (64, 64, 3)
        assert env.observation_space.contains(obs)
        obs2, *_ = env.step(np.zeros(2, np.float32))
        assert obs2["top"].dtype == np.uint8
    finally:
        env.close()


def test_pixel_spec_defaults_and_choices():
    mw = get_task("metaworld")
    assert list(pixel_spec(mw).cameras) == ["corner2"]
    assert pixel_spec(mw, ["topview"], 48).frame_shapes == {"topview": [48, 48, 3]}
    with pytest.raises(UserInputError, match="may not be called 'state'"):
        pixel_spec(mw, ["state"])
    for task in ENV_TASKS.values():  # every policy task has a camera and a proprio choice
        assert task.cameras and task.proprio
        assert all(i >= 0 for i in task.proprio)


def test_check_frames_names_camera_dtype_and_shape():
    want = {"top": [8, 8, 3]}
    check_frames({"top": np.zeros((2, 8, 8, 3), np.uint8)}, want)
    with pytest.raises(UserInputError, match=r"cameras \['side'\].*\['top'\]"):
        check_frames({"side": np.zeros((8, 8, 3), np.uint8)}, want)
    with pytest.raises(UserInputError, match="camera 'top': image float32"):
        check_frames({"top": np.zeros((8, 8, 3), np.float32)}, want)
    with pytest.raises(UserInputError, match=r"expects uint8 \(..., 8, 8, 3\)"):
        check_frames({"top": np.zeros((9, 8, 3), np.uint8)}, want)


def test_pixel_spec_is_picklable_for_worker_processes():
    import pickle

    spec = PixelSpec({"overhead": FreeCamera((0, 0, 0), 1.0, 90, -90)}, 32, 32)
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_demos_command_collects_camera_frames(tmp_path, capsys):
    import json

    from sci_diffusion.cli import main

    out = tmp_path / "px"
    args = ["demos", "task=reacher", "episodes=1", f"out={out}", "cameras=default",
            "image_size=24", "progress=false"]  # fmt: skip
    assert main(args) == 0
    assert json.loads((out / "meta.json").read_text())["cameras"] == {"overhead": [24, 24, 3]}
    assert main(["demos", "task=reacher", "episodes=1", f"out={tmp_path / 'x'}",
                 "image_size=24"]) == 2  # fmt: skip
    assert "image_size applies with cameras= only" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
