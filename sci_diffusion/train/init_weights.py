"""``trainer.init_from``: start a run from another run's weights (fine-tuning).

Typical use: a property-conditional network fine-tuned from the unconditional one it extends
(its conditioning layers start at zero, so step 0 reproduces the unconditional model).
The EMA weights of the source are loaded; tensors the new network has and the source lacks
(new layers) keep their fresh initialization and are listed; anything else that does not
match (an unknown tensor, a shape) is an error naming the tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from sci_diffusion.io.checkpoint import load_checkpoint
from sci_diffusion.io.errors import UserInputError
from sci_diffusion.io.rundir import CHECKPOINT_DIR


class InitWeightsError(UserInputError):
    """``trainer.init_from`` names nothing loadable, or weights that do not fit the network."""


@dataclass(frozen=True)
class InitWeights:
    """What was loaded: the checkpoint, its step, and the tensors that kept their fresh init."""

    source: str
    checkpoint: Path
    step: int
    new_tensors: tuple[str, ...]

    def describe(self) -> str:
        """The model card's line: the source as the user named it (no machine paths)."""
        new = ", ".join(self.new_tensors) if self.new_tensors else "none"
        return (f"{self.source} ({self.checkpoint.name}, step {self.step}, EMA weights); "
                f"newly initialized: {new}")  # fmt: skip


def resolve_source(source: str) -> Path:
    """A checkpoint file, a run directory (its newest checkpoint) or ``embedded:<task>``."""
    from sci_diffusion.io.checkpoint import latest_checkpoint

    if source.startswith("embedded:"):
        from sci_diffusion.train.embedded import embedded_run

        task = source.removeprefix("embedded:")
        run = embedded_run(task)
        if run is None:
            raise InitWeightsError(f"trainer.init_from={source}: no embedded default for {task}")
        source = str(run)
    path = Path(source)
    if path.is_dir():
        newest = latest_checkpoint(path / CHECKPOINT_DIR)
        if newest is None:
            raise InitWeightsError(f"trainer.init_from={source}: no checkpoint in {path}")
        return newest
    if not path.is_file():
        raise InitWeightsError(
            f"trainer.init_from={source}: not a checkpoint file, run directory or embedded:<task>"
        )
    return path


def load_initial_weights(net: nn.Module, source: str) -> InitWeights:
    """Load the EMA weights of ``source`` (:func:`resolve_source`) into ``net`` in place."""
    path = resolve_source(source)
    tensors, meta = load_checkpoint(path)
    prefix = "ema." if any(k.startswith("ema.") for k in tensors) else "model."
    weights = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    own = net.state_dict()
    unknown = sorted(set(weights) - set(own))
    if unknown:
        raise InitWeightsError(
            f"trainer.init_from={source}: the network has no tensors {unknown[:5]}; the source "
            "was trained with another model config"
        )
    for name, value in weights.items():
        if value.shape != own[name].shape:
            raise InitWeightsError(
                f"trainer.init_from={source}: tensor {name} is {tuple(value.shape)} there and "
                f"{tuple(own[name].shape)} here; use the same model.* settings"
            )
    net.load_state_dict(weights, strict=False)
    new = tuple(sorted(set(own) - set(weights)))
    return InitWeights(source, path, int(meta.get("step", 0)), new)
