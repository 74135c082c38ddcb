"""One config system for every command: typed structured configs, parsed by Hydra.

Every command's options are a dataclass of :mod:`sci_diffusion.configs.schema`, stored in
Hydra's ConfigStore. ``train``, ``eval`` and ``sample`` compose the packaged ``configs/``
(groups ``task``, ``model``, ``sampler``, ``trainer``, ``policy``) on top of
:class:`~sci_diffusion.configs.schema.RunConfig`; the other commands compose their own schema
(:data:`OPTIONS`). Both use Hydra's override grammar, OmegaConf checks the types on every merge
(one spelling of booleans: OmegaConf's), and each dataclass's rules (ranges, choices) run when
OmegaConf instantiates it. Task, model and policy configs stay free-form YAML; an override there
keeps the type of its default (:func:`check_type`).

Every mistake in what a user passed raises :class:`UsageError` (a
:class:`~sci_diffusion.io.errors.UserInputError`) with a one-line message that names the key.
:func:`describe` lists a schema's fields (key, type, default, help) for generated ``--help``.

Lives below the CLI so that the quickstart and users' scripts compose configs the same way
without importing the command line.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

from sci_diffusion.configs import schema
from sci_diffusion.io.errors import UserInputError

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention

CONFIG_GROUPS = ("task", "model", "sampler", "trainer", "policy")

OPTIONS: dict[str, type] = {
    "export": schema.ExportOptions,
    "bench": schema.BenchOptions,
    "quickstart": schema.QuickstartOptions,
    "demos": schema.DemosOptions,
    "screen": schema.ScreenOptions,
}
"""The commands that do not compose ``configs/``: command -> its options dataclass."""

SECTIONS: dict[str, type] = {"trainer": schema.TrainerConfig, "sampler": schema.SamplerConfig}
"""The typed sections of the composed config (the others are free-form YAML)."""


class UsageError(UserInputError):
    """Bad command-line input: printed as one line, exit code 2."""


def _config_dir() -> str:
    return str(resources.files("sci_diffusion.configs"))


def _group_options(group: str) -> list[str]:
    folder = Path(_config_dir()) / group
    return sorted(p.stem for p in folder.glob("*.yaml"))


def register() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent): ``run_schema`` (the base of
    ``configs/config.yaml``) and ``<command>_options`` for each command of :data:`OPTIONS`."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="run_schema", node=schema.RunConfig)
    for command in OPTIONS:
        store.store(name=f"{command}_options", node=options_schema(command))


# -- train, eval, sample ---------------------------------------------------------------------


#: Top-level mappings whose keys the user names (``target.qed=0.6``).
OPEN_MAPPINGS = ("target.",)
#: Keys whose value is taken verbatim (a SMILES such as ``[nH]1cccc1`` is not Hydra syntax).
VERBATIM_KEYS = ("scaffold=",)


def _quoted_string(override: str) -> str:
    """``key=value`` with the value quoted for Hydra's grammar (unless already quoted)."""
    key, value = override.split("=", 1)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return override
    escaped = value.replace("'", "\\'")  # Hydra: a backslash is literal unless before a quote
    return f"{key}='{escaped}'"


