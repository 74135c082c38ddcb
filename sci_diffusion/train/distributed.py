"""Process-group helpers for ``torchrun`` (DDP): gloo on CPU, nccl on GPU."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sci_diffusion.io.errors import UserInputError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 or dist.is_initialized()


def init_distributed(enabled: bool, device: torch.device) -> DistInfo:
    """Join the process group ``torchrun`` describes in the environment (if ``enabled``)."""
    if not enabled:
        return DistInfo()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise UserInputError(
            "trainer.distributed=true needs torchrun's environment (RANK, WORLD_SIZE); launch with "
            "`torchrun --nproc_per_node=N -m sci_diffusion train ... trainer.distributed=true`"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` if CUDA is available, else ``cpu``."""
    if spec == "auto":
        return (
            torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        )
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(
            f"trainer.device={spec} but CUDA is not available; use trainer.device=auto or cpu"
        )
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device
