"""Composing and validating configs for the commands: Hydra's compose API over the packaged
``configs/`` (groups ``task``, ``model``, ``sampler``, ``trainer``, ``policy``).

Lives below the CLI so that the quickstart and users' scripts compose configs the same way
without importing the command line.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

EXIT_USAGE = 2
EXIT_FAILED = 1


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


def _config_dir() -> str:
    return str(resources.files("sci_diffusion.configs"))


def _group_options(group: str) -> list[str]:
    folder = Path(_config_dir()) / group
    return sorted(p.stem for p in folder.glob("*.yaml"))


def compose(overrides: list[str]) -> Any:
    """Compose the config with ``overrides``; return it with ``hydra.run.dir`` resolved."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    values = [o for o in overrides if _override_key(o) not in CONFIG_GROUPS and "=" in o]
    try:
        with initialize_config_dir(_config_dir(), version_base=None):
            cfg = hydra_compose("config", overrides=overrides, return_hydra_config=True)
            # The same group choices without the value overrides: the typed defaults.
            defaults = hydra_compose("config", [o for o in overrides if o not in values])
        run_dir = str(cfg.hydra.run.dir)
        with open_dict(cfg):
            del cfg["hydra"]
        cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    except (HydraException, OmegaConfBaseException) as err:
        raise UsageError(_hydra_message(err)) from None
    for override in values:
        key = _override_key(override)
        if not key.startswith("hydra."):
            check_type(key, OmegaConf.select(defaults, key), OmegaConf.select(cfg, key))
    validate(cfg)
    return cfg, Path(run_dir)


CONFIG_GROUPS = ("task", "model", "sampler", "trainer", "policy")


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def check_type(key: str, default: Any, value: Any) -> None:
    """An override keeps the type of the config's default (ints may stand for floats)."""
    if default is None or value is None:
        return
    expected: tuple[type, ...] = (type(default),)
    if isinstance(default, float) and not isinstance(default, bool):
        expected = (int, float)
    if isinstance(default, (list, tuple)) or type(default).__name__ == "ListConfig":
        expected = (list, tuple, type(default))
    if isinstance(default, dict) or type(default).__name__ == "DictConfig":
        expected = (dict, type(default))
    bool_mismatch = isinstance(value, bool) != isinstance(default, bool)
    if not isinstance(value, expected) or bool_mismatch:
        raise UsageError(f"{key} must be {type(default).__name__}, got {value!r}")


def _hydra_message(err: Exception) -> str:
    from hydra.errors import OverrideParseException

    text = str(err).strip()
    lines = [ln for ln in text.splitlines() if ln.strip() and "provider=" not in ln]
    override = getattr(err, "override", None)
    if isinstance(err, OverrideParseException) and override and override not in text:
        return f"cannot parse override {override!r}: {lines[0] if lines else text}"
    if "Could not override" in text or "not in struct" in text:
        key = text.split("'")[1] if "'" in text else "?"
        group = key.split(".")[0]
        known = ""
        if group in CONFIG_GROUPS:
            known = f" ({group} keys are listed by `sci-diffusion train --help`)"
        return f"unknown config key '{key}'{known}"
    missing = re.search(r"Could not find '([^'/]+)/([^']+)'", text)
    if missing:
        group, option = missing.groups()
        options = ", ".join(_group_options(group))
        return f"unknown {group} '{option}'; available {group} options: {options}"
    return " ".join(lines[:2])


TRAINER_TYPES: dict[str, tuple[type, ...]] = {
    "max_steps": (int,), "max_minutes": (int, float, type(None)), "seed": (int,),
    "device": (str,), "distributed": (bool,), "checkpoint_every": (int,),
    "batch_size": (int,), "lr": (int, float), "weight_decay": (int, float),
    "warmup_steps": (int,), "grad_clip": (int, float), "ema_decay": (float,),
    "ema_power": (int, float), "log_every": (int,), "precision": (str,), "progress": (bool,),
}  # fmt: skip
CHOICES = {"trainer.precision": ("auto", "fp32", "bf16")}


def validate(cfg: Any) -> None:
    """Type- and range-check the keys every command relies on (one message naming the key)."""
    for key, types in TRAINER_TYPES.items():
        value = cfg.trainer.get(key)
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise UsageError(f"trainer.{key} must be {names}, got {value!r}")
    for key in ("max_steps", "checkpoint_every", "batch_size", "log_every"):
        if cfg.trainer[key] < 1:
            raise UsageError(f"trainer.{key} must be >= 1, got {cfg.trainer[key]}")
    if not 0.0 <= cfg.trainer.ema_decay < 1.0:
        raise UsageError(f"trainer.ema_decay must be in [0, 1), got {cfg.trainer.ema_decay}")
    for key, allowed in CHOICES.items():
        group, name = key.split(".")
        if cfg[group][name] not in allowed:
            raise UsageError(f"{key} must be one of {', '.join(allowed)}, got {cfg[group][name]!r}")
    device = str(cfg.trainer.device)
    if device != "auto" and device.split(":")[0] not in ("cpu", "cuda"):
        raise UsageError(f"trainer.device must be auto, cpu, cuda or cuda:N, got {device!r}")
    for key in ("steps", "n", "episodes"):
        value = cfg.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise UsageError(f"{key} must be a positive integer, got {value!r}")


def _kv(args: list[str], allowed: dict[str, str]) -> dict[str, str]:
    out = {}
    for arg in args:
        if "=" not in arg:
            raise UsageError(f"expected key=value, got {arg!r}; keys: {', '.join(allowed)}")
        key, value = arg.split("=", 1)
        if key not in allowed:
            raise UsageError(f"unknown option {key!r}; allowed: {', '.join(allowed)}")
        out[key] = value
    return out
