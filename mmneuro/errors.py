"""Errors mmneuro raises for bad input; each message names the file and the numbers involved."""


class MMNeuroError(Exception):
    """Base class of mmneuro's own errors."""


class InputError(MMNeuroError, ValueError):
    """Input data are malformed: wrong shape, NaNs, mismatched lengths, missing or corrupt files."""


class WeightsUnavailableError(MMNeuroError):
    """Model weights cannot be had offline; the message says how to provide them."""
