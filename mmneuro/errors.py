"""Errors mmneuro raises for bad input; each message names the file and the numbers involved.

Messages never quote what a file holds: a path can be a symlink to a file the user may not
show (``/etc/shadow`` behind ``words.tsv``), and errors land in shared logs. They say where
(file, line, column) and what kind of thing was found instead (:func:`describe_cell`).
"""


class MMNeuroError(Exception):
    """Base class of mmneuro's own errors."""


class InputError(MMNeuroError, ValueError):
    """Input data are malformed: wrong shape, NaNs, mismatched lengths, missing or corrupt files."""


class WeightsUnavailableError(MMNeuroError):
    """Model weights cannot be had offline; the message says how to provide them."""


def describe_cell(value: str) -> str:
    """What a bad cell looks like, without its content: ``"a cell of 7 characters"``."""
    n = len(value)
    return "an empty cell" if n == 0 else f"a cell of {n} character{'s' if n != 1 else ''}"
