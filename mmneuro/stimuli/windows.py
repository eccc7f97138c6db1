"""Time windows on the stimulus clock: which stretch of stimulus belongs to each TR.

All times are seconds on the stimulus clock of one run (0 = start of the run's media).
Windows are half-open ``[start, end)`` rows of an ``(n, 2)`` float64 array.
"""

from __future__ import annotations

import numpy as np

from mmneuro.errors import InputError


def _times(tr_times, name: str = "tr_times") -> np.ndarray:
    t = np.asarray(tr_times, dtype=np.float64)
    if t.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise InputError(f"{name} contain NaN or inf")
    return t


def _positive(value, name: str) -> float:
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be a positive number of seconds, got {value!r}")
    return v


def tr_windows(tr_times, tr: float) -> np.ndarray:
    """The clip spanning each TR, centred on its acquisition time.

    Parameters
    ----------
    tr_times : (n,) acquisition times in seconds.
    tr : repetition time in seconds.

    Returns
    -------
    (n, 2) float64 ``[t - tr/2, t + tr/2)``. With the common convention
    ``tr_times = (i + 0.5) * tr`` the windows tile the run exactly: ``[i*tr, (i+1)*tr)``.
    Windows are not clipped: a TR time earlier than ``tr/2`` gives a negative start.
    """
    t = _times(tr_times)
    half = _positive(tr, "tr") / 2.0
    return np.stack([t - half, t + half], axis=1)


def context_windows(tr_times, seconds: float) -> np.ndarray:
    """The stimulus heard/seen during the ``seconds`` before each acquisition time.

    Parameters
    ----------
    tr_times : (n,) acquisition times in seconds (>= 0).
    seconds : context length in seconds.

    Returns
    -------
    (n, 2) float64 ``[max(t - seconds, 0), t)``.

    Run start: no stimulus exists before 0, so windows of the first TRs are clipped to start
    at 0 and are *shorter* than ``seconds`` (a TR at ``t = 0`` gets the empty window
    ``[0, 0)``). Callers that need equal lengths must handle those rows themselves (e.g.
    left-pad with silence/blank frames); nothing here pads silently.
    """
    t = _times(tr_times)
    s = _positive(seconds, "seconds")
    if t.size and t.min() < 0:
        raise InputError(f"tr_times must be >= 0 for context windows, got {t.min():.6f}")
    return np.stack([np.maximum(t - s, 0.0), t], axis=1)


def uniform_frame_times(start: float, end: float, n_frames: int) -> np.ndarray:
    """``n_frames`` distinct times evenly covering ``[start, end)``.

    The window is cut into ``n_frames`` equal sub-intervals and the centre of each is
    returned, so the times are deterministic, strictly increasing and never touch the window
    edges (a frame is never shared with the neighbouring window).

    Returns
    -------
    (n_frames,) float64.
    """
    if int(n_frames) != n_frames or n_frames < 1:
        raise InputError(f"n_frames must be a positive integer, got {n_frames!r}")
    start, end = float(start), float(end)
    if not (np.isfinite(start) and np.isfinite(end)) or end <= start:
        raise InputError(f"need start < end (finite seconds), got start={start}, end={end}")
    n = int(n_frames)
    step = (end - start) / n
    return start + (np.arange(n, dtype=np.float64) + 0.5) * step
