"""Property conditioning of a molecule task: training values, condition dropout, targets,
classifier-free guidance and the report of targets against achieved values.

A task with ``task.condition=[qed, logp]`` trains its network on the training molecules'
property values (:func:`sci_diffusion.chem.conditioning.property_table`), each property
dropped (replaced by NaN, "not given") with probability ``task.condition_dropout`` per
property and all of them with the same probability per molecule — so one network is the
conditional model, the unconditional one, and the model conditioned on any subset.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sci_diffusion.chem.conditioning import (
    CONDITION_PROPERTIES,
    ConditionError,
    check_property_names,
    property_table,
    rdkit_values,
)
from sci_diffusion.core import ClassifierFreeGuidance


class PropertyConditioning:
    """The conditioning settings of one task and the operations around them.

    Args:
        names: the conditioning properties (``task.condition``), in the network's order.
        dropout: ``task.condition_dropout``.
        dataset: the data set's name (which properties exist).
    """

    def __init__(self, names: Sequence[str], dropout: float, dataset: str) -> None:
        self.names = check_property_names(names, dataset)
        if not 0.0 <= dropout < 1.0:
            raise ConditionError(f"task.condition_dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        self.dataset = dataset
        self._values: Tensor | None = None

    @classmethod
    def from_config(cls, task_cfg: Any) -> PropertyConditioning:
        names = list(task_cfg.get("condition") or [])
        return cls(names, float(task_cfg.get("condition_dropout", 0.1)),
                   str(task_cfg.data.dataset))  # fmt: skip

    def __bool__(self) -> bool:
        return bool(self.names)

    def describe(self) -> str:
        """The model card's ``conditioning`` line."""
        if not self.names:
            return "none"
        units = ", ".join(f"{n} [{CONDITION_PROPERTIES[n].unit}]" for n in self.names)
        return (f"properties {units}; classifier-free guidance (condition dropout "
                f"{self.dropout:g} per property and per molecule)")  # fmt: skip

    # -- training --------------------------------------------------------------------------
    def training_values(self, source_index: Tensor, split: str = "train") -> Tensor:
        """(M, P) float32 property values of the training molecules (cached on disk)."""
        if self._values is None:
            table = property_table(self.dataset, split, source_index.numpy(), self.names)
            self._values = torch.from_numpy(table).float()
        return self._values

    def batch_values(self, rows: Tensor, generator: torch.Generator) -> Tensor:
        """(B, P) values of training rows ``rows`` with condition dropout applied (NaN)."""
        assert self._values is not None, "training_values() first"
        values = self._values[rows].clone()
        p = len(self.names)
        drop = torch.rand(len(rows), p, generator=generator) < self.dropout
        drop |= torch.rand(len(rows), 1, generator=generator) < self.dropout
        return values.masked_fill(drop, math.nan)

    # -- sampling --------------------------------------------------------------------------
    def requested_targets(
        self, target_cfg: Any, predictor_names: Sequence[str] | None = None
    ) -> dict[str, float]:
        """``target.<property>=<value>`` of the command, checked: an unknown property, one
        the checkpoint is not conditioned on (or, with ``predictor_names``, that the guidance
        predictor does not predict) or a non-finite value is an error."""
        targets = {str(k): v for k, v in dict(target_cfg or {}).items()}
        for name, value in targets.items():
            if name not in CONDITION_PROPERTIES:
                raise ConditionError(
                    f"target.{name}: unknown property; valid: {', '.join(CONDITION_PROPERTIES)}"
                )
            if predictor_names is not None and name not in predictor_names:
                raise ConditionError(
                    f"target.{name}: the guidance predictor does not predict {name} (it "
                    f"predicts: {', '.join(predictor_names)}); train one that does"
                )
            if predictor_names is None and name not in self.names:
                have = ", ".join(self.names) if self.names else "none (unconditional)"
                raise ConditionError(
                    f"target.{name}: this checkpoint is not conditioned on {name} (it is on: "
                    f"{have}); train one with task.condition=[...,{name}], drop the target, or "
                    "steer an unconditional model with guidance.method=predictor"
                )
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not math.isfinite(float(value))
            ):
                raise ConditionError(f"target.{name} must be a finite number, got {value!r}")
        return {k: float(v) for k, v in targets.items()}

    def target_tensor(self, targets: dict[str, float], n: int, net: Any) -> Tensor:
        """(n, P) targets in the network's order, NaN for properties not asked for; warns when
        a target lies outside the training range (the net's ``property_low/high``)."""
        row = torch.full((len(self.names),), math.nan)
        for i, name in enumerate(self.names):
            if name in targets:
                row[i] = targets[name]
                low, high = float(net.property_low[i]), float(net.property_high[i])
                if not low <= targets[name] <= high:
                    warnings.warn(
                        f"target.{name}={targets[name]:g} is outside the training range "
                        f"[{low:.4g}, {high:.4g}] {CONDITION_PROPERTIES[name].unit}: the model "
                        "extrapolates there and will mostly miss it",
                        UserWarning,
                        stacklevel=3,
                    )
        return row.expand(n, -1).clone()

    @staticmethod
    def guided(denoiser: Any, targets: Tensor, scale: float) -> ClassifierFreeGuidance:
        """Classifier-free guidance towards ``targets`` (n, P); NaN rows are the null branch."""
        null = torch.full_like(targets, math.nan)
        return ClassifierFreeGuidance(denoiser, {"properties": targets},
                                      {"properties": null}, scale)  # fmt: skip

    # -- report ----------------------------------------------------------------------------
    def achieved(self, smiles: Sequence[str | None], names: Sequence[str]) -> np.ndarray:
        """(M, len(names)) RDKit values of canonical SMILES (NaN for None)."""
        from rdkit import Chem

        rows = []
        for s in smiles:
            mol = Chem.MolFromSmiles(s) if s else None
            values = rdkit_values(mol, names) if mol is not None else {}
            rows.append([values.get(n, math.nan) for n in names])
        return np.asarray(rows, dtype=np.float64).reshape(len(smiles), len(names))


def conditioning_figures(targets: dict[str, float], achieved: np.ndarray) -> dict[str, Any]:
    """Per property: target, MAE and hit rate (within the documented tolerance) of the
    candidates' ``achieved`` (M, P, columns in ``targets`` order); ``n`` candidates."""
    out: dict[str, Any] = {}
    for i, (name, target) in enumerate(targets.items()):
        values = achieved[:, i]
        values = values[np.isfinite(values)]
        err = np.abs(values - target)
        tol = CONDITION_PROPERTIES[name].tolerance
        out[name] = {
            "target": target,
            "unit": CONDITION_PROPERTIES[name].unit,
            "n": int(values.size),
            "mae": float(err.mean()) if values.size else None,
            "hit_rate": float((err <= tol).mean()) if values.size else None,
            "tolerance": tol,
            "mean": float(values.mean()) if values.size else None,
        }
    return out
