"""The one exception family for mistakes in what a user supplied.

Raise :class:`UserInputError` (or a subclass) wherever a layer validates input that a user
gave: a config value, a file to read, a checkpoint to load, a name to look up. The command line
prints such an error as one line and exits with code 2; every other exception is a bug and
exits 1 with its traceback. It subclasses the core's ``InvalidValueError`` (a ``ValueError``),
so the core's own setting checks count too and callers catching ``ValueError`` keep working.
"""

from __future__ import annotations

from sci_diffusion.core.errors import InvalidValueError


class UserInputError(InvalidValueError):
    """Something the user supplied is wrong (config, option, input file, checkpoint)."""
