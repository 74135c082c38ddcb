"""The base of every error that means "a value you supplied is invalid".

It lives in the core (which imports nothing else of ours) so that the core's own checks of
user-facing settings can raise it; :class:`sci_diffusion.io.errors.UserInputError` derives from
it, and the command line prints any of them as one line with exit code 2.
"""

from __future__ import annotations


class InvalidValueError(ValueError):
    """A value the caller supplied (an option, a config setting) is invalid."""
