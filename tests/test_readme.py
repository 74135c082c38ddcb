"""The README's core example runs as written (with a small network and batch supplied)."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

README = Path(__file__).resolve().parents[1] / "README.md"


class MyNet(nn.Module):
    """net(x, t) -> tensor shaped like x, for (B, 16, 7) trajectories."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16 * 7 + 1, 16 * 7)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        flat = torch.cat([x.reshape(x.shape[0], -1), t[:, None]], -1)
        return self.lin(flat).reshape(x.shape)


def test_readme_core_example_runs() -> None:
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None, "README lost its python example"
    scope = {"MyNet": MyNet, "x0_batch": torch.randn(8, 16, 7)}
    exec(compile(block.group(1), str(README), "exec"), scope)
    assert scope["out"].shape == (64, 16, 7)
    assert torch.isfinite(scope["out"]).all()
    assert torch.isfinite(scope["loss"])
