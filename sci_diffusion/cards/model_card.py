"""Model cards: facts gathered by ``train``, ``eval`` and ``sample`` in ``card.json``, rendered
to ``model_card.md``. Nothing is hand-written: a section a run has no facts for says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sci_diffusion.io.files import write_json_atomic, write_text_atomic

CARD_FACTS = "card.json"
CARD_FILE = "model_card.md"

_SECTIONS = (
    ("model", "Model"),
    ("data", "Training data"),
    ("training", "Training"),
    ("evaluation", "Evaluation"),
    ("use", "Intended use, limitations and validation status"),
    ("provenance", "Provenance"),
)


def read_card_facts(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CARD_FACTS
    return json.loads(path.read_text()) if path.exists() else {}


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "; ".join(_format(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_format(v)}" for k, v in value.items())
    return str(value)


def render_model_card(facts: dict[str, Any]) -> str:
    title = facts.get("model", {}).get("task", "model")
    lines = [f"# Model card: {title}", ""]
    for key, heading in _SECTIONS:
        lines += [f"## {heading}", ""]
        section = facts.get(key)
        if not section:
            lines += ["_Not recorded yet for this run._", ""]
            continue
        if key == "evaluation":
            for name, record in section.items():
                lines += [f"### {name}", ""]
                lines += [f"- **{k}**: {_format(v)}" for k, v in record.items()] + [""]
            continue
        lines += [f"- **{k}**: {_format(v)}" for k, v in section.items()] + [""]
    return "\n".join(lines)


def update_model_card(run_dir: Path, section: str, facts: dict[str, Any], *,
                      entry: str | None = None) -> None:  # fmt: skip
    """Merge ``facts`` into ``section`` (under ``entry`` for evaluation records), re-render."""
    all_facts = read_card_facts(run_dir)
    target = all_facts.setdefault(section, {})
    if entry is not None:
        target[entry] = facts
    else:
        target.update(facts)
    write_json_atomic(run_dir / CARD_FACTS, all_facts)
    write_text_atomic(run_dir / CARD_FILE, render_model_card(all_facts))
