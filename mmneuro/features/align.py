"""Bring stimulus features onto the fMRI TR grid: resampling, FIR delays, per-run z-scoring.

numpy/scipy only. Arrays are time-first: ``(n_samples, n_features)``; a 1-D ``data`` is
treated as one feature column. Times are in seconds.

* :func:`lanczos_resample` - Lanczos (windowed-sinc) interpolation from arbitrary, possibly
  irregular sample times (frames, word midpoints) to new times (TR centres); Huth-lab
  convention (sum over old samples, not an average).
* :func:`window_mean` - mean of the samples falling in a window around each new time.
* :func:`make_delayed` - stack copies of the features delayed by whole TRs (FIR model of
  the haemodynamic response), never leaking across run boundaries.
* :func:`zscore_runs` - z-score every run separately.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import scipy.sparse

from mmneuro.errors import InputError

__all__ = ["lanczos_resample", "window_mean", "make_delayed", "zscore_runs", "lanczos_kernel"]


# ---------------------------------------------------------------------------- helpers
def _float_dtype(dtype: np.dtype) -> np.dtype:
    """float32 stays float32; everything else computes in float64."""
    return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)


def _as_2d_data(data, fname: str) -> tuple[np.ndarray, bool]:
    arr = np.asarray(data)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{fname}: data must be a real numeric array; got dtype={arr.dtype}.")
    if arr.ndim == 1:
        return arr[:, None], True
    if arr.ndim != 2:
        raise InputError(
            f"{fname}: data must be (n_samples,) or (n_samples, n_features), time first; "
            f"got shape {arr.shape}."
        )
    return arr, False


def _check_no_nan_rows(arr: np.ndarray, fname: str, name: str = "data") -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise InputError(
            f"{fname}: {name} has {rows.size} row(s) with NaN or infinite values "
            f"(first at row {rows[0]}, {int(bad.sum())} values in all); remove or impute them "
            "before alignment."
        )


def _times(t, n_expected: int | None, fname: str, name: str) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1:
        raise InputError(f"{fname}: {name} must be 1-D (seconds); got shape {t.shape}.")
    if n_expected is not None and t.shape[0] != n_expected:
        raise InputError(
            f"{fname}: data has {n_expected} samples (rows) but {name} has {t.shape[0]} times; "
            "give one time per sample."
        )
    if not np.all(np.isfinite(t)):
        raise InputError(f"{fname}: {name} has {int((~np.isfinite(t)).sum())} NaN/infinite times.")
    return t


def _sorted(old_times: np.ndarray, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if old_times.size > 1 and np.any(np.diff(old_times) < 0):
        order = np.argsort(old_times, kind="stable")
        return old_times[order], data[order]
    return old_times, data


def _window_bounds(old_sorted: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   right_closed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Index ranges [start, stop) of sorted old times in [lo, hi) (or [lo, hi])."""
    start = np.searchsorted(old_sorted, lo, side="left")
    stop = np.searchsorted(old_sorted, hi, side="right" if right_closed else "left")
    return start, np.maximum(stop, start)


