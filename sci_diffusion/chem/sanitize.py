"""RDKit sanitization and RDKit's error log, done one way for every reader and check.

:func:`sanitize` is what the screening gate's ``sanitization`` check and the file readers
(:mod:`.molfiles`) run: ``Chem.SanitizeMol`` in place, with the failing step and RDKit's own
message on failure. :func:`rdkit_errors` collects RDKit's error log instead of printing it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from rdkit import Chem, rdBase

__all__ = ["clean_log", "condense_parse_log", "one_line", "rdkit_errors", "sanitize"]

_LOG_STAMP = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*")


def clean_log(messages: str) -> list[str]:
    """RDKit log text as non-empty lines without timestamps."""
    lines = (_LOG_STAMP.sub("", line).strip() for line in messages.splitlines())
    return [line for line in lines if line]


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(text.split())


@contextlib.contextmanager
def rdkit_errors() -> Iterator[list[str]]:
    """Collect RDKit's error log lines (timestamps removed) instead of printing them.

    Warnings are silenced for the duration. On RDKit builds without ``CaptureErrorLog`` the
    list stays empty and errors are silenced too; callers fall back to exception texts.
    """
    lines: list[str] = []
    if not hasattr(rdBase, "CaptureErrorLog"):
        with rdBase.BlockLogs():
            yield lines
        return
    # BlockLogs first: it mutes warnings; the capture, entered after it, still gets errors.
    with rdBase.BlockLogs(), rdBase.CaptureErrorLog() as capture:
        yield lines
    lines += clean_log(capture.messages)


def condense_parse_log(log: list[str], fallback: str) -> str:
    """RDKit's multi-line parse error as one line (the echoed input and caret line dropped)."""
    prefix = "SMILES Parse Error:"
    parts = [ln.removeprefix(prefix).strip().rstrip(":") for ln in log if ln.startswith(prefix)]
    specific = [p for p in parts if not p.startswith("Failed parsing")]
    return "; ".join(specific or parts) or "; ".join(log) or fallback


def sanitize(mol: Chem.Mol) -> tuple[str | None, str, list[str]]:
    """Sanitize ``mol`` in place.

    Returns
    -------
    step : str or None
        ``None`` on success, else the failing step (``SANITIZE_PROPERTIES``,
        ``SANITIZE_KEKULIZE``, ...).
    reason : str
        ``""``, or RDKit's first message on one line followed by the step in parentheses.
    messages : list of str
        RDKit's error messages (timestamps removed).
    """
    with rdBase.CaptureErrorLog() as capture:
        flag = Chem.SanitizeMol(mol, catchErrors=True)
    if flag == Chem.SanitizeFlags.SANITIZE_NONE:
        # What Chem.MolFromSmiles does after sanitizing; without it canonical SMILES of
        # unsanitized parses can differ from everyone else's.
        Chem.AssignStereochemistry(mol, cleanIt=True, force=True)
        return None, "", []
    step = str(flag).rsplit(".", 1)[-1]
    messages = clean_log(capture.messages)
    message = messages[0] if messages else "sanitization failed"
    return step, f"{one_line(message)} ({step})", messages
