"""Progress a person can follow, in a terminal and in a redirected log alike.

In a terminal (stderr is a TTY) a tqdm bar redraws in place. Anywhere else a bar's carriage
returns would pile up in the log (one quickstart wrote 1.15 MB of them), so the same calls
print plain lines instead: one when the stage starts, one at most every ``interval`` seconds
with count, rate and ETA, and one when it ends. ``SCI_DIFFUSION_PROGRESS=bar|lines|off``
overrides the choice.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

MODE_ENV = "SCI_DIFFUSION_PROGRESS"


def _mode(enabled: bool) -> str:
    if not enabled:
        return "off"
    forced = os.environ.get(MODE_ENV, "").strip().lower()
    if forced in ("bar", "lines", "off"):
        return forced
    return "bar" if sys.stderr.isatty() else "lines"


def stage(message: str) -> None:
    """One stage line on stderr (``[sci-diffusion] message``), flushed at once."""
    print(f"[sci-diffusion] {message}", file=sys.stderr, flush=True)


class Progress:
    """A counter with ``update(n)``, ``set_postfix(**values)`` and ``close()`` (tqdm's subset
    we use), shown as a bar or as periodic lines; see the module docstring."""

    def __init__(self, total: int | None, desc: str, *, unit: str = "it", initial: int = 0,
                 enabled: bool = True, interval: float = 10.0) -> None:  # fmt: skip
        self.total, self.desc, self.unit = total, desc, unit
        self.count, self.interval = initial, interval
        self.mode = _mode(enabled)
        self.postfix: dict[str, Any] = {}
        self.start = self.last = time.monotonic()
        self.initial = initial
        self.bar = None
        if self.mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
        elif self.mode == "lines":
            of = f"/{total}" if total is not None else ""
            stage(f"{desc}: started ({initial}{of} {unit})")

    def update(self, n: int = 1) -> None:
        self.count += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.mode == "lines" and time.monotonic() - self.last >= self.interval:
            self.last = time.monotonic()
            stage(self._line())

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values
        if self.bar is not None:
            self.bar.set_postfix(**values)

    def _line(self, done: bool = False) -> str:
        elapsed = time.monotonic() - self.start
        rate = (self.count - self.initial) / elapsed if elapsed > 0 else 0.0
        of = f"/{self.total}" if self.total is not None else ""
        text = f"{self.desc}: {self.count}{of} {self.unit} ({rate:.3g} {self.unit}/s"
        if self.total and rate > 0 and not done:
            text += f", ETA {max(self.total - self.count, 0) / rate:.0f} s"
        text += f", {elapsed:.0f} s elapsed)"
        extras = ", ".join(f"{k} {v}" for k, v in self.postfix.items())
        return text + (f" {extras}" if extras else "") + (" done" if done else "")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.mode == "lines":
            stage(self._line(done=True))
            self.mode = "off"

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(items: Iterable[T], desc: str, *, total: int | None = None, unit: str = "it",
             enabled: bool = True) -> Iterator[T]:  # fmt: skip
    """Iterate ``items`` while showing progress (see :class:`Progress`)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit=unit, enabled=enabled) as bar:
        for item in items:
            yield item
            bar.update()
