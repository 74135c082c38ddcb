"""envs/__init__.py: MuJoCo without PyOpenGL (a bare GPU image, 2026-12-04) still steps physics."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import sys, warnings
    sys.modules["OpenGL"] = None  # PyOpenGL "not installed": find_spec gives None, import fails
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import sci_diffusion.envs  # noqa: F401
    import os
    print("backend", os.environ["MUJOCO_GL"])
    print("warned", any("pip install PyOpenGL" in str(w.message) for w in caught))
    import gymnasium as gym
    import numpy as np
    from sci_diffusion.envs import register_envs
    from sci_diffusion.envs.cameras import CameraRig, FreeCamera, RenderError
    register_envs()
    env = gym.make("sci_diffusion/MultimodalReach-v0")
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    print("stepped", bool(np.isfinite(obs).all()))
    u = env.unwrapped
    try:
        rig = CameraRig(u.model, u.data, {"top": FreeCamera((0, 0, 0), 1.0, 90, -90)}, 32, 32)
        rig.render()
        print("render ok")
    except RenderError as err:
        print("render error", "PyOpenGL" in str(err) and "MUJOCO_GL=disable" in str(err))
    """
)


def test_missing_pyopengl_loads_mujoco_without_rendering() -> None:
    env = {**os.environ, "MUJOCO_GL": "egl"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert "backend disable" in lines and "warned True" in lines
    assert "stepped True" in lines
    assert "render error True" in lines
