"""The RDKit screening gate: every molecule runs the same ordered checks, and every outcome is kept.

Checks, in order (:data:`GATES`):

1. ``construction`` — input to an RDKit molecule without sanitization (SMILES parsed with
   ``sanitize=False``; an RDKit ``Mol`` is copied; ``None`` or :class:`NotConstructed` marks a
   generated graph whose construction already failed, with the caller's reason). An unexpected
   RDKit error later in the checks of one molecule is also recorded here, with its text, so
   that one odd molecule cannot end a batch.
2. ``sanitization`` — ``Chem.SanitizeMol(catchErrors=True)``; a failure records the failing step
   (``SANITIZE_PROPERTIES``, ``SANITIZE_KEKULIZE``, ...) and RDKit's message.
3. ``connectedness`` — exactly one fragment (stray atoms and salts fail).
4. ``elements`` — every atom in :attr:`GateConfig.allowed_elements`.
5. ``charges`` — net charge within limits, ``|formal charge|`` per atom, radical electrons.
6. ``geometry_3d`` — for a molecule carrying 3D coordinates, the plausibility checks of
   :mod:`sci_diffusion.chem.plausibility` (PoseBusters' molecule checks: bond lengths and
   angles within distance-geometry bounds, no internal clash, flat aromatic rings and C=C, UFF
   energy ratio against ETKDG conformers). A molecule without 3D coordinates is ``skipped``
   here (:attr:`GateConfig.geometry_3d` ``"auto"``, the default) or fails (``"require"``).
   :attr:`GateConfig.geometry_profile` ``"strict"`` adds QM9's bond-length and bond-angle
   ranges (:mod:`sci_diffusion.chem.geometry_bounds`) to these checks.
7. ``alerts`` — RDKit ``FilterCatalog`` PAINS (A, B and C) and Brenk; each catalog rejects,
   only records, or is off (:attr:`GateConfig.pains`, :attr:`GateConfig.brenk`).
8. ``properties`` — :mod:`sci_diffusion.chem.properties` with the configured thresholds.
9. ``duplicates`` — within the batch, by canonical SMILES or InChIKey; the first occurrence
   among the molecules reaching this check passes.
10. ``novelty`` — canonical SMILES against an optional training set; records ``novel``; rejects
   non-novel molecules only if :attr:`GateConfig.reject_non_novel`.
11. ``deny_list`` — user SMARTS substructures and exact compounds (InChIKey or SMILES).

After the first failing check the later ones are ``skipped``. Two kinds of values are computed
beyond that point on purpose, for the analysis of rejects: canonical SMILES / InChIKey for every
molecule that sanitized, and the properties when :attr:`GateConfig.properties_for_rejected` is
true (their *gate* still reads ``skipped``). A molecule whose checks all pass
(``novelty`` may be skipped without a training set, ``geometry_3d`` without coordinates) is
``in_silico_screened``; one that passed checks 1-6 is a ``valid_structure``; any other is
``generated``. That vocabulary never claims a molecule was synthesized or assayed.

Checks 1-8 and the deny-list match are per molecule and run in worker processes; duplicates and
novelty are batch-level and run afterwards in the calling process. Records keep input order.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import math
import re
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdkit import Chem, rdBase
from rdkit.Chem import FilterCatalog

from sci_diffusion.io.errors import UserInputError
from sci_diffusion.io.files import atomic_open

from ._deprecated import moved_names
from .geometry_bounds import GEOMETRY_PROFILES, STRICT_CHECKS
from .parallel import frozen_heap, map_chunks, resolve_processes
from .plausibility import PLAUSIBILITY_CHECKS, PlausibilityConfig, check_plausibility
from .properties import PROPERTY_NAMES, compute_properties, sascorer, without_hydrogens
from .sanitize import clean_log, one_line, sanitize

__getattr__ = moved_names(
    __name__, {"available_cores": "sci_diffusion.chem.parallel:available_cores"}
)

GATES: tuple[str, ...] = (
    "construction",
    "sanitization",
    "connectedness",
    "elements",
    "charges",
    "geometry_3d",
    "alerts",
    "properties",
    "duplicates",
    "novelty",
    "deny_list",
)
"""Check names, in the order they run."""

STRUCTURE_GATES: tuple[str, ...] = GATES[:6]
"""Checks whose passing makes a ``valid_structure``."""
PER_MOLECULE_GATES: tuple[str, ...] = GATES[: GATES.index("duplicates")]
"""Checks run per molecule in worker processes (the rest need the whole batch)."""
SKIPPABLE_GATES: tuple[str, ...] = ("geometry_3d", "novelty")
"""Checks that may read ``skipped`` in a candidate: no coordinates, no training set."""
GEOMETRY_MODES: tuple[str, ...] = ("auto", "require", "off")

PASS, FAIL, SKIPPED = "pass", "fail", "skipped"
OUTCOMES: tuple[str, ...] = (PASS, FAIL, SKIPPED)

GENERATED = "generated"
VALID_STRUCTURE = "valid_structure"
IN_SILICO_SCREENED = "in_silico_screened"
VALIDATION_STATUSES: tuple[str, ...] = (GENERATED, VALID_STRUCTURE, IN_SILICO_SCREENED)
"""Validation vocabulary, weakest first. Nothing here is synthesized or assayed."""

DRUG_LIKE_ELEMENTS: frozenset[str] = frozenset({"H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I"})
ALERT_MODES: tuple[str, ...] = ("reject", "record", "off")
DUPLICATE_KEYS: tuple[str, ...] = ("canonical_smiles", "inchikey")

_INCHIKEY = re.compile(r"^[A-Z]{14}-[A-Z]{10}-[A-Z]$")
_SYMBOLS = frozenset(Chem.GetPeriodicTable().GetElementSymbol(z) for z in range(1, 119))


class GateConfigError(UserInputError):
    """A gate configuration with an unknown key, a value of the wrong type or an invalid value."""


# (config field, property, "min" or "max") — the property thresholds of check 7.
PROPERTY_LIMITS: tuple[tuple[str, str, str], ...] = (
    ("min_qed", "qed", "min"),
    ("max_sa_score", "sa_score", "max"),
    ("max_mw", "mw", "max"),
    ("max_logp", "logp", "max"),
    ("max_hbd", "hbd", "max"),
    ("max_hba", "hba", "max"),
    ("max_rotatable_bonds", "rotatable_bonds", "max"),
    ("max_lipinski_violations", "lipinski_violations", "max"),
)


def _setting(kind: str, help: str) -> dict[str, str]:
    """A :class:`GateConfig` field's metadata: validator kind and one line of help."""
    return {"kind": kind, "help": help}


