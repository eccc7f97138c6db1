r"""Noise ceilings: how well could any model predict these responses?

Two kinds:

* **Repeat-based**, for stimuli shown several times: the part of each target's variance
  that repeats across presentations, from the variances (:func:`explainable_variance`,
  then :func:`ceiling_r`) or from split-half correlations with the Spearman-Brown
  correction (:func:`split_half_reliability`, :func:`split_half_ceiling`).
* **Cross-subject**, for stimuli shown once: how well the other subjects' responses of
  the same target predict this subject's, either as the plain leave-one-out inter-subject
  correlation with the mean of the others (:func:`loo_isc`) or through a ridge regression
  on the others (:func:`cross_subject_ceiling`).

Model of the data used throughout: repeat ``k`` of a target is ``y_k = s + e_k`` with
the stimulus-driven signal ``s`` (variance ``S``) shared by all repeats and independent
noise ``e_k`` (variance ``N``). The explainable variance is ``EV = S / (S + N)``.

Derivations (one line each; ``n`` repeats):

* mean of the per-repeat variances: ``E[var(y_k)] = S + N``; variance of the repeat
  mean: ``E[var(mean_k y_k)] = S + N / n``. Their ratio ``ev_raw = (S + N/n)/(S + N)
  = EV + (1 - EV)/n`` overestimates EV; solving for EV gives the bias-corrected
  ``EV = (n ev_raw - 1)/(n - 1) = ev_raw - (1 - ev_raw)/(n - 1)``.
* a perfect model predicts ``s``; against the repeat average ``s + mean_k e_k`` (noise
  variance ``N/n``) its correlation is ``S / sqrt(S (S + N/n)) = sqrt(EV / (EV + (1 - EV)/n))
  = sqrt(n EV / (n EV + 1 - EV))``.
* split halves: the mean of ``k`` repeats has reliability (correlation with the signal,
  squared) ``rho_k = k EV / (1 + (k - 1) EV)`` (Spearman-Brown). The means of two disjoint
  halves of ``a`` and ``b`` repeats correlate at ``r_ab = sqrt(rho_a rho_b)``; with
  ``a = b = n/2`` that is ``rho_{n/2}``, and stepping up gives the classic
  ``rho_n = 2 r_ab / (1 + r_ab)``. Solving ``r_ab = sqrt(rho_a rho_b)`` for EV in general
  (odd ``n``: ``a = (n-1)/2``, ``b = (n+1)/2``) is in :func:`split_half_reliability`. A
  perfect model reaches ``sqrt(rho_n) = ceiling_r(EV, n)`` against the ``n``-repeat mean.
* leave-one-out ISC: subject ``s`` is ``s + e_s`` (noise variance ``N``) and the mean of the
  ``m`` others is ``s + mean e`` (noise ``N / m``), so their correlation is
  ``sqrt(EV) sqrt(rho_m)``, a little below the ceiling of a perfect model against one
  subject, ``sqrt(EV)``, with a finite number of other subjects.
"""

from __future__ import annotations

from itertools import combinations
from math import comb
from typing import Sequence

import numpy as np

from mmneuro.brain.preprocess import validate_responses
from mmneuro.errors import InputError


