"""Scripted expert for gymnasium ``Reacher-v5``: operational-space control of the fingertip.

The 2-link planar arm (links 0.1 m and 0.11 m, joint torques ``200 N·m × action``, action in
[-1, 1], control period 0.02 s) must bring its fingertip onto a target drawn uniformly in a disc
of radius 0.2 m. The expert reads the privileged MuJoCo state and commands a task-space
acceleration

    ẍ* = Kd (clip_{‖·‖ ≤ v_max}((Kp / Kd) (x_target − x_tip)) − ẋ_tip)      (m/s²)

— the PD law ``Kp e − Kd ẋ`` near the target, with the commanded fingertip speed capped at
``v_max`` far from it (operational-space velocity saturation, Khatib 1987). Without the cap
(expert v1) the law is time-optimal-like: full torque out, full torque back, and the switch
step decides whether the tip overshoots, which a cloned policy reproduces badly (see
docs/robotics.md). The commanded acceleration is mapped to joint torques through the
fingertip Jacobian ``J`` (``mujoco.mj_jacBody``), the joint-space inertia ``M`` and the bias
forces ``c`` (Coriolis, passive damping):

    q̈* = J⁺_λ (ẍ* − J̇ q̇)  ≈  J⁺_λ ẍ*,     τ = M q̈* − Kq q̇ + c

with ``J⁺_λ`` the damped least-squares inverse (stays bounded at the fully stretched and the
folded singularities) and ``Kq`` an extra joint-velocity damping (N·m·s/rad) that removes the
null-space and near-singular motion the task-space term does not see. ``J̇ q̇`` is dropped: at
these speeds it is small and the PD term absorbs it. Torques are divided by the actuator gear
and clipped to the action bounds.

Success (see :mod:`sci_diffusion.envs.experts.success`): fingertip within
``REACHER_SUCCESS_DIST`` of the target at the end of the 50-step episode.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

__all__ = ["ReacherExpert"]


class ReacherExpert:
    """Operational-space fingertip controller for ``Reacher-v5`` (deterministic).

    Args:
        kp: task-space stiffness (1/s²): commanded acceleration per metre of error.
        kd: task-space damping (1/s): commanded deceleration per m/s of fingertip speed.
        kq: extra joint damping (N·m·s/rad) added to the torque.
        dls: damping λ (m) of the least-squares inverse of the 2×2 fingertip Jacobian.
        v_max: cap (m/s) of the commanded fingertip speed; ``None``: no cap (expert v1).
    """

    def __init__(
        self, kp: float = 400.0, kd: float = 40.0, kq: float = 0.5, dls: float = 0.01,
        v_max: float | None = 1.0,
    ) -> None:
        self.kp, self.kd, self.kq, self.dls = kp, kd, kq, dls
        self.v_max = v_max
        self._scratch: tuple[Any, Any] | None = None

    def reset(self, seed: int | None = None) -> None:
        """No episode state: the controller is a deterministic function of the sim state."""

    def _scratch_data(self, model: Any) -> Any:
        """A private ``MjData`` so that computing kinematics never touches the env's own data."""
        if self._scratch is None or self._scratch[0] is not model:
            self._scratch = (model, mujoco.MjData(model))
        return self._scratch[1]

    @staticmethod
    def _polar_error(tip: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Fingertip position error (m) measured along arcs around the shoulder.

        A straight line from fingertip to target passes through the unreachable disc around the
        shoulder (radius |0.1 − 0.11| m, and the Jacobian is singular there) whenever the target
        lies behind the arm. Measuring the error in polar coordinates (radial error along r̂,
        arc-length error r·Δθ along θ̂, Δθ wrapped to (−π, π]) makes the fingertip swing around
        the shoulder instead.
        """
        r_tip, r_tgt = float(np.linalg.norm(tip)), float(np.linalg.norm(target))
        th_tip, th_tgt = np.arctan2(tip[1], tip[0]), np.arctan2(target[1], target[0])
        dth = (th_tgt - th_tip + np.pi) % (2 * np.pi) - np.pi
        rhat = tip / max(r_tip, 1e-6)
        that = np.array([-rhat[1], rhat[0]])
        return (r_tgt - r_tip) * rhat + max(r_tip, 0.05) * dth * that

    def act(self, obs: np.ndarray, env: Any) -> np.ndarray:
        """Joint torque command (action units: torque / 200 N·m), float32, in the action box."""
        u = env.unwrapped
        model = u.model
        data = self._scratch_data(model)
        data.qpos[:] = u.data.qpos
        data.qvel[:] = u.data.qvel
        mujoco.mj_forward(model, data)  # kinematics, inertia and bias for the *current* state

        tip = model.body("fingertip").id
        arm_base = model.body("body0").id
        target = model.body("target").id
        arm = np.array([model.joint("joint0").dofadr[0], model.joint("joint1").dofadr[0]])

        jacp = np.zeros((3, model.nv))
        mujoco.mj_jacBody(model, data, jacp, None, tip)
        jac = jacp[:2][:, arm]  # planar arm: x, y rows, the two arm dofs
        qd = data.qvel[arm]

        err = self._polar_error(
            data.xpos[tip, :2] - data.xpos[arm_base, :2],
            data.xpos[target, :2] - data.xpos[arm_base, :2],
        )
        xd = jac @ qd  # m/s
        v_des = (self.kp / self.kd) * err
        if self.v_max is not None:
            speed = float(np.linalg.norm(v_des))
            v_des = v_des * min(1.0, self.v_max / max(speed, 1e-9))
        acc = self.kd * (v_des - xd)  # m/s²; = kp err - kd xd inside the speed limit
        jjt = jac @ jac.T + (self.dls**2) * np.eye(2)
        qdd = jac.T @ np.linalg.solve(jjt, acc)  # rad/s²

        mass = np.zeros((model.nv, model.nv))
        mujoco.mj_fullM(model, mass, data.qM)
        tau = mass[np.ix_(arm, arm)] @ qdd - self.kq * qd + data.qfrc_bias[arm]
        # qfrc_bias holds Coriolis/centrifugal terms; passive joint damping is compensated too.
        tau = tau + model.dof_damping[arm] * qd

        gear = model.actuator_gear[:, 0]
        action = tau / gear
        space = env.action_space
        return np.clip(action, space.low, space.high).astype(np.float32)
