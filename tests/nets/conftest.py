"""Shared fixtures for the network tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread per test module: the networks here are tiny, and on a shared 2-core
    machine spinning OpenMP threads made these tests up to 35x slower (70 s vs 2 s for 100
    overfit steps)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