def _ranges(start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row ids and column ids of all index ranges [start_i, stop_i), concatenated."""
    counts = stop - start
    rows = np.repeat(np.arange(start.size), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cols = np.repeat(start, counts) + offsets
    return rows, cols


def _run_bounds(run_lengths, n: int, fname: str) -> np.ndarray:
    if run_lengths is None:
        return np.array([0, n])
    rl = np.asarray(run_lengths)
    if rl.ndim != 1 or rl.size == 0:
        raise InputError(f"{fname}: run_lengths must be a non-empty 1-D sequence; got {run_lengths!r}.")
    if not np.issubdtype(rl.dtype, np.integer):
        if np.issubdtype(rl.dtype, np.floating) and np.all(rl == np.round(rl)):
            rl = rl.astype(np.int64)
        else:
            raise InputError(f"{fname}: run_lengths must be integers; got {run_lengths!r}.")
    if np.any(rl < 1):
        raise InputError(f"{fname}: every run length must be >= 1; got {rl.tolist()}.")
    if int(rl.sum()) != n:
        raise InputError(
            f"{fname}: run_lengths sum to {int(rl.sum())} but X has {n} rows; "
            f"run_lengths={rl.tolist()}."
        )
    return np.concatenate([[0], np.cumsum(rl)])


# ---------------------------------------------------------------------------- Lanczos
def lanczos_kernel(t, cutoff: float, window: int = 3) -> np.ndarray:
    """Lanczos kernel ``L(t) = sinc(c t) * sinc(c t / window)`` for ``|c t| < window``, else 0.

    ``sinc(x) = sin(pi x) / (pi x)`` (``np.sinc``), ``c = cutoff`` in Hz. ``L(0) = 1`` and
    ``L`` is 0 at every nonzero multiple of ``1 / c``. Identical to ``lanczosfun`` of the
    Huth-lab ``interpdata.py``.
    """
    x = np.asarray(t, dtype=np.float64) * cutoff
    val = np.sinc(x) * np.sinc(x / window)
    val[np.abs(x) >= window] = 0.0
    return val


def lanczos_resample(data, old_times, new_times, window: int = 3, cutoff_mult: float = 1.0):
    """Lanczos interpolation of samples at ``old_times`` onto ``new_times`` (Huth convention).

    For every new time ``t``::

        out[t] = sum_i L(t - old_times[i]) * data[i],
        L(u)   = sinc(c u) * sinc(c u / window)   for |c u| < window, else 0,
        c      = cutoff_mult / TR,   TR = median(diff(new_times)),

    with ``sinc(x) = sin(pi x) / (pi x)``. This is ``lanczosinterp2D`` of the Huth lab's
    ``interpdata.py`` (which calls ``c`` the "cutoff" and uses the mean TR; for a regular TR
    grid the two agree), as used in the Alice / Narratives recipes ("Lanczos-resampled,
    window 3, cutoff 1/TR"). In signal-processing terms ``sinc(c u)`` is an ideal low-pass
    filter with corner frequency ``c / 2 = cutoff_mult / (2 TR)`` Hz (the Nyquist frequency of
    the TR grid when ``cutoff_mult = 1``), tapered by a Lanczos window of ``window`` lobes;
    the kernel reaches ``window * TR / cutoff_mult`` seconds either side.

    The output is a **sum** over old samples, not an average: a regressor of 1s at word
    times becomes a smooth word-rate signal (about words per TR); densely sampled data
    at spacing ``dt`` come out scaled by about ``TR / (cutoff_mult * dt)`` (the integral of
    the kernel is ``0.997 / c`` s for ``window=3``; its gain is flat within about 1.5 % up
    to ``0.3 c`` Hz). Scale-free steps downstream (z-scoring per run) remove this factor.

    Parameters
    ----------
    data : array of shape (n_old,) or (n_old, p)
        Values at ``old_times``. No NaN/inf (InputError naming the rows).
    old_times : array of shape (n_old,)
        Sample times in seconds, any order, may be irregular (e.g. word midpoints).
    new_times : array of shape (n_new,)
        Output times in seconds (e.g. TR centres), at least 2, with a positive median spacing.
    window : int, default 3
        Number of lobes of the Lanczos window.
    cutoff_mult : float, default 1.0
        Multiplies the cutoff ``1 / TR``; < 1 smooths more.

    Returns
    -------
    ndarray of shape (n_new, p), or (n_new,) for 1-D ``data``
        float32 if ``data`` is float32, else float64. New times farther than the kernel
        reach from every old time get 0.

    Notes
    -----
    Computed with a sparse ``(n_new, n_old)`` kernel matrix that holds only the pairs within
    reach, so long, densely sampled inputs (frame-rate features) stay cheap.
    """
    fname = "lanczos_resample"
    arr, was_1d = _as_2d_data(data, fname)
    old = _times(old_times, arr.shape[0], fname, "old_times")
    new = _times(new_times, None, fname, "new_times")
    if new.size < 2:
        raise InputError(
            f"{fname}: new_times needs at least 2 times to define the TR; got {new.size}."
        )
    if isinstance(window, bool) or int(window) != window or window < 1:
        raise InputError(f"{fname}: window must be a positive integer; got {window!r}.")
    window = int(window)
    if not np.isfinite(cutoff_mult) or cutoff_mult <= 0:
        raise InputError(f"{fname}: cutoff_mult must be > 0; got {cutoff_mult!r}.")
    tr = float(np.median(np.diff(new)))
    if not tr > 0:
        raise InputError(
            f"{fname}: new_times must increase; median spacing is {tr} s "
            f"(first times {new[:3].tolist()})."
        )
    _check_no_nan_rows(arr, fname)
    out_dtype = _float_dtype(arr.dtype)
    old, arr = _sorted(old, arr)

    cutoff = cutoff_mult / tr
    reach = window / cutoff
    start, stop = _window_bounds(old, new - reach, new + reach, right_closed=True)
    rows, cols = _ranges(start, stop)
    weights = lanczos_kernel(new[rows] - old[cols], cutoff, window)
    K = scipy.sparse.csr_matrix((weights, (rows, cols)), shape=(new.size, old.size))
    out = np.asarray(K @ np.asarray(arr, dtype=np.float64)).astype(out_dtype, copy=False)
    return out[:, 0] if was_1d else out


# ---------------------------------------------------------------------------- window mean
def window_mean(data, old_times, new_times, width: float):
    """Mean of the samples whose times fall in ``[t - width/2, t + width/2)`` for each new ``t``.

    Parameters
    ----------
    data : array of shape (n_old,) or (n_old, p)
        Values at ``old_times``. No NaN/inf (InputError naming the rows).
    old_times : array of shape (n_old,)
        Sample times in seconds, any order.
    new_times : array of shape (n_new,)
        Window centres in seconds, any order (windows may overlap).
    width : float
        Window length in seconds, > 0 (e.g. the TR).

    Returns
    -------
    ndarray of shape (n_new, p), or (n_new,) for 1-D ``data``
        float32 if ``data`` is float32, else float64; sums accumulated in float64.
        **Empty windows** (no old sample inside) give a row of zeros, and a ``UserWarning``
        says how many windows were empty (a silent zero would hide a timing mismatch).
    """
    fname = "window_mean"
    arr, was_1d = _as_2d_data(data, fname)
    old = _times(old_times, arr.shape[0], fname, "old_times")
    new = _times(new_times, None, fname, "new_times")
    if not (np.isfinite(width) and width > 0):
        raise InputError(f"{fname}: width must be > 0 seconds; got {width!r}.")
    _check_no_nan_rows(arr, fname)
    out_dtype = _float_dtype(arr.dtype)
    old, arr = _sorted(old, arr)
    start, stop = _window_bounds(old, new - width / 2.0, new + width / 2.0, right_closed=False)
    counts = stop - start
    p = arr.shape[1]
    sums = np.zeros((new.size, p), dtype=np.float64)
    nonempty = counts > 0
    if nonempty.any() and p > 0:
        # exact per-window sums with reduceat over interleaved [start, stop) pairs; a zero row
        # is appended so that stop == n_old is a valid index
        padded = np.vstack([np.asarray(arr, dtype=np.float64), np.zeros((1, p))])
        idx = np.column_stack([start[nonempty], stop[nonempty]]).reshape(-1)
        sums[nonempty] = np.add.reduceat(padded, idx, axis=0)[::2]
    n_empty = int((~nonempty).sum())
    if n_empty:
        warnings.warn(
            f"{fname}: {n_empty} of {new.size} windows (width {width} s) contain no sample; "
            "their rows are set to 0. Check that old_times and new_times share a clock.",
            UserWarning,
            stacklevel=2,
        )
    out = np.divide(sums, np.maximum(counts, 1)[:, None]).astype(out_dtype, copy=False)
    return out[:, 0] if was_1d else out


# ---------------------------------------------------------------------------- FIR delays
def make_delayed(X, delays: Sequence[int], run_lengths: Sequence[int] | None = None):
    """Stack time-shifted copies of ``X`` (finite impulse response model), run by run.

    Column block ``j`` (columns ``j*p`` to ``(j+1)*p - 1``, *delay-major*: all features for
    ``delays[0]``, then all for ``delays[1]``, ...) holds ``X`` delayed by ``d = delays[j]``
    samples: within each run, row ``t`` gets ``X[t - d]``. The first ``d`` rows of every run
    are 0 for ``d > 0``; for ``d < 0`` (a lead) the last ``|d|`` rows of every run are 0.
    Nothing crosses a run boundary; a run shorter than ``|d|`` gets an all-zero block.

    Parameters
    ----------
    X : array of shape (n, p)
        Features on the TR grid, runs concatenated in time.
    delays : sequence of int
        Delays in samples (TRs), e.g. ``[1, 2, 3, 4]``; at least one.
    run_lengths : sequence of int, optional
        Number of samples in each run, summing to ``n``. ``None``: one run.

    Returns
    -------
    ndarray of shape (n, p * len(delays)), same dtype as ``X``.
    """
    fname = "make_delayed"
    X = np.asarray(X)
    if X.ndim != 2:
        raise InputError(f"{fname}: X must be 2-D (n_samples, n_features); got shape {X.shape}.")
    n, p = X.shape
    d_arr = np.asarray(list(delays) if not isinstance(delays, np.ndarray) else delays)
    if d_arr.ndim != 1 or d_arr.size == 0:
        raise InputError(f"{fname}: delays must be a non-empty 1-D sequence of ints; got {delays!r}.")
    if not np.issubdtype(d_arr.dtype, np.integer):
        if np.issubdtype(d_arr.dtype, np.floating) and np.all(d_arr == np.round(d_arr)):
            d_arr = d_arr.astype(np.int64)
        else:
            raise InputError(f"{fname}: delays must be whole numbers of samples; got {delays!r}.")
    bounds = _run_bounds(run_lengths, n, fname)
    out = np.zeros((n, p * d_arr.size), dtype=X.dtype)
    for j, d in enumerate(d_arr.tolist()):
        cols = slice(j * p, (j + 1) * p)
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            length = b - a
            if abs(d) >= length:
                continue
            if d >= 0:
                out[a + d:b, cols] = X[a:b - d]
            else:
                out[a:b + d, cols] = X[a - d:b]
    return out


# ---------------------------------------------------------------------------- z-score
def zscore_runs(X, run_lengths: Sequence[int] | None):
    """Z-score every column within every run separately (mean 0, population std 1).

    Parameters
    ----------
    X : array of shape (n, p) or (n,)
    run_lengths : sequence of int or None
        Samples per run, summing to ``n``; ``None`` treats ``X`` as one run.

    Returns
    -------
    ndarray like ``X``: float32 if ``X`` is float32, else float64. A column that is constant
    within a run (std within a few rounding errors of 0 relative to its magnitude) becomes
    0 in that run, not NaN. NaN/inf in ``X`` raise InputError.
    """
    fname = "zscore_runs"
    arr, was_1d = _as_2d_data(X, fname)
    bounds = _run_bounds(run_lengths, arr.shape[0], fname)
    _check_no_nan_rows(arr, fname, "X")
    out_dtype = _float_dtype(arr.dtype)
    out = np.empty(arr.shape, dtype=out_dtype)
    eps = np.finfo(np.float64).eps
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        seg = np.asarray(arr[a:b], dtype=np.float64)
        centred = seg - seg.mean(axis=0)
        centred -= centred.mean(axis=0)  # second pass removes the rounding left by a large mean
        std = np.sqrt(np.mean(centred**2, axis=0))
        const = np.max(np.abs(centred), axis=0) <= 64 * eps * np.max(np.abs(seg), axis=0)
        std[const] = 1.0
        z = centred / std
        z[:, const] = 0.0
        out[a:b] = z
    return out[:, 0] if was_1d else out
