"""hirobust's own errors: what the user can fix — a bad value, key or name; a file, dataset, checkpoint or package
that is missing; a run that diverged. The command line reports any :class:`HirobustError` in one line with exit
code 2; every other exception is a bug and keeps its traceback (exit 1).

Each also is the built-in exception it refines (a :class:`ConfigError` is a ``ValueError``, ...), so code that
catches the built-in keeps working.
"""

from __future__ import annotations


class HirobustError(Exception):
    """Base of the errors the user can fix; the command line's one exit-2 type."""


class ConfigError(HirobustError, ValueError):
    """A bad value, key or name in the user's config, arguments or files (a damaged run directory included)."""


class NotFound(HirobustError, FileNotFoundError):
    """A file, dataset, checkpoint or run that is not where the user said."""


class MissingPackage(HirobustError, ImportError):
    """An optional Python package that the asked-for feature needs."""


class Diverged(HirobustError, FloatingPointError):
    """Training produced non-finite values (nothing non-finite is saved)."""


class UnknownKey(HirobustError, KeyError):
    """A name looked up where it does not exist (a tree of a forest)."""

    def __str__(self) -> str:  # KeyError's str() quotes its argument
        return str(self.args[0]) if self.args else ""


def did_you_mean(word: str, choices) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` to ``word``, or ``""`` when none is close."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
