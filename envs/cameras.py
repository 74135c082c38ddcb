"""Camera frames from MuJoCo environments, tuned for software rendering.

Here rendering is Mesa's software EGL, and it, not physics, decides what pixel policies cost:
gymnasium ``Pusher-v5`` renders ~16 frames/s at 84x84 with MuJoCo's default scene flags and
~83/s with shadows, reflections and the skybox off (docs/robotics.md has the measurements).
:class:`CameraRig` therefore

* keeps **one** :class:`mujoco.Renderer` per environment, made once at the frame size, shared by
  all of its cameras;
* turns :data:`SLOW_SCENE_FLAGS` off after every ``update_scene`` (``update_scene`` resets them).

The renderer's GL context and framebuffer are what is reused; each frame comes back as a fresh
array, because every caller keeps it (an observation history, a stored demonstration).

A camera is either one the MJCF model names (Meta-World's ``corner``, our ``top``) or a
:class:`FreeCamera` (look-at point, distance, azimuth, elevation) for models without one
(gymnasium's Reacher and Pusher). When no OpenGL backend can be created, :class:`RenderError`
says which ``MUJOCO_GL`` was tried and how to choose another.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sci_diffusion.io.errors import UserInputError

__all__ = ["SLOW_SCENE_FLAGS", "CameraRig", "FreeCamera", "RenderError", "camera_names"]

SLOW_SCENE_FLAGS = ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX")
"""Scene flags switched off for every frame: together they cost ~5x in software rendering and
carry no information a policy needs."""


class RenderError(UserInputError):
    """No frame can be rendered: no OpenGL backend, or an unknown camera (message: the fix)."""


@dataclass(frozen=True)
class FreeCamera:
    """A camera placed by look-at point (m), distance (m), azimuth and elevation (degrees),
    for models that name no camera of their own."""

    lookat: tuple[float, float, float]
    distance: float
    azimuth: float
    elevation: float

    def mjv_camera(self) -> Any:
        import mujoco

        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = self.lookat
        cam.distance, cam.azimuth, cam.elevation = self.distance, self.azimuth, self.elevation
        return cam


def camera_names(model: Any) -> list[str]:
    """The cameras the MJCF ``model`` names, in model order."""
    import mujoco

    return [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]


def _renderer(model: Any, height: int, width: int) -> Any:
    import mujoco

    try:
        return mujoco.Renderer(model, height=height, width=width)
    except Exception as err:  # mujoco raises plain Exceptions for GL failures
        backend = os.environ.get("MUJOCO_GL", "<unset: MuJoCo's default, glfw>")
        raise RenderError(
            f"cannot render camera frames: no OpenGL context with MUJOCO_GL={backend} ({err}); "
            "set MUJOCO_GL=egl (headless GPU or Mesa's software EGL) or MUJOCO_GL=osmesa before "
            "starting (both need PyOpenGL: pip install PyOpenGL), or train with task.obs=state"
        ) from None


class CameraRig:
    """Renders the cameras of one MuJoCo environment, ``(H, W, 3)`` uint8 each.

    Args:
        model, data: the environment's ``MjModel`` and ``MjData`` (``env.unwrapped.model``,
            ``.data``); the rig reads the current state at every :meth:`render`.
        cameras: camera name -> ``None`` (a camera of the model) or a :class:`FreeCamera`.
        height, width: frame size in pixels (the model's offscreen buffer must be at least
            this large).
        disable: the scene flags turned off for every frame (``()``: MuJoCo's defaults, as
            ``sci_diffusion.bench.rendering`` compares).
    """

    def __init__(self, model: Any, data: Any, cameras: Mapping[str, FreeCamera | None],
                 height: int, width: int,
                 disable: Sequence[str] = SLOW_SCENE_FLAGS) -> None:  # fmt: skip
        import mujoco

        if not cameras:
            raise RenderError("no camera given; name at least one (task.cameras=[...])")
        if height < 8 or width < 8:
            raise RenderError(f"frame size {height}x{width} is too small; use at least 8x8")
        limit = (int(model.vis.global_.offheight), int(model.vis.global_.offwidth))
        if height > limit[0] or width > limit[1]:
            raise RenderError(
                f"frame size {height}x{width} exceeds the model's offscreen buffer "
                f"{limit[0]}x{limit[1]}; choose a smaller task.image_size"
            )
        known = camera_names(model)
        self.model, self.data = model, data
        self.height, self.width = int(height), int(width)
        self.cameras: dict[str, Any] = {}
        for name, spec in cameras.items():
            if spec is None and name not in known:
                raise RenderError(f"camera {name!r} does not exist in this model; it has "
                                  f"{', '.join(known) or 'none (use a free camera)'}")  # fmt: skip
            self.cameras[name] = name if spec is None else spec.mjv_camera()
        self._flags = [getattr(mujoco.mjtRndFlag, f) for f in disable]
        self._renderer: Any = None

    @property
    def names(self) -> list[str]:
        return list(self.cameras)

    def render(self) -> dict[str, np.ndarray]:
        """The current frame of every camera, ``{name: (H, W, 3) uint8}`` (fresh arrays)."""
        if self._renderer is None:
            self._renderer = _renderer(self.model, self.height, self.width)
        out = {}
        for name, camera in self.cameras.items():
            self._renderer.update_scene(self.data, camera=camera)
            for flag in self._flags:
                self._renderer.scene.flags[flag] = 0
            out[name] = self._renderer.render()
        return out

    def close(self) -> None:
        """Release the renderer (its GL context)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def check_frames(frames: Mapping[str, Any], expected: Mapping[str, Sequence[int]]) -> None:
    """``UserInputError`` unless ``frames`` holds exactly the ``expected`` cameras, each uint8 of
    shape ``(..., H, W, C)`` with ``expected[name] == [H, W, C]``."""
    if sorted(frames) != sorted(expected):
        raise UserInputError(f"images for cameras {sorted(frames)}, the policy was trained on "
                             f"{sorted(expected)}")  # fmt: skip
    for name, frame in frames.items():
        arr = np.asarray(frame)
        want = tuple(int(v) for v in expected[name])
        if arr.dtype != np.uint8 or tuple(arr.shape[-3:]) != want:
            raise UserInputError(
                f"camera {name!r}: image {arr.dtype} {tuple(arr.shape)}, the policy expects "
                f"uint8 (..., {', '.join(map(str, want))})"
            )