def _zscore_time(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """z-score along ``axis``; returns (z, constant) with constant slices set to 0."""
    mean = x.mean(axis=axis, keepdims=True)
    centered = x - mean
    std = centered.std(axis=axis, keepdims=True)
    scale = np.abs(x).max(axis=axis, keepdims=True)
    flat = std <= 1e-12 * np.maximum(scale, np.finfo(np.float64).tiny)
    z = centered / np.where(flat, 1.0, std)
    z = np.where(flat, 0.0, z)
    return z, np.squeeze(flat, axis=axis)


def explainable_variance(repeats, bias_correction: bool = True, zscore: bool = True) -> np.ndarray:
    """Fraction of each target's variance explained by the mean over repeats.

    Parameters
    ----------
    repeats : (n_repeats, n_trs, n_targets) responses to the same stimulus, n_repeats >= 2.
    bias_correction : subtract the upward bias of a finite number of repeats,
        ``ev - (1 - ev) / (n_repeats - 1)`` (see the module docstring). Corrected values
        can be negative for pure-noise targets; that is the honest unbiased estimate.
    zscore : z-score each repeat over time first, so that scale or offset differences
        between repeats (different sessions) do not count as noise.

    Returns
    -------
    (n_targets,) float64: ``var_t(mean_k y_k) / mean_k var_t(y_k)`` (then corrected).
    Targets constant in every repeat (no variance at all) get 0.
    """
    arr = np.asarray(repeats, dtype=np.float64)
    if arr.ndim != 3:
        raise InputError(
            f"explainable_variance: expected (n_repeats, n_trs, n_targets), got shape {arr.shape}"
        )
    n_rep, n_trs, _ = arr.shape
    if n_rep < 2:
        raise InputError(f"explainable_variance: needs at least 2 repeats, got {n_rep} (shape {arr.shape})")
    if n_trs < 2:
        raise InputError(f"explainable_variance: needs at least 2 time points, got {n_trs}")
    for k in range(n_rep):
        validate_responses(arr[k], f"explainable_variance repeat {k}")
    if zscore:
        arr, _ = _zscore_time(arr, axis=1)
    mean_var = arr.var(axis=1).mean(axis=0)
    var_mean = arr.mean(axis=0).var(axis=0)
    empty = mean_var <= 0
    ev = var_mean / np.where(empty, 1.0, mean_var)
    if bias_correction:
        ev = ev - (1.0 - ev) / (n_rep - 1)
    ev[empty] = 0.0
    return ev


def ceiling_r(ev, n_repeats: int) -> np.ndarray:
    """Highest Pearson r a perfect model can reach against the repeat-averaged response.

    ``sqrt(n * ev / (n * ev + 1 - ev))`` with ``ev`` clipped to [0, 1] and ``n = n_repeats``
    (derivation in the module docstring). Use it to normalise correlations measured against
    the average of ``n_repeats`` presentations; for single-presentation test data pass 1
    (then the ceiling is ``sqrt(ev)``). NaN in ``ev`` stays NaN.

    Returns
    -------
    array of ``ev``'s shape, float64 in [0, 1].
    """
    if int(n_repeats) != n_repeats or n_repeats < 1:
        raise InputError(f"ceiling_r: n_repeats must be a positive integer, got {n_repeats!r}")
    e = np.clip(np.asarray(ev, dtype=np.float64), 0.0, 1.0)
    n = float(n_repeats)
    denom = n * e + 1.0 - e  # >= 1 for e in [0, 1] and n >= 1: never divides by zero
    return np.sqrt(n * e / denom)


def _check_subject_list(arrays, what: str, fn: str = "cross_subject_ceiling",
                        dtype=np.float64) -> list[np.ndarray]:
    if isinstance(arrays, np.ndarray) and arrays.ndim == 3:
        arrays = list(arrays)
    out = []
    for i, a in enumerate(arrays):
        a = np.asarray(a) if dtype is None else np.asarray(a, dtype=dtype)
        validate_responses(a, f"{fn} {what}[{i}]")
        out.append(a)
    if len(out) < 2:
        raise InputError(f"{fn}: needs at least 2 subjects, got {len(out)} {what} arrays")
    shapes = {a.shape for a in out}
    if len(shapes) != 1:
        detail = ", ".join(f"{i}: {a.shape}" for i, a in enumerate(out))
        raise InputError(
            f"{fn}: {what} arrays must all have the same (time, targets) shape; "
            f"got {detail}"
        )
    return out


DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(0, 6, 13))