def compose(overrides: list[str]) -> Any:
    """Compose the config with ``overrides``; return it with ``hydra.run.dir`` resolved."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    for override in overrides:
        if "=" not in override and not override.startswith("~"):
            raise UsageError(f"expected key=value, got {override!r}")
    register()
    # target.<property>=<value> names a key of an open mapping: Hydra adds it with "+".
    overrides = [f"+{o}" if o.startswith(OPEN_MAPPINGS) else o for o in overrides]
    overrides = [_quoted_string(o) if o.startswith(VERBATIM_KEYS) else o for o in overrides]
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


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def check_type(key: str, default: Any, value: Any) -> None:
    """An override keeps the type of the config's default (ints may stand for floats).

    The typed sections are checked by OmegaConf already; this holds the free-form ones (task,
    model, policy) to the types of their YAML defaults."""
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


def validate(cfg: Any) -> None:
    """Check ``cfg`` (composed, or a plain config such as a run's saved one) against
    :class:`~sci_diffusion.configs.schema.RunConfig`: types, ranges and choices of the typed
    sections and the top-level keys. Raises :class:`UsageError` naming the key."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        typed = OmegaConf.merge(OmegaConf.structured(schema.RunConfig), cfg)
    except OmegaConfBaseException as err:
        raise UsageError(_omegaconf_message(err)) from None
    for name in SECTIONS:
        instantiate(typed[name], prefix=f"{name}.")
    top = {k: typed[k] for k in schema.RUN_KEYS}
    instantiate(OmegaConf.merge(OmegaConf.structured(schema.RunConfig), top))


def instantiate(node: Any, prefix: str = "") -> Any:
    """``OmegaConf.to_object(node)``: the dataclass instance, its rules checked; a broken rule
    raises :class:`UsageError` naming ``<prefix><key>``."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        obj = OmegaConf.to_object(node)
    except schema.SchemaError as err:
        raise UsageError(f"{prefix}{_cli_key(err.key)} {err.problem}") from None
    except OmegaConfBaseException as err:
        raise UsageError(_omegaconf_message(err, prefix)) from None
    for f in dataclasses.fields(obj) if dataclasses.is_dataclass(obj) else ():
        value = getattr(obj, f.name)
        if "choices_from" in f.metadata and value is not None:
            allowed = registry_choices(f.metadata["choices_from"])
            if value not in allowed:
                raise UsageError(f"{prefix}{_cli_key(f.name)} must be one of "
                                 f"{', '.join(allowed)}, got {value!r}")  # fmt: skip
    return obj


def registry_choices(reference: str) -> list[str]:
    """The names of a plugin registry, from a field's ``choices_from`` ``"module:function"``."""
    import importlib

    module, _, function = reference.partition(":")
    return list(getattr(importlib.import_module(module), function)())


# -- the other commands ----------------------------------------------------------------------


def options_schema(command: str) -> type:
    """The options dataclass of ``command``; ``screen``'s ``gate`` section is typed by
    :class:`~sci_diffusion.chem.gate.GateConfig` (imported only when asked for)."""
    cls = OPTIONS[command]
    if command != "screen":
        return cls
    return _screen_schema()


_SCREEN_SCHEMA: list[type] = []


def _screen_schema() -> type:
    if not _SCREEN_SCHEMA:
        gate = gate_schema()
        help_ = dict(schema.ScreenOptions.__dataclass_fields__["gate"].metadata)
        _SCREEN_SCHEMA.append(dataclasses.make_dataclass(
            "ScreenOptions", [("gate", gate, dataclasses.field(default_factory=gate,
                                                             metadata=help_))],
            bases=(schema.ScreenOptions,),
        ))  # fmt: skip
    return _SCREEN_SCHEMA[0]


def gate_schema() -> type:
    """An OmegaConf schema of every :class:`~sci_diffusion.chem.gate.GateConfig` field, typed
    from its annotations (sets and tuples of strings as lists, key/value tuples as mappings);
    every field defaults to missing, so a parse holds only the settings given."""
    from omegaconf import MISSING

    from sci_diffusion.chem.gate import GateConfig

    hints = typing.get_type_hints(GateConfig)
    fields = []
    for f in dataclasses.fields(GateConfig):
        meta = {"help": f.metadata.get("help", ""), "default": _gate_default(f)}
        fields.append((f.name, _omegaconf_type(hints[f.name]),
                       dataclasses.field(default=MISSING, metadata=meta)))  # fmt: skip
    return dataclasses.make_dataclass("GateSettings", fields)


def _gate_default(f: dataclasses.Field) -> Any:
    value = f.default
    if f.metadata.get("kind") == "plausibility":
        return dict(value)
    if isinstance(value, (frozenset, set)):
        return sorted(value)
    return list(value) if isinstance(value, tuple) else value


def _omegaconf_type(hint: Any) -> Any:
    """A dataclass annotation as a type OmegaConf accepts."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        base = _omegaconf_type(inner[0]) if len(inner) == 1 else Any
        return typing.Optional[base] if type(None) in args else base  # noqa: UP045
    if origin in (frozenset, set, tuple, list):
        item = args[0] if args else Any
        if typing.get_origin(item) is tuple:  # tuple[tuple[str, Any], ...]: a mapping,
            return Any  # whose keys the dataclass itself checks
        return list[item if item in (str, int, float, bool) else Any]
    if origin is dict:
        return dict[str, Any]
    return hint if hint in (str, int, float, bool) else Any


def parse_options(command: str, args: list[str], *, partial: bool = False) -> Any:
    """Parse ``key=value`` ``args`` of ``command`` (see :data:`OPTIONS`) into its dataclass,
    with Hydra's override grammar and OmegaConf's types; check the rules and (unless
    ``partial``, for documentation lines that elide arguments) the required keys."""
    from hydra import compose as hydra_compose
    from hydra import initialize
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    cls = options_schema(command)
    keys = [_cli_key(f.name) for f in dataclasses.fields(cls)]
    renamed = []
    for arg in args:
        key = arg.split("=", 1)[0]
        if "=" not in arg:
            raise UsageError(f"expected key=value, got {arg!r}; keys: {', '.join(keys)}")
        if key.split(".")[0] not in keys:
            raise UsageError(f"unknown option {key!r} for {command}; keys: {', '.join(keys)}")
        renamed.append(_field_key(cls, key) + arg[len(key) :])
    register()
    try:
        with initialize(version_base=None):
            cfg = hydra_compose(f"{command}_options", overrides=renamed)
    except (HydraException, OmegaConfBaseException) as err:
        raise UsageError(_hydra_message(err, unknown=f"{command} option")) from None
    if command == "screen":  # gate settings given (the others stay missing) as a mapping
        from omegaconf import OmegaConf

        given = {k: v for k, v in OmegaConf.to_container(cfg.gate).items() if v != "???"}
        rest = {k: v for k, v in OmegaConf.to_container(cfg).items() if k != "gate"}
        cfg = OmegaConf.merge(OmegaConf.structured(schema.ScreenOptions), rest, {"gate": given})
    options = instantiate(cfg)
    if command == "screen":  # each gate setting on its own (rules between them: at run time)
        from sci_diffusion.chem.gate import GateConfig, GateConfigError

        for name, value in options.gate.items():
            try:
                GateConfig.check_setting(name, value)
            except GateConfigError as err:
                raise UsageError(str(err)) from None
    if not partial:
        missing = [_cli_key(f.name) for f in dataclasses.fields(cls)
                   if f.metadata.get("required") and getattr(options, f.name) is None]  # fmt: skip
        if missing:
            raise UsageError(f"{command} needs {', '.join(f'{k}=...' for k in missing)}")
    return options


def _cli_key(name: str) -> str:
    """The command-line key of a schema field (``in_`` is ``in``)."""
    return name[:-1] if name.endswith("_") else name


def _field_key(cls: type, key: str) -> str:
    head, _, rest = key.partition(".")
    names = {_cli_key(f.name): f.name for f in dataclasses.fields(cls)}
    return names.get(head, head) + (f".{rest}" if rest else "")


# -- help --------------------------------------------------------------------------------------


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """``(key, type, default, help)`` for every field of a schema, nested sections flattened
    (``gate.pains``); the lines ``--help`` prints."""
    rows = []
    for f in dataclasses.fields(cls):
        key = prefix + _cli_key(f.name)
        hint = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(hint):
            rows.extend(describe(hint, prefix=f"{key}."))
            continue
        default: Any = f.metadata.get("default", f.default)
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if f.metadata.get("required"):
            shown = "required"
        else:
            shown = "null" if default is None else _show(default)
        kind = _type_name(hint)
        if f.metadata.get("required"):
            kind = kind.removesuffix(" or null")
        rows.append((key, kind, shown, _help_line(f)))
    return rows


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _help_line(f: dataclasses.Field) -> str:
    text = f.metadata.get("help", "")
    choices = f.metadata.get("choices")
    if "choices_from" in f.metadata:
        choices = registry_choices(f.metadata["choices_from"])
    if choices and "|" not in text and ", ".join(map(str, choices)) not in text:
        text += f" ({'|'.join(map(str, choices))})"
    return text


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(inner) + (" or null" if type(None) in args else "")
    if origin in (list, tuple, frozenset, set):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict or hint is Any:
        return "mapping" if origin is dict else "any"
    return getattr(hint, "__name__", str(hint))


# -- error messages --------------------------------------------------------------------------


def _omegaconf_message(err: Exception, prefix: str = "") -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    key = getattr(err, "full_key", None)
    if key:
        key = prefix + _cli_key(str(key))
        return f"{key}: {text}" if key not in text else text
    return text


def _hydra_message(err: Exception, unknown: str = "config") -> str:
    from hydra.errors import OverrideParseException

    text = str(err).strip()
    lines = [ln for ln in text.splitlines() if ln.strip() and "provider=" not in ln]
    override = getattr(err, "override", None)
    if isinstance(err, OverrideParseException) and override and override not in text:
        return f"cannot parse override {override!r}: {lines[0] if lines else text}"
    if "Could not override" in text or "not in struct" in text or "Key '" in text:
        key = text.split("'")[1] if "'" in text else "?"
        group = key.split(".")[0]
        known = ""
        if group in CONFIG_GROUPS:
            known = f" ({group} keys are listed by `sci-diffusion train --help`)"
        what = "gate config" if group == "gate" else unknown
        return f"unknown {what} key '{key}'{known}"
    missing = re.search(r"Could not find '([^'/]+)/([^']+)'", text)
    if missing:
        group, option = missing.groups()
        options = ", ".join(_group_options(group))
        return f"unknown {group} '{option}'; available {group} options: {options}"
    merging = re.match(r"Error merging override (\S+)", text)
    cause = err.__cause__
    if merging and cause is not None:
        override = merging.group(1)
        key = _cli_key_path(override.split("=", 1)[0].lstrip("+~"))
        shown = f"{key}={override.split('=', 1)[1]}" if "=" in override else key
        detail = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        return f"{shown}: {detail}"
    return " ".join(lines[:2])


def _cli_key_path(key: str) -> str:
    head, _, rest = key.partition(".")
    return _cli_key(head) + (f".{rest}" if rest else "")


def __getattr__(name: str) -> Any:
    if name == "TRAINER_TYPES":  # the old hand-written table, now derived from the schema
        import warnings

        warnings.warn("sci_diffusion.config.TRAINER_TYPES is deprecated; use "
                      "sci_diffusion.configs.schema.TrainerConfig", DeprecationWarning,
                      stacklevel=2)  # fmt: skip
        return {k: t for k, t, _, _ in describe(schema.TrainerConfig)}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
