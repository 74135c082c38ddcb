"""Every ``sci-diffusion`` command line shown in README.md and docs/*.md parses and validates
against the CLI's schemas (``sci_diffusion.cli.check``: everything up to, not including, the
work), so the documentation cannot drift from the command line.

Command lines come from fenced code blocks and inline code. Placeholders are filled in:
``<a|b|c>`` with its first alternative, ``<N>``/``<S>`` with a number, ``<dev>`` with ``cpu``,
``<s>`` with a sampler, any other ``<...>`` (``<dir>``, ``<run dir>``, ``<date-time>``) with a
dummy name; ``[optional]`` arguments are checked too. A line that elides arguments (``...``,
``key=...``) or only names a command is checked without its required options.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from sci_diffusion.cli import check
from sci_diffusion.config import UsageError

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

PLACEHOLDERS = {"N": "2", "M": "2", "S": "2", "s": "ddim", "dev": "cpu"}
"""Placeholder -> value; any other placeholder becomes a dummy name (or, after a config group
key such as ``sampler=``, an option of that group: :data:`GROUP_VALUES`)."""
GROUP_VALUES = {"sampler": "ddim", "task": "toy2d", "model": "mlp", "policy": "diffusion"}

KNOWN_BROKEN: dict[str, str] = {}
"""Documented lines that are wrong today (each must still fail, so a fix removes its entry)."""


def _fill(match: re.Match[str]) -> str:
    inner = match.group(1).replace("\\", "")  # `\|` in a markdown table cell
    if "|" in inner:
        return inner.split("|")[0]
    key = re.search(r"(\S+)=$", match.string[: match.start()])
    if key and key.group(1).lstrip("[") in GROUP_VALUES and inner not in PLACEHOLDERS:
        return GROUP_VALUES[key.group(1).lstrip("[")]
    return PLACEHOLDERS.get(inner, "dummy")


def _snippets(text: str) -> list[str]:
    """Fenced code lines (continuations joined, comments dropped) and inline code spans."""
    out = []
    fenced = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
    for block in fenced.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            out.append(re.sub(r"(^|\s)#.*$", "", line))
    prose = fenced.sub("", text)
    out += [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]
    return out


def _argv(snippet: str) -> tuple[list[str], bool] | None:
    """The CLI arguments of a command line (None if it is not one) and whether it is partial."""
    filled = re.sub(r"<([^<>]+)>", _fill, snippet)
    try:
        tokens = shlex.split(filled)  # a quoted value (--machine "2-core CPU") is one token
    except ValueError:  # an apostrophe in prose
        tokens = filled.split()
    start = None
    for i, token in enumerate(tokens):
        if token.endswith("sci-diffusion") or (token == "sci_diffusion" and tokens[i - 1] == "-m"):
            start = i + 1
            break
    if start is None or start >= len(tokens) or tokens[start] == "dummy":
        return None  # not a command line, or `sci-diffusion <command> ...`
    argv, partial = [], False
    for token in tokens[start:]:
        if token in ("&&", "|", ";", "#") or token.startswith("#"):
            break
        if token.startswith("[") and "=" in token and not token.startswith("[]"):
            token = token[1:]
        if token.endswith("]") and token.count("]") > token.count("["):
            token = token[:-1]
        token = token.rstrip(",")
        if token in ("...", "") or token.endswith("=..."):
            partial = True
            continue
        argv.append(token)
    mention = len(argv) == 1 or (argv[:1] == ["bench"] and len(argv) == 2)
    if mention or (argv[:2] == ["bench", "metaworld"] and len(argv) == 3):
        partial = True  # a mention of a command (`sci-diffusion screen`), not a command line
    return argv, partial


def documented_commands() -> list[tuple[str, list[str], bool]]:
    found = {}
    for path in DOCS:
        for snippet in _snippets(path.read_text(encoding="utf-8")):
            parsed = _argv(snippet)
            if parsed:
                argv, partial = parsed
                line = " ".join(["sci-diffusion", *argv])
                found.setdefault(line, (f"{path.name}: {line}", argv, partial))
    return sorted(found.values())


COMMANDS = documented_commands()


def test_the_docs_show_many_commands() -> None:
    """The extraction is not blind: the README's examples and the torchrun lines are found."""
    lines = {c[0].split(": ", 1)[1] for c in COMMANDS}
    assert len(COMMANDS) >= 40, COMMANDS
    assert "sci-diffusion train task=toy2d trainer.max_steps=2000" in lines
    assert "sci-diffusion train task=toy2d trainer.distributed=true" in lines  # torchrun
    assert any(line.startswith("sci-diffusion demos task=multimodal") for line in lines)


def _check_anywhere(argv: list[str], partial: bool) -> None:
    """``check(argv)`` as on a fresh clone. A documented ``run=<dir>`` does not exist there, so
    ``eval``/``sample`` cannot learn the run's task from its saved config; a line with
    ``task.*`` overrides and no ``task=`` then passes when some task has those keys (the run's
    own task is checked when the command runs)."""
    keys = [a.split("=", 1)[0] for a in argv[1:]]
    guess = "run" in keys and "task" not in keys and any(k.startswith("task.") for k in keys)
    if not guess:
        check(argv, partial=partial)
        return
    from sci_diffusion.tasks import task_names

    errors = []
    for name in task_names():
        try:
            check([argv[0], f"task={name}", *argv[1:]], partial=partial)
            return
        except UsageError as err:
            errors.append(err)
    raise errors[0]


@pytest.mark.parametrize(("where", "argv", "partial"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_documented_command_parses(
    where: str, argv: list[str], partial: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the runs/ folders of this checkout must not decide the result
    line = where.split(": ", 1)[1]
    if line in KNOWN_BROKEN:
        with pytest.raises(UsageError):
            _check_anywhere(argv, partial)
        pytest.xfail(KNOWN_BROKEN[line])
    try:
        _check_anywhere(argv, partial)
    except UsageError as err:
        pytest.fail(f"{where}\n  does not parse: {err}")


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "trainer.max_stepz=3"],
        ["train", "trainer.max_steps=abc"],
        ["eval", "run=dummy", "sampler=nope"],
        ["sample", "run=dummy", "n=many"],
        ["demos", "task=multimodal", "episodes=2", "out=x", "speed=3"],
        ["demos", "task=multimodal", "episodes=two", "out=x"],
        ["bench", "sampler", "quick=maybe"],
        ["screen", "in=a", "out=b", "gate.max_mw=heavy"],
        ["export", "run=x", "force=perhaps"],
        ["quickstart", "steps=0"],
        ["frobnicate"],
    ],
)
def test_check_refuses_unknown_keys_and_bad_types(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        check(argv)
    with pytest.raises(UsageError):
        check(argv, partial=True)


def test_a_run_line_with_a_key_no_task_has_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The any-task fallback for ``run=`` lines is not a pass-through: a ``task.eval`` key that
    no task has is still reported."""
    monkeypatch.chdir(tmp_path)
    _check_anywhere(["eval", "run=runs/x", "task.eval.workers=2"], partial=False)
    with pytest.raises(UsageError, match=r"task\.eval\.wrokers"):
        _check_anywhere(["eval", "run=runs/x", "task.eval.wrokers=2"], partial=False)