def _ridge_predictions(Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray, alphas) -> np.ndarray:
    """Per-target ridge, one small design per target, for several alphas at once.

    Xtr (v, n_train, k), ytr (v, n_train), Xte (v, n_test, k): target ``v``'s predictors
    only predict target ``v``. Predictors are z-scored with the training mean and std (a
    constant predictor becomes 0); y is centred. Returns (n_alphas, v, n_test)
    predictions. The Gram matrices are diagonalised once (``G = V diag(lam) V^T``), so
    every alpha costs one back-substitution.
    """
    mu = Xtr.mean(axis=1, keepdims=True)
    sd = Xtr.std(axis=1, keepdims=True)
    sd = np.where(sd > 0, sd, 1.0)
    Ztr = (Xtr - mu) / sd
    Zte = (Xte - mu) / sd
    ymean = ytr.mean(axis=1, keepdims=True)
    gram = np.matmul(Ztr.transpose(0, 2, 1), Ztr)  # (v, k, k)
    lam, vecs = np.linalg.eigh(gram)  # (v, k), (v, k, k)
    lam = np.clip(lam, 0.0, None)
    xty = np.matmul(Ztr.transpose(0, 2, 1), (ytr - ymean)[..., None])  # (v, k, 1)
    proj = np.matmul(vecs.transpose(0, 2, 1), xty)[..., 0]  # (v, k)
    ZteV = np.matmul(Zte, vecs)  # (v, n_test, k): predictions in the eigenbasis
    out = np.empty((len(alphas), Xte.shape[0], Xte.shape[1]))
    for i, alpha in enumerate(alphas):
        out[i] = np.matmul(ZteV, (proj / (lam + alpha))[..., None])[..., 0] + ymean
    return out


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis (time) of broadcastable arrays, e.g. (n_alphas, v, n)
    against (v, n); NaN where either series is constant."""
    ac = a - a.mean(axis=-1, keepdims=True)
    bc = b - b.mean(axis=-1, keepdims=True)
    num = (ac * bc).sum(axis=-1)
    den = np.sqrt((ac * ac).sum(axis=-1) * (bc * bc).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def cross_subject_ceiling(
    train: Sequence[np.ndarray],
    test: Sequence[np.ndarray],
    ridge_alpha: float | Sequence[float] = DEFAULT_ALPHAS,
    chunk_size: int = 4096,
) -> np.ndarray:
    """How well the other subjects' responses predict each subject's, target by target.

    For subject ``s`` and target ``v``: a ridge regression with the ``n_subjects - 1``
    other subjects' column ``v`` as predictors (z-scored with the training mean and std)
    is fitted on the training responses, then predicts subject ``s``'s test responses;
    the score is the Pearson r on the test responses. This is the cross-subject
    prediction ceiling used for single-presentation data (Oota et al.).

    Parameters
    ----------
    train : per subject, (n_train, n_targets) responses, the same targets in every subject.
    test : per subject, (n_test, n_targets) responses to the same held-out stimulus.
    ridge_alpha : penalty on the z-scored predictors (the Gram diagonal is ``n_train``).
        A single number is used as is. A sequence (default ``logspace(0, 6, 13)``) is a
        grid: each subject and target gets the alpha with the best mean r over an inner
        2-fold split of the training rows (first half / second half, both ways), then is
        refitted on all training rows. Test rows are never used to choose. The choice
        matters: with many subjects and few TRs a light ridge overfits and understates
        the ceiling (on Alice, 26 predictors and 181 TRs, alpha 1 gives mean r 0.17 where
        the tuned ridge gives 0.25).
    chunk_size : targets solved together (bounds memory at about
        ``chunk_size * (n_train + n_test) * n_subjects`` floats).

    Returns
    -------
    (n_subjects, n_targets) float64; NaN where a test column or its prediction is constant.
    """
    tr = _check_subject_list(train, "train")
    te = _check_subject_list(test, "test")
    if len(tr) != len(te):
        raise InputError(
            f"cross_subject_ceiling: {len(tr)} train arrays but {len(te)} test arrays (one per subject)"
        )
    if tr[0].shape[1] != te[0].shape[1]:
        raise InputError(
            f"cross_subject_ceiling: train has {tr[0].shape[1]} targets but test has {te[0].shape[1]}"
        )
    alphas = np.atleast_1d(np.asarray(ridge_alpha, dtype=np.float64))
    if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas < 0):
        raise InputError(f"cross_subject_ceiling: ridge_alpha must be >= 0 (a number or a grid), got {ridge_alpha!r}")
    n_train = tr[0].shape[0]
    tune = alphas.size > 1
    if tune and n_train < 8:
        raise InputError(
            f"cross_subject_ceiling: choosing alpha needs at least 8 training rows, got {n_train}; "
            f"pass a single ridge_alpha"
        )
    n_sub = len(tr)
    n_targets = tr[0].shape[1]
    all_tr = np.ascontiguousarray(np.stack(tr, axis=2).transpose(1, 0, 2))  # (v, n_train, n_sub)
    all_te = np.ascontiguousarray(np.stack(te, axis=2).transpose(1, 0, 2))  # (v, n_test, n_sub)
    half = n_train // 2
    folds = [(slice(0, half), slice(half, n_train)), (slice(half, n_train), slice(0, half))]
    out = np.full((n_sub, n_targets), np.nan)
    for s in range(n_sub):
        others = [j for j in range(n_sub) if j != s]
        for start in range(0, n_targets, chunk_size):
            sl = slice(start, min(start + chunk_size, n_targets))
            Xtr = all_tr[sl][:, :, others]
            ytr = all_tr[sl, :, s]
            Xte = all_te[sl][:, :, others]
            if tune:
                score = np.zeros((alphas.size, Xtr.shape[0]))
                for fit_rows, val_rows in folds:
                    preds = _ridge_predictions(Xtr[:, fit_rows], ytr[:, fit_rows], Xtr[:, val_rows], alphas)
                    score += np.nan_to_num(_pearson_rows(preds, ytr[:, val_rows]), nan=-np.inf)
                best = np.argmax(score, axis=0)  # (v,)
                preds = _ridge_predictions(Xtr, ytr, Xte, alphas)
                pred = np.take_along_axis(preds, best[None, :, None], axis=0)[0]
            else:
                pred = _ridge_predictions(Xtr, ytr, Xte, alphas)[0]
            out[s, sl] = _pearson_rows(pred, all_te[sl, :, s])
    return out


def _pearson_time(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """Pearson r along ``axis`` (time) of same-shaped arrays; NaN where either series is
    constant (to a relative 1e-12, so rounding residue of a constant column never counts)."""
    za, flat_a = _zscore_time(a, axis)
    zb, flat_b = _zscore_time(b, axis)
    r = (za * zb).mean(axis=axis)
    return np.where(flat_a | flat_b, np.nan, r)


def loo_isc(responses: Sequence[np.ndarray], chunk_size: int = 4096) -> np.ndarray:
    """Leave-one-out inter-subject correlation, target by target.

    For subject ``s`` and target ``v``: the Pearson r over time between subject ``s``'s
    column ``v`` and the mean of the other subjects' columns ``v`` (raw mean, same rows).
    Unlike :func:`cross_subject_ceiling` nothing is fitted, so nothing can overfit or
    be under-regularised: with ``m = n_subjects - 1`` others it estimates
    ``sqrt(EV) * sqrt(m EV / (1 + (m - 1) EV))`` (module docstring), approaching the
    single-subject ceiling ``sqrt(EV)`` as ``m`` grows.

    Parameters
    ----------
    responses : per subject, (n_trs, n_targets) responses to the same stimulus rows, the
        same targets in every subject (a list, or one (n_subjects, n_trs, n_targets) array).
        Pass exactly the rows the model's r is computed on.
    chunk_size : targets processed together (bounds memory at about
        ``3 * chunk_size * n_trs * n_subjects`` float64).

    Returns
    -------
    (n_subjects, n_targets) float64; NaN where the subject's column or the others' mean is
    constant.
    """
    ys = _check_subject_list(responses, "responses", "loo_isc", dtype=None)
    n_sub = len(ys)
    n_trs, n_targets = ys[0].shape
    if n_trs < 2:
        raise InputError(f"loo_isc: needs at least 2 time points, got {n_trs}")
    if int(chunk_size) < 1:
        raise InputError(f"loo_isc: chunk_size must be >= 1, got {chunk_size!r}")
    out = np.full((n_sub, n_targets), np.nan)
    for start in range(0, n_targets, int(chunk_size)):
        sl = slice(start, min(start + int(chunk_size), n_targets))
        Y = np.stack([np.asarray(y[:, sl], dtype=np.float64) for y in ys])  # (n_sub, n_trs, v)
        others = (Y.sum(axis=0)[None] - Y) / (n_sub - 1)
        out[:, sl] = _pearson_time(Y, others, axis=1)
    return out


def _half_splits(n: int, max_splits: int, seed: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Distinct splits of ``range(n)`` into halves of ``n // 2`` and ``n - n // 2`` repeats.

    All of them when there are at most ``max_splits`` (a split and its mirror count once
    for even ``n``), else ``max_splits`` distinct ones drawn with ``seed``; sorted.
    """
    a = n // 2
    total = comb(n, a) // (2 if 2 * a == n else 1)

    def canonical(first: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        rest = tuple(k for k in range(n) if k not in first)
        if 2 * a == n and 0 not in first:
            first, rest = rest, first
        return first, rest

    if total <= max_splits:
        return sorted({canonical(c) for c in combinations(range(n), a)})
    rng = np.random.default_rng(seed)
    chosen: set = set()
    while len(chosen) < max_splits:
        chosen.add(canonical(tuple(sorted(int(k) for k in rng.permutation(n)[:a]))))
    return sorted(chosen)


def _reliability_from_split(r: np.ndarray, a: int, b: int) -> np.ndarray:
    """Single-repeat reliability ``EV`` from the correlation ``r`` of an ``a``- and a
    ``b``-repeat mean (solves ``r = sqrt(rho_a rho_b)``; see :func:`split_half_reliability`)."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        one = np.abs(r) >= 1.0
        rr = np.where(one, 0.0, r)
        x = rr * (rr * (a + b) + np.sqrt(rr * rr * (a + b) ** 2 + 4.0 * a * b * (1.0 - rr * rr))) \
            / (2.0 * a * b * (1.0 - rr * rr))
        ev = x / (1.0 + x)
    # the limits: r -> 1 gives EV -> 1; r -> -1 gives x -> -1 / (a + b), EV -> -1 / (a + b - 1)
    return np.where(one, np.where(r > 0, 1.0, -1.0 / (a + b - 1)), ev)


def split_half_reliability(repeats, max_splits: int = 64, seed: int = 0, zscore: bool = True) -> np.ndarray:
    r"""Single-presentation reliability of each target from split halves of its repeats.

    The ``n`` repeats are split into halves of ``a = n // 2`` and ``b = n - a`` repeats;
    the Pearson r over time between the two halves' means is averaged over splits (every
    distinct split when there are at most ``max_splits``, e.g. 3 for n = 4, 10 for n = 5;
    else ``max_splits`` distinct splits drawn with ``seed``). Under ``y_k = s + e_k`` the
    mean of ``k`` repeats has reliability ``rho_k = k EV / (1 + (k - 1) EV)``
    (Spearman-Brown), and the halves correlate at ``r = sqrt(rho_a rho_b)``. Solving for
    the signal-to-noise ratio ``x = S / N`` (``rho_k = k x / (1 + k x)``)::

        a b (1 - r^2) x^2 - r^2 (a + b) x - r^2 = 0
        x = r (r (a + b) + sqrt(r^2 (a + b)^2 + 4 a b (1 - r^2))) / (2 a b (1 - r^2))
        EV = x / (1 + x)

    For even ``n`` (``a = b = m``) this is the inverse Spearman-Brown formula
    ``EV = r / (m - (m - 1) r)``, i.e. ``rho_n = 2 r / (1 + r)``. The formula is applied
    to negative ``r`` as well (it stays finite for ``r > -1``), so pure-noise targets give
    small negative values rather than a floor at 0, as the bias-corrected
    :func:`explainable_variance` does. It estimates the same quantity as
    :func:`explainable_variance` (``S / (S + N)``) from correlations instead of variances.

    Parameters
    ----------
    repeats : (n_repeats, n_trs, n_targets) responses to the same stimulus, n_repeats >= 2.
    max_splits : at most this many splits are averaged.
    seed : draws the splits when there are more than ``max_splits``.
    zscore : z-score each repeat over time first (scale or offset differences between
        sessions are not noise); as in :func:`explainable_variance`.

    Returns
    -------
    (n_targets,) float64 in (-1, 1]; NaN where a half's mean is constant in every split.
    """
    arr = np.asarray(repeats, dtype=np.float64)
    if arr.ndim != 3:
        raise InputError(
            f"split_half_reliability: expected (n_repeats, n_trs, n_targets), got shape {arr.shape}"
        )
    n_rep, n_trs, _ = arr.shape
    if n_rep < 2:
        raise InputError(f"split_half_reliability: needs at least 2 repeats, got {n_rep} (shape {arr.shape})")
    if n_trs < 3:
        raise InputError(f"split_half_reliability: needs at least 3 time points, got {n_trs}")
    if int(max_splits) < 1:
        raise InputError(f"split_half_reliability: max_splits must be >= 1, got {max_splits!r}")
    for k in range(n_rep):
        validate_responses(arr[k], f"split_half_reliability repeat {k}")
    if zscore:
        arr, _ = _zscore_time(arr, axis=1)
    splits = _half_splits(n_rep, int(max_splits), seed)
    rs = np.stack([_pearson_time(arr[list(first)].mean(axis=0), arr[list(rest)].mean(axis=0), axis=0)
                   for first, rest in splits])
    finite = np.isfinite(rs)
    count = finite.sum(axis=0)
    mean_r = np.where(count > 0, np.where(finite, rs, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)
    return _reliability_from_split(mean_r, n_rep // 2, n_rep - n_rep // 2)


def split_half_ceiling(repeats, max_splits: int = 64, seed: int = 0, zscore: bool = True) -> np.ndarray:
    """Highest Pearson r a perfect model can reach against the mean of all ``n`` repeats,
    from split-half reliability with the Spearman-Brown correction.

    ``sqrt(rho_n)`` with ``rho_n = n EV / (1 + (n - 1) EV)`` the reliability of the
    ``n``-repeat mean and ``EV`` = :func:`split_half_reliability` (clipped to [0, 1]); that is
    exactly ``ceiling_r(split_half_reliability(repeats), n)``, the same formula as the
    variance-based ceiling with EV estimated from split-half correlations. For even ``n``,
    ``rho_n = 2 r / (1 + r)`` with ``r`` the mean split-half correlation. Parameters as in
    :func:`split_half_reliability`.

    Returns
    -------
    (n_targets,) float64 in [0, 1]; NaN where the reliability is NaN.
    """
    ev = split_half_reliability(repeats, max_splits=max_splits, seed=seed, zscore=zscore)
    return ceiling_r(ev, np.asarray(repeats).shape[0])


def normalized_alignment(r, ceiling, min_ceiling: float = 0.1) -> np.ndarray:
    """Model correlation as a fraction of the noise ceiling: ``r / ceiling``.

    Parameters
    ----------
    r : (n_targets,) or (..., n_targets) model correlations.
    ceiling : ceiling correlations (from :func:`ceiling_r` or a row/mean of
        :func:`cross_subject_ceiling`), shape (n_targets,) or ``r``'s shape.
    min_ceiling : targets whose ceiling is below this (or NaN) get NaN: dividing by a
        near-zero, noisy ceiling makes huge meaningless ratios.

    Returns
    -------
    float64 array of ``r``'s shape. Values are not clipped: a ratio above 1 (possible
    with noisy ceilings) is reported as is.
    """
    r = np.asarray(r, dtype=np.float64)
    c = np.asarray(ceiling, dtype=np.float64)
    if r.ndim == 0 or c.ndim == 0:
        raise InputError(f"normalized_alignment: r {r.shape} and ceiling {c.shape} must be arrays over targets")
    if not (c.shape == r.shape or (c.ndim == 1 and c.shape[0] == r.shape[-1])):
        raise InputError(
            f"normalized_alignment: ceiling of shape {c.shape} does not match r of shape {r.shape}; "
            f"expected {r.shape} or ({r.shape[-1]},)"
        )
    usable = np.isfinite(c) & (c >= min_ceiling)
    safe = np.where(usable, c, 1.0)
    return np.where(usable, r / safe, np.nan)
