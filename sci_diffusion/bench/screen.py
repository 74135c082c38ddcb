"""Screening-gate throughput: molecules/s on one core and on every core, and their ratio.

For each data set (the first QM9 SMILES of qm9pack's ``qm9_part1.csv`` and the first MOSES test
SMILES of molsets' ``test.csv.gz``, both read as files: neither package is imported) the full
gate (:func:`~sci_diffusion.chem.gate.run_gate`, default config, no training set) runs on the
same molecules with ``processes=1`` (inline, no pool) and with ``processes=P`` (all cores),
interleaved over ``repeats``. The all-cores time includes starting the worker pool, as a user
pays it. Reported per data set:

* ``single_rate`` and ``all_rate`` — molecules/s from the median wall time of the repeats;
* ``ratio = all_rate / (P * single_rate)`` — the parallel efficiency (1 is perfect scaling;
  the aim is >= 0.9);
* ``cpu_ratio`` — CPU seconds of the single-core run over CPU seconds of the all-core run
  (caller plus workers): the share of the parallel run's CPU time that is useful work. It does
  not depend on other load, so it tells whether a low ``ratio`` is overhead or a busy machine;
* ``single_cpu_rate`` and ``anchor_checks_cpu_rate`` — the same per CPU second instead of per
  wall second: on a machine shared with other work a process gets only part of a core, and
  these still compare with an unloaded machine's figures;
* ``anchor_checks_rate`` — one core, only sanitize + PAINS/Brenk + QED + SA score, the work
  behind the ANCHORS.md figures (about 1,600 QM9-sized and 430 MOSES-sized molecules/s on a
  2-core machine like ours), so the two can be compared like for like;
* ``stream_*`` — the same for what ``sci-diffusion screen`` runs: the molecules written to a
  SMILES file and screened by :func:`~sci_diffusion.chem.screen.screen_file` (streaming,
  every output file written and fsync'ed), one process against all cores.

The load average before and after is recorded: on a machine shared with other work the
all-cores rate (and so the ratio) drops first.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rdkit
from rdkit import Chem, rdBase
from rdkit.Chem import QED

from ..chem.data import load_moses, load_qm9
from ..chem.gate import alert_catalog, run_gate
from ..chem.parallel import available_cores
from ..chem.properties import sascorer
from ..chem.screen import screen_file
from ..io.files import write_json_atomic
from .sampler import machine_info

TARGET_RATIO = 0.9
ANCHOR_RATES = {"qm9": 1600.0, "moses": 430.0}
"""Single-core molecules/s for sanitize + PAINS/Brenk + QED + SA, from docs ANCHORS (2 cores)."""


def qm9_smiles(n: int) -> list[str]:
    """The first ``n`` SMILES of qm9pack's files (``data/qm9_part1.csv`` first; column
    ``SMILES``), read by :func:`sci_diffusion.chem.data.load_qm9`."""
    return [r.smiles for r in load_qm9(None, limit=n, coordinates=False)]


def moses_smiles(n: int) -> list[str]:
    """The first ``n`` SMILES of molsets' ``dataset/data/test.csv.gz``, read by
    :func:`sci_diffusion.chem.data.load_moses`."""
    return load_moses("test", limit=n)


def anchor_checks(smiles: list[str]) -> int:
    """Sanitize + PAINS + Brenk + QED + SA score, one core: the ANCHORS.md workload.

    Returns the number of molecules that sanitized (so the work cannot be optimised away).
    """
    pains, brenk, scorer = alert_catalog("PAINS"), alert_catalog("BRENK"), sascorer()
    done = 0
    with rdBase.BlockLogs():
        for s in smiles:
            mol = Chem.MolFromSmiles(s)  # parses and sanitizes
            if mol is None:
                continue
            pains.HasMatch(mol)
            brenk.HasMatch(mol)
            QED.qed(mol)
            scorer.calculateScore(mol)
            done += 1
    return done


def _cpu_seconds() -> float | None:
    """CPU time of this process plus its finished (joined) children; ``None`` off Unix."""
    try:
        import resource
    except ImportError:
        return None
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(fn: Callable[[], object]) -> tuple[float, float | None]:
    """Wall seconds and CPU seconds (this process and its pool workers) of one call."""
    cpu = _cpu_seconds()
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    after = _cpu_seconds()
    return wall, None if cpu is None or after is None else after - cpu


def _rates(
    n: int, timings: dict[str, list[tuple[float, float | None]]], processes: int
) -> dict[str, Any]:
    """Rates, wall ratio and CPU ratio of interleaved single/all timings."""
    single_rate = n / statistics.median(wall for wall, _ in timings["single"])
    all_rate = n / statistics.median(wall for wall, _ in timings["all"])
    cpu = {k: [c for _, c in v if c is not None] for k, v in timings.items()}
    cpu_ratio = (
        statistics.median(cpu["single"]) / statistics.median(cpu["all"])
        if cpu["single"] and cpu["all"]
        else None
    )
    return {
        "single_s": [wall for wall, _ in timings["single"]],
        "all_s": [wall for wall, _ in timings["all"]],
        "single_cpu_s": cpu["single"],
        "all_cpu_s": cpu["all"],
        "single_rate": single_rate,
        "all_rate": all_rate,
        "ratio": all_rate / (processes * single_rate),
        "cpu_ratio": cpu_ratio,
        "single_cpu_rate": n / statistics.median(cpu["single"]) if cpu["single"] else None,
    }


def _interleaved(
    run: Callable[[int], object], processes: int, repeats: int
) -> dict[str, list[tuple[float, float | None]]]:
    timings: dict[str, list[tuple[float, float | None]]] = {"single": [], "all": []}
    for r in range(repeats):
        order = [("single", 1), ("all", processes)]
        for label, procs in order if r % 2 == 0 else order[::-1]:
            timings[label].append(_timed(lambda procs=procs: run(procs)))
    return timings


def bench_stream(smiles: list[str], processes: int, repeats: int) -> dict[str, Any]:
    """Single-core and all-core throughput of ``screen_file`` on ``smiles`` written to a file."""
    with tempfile.TemporaryDirectory(prefix="bench-screen-") as folder:
        path = Path(folder) / "in.smi"
        path.write_text("\n".join(smiles) + "\n")

        def run(procs: int) -> object:
            return screen_file(path, Path(folder) / f"out{procs}", processes=procs, resume=False)

        rates = _rates(len(smiles), _interleaved(run, processes, repeats), processes)
    return {f"stream_{key}": value for key, value in rates.items()}


def bench_dataset(
    name: str, smiles: list[str], processes: int, repeats: int, stream: bool = True
) -> dict[str, Any]:
    """Single-core and all-core gate throughput on ``smiles`` (see the module docstring)."""
    run_gate(smiles[:20])  # warm-up: catalogs and the SA table load once, outside the timing
    timings = _interleaved(lambda procs: run_gate(smiles, processes=procs), processes, repeats)
    anchor = [_timed(lambda: anchor_checks(smiles)) for _ in range(repeats)]
    anchor_cpu = [c for _, c in anchor if c is not None]
    records = run_gate(smiles)
    n = len(smiles)
    return {
        "dataset": name,
        "molecules": n,
        "processes": processes,
        **_rates(n, timings, processes),
        "anchor_checks_s": [wall for wall, _ in anchor],
        "anchor_checks_rate": n / statistics.median(wall for wall, _ in anchor),
        "anchor_checks_cpu_rate": n / statistics.median(anchor_cpu) if anchor_cpu else None,
        "anchor_reference_rate": ANCHOR_RATES[name],
        "pass_rate": sum(r.passed for r in records) / n,
        **(bench_stream(smiles, processes, repeats) if stream else {}),
    }


def run_screen_bench(
    out: str | None = None,
    *,
    n_qm9: int = 4000,
    n_moses: int = 1000,
    repeats: int = 3,
    processes: int | None = None,
    stream: bool = True,
) -> dict[str, Any]:
    """Measure the gate's single-core and all-core throughput on QM9 and MOSES SMILES.

    Parameters
    ----------
    out
        Write the JSON result there (atomically) unless ``None``.
    n_qm9, n_moses
        Molecules of each data set (the first ones of each file); 0 leaves a data set out.
    repeats
        Timed repeats per setting; rates use the median.
    processes
        Worker processes of the all-core run (default: every available core).
    stream
        Also time ``screen_file`` on the molecules written to a file (``stream_*`` keys).

    Returns
    -------
    dict
        ``{"benchmark": "screen", "machine": ..., "config": ..., "datasets": [...]}``; each
        data set as :func:`bench_dataset`, plus ``target_ratio`` and ``meets_target``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    processes = processes or available_cores()
    load_before = machine_info()["load_average"]
    start = time.perf_counter()
    data = [("qm9", qm9_smiles, n_qm9), ("moses", moses_smiles, n_moses)]
    datasets = [
        bench_dataset(name, loader(n), processes, repeats, stream)
        for name, loader, n in data
        if n > 0
    ]
    for record in datasets:
        record["meets_target"] = record["ratio"] >= TARGET_RATIO
        if "stream_ratio" in record:
            record["stream_meets_target"] = record["stream_ratio"] >= TARGET_RATIO
    result: dict[str, Any] = {
        "benchmark": "screen",
        "machine": {
            **machine_info(),
            "rdkit": rdkit.__version__,
            "available_cores": available_cores(),
            "load_average_before": load_before,
            "load_average_after": machine_info()["load_average"],
        },
        "config": {"repeats": repeats, "processes": processes, "target_ratio": TARGET_RATIO},
        "datasets": datasets,
        "wall_s": time.perf_counter() - start,
    }
    if out is not None:
        write_json_atomic(Path(out), result, allow_nan=False)
    return result


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main_table(result: dict[str, Any]) -> str:
    """The result as a plain-text table (one row per data set)."""
    m = result["machine"]
    columns = ("1 core", "all", "ratio", "cpu ratio", "1 core/cpu-s", "anchor", "anchor/cpu-s")
    lines = [
        f"Screening gate throughput, molecules/s (median of {result['config']['repeats']}), "
        f"RDKit {m['rdkit']}, {result['config']['processes']} processes, load average "
        f"{m['load_average_before']} -> {m['load_average_after']}",
        f"{'dataset':<8}{'n':>6}" + "".join(f"{c:>14}" for c in columns) + f"{'ANCHORS.md':>12}",
    ]
    for d in result["datasets"]:
        cells = (
            _num(d["single_rate"]),
            _num(d["all_rate"]),
            _num(d["ratio"], 2),
            _num(d["cpu_ratio"], 2),
            _num(d["single_cpu_rate"]),
            _num(d["anchor_checks_rate"]),
            _num(d["anchor_checks_cpu_rate"]),
        )
        lines.append(
            f"{d['dataset']:<8}{d['molecules']:>6}"
            + "".join(f"{c:>14}" for c in cells)
            + f"{d['anchor_reference_rate']:>12.0f}"
        )
    streamed = [d for d in result["datasets"] if "stream_ratio" in d]
    if streamed:
        lines.append(f"{'screen':<8}{'n':>6}" + "".join(f"{c:>14}" for c in columns[:5]))
        for d in streamed:
            cells = tuple(_num(d[f"stream_{k}"], digits) for k, digits in (
                ("single_rate", 0), ("all_rate", 0), ("ratio", 2), ("cpu_ratio", 2),
                ("single_cpu_rate", 0)))  # fmt: skip
            row = "".join(f"{c:>14}" for c in cells)
            lines.append(f"{d['dataset']:<8}{d['molecules']:>6}{row}")
    lines.append(
        "screen = sci-diffusion screen on the molecules as a SMILES file (outputs included). "
        f"ratio = all / (processes x 1 core), target >= {TARGET_RATIO}; cpu ratio = CPU s of the "
        "1-core run / CPU s of the all-core run; /cpu-s = molecules per CPU second; anchor = "
        "sanitize + PAINS/Brenk + QED + SA only, 1 core (ANCHORS.md: the same on 2 idle cores)."
    )
    return "\n".join(lines)
