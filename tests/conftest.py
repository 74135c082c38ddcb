"""Session-wide test settings.

One intra-op torch thread for the whole suite unless ``OMP_NUM_THREADS`` is set explicitly.
The tensors in these tests are small; on the shared 2-core machine the suite is written for,
OpenMP threads spinning against each other (and against other processes) made single tests
several times slower (tests/core/test_samplers_exact.py: 6 min 36 s with torch's default
threads vs 4 min 47 s with one, measured back to back under the same load; the network tests
up to 35x). Results do not depend on the thread count. Child processes get one thread too
(``support.subprocess_env``). MuJoCo renders with EGL unless a display or ``MUJOCO_GL``
says otherwise.
"""

from __future__ import annotations

import os

import torch

# MuJoCo picks its GL backend when it is first imported: a test module that imports mujoco (or
# metaworld, gymnasium's MuJoCo envs) before ``sci_diffusion.envs`` would get GLFW, which has no
# display here, and every later rendering test would fail. Same rule as envs/__init__.py.
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

if "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by child processes
    torch.set_num_threads(1)
