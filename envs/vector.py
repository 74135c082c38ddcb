"""Env slots in worker processes, so that a lockstep batch steps and renders concurrently.

Why: :func:`~sci_diffusion.envs.episodes.play_episodes` steps the envs of a lockstep batch one
after the other in the main process. With state observations a MuJoCo step costs microseconds
and that is the right place for them; with pixel observations every step also renders each
camera in software (Mesa EGL, milliseconds per frame), and physics plus rendering is what a
rollout spends its time on, on one core. :class:`VectorEnvs` spreads the ``n_envs`` slots
over ``workers`` processes, each owning a contiguous block of slots. Per lockstep step the main
process sends **one** message per worker (the actions of that worker's *running* slots), the
workers step, judge and render concurrently, and the main process waits once for all replies.
What crosses the pipes is only what the episode loop needs: per slot the observation, reward,
``terminated``/``truncated``, the task's success check ``rule(env, info)`` and, when an episode
ends, ``rule.distance(env, info)`` (both evaluated in the worker, where the env is: the rules
read the privileged MuJoCo state, and the ``info`` dict never travels), and the rendered frame
when that slot records frames. A finished episode's env is neither stepped nor reset until its
batch is done, exactly as in the in-process loop, so every episode is the one its seed defines
and the results are bitwise those of the in-process loop (tests/envs/test_vector.py). The
in-process loop uses the same per-slot functions (:func:`reset_slot`, :func:`step_slot`)
through :class:`LocalEnvs`.

Start method: ``forkserver`` (``spawn`` where there is none, i.e. Windows). Never ``fork``: a
forked copy of a process that has made a GL context (EGL/OSMesa), a MuJoCo renderer, torch's
thread pool or CUDA state inherits them in an undefined state and may deadlock or crash. The fork
server is a fresh interpreter that only *imports* (:data:`PRELOAD`: our env modules, gymnasium,
MuJoCo, and with them torch) and never renders (MuJoCo's EGL display is made at the first
context, not at import) or runs torch, so forking workers from it is safe. What it buys over
``spawn``: the imports are paid once per main process, not once per worker and pool. Measured on
the 2-core development machine under load (4 sci-diffusion processes): a pool of 2 workers
started in 2.5-4.5 s with ``spawn`` every time, and with ``forkserver`` in 2.2 s the first time
and 0.1 s every later time, which is what repeated evaluations during training pay. The server
inherits the environment of its first start, which happens inside the thread settings below;
``MUJOCO_GL`` is fixed then too (``sci_diffusion.envs`` sets it before any pool can start).

Threads: workers start with ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``OPENBLAS_NUM_THREADS`` set to 1 (set in the parent around ``Process.start``, so that a fork
server started then, or a spawned worker, has them before its first import; and set again in
each worker, for a fork server that other code started), and call
``torch.set_num_threads(1)`` when torch is loaded: they never run torch, and ``k`` workers with
a full thread pool each would fight the main process's policy for the cores. Workers ignore
``SIGINT`` (Ctrl-C stops the main process, which then closes them).

Errors: an exception in a worker is sent to the main process as its traceback text, the worker
exits, the main process terminates all other workers of the pool and raises
:class:`WorkerError` carrying that text. A worker that dies without a word (segfault, killed) is
noticed through its process sentinel and reported the same way. Workers are daemonic, exit when
the main process's end of their pipe closes, and a pool that is garbage-collected unclosed
terminates its workers: no orphan processes.

Why not gymnasium's ``AsyncVectorEnv`` (installed 1.4.0): its ``step`` sends an action to
*every* sub-env on every call. ``AutoresetMode.DISABLED`` only stops the automatic reset; a
finished env is still stepped (masking there means sending it a dummy action, which changes
its state and is undefined after ``terminated`` for some envs), and 1.4.0 has a mask only for
``reset`` (``options["reset_mask"]``), none for ``step``. It also runs one process per env (10
processes for 10 slots on a 2-core machine, rather than blocks of slots per worker), and the
success rule (a lambda, not picklable, reading the MuJoCo state) and the recorded frames would
each need an extra ``call`` round trip per step. The design here is its protocol (pipes,
commands, error propagation) minus those three.

:func:`run_sharded` is the other way to use processes: independent jobs (e.g. demonstration
collection with an expert that needs the env object, ``collect_demos(workers=k)``) run whole in
a small pool of the same workers, results returned in job order.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing as mp
import os
import signal
import sys
import traceback
import weakref
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_ready
from typing import Any, NamedTuple, NoReturn

import numpy as np

__all__ = [
    "START_METHOD",
    "THREAD_VARS",
    "LocalEnvs",
    "SlotStep",
    "StepRequest",
    "VectorEnvs",
    "WorkerError",
    "reset_slot",
    "run_sharded",
    "step_slot",
    "task_rule",
]

START_METHOD = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
"""The multiprocessing start method of every worker (see the module docstring)."""

PRELOAD = ("__main__", "sci_diffusion.envs.vector", "sci_diffusion.envs.pixels",
           "sci_diffusion.envs.registry", "gymnasium", "mujoco")  # fmt: skip
"""Modules the fork server imports once, before it forks any worker (``__main__``: as
multiprocessing's default)."""

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Thread-pool sizes set to 1 in workers."""

JOIN_SECONDS = 10.0
"""How long :meth:`VectorEnvs.close` waits for a worker to close its envs before terminating
it."""

_CLOSE = "close"


class WorkerError(RuntimeError):
    """A worker process failed: ``worker`` (its index), ``what`` (its slots or job) and
    ``remote_traceback`` (the worker's traceback text; None when it died without one)."""

    def __init__(self, worker: int, what: str, remote_traceback: str | None,
                 exitcode: int | None = None) -> None:  # fmt: skip
        self.worker, self.what, self.remote_traceback = worker, what, remote_traceback
        if remote_traceback is None:
            detail = (f"exited (exit code {exitcode}) without a reply: killed, or crashed in "
                      "native code (MuJoCo, OpenGL)")  # fmt: skip
        else:
            detail = f"raised an exception; the worker's traceback:\n{remote_traceback.rstrip()}"
        super().__init__(f"worker process {worker} ({what}) {detail}\n(all workers of the "
                         "pool were closed)")  # fmt: skip


class StepRequest(NamedTuple):
    """One running slot's step: ``action`` (the executed action, ``(action_dim,)``), whether to
    ``render`` a frame after it, and whether it is the episode's ``final`` step (its last
    allowed action: ``max_steps`` reached)."""

    slot: int
    action: np.ndarray
    render: bool
    final: bool


class SlotStep(NamedTuple):
    """What one slot's step returns to the episode loop.

    ``done``: ``terminated or truncated or final``. ``success``: the rule's check
    ``rule(env, info)`` on the state after the step, evaluated when the rule counts any step
    (``rule.any_step``) or the episode is done, else None. ``distance``: the rule's
    ``distance(env, info)`` when the episode is done and the rule has one, else None.
    ``frame``: ``env.render()`` (uint8 ``(H, W, 3)``) when the slot records frames, else None.
    """

    obs: Any
    reward: float
    terminated: bool
    truncated: bool
    done: bool
    success: bool | None
    distance: float | None
    frame: np.ndarray | None


def reset_slot(env: Any, seed: int, render: bool) -> tuple[Any, np.ndarray | None]:
    """``env.reset(seed=seed)``'s observation and, with ``render``, the frame after it."""
    obs, _ = env.reset(seed=seed)
    return obs, (env.render() if render else None)


def step_slot(env: Any, rule: Any, action: np.ndarray, render: bool, final: bool) -> SlotStep:
    """Step ``env`` once, render (``render``) and judge with ``rule`` (a
    :class:`~sci_diffusion.envs.experts.success.SuccessRule`, or None: no judgement); see
    :class:`SlotStep`. The in-process loop and the workers both step through here."""
    obs, reward, terminated, truncated, info = env.step(action)
    frame = env.render() if render else None
    done = bool(terminated or truncated or final)
    success = distance = None
    if rule is not None and (rule.any_step or done):
        success = rule(env, info)
        if done and rule.distance is not None:
            distance = float(rule.distance(env, info))
    return SlotStep(obs, reward, bool(terminated), bool(truncated), done, success, distance,
                    frame)  # fmt: skip


def task_rule(task_name: str) -> Any:
    """The success rule of the registered task ``task_name`` (picklable as a
    ``functools.partial``: the rules themselves hold lambdas)."""
    from .registry import get_task

    return get_task(task_name).success


class LocalEnvs:
    """The in-process slots: ``envs[k]`` is slot ``k``, stepped one after the other in the
    calling process (the interface of :class:`VectorEnvs`; the actor gets the env objects)."""

    def __init__(self, envs: Sequence[Any], rule: Any) -> None:
        self.envs, self.rule = list(envs), rule

    def __len__(self) -> int:
        return len(self.envs)

    def action_space(self, slot: int) -> Any:
        return self.envs[slot].action_space

    def actor_envs(self, slots: Sequence[int]) -> list[Any]:
        return [self.envs[k] for k in slots]

    def reset(self, requests: Sequence[tuple[int, int, bool]]) -> list[tuple[Any, Any]]:
        """``(slot, seed, render)`` per slot -> ``(obs, frame or None)`` per slot."""
        return [reset_slot(self.envs[k], seed, render) for k, seed, render in requests]

    def step(self, requests: Sequence[StepRequest]) -> list[SlotStep]:
        """One step of each requested slot (only those), in request order."""
        return [step_slot(self.envs[r.slot], self.rule, r.action, r.render, r.final)
                for r in requests]  # fmt: skip


# -- worker processes ---------------------------------------------------------------------------


@contextlib.contextmanager
def _single_thread_env() -> Iterator[None]:
    """:data:`THREAD_VARS` set to 1 in ``os.environ`` for the duration (new processes
    inherit the environment at ``start``); restored afterwards."""
    saved = {name: os.environ.get(name) for name in THREAD_VARS}
    os.environ.update({name: "1" for name in THREAD_VARS})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _worker_start() -> None:
    """First thing in every worker: ignore Ctrl-C (the main process closes the pool), one
    thread for libraries initialised later (a fork server started by other code may have
    another environment) and for torch if it is loaded."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update({name: "1" for name in THREAD_VARS})
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _serve(conn: Connection, handle: Callable[[str, Any], Any], ready: Any) -> None:
    """A worker's loop: send ``("ok", ready)``, then answer every ``(command, payload)`` with
    ``("ok", handle(command, payload))`` until ``close``. An exception is sent as
    ``("error", traceback text)`` and ends the worker; a closed pipe (main process gone) ends it
    quietly."""
    try:
        conn.send(("ok", ready))
        while True:
            command, payload = conn.recv()
            if command == _CLOSE:
                break
            conn.send(("ok", handle(command, payload)))
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass


def _report(conn: Connection) -> None:
    """Send the current exception's traceback to the main process (if it still listens)."""
    with contextlib.suppress(OSError):
        conn.send(("error", traceback.format_exc()))


def _exit(conn: Connection, code: int) -> NoReturn:
    """End a worker whose envs are closed: skip the interpreter's teardown of torch, MuJoCo
    and GL modules (most of a second per worker; nothing of it is needed), output flushed."""
    conn.close()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _env_worker(conn: Connection, env_fn: Callable[[], Any], rule_fn: Callable[[], Any] | None,
                n_slots: int) -> None:  # fmt: skip
    """Worker of :class:`VectorEnvs`: builds ``n_slots`` envs with ``env_fn`` and serves
    ``reset`` / ``step`` on them (local slot indices)."""
    _worker_start()
    envs: list[Any] = []
    code = 0
    try:
        for _ in range(n_slots):
            envs.append(env_fn())
        rule = None if rule_fn is None else rule_fn()

        def handle(command: str, payload: Any) -> Any:
            if command == "reset":
                return [reset_slot(envs[i], seed, render) for i, seed, render in payload]
            if command == "step":
                return [step_slot(envs[i], rule, action, render, final)
                        for i, action, render, final in payload]  # fmt: skip
            raise ValueError(f"unknown worker command {command!r}")

        _serve(conn, handle, [env.action_space for env in envs])
    except BaseException:
        code = 1
        _report(conn)
    finally:
        for env in envs:
            with contextlib.suppress(Exception):
                env.close()
        _exit(conn, code)


def _call_worker(conn: Connection) -> None:
    """Worker of :func:`run_sharded`: answers ``("call", (fn, args))`` with ``fn(*args)``."""
    _worker_start()
    code = 0
    try:
        _serve(conn, lambda command, payload: payload[0](*payload[1]), None)
    except BaseException:
        code = 1
        _report(conn)
    finally:
        _exit(conn, code)


def _terminate(procs: list[Any], conns: list[Connection]) -> None:
    """Stop ``procs`` now (SIGTERM, then SIGKILL) and close their pipes."""
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(2.0)
        if proc.is_alive():
            proc.kill()
            proc.join()
    for conn in conns:
        conn.close()


_PRELOAD_SET = False


def _context() -> Any:
    """The multiprocessing context of :data:`START_METHOD`; the first call names
    :data:`PRELOAD` for a fork server that is not running yet."""
    global _PRELOAD_SET
    ctx = mp.get_context(START_METHOD)
    if START_METHOD == "forkserver" and not _PRELOAD_SET:
        ctx.set_forkserver_preload(list(PRELOAD))
        _PRELOAD_SET = True
    return ctx


class _Pool:
    """``n`` worker processes running ``target(conn, *args_of(w))``, one pipe each; every
    worker first reports ready (see :func:`_serve`). ``describe(w)`` names worker ``w``'s
    share in errors."""

    def __init__(self, n: int, target: Callable[..., None], args_of: Callable[[int], tuple],
                 describe: Callable[[int], str], name: str) -> None:  # fmt: skip
        ctx = _context()
        self.procs: list[Any] = []
        self.conns: list[Connection] = []
        self.describe = describe
        self.busy: set[int] = set()
        self.closed = False
        self._finalizer = weakref.finalize(self, _terminate, self.procs, self.conns)
        try:
            with _single_thread_env():
                for w in range(n):
                    parent, child = ctx.Pipe()
                    proc = ctx.Process(target=target, args=(child, *args_of(w)),
                                       name=f"{name}-{w}", daemon=True)  # fmt: skip
                    self.procs.append(proc)
                    self.conns.append(parent)
                    proc.start()
                    child.close()
                    self.busy.add(w)  # until its ready message
        except BaseException:
            self.close(graceful=False)
            raise

    def send(self, w: int, command: str, payload: Any) -> None:
        try:
            self.conns[w].send((command, payload))
        except (BrokenPipeError, ConnectionResetError):
            self.fail(w, None)
        self.busy.add(w)

    def next_reply(self, waiting: set[int]) -> tuple[int, Any]:
        """The first reply of the workers in ``waiting``: ``(w, value)``; raises
        :class:`WorkerError` (after closing the pool) when one of them failed or died."""
        handles: dict[Any, int] = {}
        for w in waiting:
            handles[self.conns[w]] = w
            handles[self.procs[w].sentinel] = w
        while True:
            for ready in wait_ready(list(handles)):
                w = handles[ready]
                conn = self.conns[w]
                if not conn.poll():  # the sentinel: a dead worker leaves its replies readable
                    self.fail(w, None)
                try:
                    status, value = conn.recv()
                except (EOFError, OSError):
                    self.fail(w, None)
                if status == "error":
                    self.fail(w, value)
                self.busy.discard(w)
                return w, value

    def gather(self, workers: Sequence[int]) -> dict[int, Any]:
        """Every reply of ``workers`` (one each): ``{w: value}``."""
        waiting, replies = set(workers), {}
        while waiting:
            w, value = self.next_reply(waiting)
            waiting.discard(w)
            replies[w] = value
        return replies

    def fail(self, w: int, remote_traceback: str | None) -> NoReturn:
        proc = self.procs[w]
        if remote_traceback is not None:
            proc.join(1.0)
        exitcode = proc.exitcode
        self.close(graceful=False)
        raise WorkerError(w, self.describe(w), remote_traceback, exitcode)

    def close(self, graceful: bool = True) -> None:
        """Stop the workers: with ``graceful`` and none busy, ask them to close (their envs
        close) and wait up to :data:`JOIN_SECONDS`; anything still running is terminated."""
        if self.closed:
            return
        self.closed = True
        if graceful and not self.busy:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.send((_CLOSE, None))
            for proc in self.procs:
                proc.join(JOIN_SECONDS)
        self._finalizer.detach()
        _terminate(self.procs, self.conns)


class VectorEnvs:
    """``n_envs`` env slots in ``workers`` processes (see the module docstring).

    Worker ``w`` owns a contiguous block of slots (the first ``n_envs % workers`` blocks one
    slot larger) and builds each of its envs with ``env_fn()`` (picklable: a top-level function
    or a ``functools.partial`` of one, e.g. :meth:`for_task`); ``rule_fn()`` gives the success
    rule the workers judge with. ``workers`` is capped at ``n_envs``. Use as a context manager
    or call :meth:`close`. Not thread-safe: one caller at a time.
    """

    def __init__(self, env_fn: Callable[[], Any], n_envs: int, workers: int = 1,
                 rule_fn: Callable[[], Any] | None = None) -> None:  # fmt: skip
        from sci_diffusion.io.errors import UserInputError

        if n_envs < 1 or workers < 1:
            raise UserInputError(f"VectorEnvs needs n_envs >= 1 and workers >= 1, got "
                                 f"n_envs={n_envs}, workers={workers}")  # fmt: skip
        workers = min(int(workers), int(n_envs))
        sizes = [n_envs // workers + (w < n_envs % workers) for w in range(workers)]
        self.placement: list[tuple[int, int]] = [(w, i) for w, size in enumerate(sizes)
                                                 for i in range(size)]  # fmt: skip
        """Slot -> (worker, index among that worker's envs)."""
        starts = np.cumsum([0, *sizes])
        self.workers = workers

        def describe(w: int) -> str:
            return f"env slots {starts[w]}-{starts[w + 1] - 1} of {n_envs}"

        self._pool = _Pool(workers, _env_worker, lambda w: (env_fn, rule_fn, sizes[w]),
                           describe, "sci-diffusion-envs")  # fmt: skip
        try:
            spaces = self._pool.gather(range(workers))
        except BaseException:
            self.close()
            raise
        self.action_spaces: list[Any] = [spaces[w][i] for w, i in self.placement]
        """The slots' action spaces (as the workers' envs report them)."""

    @classmethod
    def for_task(cls, task_name: str, n_envs: int, workers: int = 1, *, env_seed: int = 0,
                 env_name: str | None = None, render_mode: str | None = None,
                 pixels: Any = None) -> VectorEnvs:  # fmt: skip
        """Slots of the registered task ``task_name``: envs from
        :func:`~sci_diffusion.envs.pixels.make_env` (``pixels``: a
        :class:`~sci_diffusion.envs.pixels.PixelSpec` for dict observations), judged by the
        task's success rule."""
        from .pixels import make_env

        env_fn = functools.partial(make_env, task_name, env_seed, env_name, render_mode, pixels)
        return cls(env_fn, n_envs, workers, functools.partial(task_rule, task_name))

    def __len__(self) -> int:
        return len(self.placement)

    def __enter__(self) -> VectorEnvs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def processes(self) -> list[Any]:
        """The worker processes (``multiprocessing.Process``), for inspection."""
        return list(self._pool.procs)

    def action_space(self, slot: int) -> Any:
        return self.action_spaces[slot]

    def actor_envs(self, slots: Sequence[int]) -> list[None]:
        """What an :class:`~sci_diffusion.envs.episodes.Actor` gets for ``envs``: None per slot
        (the env objects live in the workers)."""
        return [None] * len(slots)

    def reset(self, requests: Sequence[tuple[int, int, bool]]) -> list[tuple[Any, Any]]:
        """``(slot, seed, render)`` per slot -> ``(obs, frame or None)`` per slot, in request
        order (one message per worker involved)."""
        return self._call("reset", requests)

    def step(self, requests: Sequence[StepRequest]) -> list[SlotStep]:
        """One step of each requested slot and of no other, in request order (one message per
        worker involved; the workers step concurrently)."""
        return self._call("step", requests)

    def _call(self, command: str, requests: Sequence[tuple]) -> list[Any]:
        if self._pool.closed:
            raise RuntimeError("VectorEnvs is closed")
        items: dict[int, list[tuple]] = {}
        where: list[tuple[int, int]] = []
        for request in requests:
            w, i = self.placement[request[0]]
            batch = items.setdefault(w, [])
            where.append((w, len(batch)))
            batch.append((i, *request[1:]))
        for w, batch in items.items():
            self._pool.send(w, command, batch)
        replies = self._pool.gather(list(items))
        return [replies[w][j] for w, j in where]

    def close(self) -> None:
        """Close the envs and stop the workers (idempotent; terminates workers that are busy
        or do not stop within :data:`JOIN_SECONDS`)."""
        self._pool.close()


def run_sharded(fn: Callable[..., Any], jobs: Sequence[tuple], workers: int,
                on_result: Callable[[int, Any], None] | None = None,
                label: str = "job") -> list[Any]:  # fmt: skip
    """``[fn(*job) for job in jobs]``, computed in ``min(workers, len(jobs))`` worker processes
    (each takes the next job when done with one); ``on_result(j, result)`` is called in the
    main process as each job ``j`` finishes. ``fn`` and the jobs must be picklable (``fn`` a
    top-level function). A failing job raises :class:`WorkerError` with its traceback after
    stopping all workers."""
    if not jobs:
        return []
    n = max(1, min(int(workers), len(jobs)))
    current: dict[int, int] = {}
    pool = _Pool(n, _call_worker, lambda w: (),
                 lambda w: f"{label} {current.get(w, '?')} of {len(jobs)}", "sci-diffusion-jobs")
    results: list[Any] = [None] * len(jobs)
    todo = iter(range(len(jobs)))
    try:
        pool.gather(range(n))  # all ready
        for w in range(n):
            j = next(todo, None)
            if j is not None:
                current[w] = j
                pool.send(w, "call", (fn, jobs[j]))
        while current:
            w, value = pool.next_reply(set(current))
            j = current.pop(w)
            results[j] = value
            if on_result is not None:
                on_result(j, value)
            following = next(todo, None)
            if following is not None:
                current[w] = following
                pool.send(w, "call", (fn, jobs[following]))
    finally:
        pool.close(graceful=not current)
    return results
