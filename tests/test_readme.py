"""The README's core example is complete: it runs as written, in a fresh namespace."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_core_example_runs_as_written() -> None:
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None, "README lost its python example"
    scope: dict = {"__name__": "readme_example"}
    exec(compile(block.group(1), str(README), "exec"), scope)  # nothing supplied from here
    assert scope["out"].shape == (64, 16, 7)
    assert torch.isfinite(scope["out"]).all()
    assert torch.isfinite(scope["loss"])
