"""Per-run cleaning of response arrays: polynomial detrending, z-scoring, sanity checks.

All functions take ``(time, targets)`` arrays. Cleaning is done here rather than inside
nilearn so that every dataset (NIfTI, HDF5, text ROI series) is cleaned the same way.
"""

from __future__ import annotations

import numpy as np

from mmneuro.errors import InputError

#: Relative tolerance under which a column counts as constant: ``std <= tol * max|column|``.
#: float32 rounding of a constant near ``c`` leaves a spread of about ``6e-8 * |c|``, so
#: 1e-6 catches constants stored in float32 while a real BOLD series (std about 1 % of its
#: mean) is four orders of magnitude above it.
CONSTANT_TOL = 1e-6


def validate_responses(Y, name: str) -> None:
    """Raise :class:`InputError` unless ``Y`` is a finite, non-empty 2-D numeric array.

    Parameters
    ----------
    Y : array-like, expected (n_trs, n_targets).
    name : what ``Y`` is (a file name, ``"subject 18 run half-1"``); every message starts
        with it.

    Returns nothing; the messages name the shape, or how many values are NaN / infinite
    and in which columns (the first few) and rows.
    """
    arr = np.asarray(Y)
    if arr.ndim != 2:
        raise InputError(
            f"{name}: expected a 2-D (time, targets) array, got {arr.ndim}-D with shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"{name}: empty response array of shape {arr.shape} (time, targets)")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
            or arr.dtype == np.bool_):
        raise InputError(f"{name}: expected numbers, got an array of dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        return
    bad = ~np.isfinite(arr)
    if not bad.any():
        return
    n_nan = int(np.isnan(arr).sum())
    n_inf = int(bad.sum()) - n_nan
    cols = np.flatnonzero(bad.any(axis=0))
    rows = np.flatnonzero(bad.any(axis=1))
    show = 5
    col_txt = ", ".join(str(c) for c in cols[:show]) + (", ..." if len(cols) > show else "")
    row_txt = ", ".join(str(r) for r in rows[:show]) + (", ..." if len(rows) > show else "")
    raise InputError(
        f"{name}: {n_nan} NaN and {n_inf} infinite values in an array of shape {arr.shape}, "
        f"in {len(cols)} of {arr.shape[1]} columns (first: {col_txt}) and {len(rows)} of "
        f"{arr.shape[0]} rows (first: {row_txt}); drop or repair these targets before loading"
    )


def _float_dtype(arr: np.ndarray) -> np.dtype:
    return arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.dtype(np.float64)


def constant_columns(Y, tol: float = CONSTANT_TOL) -> np.ndarray:
    """Which columns of ``Y`` are constant.

    Parameters
    ----------
    Y : (n_trs, n_targets) array.
    tol : relative tolerance; column ``j`` is constant when
        ``std(Y[:, j]) <= tol * max|Y[:, j]|`` (an all-zero column is constant).

    Returns
    -------
    (n_targets,) bool. Columns containing NaN are not flagged (see :func:`validate_responses`).
    """
    arr = np.asarray(Y, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"constant_columns: expected a 2-D (time, targets) array, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise InputError(f"constant_columns: array of shape {arr.shape} has no rows")
    std = arr.std(axis=0)
    scale = np.abs(arr).max(axis=0)
    with np.errstate(invalid="ignore"):
        return std <= tol * scale


def _legendre_basis(n: int, order: int) -> np.ndarray:
    """Orthonormal (n, order + 1) basis of polynomials of degree <= order on n samples."""
    x = np.linspace(-1.0, 1.0, n)
    vander = np.polynomial.legendre.legvander(x, order)
    q, _ = np.linalg.qr(vander)
    return q


def detrend(Y, order: int = 2) -> np.ndarray:
    """Remove a polynomial trend of degree ``order`` from every column.

    The fitted polynomial includes the constant, so the mean goes too: ``order=0`` removes
    the mean, 1 a line, 2 a line and a parabola (the usual fMRI drift model).

    Parameters
    ----------
    Y : (n_trs, n_targets) or (n_trs,) array; samples are taken as equally spaced.
    order : polynomial degree, >= 0. Needs ``n_trs >= order + 2`` rows (with fewer, the
        polynomial fits any column exactly and nothing would be left).

    Returns
    -------
    Array of ``Y``'s shape: the least-squares residual, in ``Y``'s float dtype (float64 for
    integer input); computed in float64.
    """
    arr = np.asarray(Y)
    if arr.ndim not in (1, 2):
        raise InputError(f"detrend: expected a (time,) or (time, targets) array, got shape {arr.shape}")
    if int(order) != order or order < 0:
        raise InputError(f"detrend: order must be a non-negative integer, got {order!r}")
    order = int(order)
    n = arr.shape[0]
    if n < order + 2:
        raise InputError(
            f"detrend: {n} time points cannot be detrended with a polynomial of order {order}; "
            f"need at least {order + 2}"
        )
    out_dtype = _float_dtype(arr)
    data = arr.astype(np.float64, copy=False).reshape(n, -1)
    q = _legendre_basis(n, order)
    resid = data - q @ (q.T @ data)
    return resid.reshape(arr.shape).astype(out_dtype, copy=False)


def clean_run(Y, detrend_order: int | None = 2, name: str = "responses", confounds=None,
              standardize: bool = True) -> np.ndarray:
    """Regress drift (and confounds) out of one run, then z-score every column.

    Parameters
    ----------
    Y : (n_trs, n_targets) finite array (checked with :func:`validate_responses`).
    detrend_order : polynomial degree of the drift model (see :func:`detrend`); ``None``
        removes the mean only.
    name : label used in error messages.
    confounds : optional (n_trs, k) nuisance regressors (e.g. fMRIPrep motion, CSF, white
        matter, cosine drifts), removed jointly with the polynomial drift by least squares.
    standardize : z-score the residual (mean 0, std 1); False keeps its scale.

    Returns
    -------
    (n_trs, n_targets) float32 residual, with mean 0 and (if ``standardize``) standard
    deviation 1 (ddof=0) per column. A column is set to 0 (never NaN) when it is constant,
    or when nothing but rounding noise is left after the regression (e.g. an exact
    quadratic), judged by ``std(residual) <= CONSTANT_TOL * max|column|``.
    """
    validate_responses(Y, name)
    data = np.asarray(Y, dtype=np.float64)
    order = 0 if detrend_order is None else detrend_order
    if confounds is None:
        resid = detrend(data, order)
    else:
        C = np.asarray(confounds, dtype=np.float64)
        if C.ndim != 2 or C.shape[0] != data.shape[0]:
            raise InputError(f"{name}: confounds of shape {C.shape} do not match {data.shape[0]} response rows")
        validate_responses(C, f"{name} confounds")
        basis = np.column_stack([_legendre_basis(data.shape[0], order), C])
        if basis.shape[1] >= data.shape[0]:
            raise InputError(f"{name}: {basis.shape[1]} drift + confound regressors for {data.shape[0]} rows; "
                             "select fewer confound columns")
        coef, *_ = np.linalg.lstsq(basis, data, rcond=None)
        resid = data - basis @ coef
    std = resid.std(axis=0)
    flat = constant_columns(data) | (std <= CONSTANT_TOL * np.abs(data).max(axis=0))
    z = resid / np.where(flat, 1.0, std) if standardize else resid
    z[:, flat] = 0.0
    return z.astype(np.float32)
