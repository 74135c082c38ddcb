"""One process pool for the per-molecule RDKit work of the package (gate, plausibility, SMILES).

:func:`map_chunks` cuts a list of picklable items into chunks, runs ``fn(arg, chunk)`` on each,
inline (one process) or in a pool of worker processes, and returns the flattened results in
input order. Workers are forked on Linux, so what the caller warmed up before the call (alert
catalogs, the SA fragment table) is shared with them at no start-up cost; they only run RDKit,
never anything of the caller's threads. Elsewhere the platform's default start method is used.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import itertools
import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from sci_diffusion.io.progress import Progress

A = TypeVar("A")
T = TypeVar("T")
R = TypeVar("R")

__all__ = [
    "available_cores",
    "chunk_slices",
    "frozen_heap",
    "imap_tasks",
    "map_chunks",
    "process_pool",
    "resolve_processes",
]


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_processes(processes: int | None) -> int:
    """``processes`` checked (a positive int), or every available core for ``None``."""
    if processes is None:
        return available_cores()
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes must be a positive integer or None, got {processes!r}")
    return processes


def chunk_slices(
    items: Sequence[T],
    processes: int,
    chunk_size: int | None = None,
    *,
    per_worker: int = 16,
    smallest: int = 8,
    largest: int = 500,
) -> Iterator[Sequence[T]]:
    """``items`` in consecutive chunks: ``chunk_size`` each, or about ``per_worker`` chunks per
    worker (balancing the load) clipped to ``[smallest, largest]`` (per-chunk IPC stays
    negligible, and so does the work lost to the last, uneven chunk)."""
    balanced = math.ceil(len(items) / (per_worker * processes))
    size = chunk_size or max(smallest, min(largest, balanced))
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """While the block runs, the caller's existing objects sit in the garbage collector's
    permanent generation (``gc.freeze``; undone at the end unless the caller had frozen some
    already). Forked workers then never write to the inherited objects' GC headers (no
    copy-on-write of the caller's heap), and the caller's own collections during the block
    skip them: measured on 4,000 QM9 molecules, half the parent's CPU time (0.45 -> 0.23 s)."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def process_pool(
    processes: int,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A pool of ``processes`` workers, forked on Linux (see the module docstring); each worker
    runs ``initializer(*initargs)`` first (forked workers inherit ``initargs`` unpickled)."""
    context = multiprocessing.get_context("fork") if sys.platform.startswith("linux") else None
    return ProcessPoolExecutor(
        max_workers=processes, mp_context=context, initializer=initializer, initargs=initargs
    )


def imap_tasks(
    fn: Callable[[A, T], R],
    arg: A,
    tasks: Iterable[T],
    processes: int | None = 1,
    *,
    window: int | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[R]:
    """``fn(arg, task)`` for each task of a (possibly endless) iterable, yielded in task order,
    with at most ``window`` tasks read ahead and in flight (default ``2 * processes + 2``), so
    memory stays bounded however many tasks there are.

    The tasks are drawn lazily (a reader can produce them from a file as the workers need them);
    the pool (:func:`process_pool`, with ``initializer``) starts only when a second task exists.
    With one process, or a single task, everything runs inline after ``initializer(*initargs)``
    in this process. A worker's exception is raised here, and the tasks not yet started are
    cancelled.
    """
    processes = resolve_processes(processes)
    tasks = iter(tasks)
    first = next(tasks, None)
    if first is None:
        return
    second = next(tasks, None) if processes > 1 else None
    if second is None:
        if initializer is not None:
            initializer(*initargs)
        yield fn(arg, first)
        for task in tasks:  # processes == 1
            yield fn(arg, task)
        return
    window = max(1, window or 2 * processes + 2)
    with frozen_heap():
        pool = process_pool(processes, initializer, initargs)
        pending: collections.deque[Future[R]] = collections.deque()
        try:
            for task in itertools.chain([first, second], tasks):
                pending.append(pool.submit(fn, arg, task))
                while len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def map_chunks(
    fn: Callable[[A, Sequence[T]], Sequence[R]],
    arg: A,
    items: Sequence[T],
    processes: int | None = 1,
    chunk_size: int | None = None,
    *,
    per_worker: int = 16,
    smallest: int = 8,
    largest: int = 500,
    progress: str | None = None,
    unit: str = "mol",
) -> list[R]:
    """``fn(arg, chunk)`` over chunks of ``items`` (:func:`chunk_slices`), flattened, in order.

    Parameters
    ----------
    fn
        A module-level function (it is pickled by name for the workers) returning one result
        per item of its chunk.
    arg
        Passed to every call (a config; picklable).
    processes
        1 runs inline, ``None`` uses every available core; a single chunk always runs inline.
    chunk_size, per_worker, smallest, largest
        How items are cut (:func:`chunk_slices`).
    progress
        A description: show progress (:class:`sci_diffusion.io.progress.Progress`, counted in
        items as chunks complete); ``None`` shows nothing.
    unit
        What an item is called in the progress display.
    """
    processes = resolve_processes(processes)
    cut = dict(per_worker=per_worker, smallest=smallest, largest=largest)
    chunks = list(chunk_slices(items, processes, chunk_size, **cut))
    out: list[R] = []
    with Progress(len(items), progress or "", unit=unit, enabled=progress is not None) as bar:
        if processes == 1 or len(chunks) <= 1:
            for chunk in chunks:
                out += fn(arg, chunk)
                bar.update(len(chunk))
            return out
        with frozen_heap(), process_pool(min(processes, len(chunks))) as pool:
            results = pool.map(fn, [arg] * len(chunks), chunks)
            for chunk, result in zip(chunks, results, strict=True):
                out += result
                bar.update(len(chunk))
    return out
