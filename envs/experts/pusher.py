"""Scripted expert for gymnasium ``Pusher-v5``: get behind the puck, then push it to the goal.

The 7-DoF arm ends in a U-shaped "fork" (body ``r_wrist_roll_link``): a 0.2 m cross-bar along
the hand's local y axis through the ``tips_arm`` origin and two 0.1 m prongs along local +x, all
capsules of radius 0.02 m. The puck is a cylinder of radius 0.05 m (centre at z = −0.275 m, on
the table at z = −0.325 m) whose slide joints are heavily damped relative to its tiny mass, so it
only moves while pushed. The goal is fixed at (0.45, −0.05) m.

Control: a Jacobian-based operational-space law on the privileged MuJoCo state drives the
``tips_arm`` origin (the cross-bar centre) and the cross-bar direction:

    v̇* = Kp·e − Kd·J q̇          (e: 3-D position error in m, 3-D bar-alignment error in rad)
    q̈* = J⁺_λ v̇* + (I − J⁺_λ J)(Kn (q_ik − q) − Dn q̇)
    τ  = M q̈* + c               (c: Coriolis + passive joint damping; joint damping via Kd, Dn)

with ``J`` the 6×7 body Jacobian (``mujoco.mj_jacBody``), ``J⁺_λ`` its damped least-squares
inverse and ``q_ik`` a posture for the current waypoint from damped-least-squares inverse
kinematics. The null-space posture term matters: a purely task-space controller drives this arm
into its joint limits (shoulder lift, elbow, upper-arm roll) and stalls there. The cross-bar is
kept horizontal and perpendicular to the push direction, so it pushes the puck straight and the
prongs cage it against sideways slip. Torques are clipped to the ±2 N·m action bounds.

Plan: the puck is pushed along one straight leg to the goal or, when the point behind the puck is
outside the arm's reach at table height (pucks close to the arm's base, or far out, ~15 % of
initial states), along two legs via an intermediate waypoint (the shortest two-leg plan whose
contact poses the inverse kinematics can reach). Each leg:

1. ``approach``: hover ``HOVER_DZ`` above the pre-push point, ``PREPUSH_BACK`` behind the puck
   on the leg's line (cross-bar already turned perpendicular to the line).
2. ``descend``: lower to puck height at the pre-push point.
3. ``push``: move the cross-bar centre to ``CONTACT_BACK`` behind the leg's end point, steering
   sideways to keep the puck on the fork axis. If the puck leaves the fork (sideways offset over
   ``LATERAL_TOL`` or more than ``BEHIND_TOL`` ahead of the cross-bar) the leg is re-planned
   from the puck's new position and re-approached.

Success (see :mod:`sci_diffusion.envs.experts.success`): puck centre within
``PUSHER_SUCCESS_DIST`` of the goal at the end of the 100-step episode.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

__all__ = ["PusherExpert"]

PUCK_Z = -0.275
"""Height of the puck centre (m); the cross-bar is held at this height while pushing."""
CONTACT_BACK = 0.07
"""Cross-bar centre to puck centre while in contact (m): puck radius 0.05 + capsule radius 0.02."""
PUSH_OVERLAP = 0.045
"""How far (m) the cross-bar is driven into the puck while pushing (contacts are soft: the
push force, and so the puck speed, is proportional to this overlap; beyond ~0.06 m the bar would
pass the puck's centre and the contact normal flips)."""
PREPUSH_BACK = 0.10
"""Distance behind the puck centre (m) where the fork comes down before pushing."""
HOVER_DZ = 0.08
"""Height above the puck centre (m) at which the fork travels to the pre-push point."""
LATERAL_TOL = 0.05
"""Largest sideways offset (m) of the puck from the fork axis before re-approaching."""
BEHIND_TOL = 0.12
"""Largest distance (m) from cross-bar to puck centre along the push direction while pushing."""
IK_TOL = 0.005
"""Inverse-kinematics residual (m) below which a pose counts as reachable."""
_NOMINAL = np.array([0.0, 0.9, 0.0, -1.1, 0.0, -0.5, 0.0])
"""Arm pose (rad) reaching forward and down with the roll joints centred: first IK start."""


def _solve_ik(
    model: Any,
    data: Any,
    body: int,
    pos: np.ndarray,
    bar: np.ndarray,
    starts: list[np.ndarray],
    iters: int = 60,
) -> tuple[np.ndarray, float]:
    """Damped least-squares inverse kinematics (Jacobian iterations, joint limits clipped).

    Finds arm joint angles (rad) putting the ``tips_arm`` origin at ``pos`` (m) with its y axis
    (the cross-bar) along ±``bar`` (unit, horizontal), from each start pose in turn (stopping at
    the first one within ``IK_TOL``); returns the best pose and its residual (position error in m
    + 0.1 m × bar misalignment in rad). Uses ``data`` as scratch.
    """
    lo, hi = model.jnt_range[:7, 0], model.jnt_range[:7, 1]
    margin = 0.03 * (hi - lo)
    jacp = np.zeros((3, model.nv))
    jacr = np.zeros((3, model.nv))
    best_q, best_err = starts[0], np.inf
    for q0 in starts:
        q = np.clip(q0, lo + margin, hi - margin)
        for _ in range(iters):
            data.qpos[:7] = q
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)
            mujoco.mj_jacBody(model, data, jacp, jacr, body)
            r = data.xmat[body].reshape(3, 3)
            target_bar = bar if r[:, 1] @ bar >= 0 else -bar
            e = np.concatenate([pos - data.xpos[body], np.cross(r[:, 1], target_bar)])
            jac = np.vstack([jacp[:, :7], jacr[:, :7]])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-3 * np.eye(6), e)
            q = np.clip(q + dq, lo + margin, hi - margin)
        err = float(np.linalg.norm(e[:3]) + 0.1 * np.linalg.norm(e[3:]))
        if err < best_err:
            best_q, best_err = q.copy(), err
        if best_err < IK_TOL:
            break
    return best_q, best_err


