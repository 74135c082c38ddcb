"""keep_freed_memory: glibc keeps freed blocks for reuse unless the user or platform says no."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sci_diffusion.io import allocator

CHECK = "from sci_diffusion.io.allocator import keep_freed_memory as k; print(k(), k())"


def _run(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True,
                         check=True)  # fmt: skip
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tunes_once_on_glibc_and_yields_to_the_users_settings(monkeypatch):
    import os

    env = {k: v for k, v in os.environ.items()
           if k not in allocator._USER_SETTINGS and k != allocator.ENV_SWITCH}  # fmt: skip
    libc = allocator.ctypes.util.find_library("c") or ""
    if "musl" in libc:
        pytest.skip("not glibc")
    assert _run(env) == "True True"  # accepted, and the second call is a no-op answer
    assert _run({**env, "MALLOC_MMAP_THRESHOLD_": "65536"}) == "False False"  # theirs wins
    assert _run({**env, allocator.ENV_SWITCH: "system"}) == "False False"


def test_the_cli_tunes_before_running_a_command(monkeypatch):
    from sci_diffusion import cli

    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    assert cli.main(["bench", "metaworld", "bogus"]) == 2
    assert calls == [1]
