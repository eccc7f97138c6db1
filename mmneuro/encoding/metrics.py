"""Column-wise scores of predictions against measured responses.

Arrays in, arrays out: ``Y`` (measured) and ``P`` (predicted) are ``(n_samples,)`` or
``(n_samples, n_targets)``; every function returns one number per target column.

Constant columns
----------------
A column is treated as *constant* when its largest deviation from its own mean is within
a few rounding errors of its largest absolute value
(``max|x - mean(x)| <= 64 * eps * max|x|``, ``eps`` of float64). This catches columns
that are constant up to floating-point noise (e.g. ``np.full(n, 0.1)``, whose computed mean
is not exactly 0.1), for which a correlation would otherwise be a random number.
"""

from __future__ import annotations

import numpy as np

from mmneuro.errors import InputError

__all__ = ["pearson_r", "r2_score"]

#: Multiple of machine epsilon below which a column's spread counts as rounding noise.
_CONSTANT_RTOL_EPS = 64.0


def _constant_columns(x: np.ndarray, xc: np.ndarray) -> np.ndarray:
    """Boolean mask (n_columns,): columns of ``x`` that are constant up to rounding.

    ``xc`` is ``x`` minus its column means (same shape). Works for any float dtype,
    using that dtype's machine epsilon.
    """
    eps = np.finfo(xc.dtype).eps
    if x.shape[0] == 0:
        return np.ones(x.shape[1], dtype=bool)
    spread = np.max(np.abs(xc), axis=0)
    scale = np.max(np.abs(x), axis=0)
    return spread <= _CONSTANT_RTOL_EPS * eps * scale


def _check_pair(Y, P, name: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate and convert to float64 2-D; returns (Y, P, was_1d)."""
    Y = np.asarray(Y)
    P = np.asarray(P)
    if Y.ndim not in (1, 2) or P.ndim not in (1, 2):
        raise InputError(
            f"{name}: Y and P must be 1-D or 2-D arrays (time first); got Y.ndim={Y.ndim}, "
            f"P.ndim={P.ndim}."
        )
    if Y.shape != P.shape:
        raise InputError(
            f"{name}: Y and P must have the same shape; got Y.shape={Y.shape} and "
            f"P.shape={P.shape}. Both are (n_samples, n_targets) with time first."
        )
    if Y.shape[0] < 2:
        raise InputError(f"{name}: needs at least 2 samples; got n_samples={Y.shape[0]}.")
    for label, arr in (("Y", Y), ("P", P)):
        if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
            raise InputError(f"{name}: {label} must be a real numeric array; got dtype={arr.dtype}.")
    was_1d = Y.ndim == 1
    Y = np.asarray(Y, dtype=np.float64).reshape(Y.shape[0], -1)
    P = np.asarray(P, dtype=np.float64).reshape(P.shape[0], -1)
    for label, arr in (("Y", Y), ("P", P)):
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(np.isinf(arr).sum())
        if n_nan or n_inf:
            raise InputError(
                f"{name}: {label} contains {n_nan} NaN and {n_inf} infinite values out of "
                f"{arr.size}; remove or impute them first."
            )
    return Y, P, was_1d


def pearson_r(Y, P):
    """Pearson correlation between matching columns of ``Y`` and ``P``.

    Parameters
    ----------
    Y, P : array of shape (n_samples,) or (n_samples, n_targets)
        Measured and predicted responses, time first. Same shape; at least 2 samples.

    Returns
    -------
    r : float64 array of shape (n_targets,), or a float64 scalar for 1-D inputs
        ``r[j] = corr(Y[:, j], P[:, j])``, accumulated in float64 whatever the input dtype.
        Where ``Y[:, j]`` or ``P[:, j]`` is constant (see the module docstring for the
        tolerance), the correlation is undefined and ``r[j]`` is ``NaN``; use
        ``np.nanmean`` or mask such targets before averaging.

    Raises
    ------
    InputError
        On shape mismatch, fewer than 2 samples, non-numeric input, NaN or infinite values.
    """
    Y, P, was_1d = _check_pair(Y, P, "pearson_r")
    Yc = Y - Y.mean(axis=0)
    Pc = P - P.mean(axis=0)
    num = np.einsum("ij,ij->j", Yc, Pc)
    den = np.sqrt(np.einsum("ij,ij->j", Yc, Yc) * np.einsum("ij,ij->j", Pc, Pc))
    bad = _constant_columns(Y, Yc) | _constant_columns(P, Pc)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num / den
    r = np.clip(r, -1.0, 1.0)
    r[bad] = np.nan
    return r[0] if was_1d else r


def r2_score(Y, P):
    """Coefficient of determination of ``P`` for ``Y``, column by column.

    ``r2[j] = 1 - sum((Y[:, j] - P[:, j])**2) / sum((Y[:, j] - mean(Y[:, j]))**2)``, the same
    definition as ``sklearn.metrics.r2_score(..., multioutput="raw_values")``; it can be
    negative (worse than predicting the mean) and is accumulated in float64.

    Parameters
    ----------
    Y, P : array of shape (n_samples,) or (n_samples, n_targets)
        Measured and predicted responses, time first. Same shape; at least 2 samples.

    Returns
    -------
    r2 : float64 array of shape (n_targets,), or a float64 scalar for 1-D inputs
        Where ``Y[:, j]`` is constant (see the module docstring) R^2 is undefined and
        ``r2[j]`` is ``NaN`` (scikit-learn instead returns 1.0 or 0.0 there).

    Raises
    ------
    InputError
        On shape mismatch, fewer than 2 samples, non-numeric input, NaN or infinite values.
    """
    Y, P, was_1d = _check_pair(Y, P, "r2_score")
    Yc = Y - Y.mean(axis=0)
    R = Y - P
    sse = np.einsum("ij,ij->j", R, R)
    sst = np.einsum("ij,ij->j", Yc, Yc)
    bad = _constant_columns(Y, Yc)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - sse / sst
    r2[bad] = np.nan
    return r2[0] if was_1d else r2