@dataclass(frozen=True)
class GateConfig:
    """Settings of the screening gate; every default is listed here and in docs/molecules.md.

    Attributes
    ----------
    allowed_elements
        Element symbols allowed in a molecule (default the drug-like set H C N O F P S Cl Br I;
        QM9's H C N O F and MOSES' H C N O F S Cl Br all pass).
    require_connected
        Reject molecules of more than one fragment (default true).
    min_net_charge, max_net_charge
        Allowed range of the sum of formal charges (default 0 to 0: neutral molecules, which
        is what generators are trained on; zwitterions such as nitro groups stay allowed).
    max_abs_formal_charge
        Largest ``|formal charge|`` on any atom (default 1).
    allow_radicals
        Accept atoms with radical electrons (default false).
    pains, brenk
        ``"reject"``, ``"record"`` or ``"off"`` for the PAINS (A+B+C) and Brenk catalogs.
        Defaults: PAINS rejects (assay-interference motifs are a screening-library standard);
        Brenk only records, because its "unwanted functionality" list flags a large share of
        small, valid molecules (about half of the first 2,000 QM9 molecules: aldehydes, triple
        bonds, three-membered heterocycles, imines).
    min_qed, max_sa_score, max_mw, max_logp, max_hbd, max_hba, max_rotatable_bonds
        Property thresholds; ``None`` (default) records the property without a limit.
    max_lipinski_violations
        Rule-of-five violations allowed (default 1, Lipinski's own "more than one" cut-off).
    duplicate_key
        ``"canonical_smiles"`` (default; isomeric) or ``"inchikey"`` (also merges tautomers
        that standard InChI treats as one).
    reject_duplicates
        Reject later occurrences of a molecule in the batch (default true); false records them.
    reject_non_novel
        Reject molecules found in the training set (default false: record ``novel`` only).
    deny_smarts
        SMARTS substructures that always reject (matched without explicit hydrogens).
    deny_compounds
        Exact compounds that always reject, each an InChIKey or a SMILES (stored canonical).
    properties_for_rejected
        Compute properties also for sanitized molecules rejected earlier, for analysis
        (default true; the ``properties`` gate still reads ``skipped`` for them).
    geometry_3d
        ``"auto"`` (default): run the 3D plausibility checks on molecules with a 3D conformer,
        skip the others; ``"require"``: a molecule without 3D coordinates fails; ``"off"``.
    geometry_3d_options
        Thresholds of :class:`~sci_diffusion.chem.plausibility.PlausibilityConfig` to change
        (default none: PoseBusters' ``mol`` values, 10 ETKDG conformers for the energy).
    geometry_profile
        ``"default"``: the 3D checks are PoseBusters' (bond lengths and angles within 0.75 x
        to 1.25 x RDKit's distance-geometry bounds, ...); ``"strict"``: also every bond length
        and bond angle within the 0.1-99.9th percentiles QM9's DFT geometries show for its
        kind (:mod:`sci_diffusion.chem.geometry_bounds`). The default stays PoseBusters' so
        that earlier figures and screenings of other chemistry keep their meaning; choose
        ``strict`` for QM9-like molecules whose coordinates you want to use as they are.
    """

    # Each field's metadata: its validator kind (`_validated`; "?" allows None) and the one
    # line `sci-diffusion screen --help` prints for gate.<field>.
    allowed_elements: frozenset[str] = field(
        default=DRUG_LIKE_ELEMENTS,
        metadata=_setting(
            "elements", "element symbols allowed (default the drug-like H C N O F P S Cl Br I)"
        ),
    )
    require_connected: bool = field(
        default=True, metadata=_setting("bool", "reject molecules of more than one fragment")
    )
    min_net_charge: int = field(
        default=0, metadata=_setting("int", "lowest allowed sum of formal charges")
    )
    max_net_charge: int = field(
        default=0, metadata=_setting("int", "highest allowed sum of formal charges")
    )
    max_abs_formal_charge: int = field(
        default=1, metadata=_setting("count", "largest |formal charge| on any atom")
    )
    allow_radicals: bool = field(
        default=False, metadata=_setting("bool", "accept atoms with radical electrons")
    )
    pains: str = field(
        default="reject", metadata=_setting("mode", "PAINS (A+B+C) alerts: reject, record or off")
    )
    brenk: str = field(
        default="record", metadata=_setting("mode", "Brenk alerts: reject, record or off")
    )
    min_qed: float | None = field(
        default=None, metadata=_setting("float?", "lowest QED (null: no limit)")
    )
    max_sa_score: float | None = field(
        default=None,
        metadata=_setting("float?", "highest synthetic-accessibility score (null: no limit)"),
    )
    max_mw: float | None = field(
        default=None, metadata=_setting("float?", "highest molecular weight (null: no limit)")
    )
    max_logp: float | None = field(
        default=None, metadata=_setting("float?", "highest logP (null: no limit)")
    )
    max_hbd: int | None = field(
        default=None, metadata=_setting("count?", "most H-bond donors (null: no limit)")
    )
    max_hba: int | None = field(
        default=None, metadata=_setting("count?", "most H-bond acceptors (null: no limit)")
    )
    max_rotatable_bonds: int | None = field(
        default=None, metadata=_setting("count?", "most rotatable bonds (null: no limit)")
    )
    max_lipinski_violations: int | None = field(
        default=1, metadata=_setting("count?", "rule-of-five violations allowed (null: no limit)")
    )
    duplicate_key: str = field(
        default="canonical_smiles",
        metadata=_setting("key", "what makes duplicates: canonical_smiles or inchikey"),
    )
    reject_duplicates: bool = field(
        default=True,
        metadata=_setting("bool", "reject later occurrences of a molecule (false: record them)"),
    )
    reject_non_novel: bool = field(
        default=False, metadata=_setting("bool", "reject molecules found in the training set")
    )
    deny_smarts: tuple[str, ...] = field(
        default=(), metadata=_setting("smarts", "SMARTS substructures that always reject")
    )
    deny_compounds: tuple[str, ...] = field(
        default=(),
        metadata=_setting("compounds", "compounds that always reject (InChIKeys or SMILES)"),
    )
    properties_for_rejected: bool = field(
        default=True,
        metadata=_setting("bool", "compute properties of rejected molecules too, for analysis"),
    )
    geometry_3d: str = field(
        default="auto",
        metadata=_setting(
            "geometry", "3D checks: auto (molecules with coordinates), require or off"
        ),
    )
    geometry_3d_options: tuple[tuple[str, Any], ...] = field(
        default=(),
        metadata=_setting("plausibility", "PlausibilityConfig thresholds to change (a mapping)"),
    )
    geometry_profile: str = field(
        default="default",
        metadata=_setting(
            "profile", "3D checks: default (PoseBusters) or strict (+ QM9's bond/angle ranges)"
        ),
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = _validated(f.name, _FIELD_KINDS[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)  # frozen: normalise once, here
        if self.min_net_charge > self.max_net_charge:
            raise GateConfigError(
                f"gate config: min_net_charge {self.min_net_charge} > "
                f"max_net_charge {self.max_net_charge}"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, coerce_strings: bool = False) -> GateConfig:
        """Build a config from a plain mapping (JSON/YAML/CLI), validating every entry.

        Parameters
        ----------
        data
            ``{field: value}``; missing fields keep their defaults.
        coerce_strings
            Convert string values to the field's type first (``"true"``, ``"6.5"``, ``"none"``,
            comma-separated lists), for ``key=value`` command lines.

        Raises
        ------
        GateConfigError
            For an unknown key (the message lists the known ones) or a bad value.
        """
        if not isinstance(data, Mapping):
            raise GateConfigError(f"gate config must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_FIELD_KINDS))
        if unknown:
            raise GateConfigError(
                f"unknown gate config key(s) {', '.join(map(repr, unknown))}; "
                f"known keys: {', '.join(_FIELD_KINDS)}"
            )
        values = dict(data)
        if coerce_strings:
            values = {k: _coerce(k, _FIELD_KINDS[k], v) for k, v in values.items()}
        return cls(**values)

    @staticmethod
    def check_setting(name: str, value: Any) -> Any:
        """One setting checked on its own (no rules between settings): its normalised value.

        Raises
        ------
        GateConfigError
            For an unknown name or a bad value.
        """
        if name not in _FIELD_KINDS:
            raise GateConfigError(
                f"unknown gate config key {name!r}; known keys: {', '.join(_FIELD_KINDS)}"
            )
        return _validated(name, _FIELD_KINDS[name], value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{field: value}`` (sets become sorted lists, tuples lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, frozenset):
                value = sorted(value)
            elif f.name == "geometry_3d_options":
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


_FIELD_KINDS: dict[str, str] = {f.name: f.metadata["kind"] for f in dataclasses.fields(GateConfig)}
"""Field -> validator kind of :func:`_validated` (from the fields' metadata)."""


def _bad(name: str, expected: str, value: Any) -> GateConfigError:
    return GateConfigError(
        f"gate config: {name} must be {expected}, got {value!r} ({type(value).__name__})"
    )


def _string_list(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in re.split(r"[,\s]+", value) if v]
    if not isinstance(value, Iterable) or not all(isinstance(v, str) for v in value):
        raise _bad(name, "a list of strings", value)
    return tuple(value)


def _validated(name: str, kind: str, value: Any) -> Any:
    """``value`` checked against ``kind`` and normalised (lists to tuples, SMILES canonical)."""
    optional = " or None" if kind.endswith("?") else ""
    if optional and value is None:
        return None
    kind = kind.rstrip("?")
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad(name, "true or false", value)
        return value
    if kind in ("int", "count"):
        lowest = " >= 0" if kind == "count" else ""
        if isinstance(value, bool) or not isinstance(value, int) or (lowest and value < 0):
            raise _bad(name, f"an integer{lowest}{optional}", value)
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise _bad(name, f"a number{optional}", value)
        return float(value)
    if kind == "mode":
        if value not in ALERT_MODES:
            raise _bad(name, " or ".join(map(repr, ALERT_MODES)), value)
        return value
    if kind == "key":
        if value not in DUPLICATE_KEYS:
            raise _bad(name, " or ".join(map(repr, DUPLICATE_KEYS)), value)
        return value
    if kind == "elements":
        symbols = frozenset(_string_list(name, value))
        unknown = sorted(symbols - _SYMBOLS)
        if unknown:
            raise GateConfigError(f"gate config: {name} has unknown element symbol(s) {unknown}")
        return symbols
    if kind == "smarts":
        patterns = _string_list(name, value)
        for pattern in patterns:
            with rdBase.BlockLogs():
                if Chem.MolFromSmarts(pattern) is None:
                    raise GateConfigError(f"gate config: {name} entry {pattern!r} is not SMARTS")
        return patterns
    if kind == "compounds":
        return tuple(_deny_key(name, entry) for entry in _string_list(name, value))
    if kind == "geometry":
        if value not in GEOMETRY_MODES:
            raise _bad(name, " or ".join(map(repr, GEOMETRY_MODES)), value)
        return value
    if kind == "profile":
        if value not in GEOMETRY_PROFILES:
            raise _bad(name, " or ".join(map(repr, GEOMETRY_PROFILES)), value)
        return value
    if kind == "plausibility":
        items = dict(value) if isinstance(value, (Mapping, tuple, list)) else value
        if isinstance(items, Mapping) and "profile" in items:
            raise GateConfigError(
                f"gate config: {name} cannot set the profile; use geometry_profile "
                f"({' or '.join(GEOMETRY_PROFILES)})"
            )
        try:
            PlausibilityConfig.from_dict(items)
        except ValueError as err:
            raise GateConfigError(f"gate config: {name}: {err}") from None
        return tuple(sorted(items.items()))  # hashable: configs key a per-process cache
    raise AssertionError(kind)


def _deny_key(name: str, entry: str) -> str:
    """An InChIKey as given, or a SMILES made canonical (so it compares with records)."""
    if _INCHIKEY.match(entry):
        return entry
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(entry)
    if mol is None or mol.GetNumAtoms() == 0:
        raise GateConfigError(f"gate config: {name} entry {entry!r} is neither InChIKey nor SMILES")
    return Chem.MolToSmiles(mol)


def _coerce(name: str, kind: str, value: Any) -> Any:
    """A ``key=value`` string converted to the field's type (other values pass unchanged)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if kind.endswith("?") and text.lower() in ("none", "null", ""):
        return None
    base = kind.rstrip("?")
    if base == "bool":
        lowered = text.lower()
        return {"true": True, "false": False}.get(lowered, value)
    try:
        if base in ("int", "count"):
            return int(text)
        if base == "float":
            return float(text)
    except ValueError:
        raise _bad(name, "a number", value) from None
    return value


# --------------------------------------------------------------------------------------------
# Inputs and records


@dataclass(frozen=True)
class NotConstructed:
    """Stands for a generated molecule whose construction failed before the gate.

    Attributes
    ----------
    reason
        Why (for example "bond between atoms 3 and 7 has no type"); recorded verbatim.
    """

    reason: str = "construction failed (no reason given)"


MoleculeInput = Chem.Mol | str | None | NotConstructed
"""One gate input: an RDKit molecule (sanitized or not), a SMILES string, or ``None`` /
:class:`NotConstructed` for a failed construction."""


@dataclass(frozen=True)
class GateOutcome:
    """The result of one check on one molecule.

    Attributes
    ----------
    status
        ``"pass"``, ``"fail"`` or ``"skipped"``.
    reason
        Why it failed or was skipped; for a pass, what was recorded without rejecting (empty
        when nothing).
    values
        What the check measured (JSON-ready), e.g. ``{"fragments": 2}``.
    """

    status: str
    reason: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class MoleculeRecord:
    """Everything the gate knows about one input molecule.

    Attributes
    ----------
    index
        Position in the input (0-based).
    name, source
        The caller's name for it and where it came from (e.g. ``"line 12"``), if given.
    input_smiles
        The SMILES given, or for an RDKit input that failed sanitization a best-effort
        SMILES of the raw graph; else ``None``.
    canonical_smiles, inchikey
        Of the sanitized molecule without explicit hydrogens; ``None`` if it did not sanitize.
    gates
        ``{check: GateOutcome}`` for every name in :data:`GATES`, in order.
    properties
        ``{name: value}`` for :data:`~sci_diffusion.chem.properties.PROPERTY_NAMES`, or empty.
    passed
        Whether every check passed.
    failed_gate, failure_reason
        The first failing check and its reason (``None`` when passed).
    validation_status
        One of :data:`VALIDATION_STATUSES`.
    novel
        Not in the training set (``None`` without a training set or a canonical SMILES).
    mol_binary
        ``Chem.Mol.ToBinary()`` of the sanitized molecule as given (hydrogens and conformers
        kept) for molecules that passed checks 1-8; ``None`` otherwise.
    """

    index: int
    name: str | None
    source: str | None
    input_smiles: str | None
    canonical_smiles: str | None
    inchikey: str | None
    gates: dict[str, GateOutcome]
    properties: dict[str, float | int]
    passed: bool = False
    failed_gate: str | None = None
    failure_reason: str | None = None
    validation_status: str = GENERATED
    novel: bool | None = None
    mol_binary: bytes | None = field(default=None, repr=False)

    def mol(self) -> Chem.Mol | None:
        """The sanitized molecule (see :attr:`mol_binary`), or ``None``."""
        return None if self.mol_binary is None else Chem.Mol(self.mol_binary)


# --------------------------------------------------------------------------------------------
# Per-molecule checks 1-8 and the deny-list match (run in worker processes)


def alert_catalog(name: str) -> FilterCatalog.FilterCatalog:
    """An RDKit ``FilterCatalog`` of one built-in set, e.g. ``"PAINS"`` (A+B+C) or ``"BRENK"``."""
    params = FilterCatalog.FilterCatalogParams()
    params.AddCatalog(getattr(FilterCatalog.FilterCatalogParams.FilterCatalogs, name))
    return FilterCatalog.FilterCatalog(params)


Atom = tuple[str, int, int]
"""(symbol, formal charge, radical electrons) of one atom."""


@dataclass
class _Pending:
    """A molecule between :meth:`_Checker.check` and :meth:`_Checker.identify`."""

    fields: list[Any]
    heavy: Chem.Mol | None


class _Checker:
    """Checks 1-8 plus the deny-list match for one config; one instance per process."""

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self.pains = alert_catalog("PAINS") if config.pains != "off" else None
        self.brenk = alert_catalog("BRENK") if config.brenk != "off" else None
        self.deny_patterns = [(s, Chem.MolFromSmarts(s)) for s in config.deny_smarts]
        self.deny_compounds = frozenset(config.deny_compounds)
        self.plausibility = PlausibilityConfig.from_dict(
            {**dict(config.geometry_3d_options), "profile": config.geometry_profile}
        )
        sascorer()  # load the SA fragment table now (shared by forked workers)

    def check(self, kind: str, payload: Any) -> _Pending:
        """Checks 1-8 on one encoded input (see :func:`_encode`); :meth:`identify` completes it.

        The fields are ``[input_smiles, canonical_smiles, inchikey, outcomes, properties,
        mol_binary, deny_outcome]``, outcomes as ``(status, reason, values)`` for checks 1-8.
        """
        outcomes: list[tuple[str, str, dict[str, Any]]] = []
        fields: list[Any] = [payload if kind == "smiles" else None, None, None, outcomes, {}]
        fields += [None, None]
        mol, reason = _construct(kind, payload)
        if mol is None:
            outcomes.append((FAIL, reason, {}))
            return _Pending(fields, None)
        outcomes.append((PASS, "", {"atoms": mol.GetNumAtoms()}))
        step, reason, messages = sanitize(mol)
        if step is not None:
            outcomes.append((FAIL, reason, {"step": step, "messages": messages}))
            fields[0] = fields[0] if kind != "mol" else _raw_smiles(payload)
            return _Pending(fields, None)
        outcomes.append((PASS, "", {}))
        heavy = _heavy(mol)
        fields[1] = Chem.MolToSmiles(heavy)
        # One pass over the atoms (RDKit's Python atom iterator is slow) for checks 4 and 5.
        atoms = [
            (a.GetSymbol(), a.GetFormalCharge(), a.GetNumRadicalElectrons()) for a in mol.GetAtoms()
        ]
        for gate in (self._connectedness, self._elements, self._charges, self._geometry):
            if not _acceptable(GATES[len(outcomes) - 1], outcomes[-1][0]):
                break
            outcomes.append(gate(mol, atoms))
        if _all_acceptable(outcomes):
            outcomes.append(self._alerts(heavy))
        error = ""
        reached = _all_acceptable(outcomes)
        if reached or self.config.properties_for_rejected:
            fields[4], error = _safe_properties(mol)
        if reached:
            outcomes.append(self._properties(fields[4], error))
        if _all_acceptable(outcomes):
            fields[5] = mol.ToBinary()
        return _Pending(fields, heavy)

    def identify(self, pending: _Pending) -> tuple[Any, ...]:
        """Add the InChIKey and the deny-list match to a sanitized molecule's fields."""
        fields, heavy = pending.fields, pending.heavy
        if heavy is not None:
            fields[2] = Chem.MolToInchiKey(heavy) or None
            fields[6] = self._deny(heavy, fields[1], fields[2])
        return tuple(fields)

    def _geometry(self, mol: Chem.Mol, _: list[Atom]) -> tuple[str, str, dict[str, Any]]:
        mode = self.config.geometry_3d
        if mode == "off":
            return SKIPPED, "off (gate config geometry_3d)", {}
        if not any(c.Is3D() for c in mol.GetConformers()):
            if mode == "require":
                return FAIL, "no 3D coordinates (geometry_3d: require)", {}
            return SKIPPED, "no 3D coordinates", {}
        result = check_plausibility(mol, self.plausibility)
        values = {k: v for k, v in result.items() if v is not None and k != "plausible"}
        if result["plausible"]:
            return PASS, "", values
        failed = [c for c in (*PLAUSIBILITY_CHECKS, *STRICT_CHECKS) if result.get(c) is False]
        reason = ", ".join(failed) or "could not be checked"
        if result.get("error"):
            reason += f" ({result['error']})"
        return FAIL, reason, values

    def _connectedness(self, mol: Chem.Mol, _: list[Atom]) -> tuple[str, str, dict[str, Any]]:
        fragments = len(Chem.GetMolFrags(mol))
        values = {"fragments": fragments}
        if fragments != 1 and self.config.require_connected:
            return FAIL, f"{fragments} fragments (one required)", values
        return PASS, "", values

    def _elements(self, _: Chem.Mol, atoms: list[Atom]) -> tuple[str, str, dict[str, Any]]:
        symbols = sorted({symbol for symbol, _, _ in atoms})
        bad = [s for s in symbols if s not in self.config.allowed_elements]
        values = {"elements": symbols}
        if bad:
            return FAIL, f"element(s) not allowed: {', '.join(bad)}", values
        return PASS, "", values

    def _charges(self, _: Chem.Mol, atoms: list[Atom]) -> tuple[str, str, dict[str, Any]]:
        cfg = self.config
        charges = [charge for _, charge, _ in atoms]
        net, largest = sum(charges), max((abs(c) for c in charges), default=0)
        radicals = sum(radical for _, _, radical in atoms)
        values = {
            "net_charge": net,
            "max_abs_formal_charge": largest,
            "radical_electrons": radicals,
        }
        problems = []
        if not cfg.min_net_charge <= net <= cfg.max_net_charge:
            problems.append(
                f"net charge {net:+d} outside [{cfg.min_net_charge}, {cfg.max_net_charge}]"
            )
        if largest > cfg.max_abs_formal_charge:
            problems.append(f"|formal charge| {largest} > {cfg.max_abs_formal_charge}")
        if radicals and not cfg.allow_radicals:
            problems.append(f"{radicals} radical electron(s)")
        return (FAIL if problems else PASS), "; ".join(problems), values

    def _alerts(self, heavy: Chem.Mol) -> tuple[str, str, dict[str, Any]]:
        values: dict[str, Any] = {}
        rejecting, recorded = [], []
        for label, catalog, mode in (
            ("PAINS", self.pains, self.config.pains),
            ("Brenk", self.brenk, self.config.brenk),
        ):
            if catalog is None:
                values[label.lower()] = None
                continue
            names = sorted({entry.GetDescription() for entry in catalog.GetMatches(heavy)})
            values[label.lower()] = names
            if names:
                (rejecting if mode == "reject" else recorded).append(f"{label}: {', '.join(names)}")
        if rejecting:
            return FAIL, "; ".join(rejecting + recorded), values
        return PASS, ("recorded only: " + "; ".join(recorded)) if recorded else "", values

    def _properties(
        self, properties: dict[str, float | int], error: str
    ) -> tuple[str, str, dict[str, Any]]:
        if error:
            return FAIL, f"could not compute properties: {error}", {}
        problems = []
        for option, name, side in PROPERTY_LIMITS:
            limit = getattr(self.config, option)
            if limit is None:
                continue
            value = properties[name]
            if (side == "min" and value < limit) or (side == "max" and value > limit):
                relation = "<" if side == "min" else ">"
                problems.append(f"{name} {_fmt(value)} {relation} {_fmt(limit)}")
        return (FAIL if problems else PASS), "; ".join(problems), dict(properties)

    def _deny(
        self, heavy: Chem.Mol, canonical: str, inchikey: str | None
    ) -> tuple[str, str, dict[str, Any]]:
        matched = [s for s, pattern in self.deny_patterns if heavy.HasSubstructMatch(pattern)]
        exact = [k for k in (inchikey, canonical) if k is not None and k in self.deny_compounds]
        values = {"smarts": matched, "compounds": exact}
        if matched or exact:
            return FAIL, "deny-listed: " + ", ".join(matched + exact), values
        return PASS, "", values


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _construct(kind: str, payload: Any) -> tuple[Chem.Mol | None, str]:
    """An unsanitized molecule, or ``(None, reason)``."""
    if kind == "none":
        return None, one_line(payload)
    if kind == "smiles":
        with rdBase.CaptureErrorLog() as capture:
            mol = Chem.MolFromSmiles(payload, sanitize=False)
        if mol is None:
            lines = [line for line in clean_log(capture.messages) if ":" in line]
            detail = lines[0].replace("SMILES Parse Error: ", "") if lines else "unparsable"
            return None, f"SMILES parse error: {detail}"
    else:
        mol = Chem.Mol(payload)
    if mol.GetNumAtoms() == 0:
        return None, "empty molecule (no atoms)"
    return mol, ""


def _raw_smiles(payload: bytes) -> str | None:
    """A SMILES of an unsanitized RDKit input, for the record of a failed molecule."""
    try:
        return Chem.MolToSmiles(Chem.Mol(payload), canonical=False) or None
    except Exception:  # any RDKit error: this SMILES is only informative
        return None


def _heavy(mol: Chem.Mol) -> Chem.Mol:
    try:
        return without_hydrogens(mol)
    except Exception:  # keep the hydrogens if RDKit cannot remove them
        return mol


def _safe_properties(mol: Chem.Mol) -> tuple[dict[str, float | int], str]:
    try:
        return compute_properties(mol), ""
    except Exception as error:  # recorded as a failed check, never raised
        return {}, one_line(f"{type(error).__name__}: {error}")


def _acceptable(gate: str, status: str) -> bool:
    """Whether ``status`` of ``gate`` lets a molecule go on (pass, or a skippable skip)."""
    return status == PASS or (status == SKIPPED and gate in SKIPPABLE_GATES)


def _all_acceptable(outcomes: Sequence[tuple[str, str, dict[str, Any]]]) -> bool:
    return all(_acceptable(GATES[i], o[0]) for i, o in enumerate(outcomes))


@functools.lru_cache(maxsize=4)
def _checker_for(config: GateConfig) -> _Checker:
    """One :class:`_Checker` per config and process (building the PAINS and Brenk catalogs
    takes about 75 ms: once per chunk it was a tenth of the gate's time on QM9)."""
    return _Checker(config)


def _check_chunk(config: GateConfig, chunk: Sequence[tuple[str, Any]]) -> list[tuple[Any, ...]]:
    """Worker entry point: per-molecule checks for a chunk of encoded inputs, in order."""
    checker = _checker_for(config)
    with rdBase.BlockLogs():  # reasons are captured per molecule; keep stderr quiet
        pending = [_guarded(checker.check, kind, payload) for kind, payload in chunk]
        # InChIKeys in a second, tight loop: interleaved with the other checks InChI ran about
        # 3x slower (its code and tables fall out of the CPU caches), ~15% of the QM9 gate time.
        return [p if isinstance(p, tuple) else _guarded(checker.identify, p) for p in pending]


def _guarded(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, with an unexpected RDKit error recorded for that molecule as a final result
    instead of ending the whole batch (one odd generated graph must not lose thousands)."""
    try:
        return fn(*args)
    except Exception as error:  # RDKit raises many types; all are recorded, none hidden
        reason = one_line(
            f"unexpected RDKit error while checking: {type(error).__name__}: {error}"
        )
        return None, None, None, [(FAIL, reason, {})], {}, None, None


def _encode(item: MoleculeInput) -> tuple[str, Any]:
    """A picklable, internal form of one input: SMILES text or RDKit's own binary."""
    if item is None:
        return "none", NotConstructed().reason
    if isinstance(item, NotConstructed):
        return "none", item.reason
    if isinstance(item, str):
        return "smiles", item
    if isinstance(item, Chem.Mol):
        return "mol", item.ToBinary()
    raise TypeError(
        f"gate inputs must be rdkit Mol, SMILES str, None or NotConstructed, got "
        f"{type(item).__name__}"
    )


# --------------------------------------------------------------------------------------------
# Parallel map, batch-level checks, records


def run_gate(
    inputs: Sequence[MoleculeInput],
    config: GateConfig | None = None,
    *,
    names: Sequence[str | None] | None = None,
    sources: Sequence[str | None] | None = None,
    training_smiles: Collection[str] | None = None,
    processes: int | None = 1,
    chunk_size: int | None = None,
    progress: bool = False,
) -> list[MoleculeRecord]:
    """Screen molecules through every check of the gate (module docstring) and keep all results.

    Parameters
    ----------
    inputs
        RDKit molecules (sanitized or not; not modified), SMILES strings, or ``None`` /
        :class:`NotConstructed` for generated graphs that could not be built.
    config
        Gate settings (default :class:`GateConfig()`).
    names, sources
        Optional per-input labels (e.g. ``"line 12"``), same length as ``inputs``.
    training_smiles
        Canonical SMILES of the training set for the novelty check (make them canonical with
        this RDKit: :func:`canonical_smiles_set` with ``isomeric=True``); ``None`` skips
        novelty.
    processes
        Worker processes for the per-molecule checks; 1 (default) runs inline, ``None`` uses
        every available core.
    chunk_size
        Molecules per task sent to a worker (default: about 16 tasks per worker).
    progress
        Show the per-molecule checks' progress (:mod:`sci_diffusion.io.progress`).

    Returns
    -------
    list of MoleculeRecord
        One per input, in input order.
    """
    config = config or GateConfig()
    count = len(inputs)
    for label, labels in (("names", names), ("sources", sources)):
        if labels is not None and len(labels) != count:
            raise ValueError(f"{label} has {len(labels)} entries for {count} inputs")
    processes = resolve_processes(processes)
    encoded = [_encode(item) for item in inputs]
    _checker_for(config)  # build catalogs before any fork, so workers inherit them
    with frozen_heap():  # no GC passes over the caller's heap, in the workers or here
        partial = map_chunks(_check_chunk, config, encoded, processes, chunk_size,
                             progress="screening gate" if progress else None)  # fmt: skip
        records = [
            _record(i, result, names[i] if names else None, sources[i] if sources else None)
            for i, result in enumerate(partial)
        ]
    reference = None
    if training_smiles is not None:  # membership tests need a set, not a list
        reference = (
            training_smiles
            if isinstance(training_smiles, (set, frozenset))
            else set(training_smiles)
        )
    _batch_checks(records, partial, config, reference)
    for record in records:
        _finalize(record)
    return records


def _record(
    index: int, result: tuple[Any, ...], name: str | None, source: str | None
) -> MoleculeRecord:
    input_smiles, canonical, inchikey, outcomes, properties, binary, _ = result
    gates = {GATES[i]: GateOutcome(*outcome) for i, outcome in enumerate(outcomes)}
    return MoleculeRecord(
        index=index,
        name=name,
        source=source,
        input_smiles=input_smiles,
        canonical_smiles=canonical,
        inchikey=inchikey,
        gates=gates,
        properties=properties,
        mol_binary=binary,
    )


def _batch_checks(
    records: list[MoleculeRecord],
    partial: list[tuple[Any, ...]],
    config: GateConfig,
    training: Collection[str] | None,
) -> None:
    """Checks 9-11 in order, on the records that passed checks 1-8."""
    first_seen: dict[str, MoleculeRecord] = {}
    for record, result in zip(records, partial, strict=True):
        key = duplicate_key(record, config)
        first = None if key is None else first_seen.setdefault(key, record)
        _batch_check(record, result, config, training, first)


def duplicate_key(record: MoleculeRecord, config: GateConfig) -> str | None:
    """What makes ``record`` a duplicate (its canonical SMILES or InChIKey, as
    :attr:`GateConfig.duplicate_key` says), or ``None`` if it does not reach the duplicates
    check (a check 1-8 failed). Records are those of :func:`run_gate` before its batch checks
    (or of :func:`complete_record`)."""
    if any(g not in record.gates or not _acceptable(g, record.gates[g].status)
           for g in PER_MOLECULE_GATES):  # fmt: skip
        return None
    return getattr(record, config.duplicate_key) or record.canonical_smiles


def _batch_check(
    record: MoleculeRecord,
    result: tuple[Any, ...],
    config: GateConfig,
    training: Collection[str] | None,
    first: Any,
) -> None:
    """Checks 9-11 of one record; ``first`` is its key's first occurrence (itself if it is the
    first; anything with ``index`` and ``source``), ``None`` if it does not reach check 9."""
    if training is not None and record.canonical_smiles is not None:
        record.novel = record.canonical_smiles not in training
    if first is None:
        return
    record.gates["duplicates"] = _duplicate_outcome(record, first, config)
    if record.gates["duplicates"].status == PASS:
        record.gates["novelty"] = _novelty_outcome(record, config, training is not None)
        if record.gates["novelty"].status != FAIL:  # skipped without a training set
            record.gates["deny_list"] = GateOutcome(*result[6])


def duplicate_reason(first_index: int, first_source: str | None, key: str) -> str:
    """The reason of a duplicate: ``duplicate of input 4 (line 8), same canonical_smiles``."""
    where = f" ({first_source})" if first_source else ""
    return f"duplicate of input {first_index}{where}, same {key}"


def _duplicate_outcome(record: MoleculeRecord, first: Any, config: GateConfig) -> GateOutcome:
    values = {"first_index": first.index}
    if first is record:
        return GateOutcome(PASS, "", values)
    reason = duplicate_reason(first.index, first.source, config.duplicate_key)
    if config.reject_duplicates:
        return GateOutcome(FAIL, reason, values)
    return GateOutcome(PASS, "recorded only: " + reason, values)


def complete_record(
    index: int,
    result: tuple[Any, ...],
    config: GateConfig,
    *,
    name: str | None = None,
    source: str | None = None,
    training: Collection[str] | None = None,
    first: Any = None,
) -> MoleculeRecord:
    """One molecule's final record from its per-molecule result, for callers that keep the
    duplicate bookkeeping themselves (streaming screening, :mod:`.screen`).

    Parameters
    ----------
    index, name, source
        The record's input position, name and source.
    result
        One item of the per-molecule checks' output (the workers' result of :func:`run_gate`).
    config, training
        As for :func:`run_gate` (``training`` a set of canonical SMILES, or ``None``).
    first
        The earlier occurrence of the same molecule (anything with ``index`` and ``source``),
        or ``None`` when this record is the first one (or never reaches the duplicates check).
    """
    record = _record(index, result, name, source)
    if duplicate_key(record, config) is not None:
        first = record if first is None else first
    else:
        first = None
    _batch_check(record, result, config, training, first)
    _finalize(record)
    return record


def _novelty_outcome(record: MoleculeRecord, config: GateConfig, has_training: bool) -> GateOutcome:
    if not has_training:
        return GateOutcome(SKIPPED, "no training set given", {"novel": None})
    if record.novel:
        return GateOutcome(PASS, "", {"novel": True})
    if config.reject_non_novel:
        return GateOutcome(FAIL, "in the training set", {"novel": False})
    return GateOutcome(PASS, "recorded only: in the training set", {"novel": False})


def _finalize(record: MoleculeRecord) -> None:
    """Fill skipped checks after the first failure, ``passed``, failure fields and status."""
    failed = next((g for g in GATES if g in record.gates and record.gates[g].status == FAIL), None)
    for gate in GATES:
        if gate not in record.gates:
            reason = f"not checked: failed {failed}" if failed else "not checked"
            record.gates[gate] = GateOutcome(SKIPPED, reason, {})
    record.gates = {gate: record.gates[gate] for gate in GATES}
    # Only SKIPPABLE_GATES may be skipped (no training set, no 3D coordinates); every other
    # check must have run and passed.
    record.passed = failed is None and all(_acceptable(g, record.gates[g].status) for g in GATES)
    record.failed_gate = failed
    record.failure_reason = record.gates[failed].reason if failed else None
    if record.passed:
        record.validation_status = IN_SILICO_SCREENED
    elif all(_acceptable(g, record.gates[g].status) for g in STRUCTURE_GATES):
        record.validation_status = VALID_STRUCTURE
    else:
        record.validation_status = GENERATED
    if not record.passed:
        record.mol_binary = None  # only candidates are written as structures


def _canonical_chunk(isomeric: bool, chunk: Sequence[str]) -> list[str | None]:
    with rdBase.BlockLogs():
        mols = [Chem.MolFromSmiles(s) for s in chunk]
    return [
        Chem.MolToSmiles(m, isomericSmiles=isomeric) if m is not None and m.GetNumAtoms() else None
        for m in mols
    ]


def canonical_smiles_set(
    smiles: Iterable[str],
    *,
    isomeric: bool = False,
    processes: int | None = 1,
    progress: bool = False,
    cache_dir: str | Path | None = None,
) -> frozenset[str]:
    """RDKit canonical SMILES (hydrogens implicit) of ``smiles``, e.g. a training set for
    novelty; unparsable and empty entries are dropped.

    Shared by the gate's novelty check (isomeric, like its records: ``isomeric=True``) and
    :func:`~sci_diffusion.chem.metrics.molecule_metrics` (non-isomeric, as EDM; pass it with
    ``training_is_canonical=True``). It lives here so that screening need not import the
    metrics module and torch.

    Parameters
    ----------
    smiles
        SMILES strings in any RDKit-readable form.
    isomeric
        Keep stereochemistry in the canonical SMILES.
    processes
        Worker processes (1 inline, ``None`` all cores).
    progress
        Show progress (a training set of 100,000 molecules takes several seconds).
    cache_dir
        Keep the result on disk here too (gzip text, one SMILES a line), keyed by the input's
        SHA-256, ``isomeric`` and the RDKit version, whose canonical form can change between
        releases. MOSES's 1.58M training SMILES take minutes to canonicalise and about two
        seconds to read back.
    """
    items = list(smiles)
    digest = hashlib.sha256("\n".join(items).encode()).hexdigest()
    key = (digest, len(items), isomeric)
    if key in _CANONICAL_MEMO:  # a training set is canonicalised once per process
        return _CANONICAL_MEMO[key]
    stored = None
    if cache_dir is not None:
        kind = "isomeric" if isomeric else "plain"
        name = f"{digest[:32]}-{len(items)}-{kind}-rdkit{rdBase.rdkitVersion}.txt.gz"
        stored = Path(cache_dir) / name
    result = _read_canonical_cache(stored) if stored is not None and stored.is_file() else None
    if result is None:
        desc = "canonical SMILES" if progress else None
        canonical = map_chunks(_canonical_chunk, isomeric, items, processes, progress=desc)
        result = frozenset(s for s in canonical if s is not None)
        if stored is not None:
            with atomic_open(stored, "wb") as raw, gzip.open(raw, "wt", encoding="utf-8") as out:
                out.write("\n".join(sorted(result)))
    if len(_CANONICAL_MEMO) >= _CANONICAL_MEMO_SIZE:
        _CANONICAL_MEMO.pop(next(iter(_CANONICAL_MEMO)))
    _CANONICAL_MEMO[key] = result
    return result


def _read_canonical_cache(path: Path) -> frozenset[str] | None:
    """A cached canonical set, or None (with a warning) when the file cannot be read back
    whole; the caller then recomputes it and replaces the file."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return frozenset(handle.read().splitlines())
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as err:
        warnings.warn(
            f"canonical SMILES cache {path} is damaged ({err}); recomputing it",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


_CANONICAL_MEMO: dict[tuple[str, int, bool], frozenset[str]] = {}
_CANONICAL_MEMO_SIZE = 4
"""Recent results of :func:`canonical_smiles_set` by content hash: evaluating or sampling a
model again in one process (a notebook, the test suite, sharded evaluation) reuses the set."""


# --------------------------------------------------------------------------------------------
# Batch summary


Signature = tuple[tuple[str, ...], str | None, str, bool, bool | None]
"""What :func:`gate_metrics` counts of one record: every check's status in :data:`GATES` order,
the first failing check, validation status, passed, novel."""


def record_signature(record: MoleculeRecord) -> Signature:
    """The :data:`Signature` of a finalized record."""
    statuses = tuple(record.gates[gate].status for gate in GATES)
    return statuses, record.failed_gate, record.validation_status, record.passed, record.novel


def record_alerts(record: MoleculeRecord) -> dict[str, list[str]]:
    """``{"pains": [...], "brenk": [...]}``: the alerts matched in a record's ``alerts`` check."""
    return {key: list(names or []) for key, names in record.gates["alerts"].values.items()}


@dataclass
class GateCounts:
    """Counters behind :func:`gate_metrics`, filled record by record and mergeable, so a
    screening that streams a file in chunks keeps no records (memory independent of the
    number of molecules). ``gate_metrics(records)`` is ``GateCounts`` over the records.

    Attributes
    ----------
    signatures
        How many records had each :data:`Signature`.
    alerts
        Matches per alert name, per catalog (``pains``, ``brenk``).
    """

    signatures: Counter[Signature] = field(default_factory=Counter)
    alerts: dict[str, Counter[str]] = field(
        default_factory=lambda: {"pains": Counter(), "brenk": Counter()}
    )

    def add(self, record: MoleculeRecord) -> None:
        """Count one finalized record."""
        self.signatures[record_signature(record)] += 1
        self.add_alerts(record_alerts(record))

    def add_alerts(self, alerts: Mapping[str, Iterable[str]]) -> None:
        for key, names in alerts.items():
            self.alerts.setdefault(key, Counter()).update(names)

    def update(self, other: GateCounts) -> None:
        """Add another counter's counts (e.g. one chunk's)."""
        self.signatures.update(other.signatures)
        for key, counter in other.alerts.items():
            self.alerts.setdefault(key, Counter()).update(counter)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (:meth:`from_json` reads it back)."""
        return {
            "signatures": [[list(sig[0]), *sig[1:], n] for sig, n in self.signatures.items()],
            "alerts": {key: dict(counter) for key, counter in self.alerts.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateCounts:
        counts = cls()
        for statuses, failed, status, passed, novel, n in data["signatures"]:
            counts.signatures[(tuple(statuses), failed, status, passed, novel)] += n
        for key, counter in data["alerts"].items():
            counts.alerts[key] = Counter(counter)
        return counts

    def metrics(self, config: GateConfig | None = None) -> dict[str, Any]:
        """The counts as :func:`gate_metrics` reports them."""
        n = sum(self.signatures.values())
        per_gate = [Counter() for _ in GATES]
        failures: Counter[str | None] = Counter()
        statuses: Counter[str] = Counter()
        passed = novelty_checked = novel = 0
        for (outcomes, failed, status, ok, is_novel), count in self.signatures.items():
            for counter, outcome in zip(per_gate, outcomes, strict=True):
                counter[outcome] += count
            failures[failed] += count
            statuses[status] += count
            passed += count if ok else 0
            novelty_checked += count if is_novel is not None else 0
            novel += count if is_novel else 0
        gates = {}
        for gate, counts in zip(GATES, per_gate, strict=True):
            gates[gate] = {o: counts.get(o, 0) for o in OUTCOMES}
            gates[gate]["pass_fraction"] = counts.get(PASS, 0) / n if n else 0.0
        metrics: dict[str, Any] = {
            "n_input": n,
            "n_candidates": passed,
            "pass_rate": passed / n if n else 0.0,
            "n_valid_structure": n - statuses[GENERATED],
            "gates": gates,
            "first_failure": {g: failures[g] for g in GATES if failures[g]},
            "validation_status": {s: statuses[s] for s in VALIDATION_STATUSES},
            "alerts": {key: dict(counter.most_common()) for key, counter in self.alerts.items()},
            "n_novelty_checked": novelty_checked,
            "n_novel": novel,
            "property_names": list(PROPERTY_NAMES),
        }
        if config is not None:
            metrics["gate_config"] = config.to_dict()
        return metrics


def gate_metrics(records: Sequence[MoleculeRecord], config: GateConfig | None = None) -> dict:
    """Counts per check and outcome, pass rate and validation statuses of a screened batch.

    Parameters
    ----------
    records
        Output of :func:`run_gate`.
    config
        The config used; written under ``"gate_config"`` when given.

    Returns
    -------
    dict
        JSON-ready: ``n_input``, ``n_candidates``, ``pass_rate``, ``n_valid_structure``,
        ``gates`` (``{check: {"pass", "fail", "skipped", "pass_fraction"}}``), ``first_failure``,
        ``validation_status``, ``alerts`` (match counts per alert among checked molecules),
        ``n_novel`` / ``n_novelty_checked`` and ``gate_config``. The same as
        :meth:`GateCounts.metrics` of a :class:`GateCounts` over the records.
    """
    counts = GateCounts()
    for record in records:
        counts.add(record)
    return counts.metrics(config)
