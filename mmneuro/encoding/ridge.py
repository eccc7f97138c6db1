"""Ridge regression with per-target regularisation chosen by cross-validation.

Arrays in, arrays out: ``X`` is ``(n_samples, n_features)``, ``Y`` is ``(n_samples,)`` or
``(n_samples, n_targets)``, time first. No model, feature or file-format code lives here.
The estimator validates its input and parameters; the numerical work is
:func:`mmneuro.encoding.solvers.solve_ridge_cv` (one eigen-decomposition per fold, the
validation design projected once and reused across alphas, targets in memory-bounded
chunks, numpy or torch backends).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from mmneuro.encoding.backends import BACKENDS, get_backend
from mmneuro.encoding.cv import LeaveRunsOut, contiguous_kfold
from mmneuro.encoding.solvers import solve_ridge_cv
from mmneuro.errors import InputError

__all__ = ["RidgeCV", "DEFAULT_ALPHAS", "DEFAULT_MAX_MEMORY", "parse_memory"]

#: Default grid of ridge penalties (himalaya / scikit-learn convention, see RidgeCV).
DEFAULT_ALPHAS = np.logspace(0, 5, 11)

#: Default working-memory budget for one chunk of targets, in bytes (256 MiB).
DEFAULT_MAX_MEMORY = 256 * 2**20

_SCORES = ("correlation", "r2")
_SOLVERS = ("auto", "primal", "dual")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_memory(value, owner: str = "RidgeCV") -> int:
    """Bytes from a number of bytes or a string such as ``"512MB"``, ``"2GiB"``, ``"1.5 GB"``."""
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"{owner}: max_memory must be bytes or a size like '512MB'; got {value!r}.")
    if isinstance(value, numbers.Real):
        out = float(value)
    elif isinstance(value, str):
        import re

        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        unit = m.group(2).upper() if m else None
        if m is None or unit not in _UNITS:
            raise InputError(
                f"{owner}: max_memory={value!r} is not a size; use bytes or e.g. '512MB', '2GiB'."
            )
        out = float(m.group(1)) * _UNITS[unit]
    else:
        raise InputError(f"{owner}: max_memory must be bytes or a size like '512MB'; got {value!r}.")
    if not np.isfinite(out) or out < 1:
        raise InputError(f"{owner}: max_memory must be at least 1 byte; got {value!r}.")
    return int(out)


class _NonNumericError(InputError, TypeError):
    """Input that cannot be converted to numbers (an InputError that is also a TypeError,
    as scikit-learn expects for such input)."""


def _count_nonfinite(arr: np.ndarray) -> tuple[int, int]:
    return int(np.isnan(arr).sum()), int(np.isinf(arr).sum())


def _as_float_array(a, name: str, dtype: np.dtype, owner: str) -> np.ndarray:
    """Convert to ``dtype`` without copying when possible; reject non-numeric and complex."""
    if a is None:
        raise InputError(f"{owner} requires y to be passed, but the target y is None.")
    if hasattr(a, "toarray") or hasattr(a, "tocsr"):
        raise InputError(
            f"{owner}: {name} is a sparse matrix; pass a dense array (e.g. {name}.toarray())."
        )
    arr = np.asarray(a)
    if np.iscomplexobj(arr):
        raise InputError(f"{owner}: {name} is complex (dtype={arr.dtype}). Complex data not supported.")
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise _NonNumericError(
                f"{owner}: {name} must be numeric; got dtype={arr.dtype} that cannot be "
                f"converted to float ({exc})."
            ) from None
    return np.asarray(arr, dtype=dtype)


def _check_finite(arr: np.ndarray, name: str, owner: str) -> None:
    if not np.isfinite(arr).all():
        n_nan, n_inf = _count_nonfinite(arr)
        raise InputError(
            f"{owner}: {name} contains {n_nan} NaN and {n_inf} infinite values "
            f"(out of {arr.size} entries, shape {arr.shape}); remove or impute them first."
        )


class RidgeCV(RegressorMixin, BaseEstimator):
    """Ridge regression with one penalty per target, chosen by cross-validation.

    Solves, for every target column ``y_j``::

        b_j = argmin_b ||X b - y_j||^2 + alpha_j ||b||^2 = (X^T X + alpha_j I)^{-1} X^T y_j

    choosing ``alpha_j`` from ``alphas`` by the mean validation score over folds, then
    refitting on all samples with each target's alpha.

    Alpha convention
    ----------------
    ``alpha`` multiplies ``||b||^2`` directly, as in scikit-learn's ``Ridge`` and
    himalaya's ``RidgeCV`` (shrinkage ``s / (s**2 + alpha)`` of singular value ``s``): the
    same numbers give the same fits as himalaya. The Huth-lab ``ridge.py`` code
    (``bootstrap_ridge`` / ``ridge_corr``) uses ``s / (s**2 + a**2)``, i.e. its ``a`` is
    the square root of ours: Huth ``a`` corresponds to ``alpha = a**2`` here, and a Huth grid
    ``np.logspace(1, 3, 20)`` is ``np.logspace(2, 6, 20)`` here. (With Huth's
    ``normalpha=True`` their penalty is ``a * s_max``, so ``alpha = (a * s_max)**2``.)

    Parameters
    ----------
    alphas : array-like of shape (n_alphas,) or None, default None
        Candidate penalties; ``None`` means :data:`DEFAULT_ALPHAS` ``= np.logspace(0, 5, 11)``
        (``None`` rather than the array itself because scikit-learn's repr and clone
        machinery compare defaults with ``==``, which is ambiguous for arrays). Each
        penalty must be finite and >= 0 (0 means least squares / minimum-norm solution).
    cv : int, scikit-learn splitter, or iterable of (train_idx, val_idx), default 5
        * int ``K`` without ``groups``: ``K`` contiguous folds of consecutive samples, no
          shuffling (:func:`mmneuro.encoding.contiguous_kfold`).
        * int ``K`` with ``groups`` passed to :meth:`fit`: leave-runs-out with the runs
          split into ``K`` consecutive blocks (:class:`mmneuro.encoding.LeaveRunsOut`);
          ``K`` must not exceed the number of runs (use ``cv=LeaveRunsOut()`` for
          leave-one-run-out).
        * an object with a ``split`` method (e.g. ``LeaveRunsOut()``, ``KFold``, or
          :class:`mmneuro.encoding.ChunkedBootstrap` for Huth-style bootstrap CV with
          ``nboots``, ``chunklen``, ``nchunks`` and a seed): called as
          ``cv.split(X, y, groups)``.
        * an iterable of ``(train_idx, val_idx)`` integer (or boolean-mask) pairs.
    scoring : {"correlation", "r2"}, default "correlation"
        Validation score maximised when choosing alpha (named ``scoring`` as in
        scikit-learn's ``RidgeCV``: a ``score`` attribute would shadow the estimator's
        :meth:`score` method). Where the validation target is
        constant (or, for correlation, the prediction is constant, e.g. all-zero features)
        the fold's score is 0 rather than NaN, so such targets tie across alphas.
    fit_intercept : bool, default False
        If True, centre ``X`` and ``y`` with the training means (per fold and for the refit)
        and set ``intercept_``; if False the data are used as given (centre them yourself,
        e.g. with z-scoring per run) and ``intercept_`` is 0.
    alpha_per_target : bool, default True
        If False, one alpha is shared by all targets: the one with the best CV score
        averaged over targets.
    dtype : {"float32", "float64"}, default "float32"
        Precision of the computation, coefficients and predictions. float32 halves memory
        and is about twice as fast; scores are accumulated in float64 either way. Ask for
        "float64" when comparing alphas whose scores differ by less than ~1e-5.
    n_targets_batch : int or None, default None
        Targets processed together (one chunk of columns of ``y`` at a time, CV and refit).
        ``None`` sizes the chunks from ``max_memory``. The chosen alphas do not depend on it.
    backend : {"numpy", "torch", "torch_cuda"}, default "numpy"
        Where the arithmetic runs (see :mod:`mmneuro.encoding.backends`). ``X`` and ``y``
        stay on the host; ``X`` is moved once and ``y`` one chunk at a time, and the
        results come back as numpy arrays.
    max_memory : int, str or None, default None
        Working-memory budget (bytes, or e.g. ``"512MB"``, ``"2GiB"``) for one chunk of
        targets, on the backend's device; ``None`` means 256 MiB. The per-fold
        decompositions (``n_folds * (k**2 + 2 * n_val * k)`` values, ``k`` = n_features on
        the primal path, n_train on the dual path), the per-alpha validation operators
        (``n_alphas * n_val * k`` values per fold, kept only when they fit in
        ``2 * max_memory``; see ``route_``) and the outputs (``coef_`` is
        ``n_features * n_targets``) come on top.
    solver : {"auto", "primal", "dual"}, default "auto"
        "primal": eigen-decomposition of the ``p x p`` Gram matrix per fold; "dual": of the
        ``n_train x n_train`` kernel. "auto" takes the primal path when ``n_features`` is at
        most the mean training-set size, else the dual one. Both give the same model.

    Attributes
    ----------
    alpha_ : ndarray of shape (n_targets,), or float for 1-D ``y``
        Chosen penalty of every target.
    cv_scores_ : ndarray of shape (n_alphas, n_targets), or (n_alphas,) for 1-D ``y``
        Validation score of every alpha, averaged over folds.
    best_score_ : ndarray of shape (n_targets,), or float for 1-D ``y``
        ``cv_scores_`` at the chosen alpha.
    coef_ : ndarray of shape (n_features, n_targets), or (n_features,) for 1-D ``y``
        Coefficients refit on all samples (note: features first, as in himalaya, not
        scikit-learn's ``(n_targets, n_features)``).
    intercept_ : ndarray of shape (n_targets,), or float for 1-D ``y``
        Zero unless ``fit_intercept=True``.
    alphas_ : ndarray of shape (n_alphas,)
        The validated grid.
    n_splits_ : int
        Number of cross-validation folds used.
    solver_ : str
        Path taken, "primal" or "dual".
    n_targets_batch_ : int
        Targets per chunk actually used.
    route_ : str
        "operators" (per-alpha validation operators kept per fold) or "basis" (eigenbasis
        projections per chunk; taken when the operators would exceed ``2 * max_memory``);
        see :mod:`mmneuro.encoding.solvers`. Same results either way.
    n_features_in_ : int

    Degenerate inputs
    -----------------
    * Constant target column: every fold scores 0 for every alpha; the largest alpha is
      chosen (ties within 1e-10 always go to the largest alpha).
    * All-zero (or constant, with ``fit_intercept=True``) features: predictions are constant,
      scores 0, largest alpha chosen, coefficients 0.
    * Duplicated features / rank-deficient ``X``: directions whose Gram (or kernel)
      eigenvalue is within rounding of 0 (``<= k * eps * largest``) get weight 0 for every
      alpha (exact arithmetic gives them none; in floating point ``1 / alpha`` would only
      amplify rounding noise). With ``alpha = 0`` this is the minimum-norm least-squares
      solution; duplicated columns share their weight equally.
    * ``p >> n``: the dual (kernel) path, ``k = n_train`` components; no special case.
    * Validation fold whose target has zero variance: that fold contributes 0 to the target's
      mean score (both scores).

    Notes
    -----
    :meth:`score` returns the mean R^2 over targets (scikit-learn convention,
    ``sklearn.metrics.r2_score`` with ``multioutput="uniform_average"``), whatever
    ``scoring`` was used to pick alpha. Use :func:`mmneuro.encoding.pearson_r` or
    :func:`mmneuro.encoding.r2_score` on :meth:`predict` for per-target scores.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 10)); Y = X @ rng.standard_normal((10, 3))
    >>> model = RidgeCV(alphas=[0.1, 1.0, 10.0], cv=4).fit(X, Y)
    >>> model.alpha_.shape, model.coef_.shape
    ((3,), (10, 3))
    """

    def __init__(
        self,
        alphas=None,
        cv=5,
        scoring="correlation",
        fit_intercept=False,
        alpha_per_target=True,
        dtype="float32",
        n_targets_batch=None,
        backend="numpy",
        max_memory=None,
        solver="auto",
    ):
        self.alphas = alphas
        self.cv = cv
        self.scoring = scoring
        self.fit_intercept = fit_intercept
        self.alpha_per_target = alpha_per_target
        self.dtype = dtype
        self.n_targets_batch = n_targets_batch
        self.backend = backend
        self.max_memory = max_memory
        self.solver = solver

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------------------ validation
    def _owner(self) -> str:
        return type(self).__name__

    def _check_params(self) -> tuple[np.dtype, np.ndarray, int | None]:
        owner = self._owner()
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            raise InputError(f"{owner}: dtype must be 'float64' or 'float32'; got {self.dtype!r}.") from None
        if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise InputError(f"{owner}: dtype must be 'float64' or 'float32'; got {self.dtype!r}.")
        if self.scoring not in _SCORES:
            raise InputError(f"{owner}: scoring must be one of {_SCORES}; got {self.scoring!r}.")
        alphas = DEFAULT_ALPHAS if self.alphas is None else self.alphas
        try:
            alphas = np.array(alphas, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InputError(f"{owner}: alphas must be a sequence of numbers; got {self.alphas!r}.") from None
        if alphas.size == 0:
            raise InputError(f"{owner}: alphas is empty; give at least one penalty.")
        if not np.all(np.isfinite(alphas)) or np.any(alphas < 0):
            raise InputError(
                f"{owner}: alphas must be finite and >= 0; got min={alphas.min()}, "
                f"max={alphas.max()}, {int((~np.isfinite(alphas)).sum())} non-finite."
            )
        nb = self.n_targets_batch
        if nb is not None:
            if isinstance(nb, (bool, np.bool_)) or not isinstance(nb, numbers.Integral) or nb < 1:
                raise InputError(f"{owner}: n_targets_batch must be a positive int or None; got {nb!r}.")
            nb = int(nb)
        self._check_cv(owner)
        return dtype, alphas, nb

    def _check_cv(self, owner: str) -> None:
        """``cv`` is an int >= 2, a splitter with a ``split`` method, or an iterable of (train, val) pairs (the
        forms of scikit-learn's ``check_cv``); checked at fit time, before the data, as scikit-learn does."""
        cv = self.cv
        forms = ("an int >= 2 (contiguous folds), a splitter with a split(X, y, groups) method (e.g. "
                 "LeaveRunsOut()), or an iterable of (train_idx, val_idx) pairs")
        if isinstance(cv, (bool, np.bool_)):
            raise InputError(f"{owner}: cv must be {forms}; got {cv!r} (a bool).")
        if isinstance(cv, numbers.Integral):
            if int(cv) < 2:
                raise InputError(f"{owner}: cv must be {forms}; got {cv!r} (cross-validation needs at least 2 folds).")
            return
        if isinstance(cv, (str, bytes)):
            raise InputError(f"{owner}: cv must be {forms}; got the string {cv!r} (write cv=5, not cv='5').")
        if callable(getattr(cv, "split", None)) or isinstance(cv, Iterable):
            return
        raise InputError(f"{owner}: cv must be {forms}; got {cv!r} ({type(cv).__name__}).")

    def _validate_X(self, X, dtype, reset: bool) -> np.ndarray:
        owner = self._owner()
        X = _as_float_array(X, "X", dtype, owner) if X is not None else None
        if X is None:
            raise InputError(f"{owner}: X is None; pass an array of shape (n_samples, n_features).")
        if X.ndim != 2:
            raise InputError(
                f"{owner}: expected 2D array X of shape (n_samples, n_features), got {X.ndim}D "
                f"array of shape {X.shape} instead. Reshape your data either using "
                "X.reshape(-1, 1) if it has a single feature or X.reshape(1, -1) if it "
                "contains a single sample."
            )
        if X.shape[0] == 0:
            raise InputError(f"{owner}: X has 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
        if X.shape[1] == 0:
            raise InputError(f"{owner}: X has 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
        _check_finite(X, "X", owner)
        if not reset:
            if X.shape[1] != self.n_features_in_:
                raise InputError(
                    f"X has {X.shape[1]} features, but {owner} is expecting "
                    f"{self.n_features_in_} features as input."
                )
        return X

    def _validate_y(self, y, n_samples: int, dtype) -> tuple[np.ndarray, bool]:
        """2-D view of ``y``; float input is kept as is (cast chunk by chunk in the solver,
        so a large ``y`` or a memmap is never copied whole)."""
        owner = self._owner()
        if y is None:
            raise InputError(f"{owner} requires y to be passed, but the target y is None.")
        if isinstance(y, np.ndarray) and y.dtype.kind == "f" and not np.iscomplexobj(y):
            Y = y
        else:
            Y = _as_float_array(y, "y", dtype, owner)
        if Y.ndim not in (1, 2):
            raise InputError(
                f"{owner}: y must be 1-D (n_samples,) or 2-D (n_samples, n_targets); got shape {Y.shape}."
            )
        if Y.shape[0] != n_samples:
            raise InputError(
                f"{owner}: X has {n_samples} samples (rows) but y has {Y.shape[0]}; "
                "they must have the same number of time points."
            )
        if Y.ndim == 2 and Y.shape[1] == 0:
            raise InputError(f"{owner}: y has 0 targets (shape={Y.shape}); a minimum of 1 is required.")
        was_1d = Y.ndim == 1
        Y = Y.reshape(n_samples, -1)
        step = max(1, (64 * 2**20) // (8 * n_samples))  # check 64 MB of columns at a time
        n_nan = n_inf = 0
        for s in range(0, Y.shape[1], step):
            blk = Y[:, s:s + step]
            if not np.isfinite(blk).all():
                a, b = _count_nonfinite(blk)
                n_nan += a
                n_inf += b
        if n_nan or n_inf:
            raise InputError(
                f"{owner}: y contains {n_nan} NaN and {n_inf} infinite values "
                f"(out of {Y.size} entries, shape {Y.shape}); remove or impute them first."
            )
        return Y, was_1d

    def _folds(self, X, Y, groups) -> list[tuple[np.ndarray, np.ndarray]]:
        owner = self._owner()
        n = X.shape[0]
        cv = self.cv
        if groups is not None:
            groups = np.asarray(groups)
            if groups.ndim != 1 or groups.shape[0] != n:
                raise InputError(
                    f"{owner}: groups must give one run label per sample: X has {n} samples, "
                    f"groups has shape {groups.shape}."
                )
        if isinstance(cv, numbers.Integral) and not isinstance(cv, (bool, np.bool_)):
            if groups is None:
                if n < int(cv):
                    raise InputError(
                        f"{owner}: n_samples={n} is too few for cv={int(cv)} folds; "
                        f"use cv <= {n} or more samples."
                    )
                raw = contiguous_kfold(n, int(cv))
            else:
                raw = list(LeaveRunsOut(n_splits=int(cv)).split(X, Y, groups))
        elif callable(getattr(cv, "split", None)) and not isinstance(cv, (str, bytes)):
            raw = list(cv.split(X, Y, groups))
        elif isinstance(cv, Iterable) and not isinstance(cv, (str, bytes)):
            raw = list(cv)
        else:
            raise InputError(
                f"{owner}: cv must be an int, a splitter with a split() method, or an iterable "
                f"of (train_idx, val_idx) pairs; got {cv!r}."
            )
        if len(raw) == 0:
            raise InputError(f"{owner}: cv produced no folds.")
        folds = []
        for i, pair in enumerate(raw):
            try:
                train, val = pair
            except (TypeError, ValueError):
                raise InputError(f"{owner}: fold {i} of cv is not a (train_idx, val_idx) pair.") from None
            out = []
            for label, idx in (("train", train), ("validation", val)):
                idx = np.asarray(idx)
                if idx.dtype == bool:
                    if idx.shape != (n,):
                        raise InputError(
                            f"{owner}: fold {i} {label} mask has shape {idx.shape}, expected ({n},)."
                        )
                    idx = np.flatnonzero(idx)
                idx = idx.reshape(-1)
                if idx.size and not np.issubdtype(idx.dtype, np.integer):
                    raise InputError(f"{owner}: fold {i} {label} indices must be integers; got dtype={idx.dtype}.")
                if idx.size == 0:
                    raise InputError(f"{owner}: fold {i} has an empty {label} set; check `cv`.")
                if idx.min() < 0 or idx.max() >= n:
                    raise InputError(
                        f"{owner}: fold {i} {label} indices span [{idx.min()}, {idx.max()}] but "
                        f"X has {n} samples (valid indices 0..{n - 1})."
                    )
                out.append(idx.astype(np.intp, copy=False))
            folds.append((out[0], out[1]))
        return folds

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, groups=None):
        """Choose alphas by cross-validation, then refit on all samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        groups : array-like of shape (n_samples,), optional
            Run label of every sample; used by leave-runs-out CV (see ``cv``).

        Returns
        -------
        self

        Raises
        ------
        InputError
            If X and y differ in number of rows, contain NaN/inf, are non-numeric, or the
            parameters or folds are invalid (the message names the numbers involved).
        """
        dtype, alphas, nb = self._check_params()
        owner = self._owner()
        if self.solver not in _SOLVERS:
            raise InputError(f"{owner}: solver must be one of {_SOLVERS}; got {self.solver!r}.")
        if not isinstance(self.backend, str) or self.backend not in BACKENDS:
            raise InputError(f"{owner}: backend must be one of {BACKENDS}; got {self.backend!r}.")
        max_memory = DEFAULT_MAX_MEMORY if self.max_memory is None else parse_memory(self.max_memory, owner)
        backend = get_backend(self.backend)
        X = self._validate_X(X, dtype, reset=True)
        n, p = X.shape
        Y, was_1d = self._validate_y(y, n, dtype)
        n_targets = Y.shape[1]
        folds = self._folds(X, Y, groups)

        out = solve_ridge_cv(
            X, Y, folds, alphas, scoring=self.scoring, fit_intercept=bool(self.fit_intercept),
            alpha_per_target=bool(self.alpha_per_target), dtype=dtype, backend=backend,
            solver=self.solver, chunk_size=nb, max_memory=max_memory,
        )
        best_idx, cv_scores = out["best_idx"], out["cv_scores"]
        coef, intercept = out["coef"], out["intercept"]
        self.solver_ = out["solver"]
        self.n_targets_batch_ = out["chunk_size"]
        self.route_ = out["route"]

        chosen = alphas[best_idx]
        self.alphas_ = alphas
        self.n_splits_ = len(folds)
        self.n_features_in_ = p
        self._y_1d = was_1d
        if was_1d:
            self.alpha_ = float(chosen[0])
            self.cv_scores_ = cv_scores[:, 0]
            self.best_score_ = float(cv_scores[best_idx[0], 0])
            self.coef_ = coef[:, 0]
            self.intercept_ = float(intercept[0])
        else:
            self.alpha_ = chosen
            self.cv_scores_ = cv_scores
            self.best_score_ = cv_scores[best_idx, np.arange(n_targets)]
            self.coef_ = coef
            self.intercept_ = intercept
        return self

    def predict(self, X):
        """Predicted responses, ``X @ coef_ + intercept_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_targets), or (n_samples,) if fitted on 1-D ``y``.
        Computed in ``dtype`` (the precision of ``coef_``) and returned with the float
        dtype of ``X`` (float32 or float64; float64 for other input), as scikit-learn
        expects of regressors.
        """
        check_is_fitted(self, "coef_")
        dtype = self.coef_.dtype
        in_kind = getattr(X, "dtype", None)
        out_dtype = in_kind if in_kind in (np.float32, np.float64) else np.dtype(np.float64)
        X = self._validate_X(X, dtype, reset=False)
        P = X @ self.coef_ + np.asarray(self.intercept_, dtype=dtype)
        return P.astype(out_dtype, copy=False)

    def score(self, X, y, sample_weight=None):
        """Mean R^2 over targets of :meth:`predict` (scikit-learn convention).

        Same as ``sklearn.metrics.r2_score(y, self.predict(X), sample_weight=sample_weight)``
        with ``multioutput="uniform_average"``: constant target columns count 1.0 if
        predicted exactly, else 0.0. For per-target values use
        :func:`mmneuro.encoding.r2_score` or :func:`mmneuro.encoding.pearson_r`.
        """
        return super().score(X, y, sample_weight=sample_weight)