def _frame(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit push direction from ``start`` to ``end`` (xy) and its left normal."""
    v = end - start
    n = float(np.linalg.norm(v))
    d = v / n if n > 1e-6 else np.array([1.0, 0.0])
    return d, np.array([-d[1], d[0]])


class PusherExpert:
    """Approach-then-push expert for ``Pusher-v5`` (deterministic given the initial state).

    Args:
        kp_pos: position stiffness (1/s²).
        kd_pos: position damping (1/s).
        kp_rot: cross-bar alignment stiffness (1/s²).
        kd_rot: cross-bar alignment damping (1/s).
        kp_null: null-space posture stiffness (1/s²).
        kd_null: null-space joint damping (1/s).
        dls: damping of the least-squares Jacobian inverse.
        push_speed_cap: largest position error (m) fed to the PD law while pushing (sets the
            push speed, kp_pos / kd_pos × cap ≈ 0.5 m/s by default).
    """

    def __init__(
        self,
        kp_pos: float = 100.0,
        kd_pos: float = 20.0,
        kp_rot: float = 50.0,
        kd_rot: float = 10.0,
        kp_null: float = 20.0,
        kd_null: float = 5.0,
        dls: float = 0.05,
        push_speed_cap: float = 0.1,
    ) -> None:
        self.kp_pos, self.kd_pos, self.kp_rot, self.kd_rot = kp_pos, kd_pos, kp_rot, kd_rot
        self.kp_null, self.kd_null = kp_null, kd_null
        self.dls, self.push_speed_cap = dls, push_speed_cap
        self._starts: list[np.ndarray] | None = None
        self._scratch: tuple[Any, Any, Any] | None = None
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode: no plan yet (made at the first ``act``)."""
        self.phase = "approach"
        self.legs: list[np.ndarray] = []  # end points (xy, m) of the remaining push legs
        self.offset = 0.0  # sideways offset (m) of the cross-bar centre from the leg line
        self._posture: np.ndarray | None = None
        self._posture_key: tuple | None = None

    # ------------------------------------------------------------------ scratch and IK
    def _scratch_data(self, model: Any) -> tuple[Any, Any]:
        """Private ``MjData`` buffers (control, IK) so the env's own data is never touched."""
        if self._scratch is None or self._scratch[0] is not model:
            self._scratch = (model, mujoco.MjData(model), mujoco.MjData(model))
            lo, hi = model.jnt_range[:7, 0], model.jnt_range[:7, 1]
            rng = np.random.default_rng(0)
            self._starts = [_NOMINAL] + [rng.uniform(lo, hi) for _ in range(5)]
        return self._scratch[1], self._scratch[2]

    def _ik(
        self, model: Any, ik_data: Any, pos: np.ndarray, d: np.ndarray, q: np.ndarray | None
    ) -> tuple[np.ndarray, float]:
        """IK for the cross-bar centre at ``pos`` (m) with the bar perpendicular to ``d``."""
        assert self._starts is not None
        body = model.body("tips_arm").id
        starts = ([q] if q is not None else []) + self._starts
        return _solve_ik(model, ik_data, body, pos, np.array([-d[1], d[0], 0.0]), starts)

    def _leg_ok(
        self, model: Any, ik_data: Any, start: np.ndarray, end: np.ndarray, offset: float
    ) -> bool:
        """Whether the pre-push (hover and table height) and final contact poses of the leg
        ``start`` → ``end`` (puck centre, xy m) are reachable with sideways offset ``offset``."""
        d, n = _frame(start, end)
        pre = start - PREPUSH_BACK * d + offset * n
        fin = end - CONTACT_BACK * d + offset * n
        for xy, z in ((pre, PUCK_Z + HOVER_DZ), (pre, PUCK_Z), (fin, PUCK_Z)):
            if self._ik(model, ik_data, np.array([*xy, z]), d, None)[1] > IK_TOL:
                return False
        return True

    def _plan(self, model: Any, ik_data: Any, puck: np.ndarray, goal: np.ndarray) -> None:
        """Choose the legs (and cross-bar offset) for pushing ``puck`` to ``goal`` (xy, m)."""
        offsets = (0.0, 0.025, -0.025)
        for off in offsets:
            if self._leg_ok(model, ik_data, puck, goal, off):
                self.legs, self.offset = [goal], off
                return
        # Two legs via a waypoint: shortest total path first.
        cands = []
        for ang in np.linspace(0.0, 2 * np.pi, 12, endpoint=False):
            for length in (0.08, 0.15):
                w = puck + length * np.array([np.cos(ang), np.sin(ang)])
                cands.append((length + float(np.linalg.norm(goal - w)), tuple(w)))
        for _, w_t in sorted(cands):
            w = np.array(w_t)
            if self._leg_ok(model, ik_data, puck, w, 0.0) and self._leg_ok(
                model, ik_data, w, goal, 0.0
            ):
                self.legs, self.offset = [w, goal], 0.0
                return
        self.legs, self.offset = [goal], 0.0  # nothing reachable found: try the direct push

    # ------------------------------------------------------------------ phases
    def _targets(self, tip: np.ndarray, puck: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Phase update; returns (cross-bar target (m), push direction (unit xy), error cap)."""
        end = self.legs[0]
        d, n = _frame(puck, end)
        rel = puck - tip[:2]
        along, lateral = float(rel @ d), float(rel @ n) + self.offset
        prepush = puck - PREPUSH_BACK * d + self.offset * n

        if self.phase == "push" and (
            abs(lateral) > LATERAL_TOL or along > BEHIND_TOL or along < 0.005
        ):
            self.phase = "approach"
        hovering = tip[2] > PUCK_Z + 0.5 * HOVER_DZ
        if self.phase == "approach" and hovering and np.linalg.norm(tip[:2] - prepush) < 0.02:
            self.phase = "descend"
        if self.phase == "descend":
            if np.linalg.norm(tip[:2] - prepush) > 0.05:
                self.phase = "approach"
            elif abs(tip[2] - PUCK_Z) < 0.015:
                self.phase = "push"

        if self.phase == "approach":
            return np.array([*prepush, PUCK_Z + HOVER_DZ]), d, 0.15
        if self.phase == "descend":
            return np.array([*prepush, PUCK_Z]), d, 0.15
        # Push by holding the cross-bar *inside* the puck: the push force grows with the overlap
        # (see the module docstring), tapered near the leg's end so the puck stops there.
        overlap = min(PUSH_OVERLAP, float(np.linalg.norm(end - puck)))
        target = puck - (CONTACT_BACK - overlap) * d + self.offset * n
        return np.array([*target, PUCK_Z]), d, self.push_speed_cap

    # ------------------------------------------------------------------ control
    def act(self, obs: np.ndarray, env: Any) -> np.ndarray:
        """Joint torques (N·m, = action units for this env), float32, in the action box."""
        u = env.unwrapped
        model = u.model
        data, ik_data = self._scratch_data(model)
        data.qpos[:] = u.data.qpos
        data.qvel[:] = u.data.qvel
        mujoco.mj_forward(model, data)

        body = model.body("tips_arm").id
        arm = np.arange(7)  # the seven arm hinges are the first seven dofs
        q, qd = data.qpos[arm].copy(), data.qvel[arm].copy()
        tip = data.xpos[body].copy()
        r = data.xmat[body].reshape(3, 3).copy()
        puck = data.body("object").xpos[:2].copy()
        goal = data.body("goal").xpos[:2].copy()

        if not self.legs:
            self._plan(model, ik_data, puck, goal)
        # A leg is done when the puck reached its end point (the last leg never ends).
        if len(self.legs) > 1 and np.linalg.norm(puck - self.legs[0]) < 0.03:
            self.legs.pop(0)
            self.phase = "approach"
        before = self.phase
        target, d, cap = self._targets(tip, puck)
        if self.phase == "approach" and before == "push":
            self._plan(model, ik_data, puck, goal)  # puck slipped: re-plan from where it is
            target, d, cap = self._targets(tip, puck)

        # Null-space posture: IK of the current target, recomputed when the target moves.
        key = (self.phase, *np.round(target, 2), *np.round(d, 1))
        if key != self._posture_key:
            self._posture, _ = self._ik(model, ik_data, target, d, q)
            self._posture_key = key

        bar = np.array([-d[1], d[0], 0.0])
        if r[:, 1] @ bar < 0:
            bar = -bar
        e_rot = np.cross(r[:, 1], bar)
        e_pos = target - tip
        norm = float(np.linalg.norm(e_pos))
        if norm > cap:
            e_pos *= cap / norm

        jacp = np.zeros((3, model.nv))
        jacr = np.zeros((3, model.nv))
        mujoco.mj_jacBody(model, data, jacp, jacr, body)
        jac = np.vstack([jacp[:, arm], jacr[:, arm]])
        vel = jac @ qd
        acc = np.concatenate(
            [
                self.kp_pos * e_pos - self.kd_pos * vel[:3],
                self.kp_rot * e_rot - self.kd_rot * vel[3:],
            ]
        )
        jpinv = jac.T @ np.linalg.inv(jac @ jac.T + self.dls**2 * np.eye(6))
        assert self._posture is not None
        posture = self.kp_null * (self._posture - q) - self.kd_null * qd
        qdd = jpinv @ acc + (np.eye(len(arm)) - jpinv @ jac) @ posture

        mass = np.zeros((model.nv, model.nv))
        mujoco.mj_fullM(model, mass, data.qM)
        tau = mass[np.ix_(arm, arm)] @ qdd + data.qfrc_bias[arm] + model.dof_damping[arm] * qd
        space = env.action_space
        return np.clip(tau, space.low, space.high).astype(np.float32)
