"""Statistics for encoding results that respect the autocorrelation of fMRI time series.

Shuffling time points destroys the autocorrelation of BOLD and of model predictions, so
nulls built that way are too narrow and give too many false positives. Here nulls keep it:

- **circular shifts**: the prediction is rotated against the measured series by every
  shift of at least ``min_shift`` samples (computed for all shifts at once with an FFT);
- **block permutations**: contiguous blocks of ``block_len`` samples are shuffled;
- **block bootstrap**: confidence intervals of r by resampling contiguous time blocks;
- across subjects: bootstrap confidence intervals and one-sample tests of the group mean.

Voxel-wise p-values are corrected with Benjamini-Hochberg FDR (statsmodels).
Shapes: series are ``(n_samples, n_targets)``, time first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmneuro.errors import InputError


def _standardize(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    a = a - a.mean(axis=0)
    sd = np.sqrt((a ** 2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, a / sd, 0.0)


def _check_pair(Y: np.ndarray, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    Y = np.asarray(Y)
    P = np.asarray(P)
    if Y.shape != P.shape:
        raise InputError(f"measured series have shape {Y.shape} but predictions {P.shape}")
    if Y.shape[0] < 4:
        raise InputError(f"need at least 4 time points for a null distribution, got {Y.shape[0]}")
    return Y, P


def circular_shift_null(Y: np.ndarray, P: np.ndarray, min_shift: int | None = None) -> np.ndarray:
    """Pearson r of ``P`` rotated by every allowed shift against ``Y``.

    Parameters
    ----------
    Y, P : (n_samples, n_targets) or (n_samples,) measured and predicted series.
    min_shift : smallest rotation (samples) counted in the null; default ``n_samples // 10``
        (so the null excludes shifts too small to break the alignment).

    Returns
    -------
    (n_shifts, n_targets) float64: r for shifts ``min_shift .. n - min_shift``.
    """
    Y, P = _check_pair(Y, P)
    n = Y.shape[0]
    min_shift = max(1, n // 10) if min_shift is None else int(min_shift)
    if not 0 < min_shift <= n // 2:
        raise InputError(f"min_shift must be in 1..{n // 2} for {n} samples, got {min_shift}")
    y, p = _standardize(Y), _standardize(P)
    # circular cross-correlation for all shifts: r[k] = sum_t y[t] p[t - k]
    spectrum = np.fft.rfft(y, axis=0) * np.conj(np.fft.rfft(p, axis=0))
    all_shifts = np.fft.irfft(spectrum, n=n, axis=0)
    return all_shifts[min_shift:n - min_shift + 1]


def block_permutation_null(Y: np.ndarray, P: np.ndarray, n_perm: int = 1000, block_len: int = 10,
                           seed: int = 0) -> np.ndarray:
    """Pearson r of ``P`` with its contiguous blocks of ``block_len`` samples shuffled.

    Returns (n_perm, n_targets) float64. The last, shorter block (if any) moves as a block too.
    """
    Y, P = _check_pair(Y, P)
    n = Y.shape[0]
    if not 1 <= block_len <= n // 2:
        raise InputError(f"block_len must be in 1..{n // 2} for {n} samples, got {block_len}")
    y, p = _standardize(Y), _standardize(P)
    blocks = [np.arange(s, min(s + block_len, n)) for s in range(0, n, block_len)]
    rng = np.random.default_rng(seed)
    null = np.empty((n_perm, y.shape[1]))
    for i in range(n_perm):
        order = np.concatenate([blocks[j] for j in rng.permutation(len(blocks))])
        null[i] = np.einsum("ij,ij->j", y, p[order])
    return null


def permutation_pvalues(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """One-sided p-values ``(1 + #{null >= observed}) / (1 + n_null)`` per target.

    ``observed`` (n_targets,), ``null`` (n_null, n_targets). NaN observed values give NaN.
    """
    observed = np.asarray(observed, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64)
    if null.ndim != 2 or null.shape[1] != observed.shape[0]:
        raise InputError(f"null has shape {null.shape}; expected (n_null, {observed.shape[0]})")
    p = (1.0 + np.sum(null >= observed[None, :] - 1e-12, axis=0)) / (1.0 + null.shape[0])
    return np.where(np.isfinite(observed), p, np.nan)


def gaussian_pvalues(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """One-sided p-values from a normal fit to each target's null in Fisher-z units.

    The null's spread carries the autocorrelation (it is wider than ``1/sqrt(n)`` when the
    series are smooth); the fit gives continuous p-values where an empirical null of a few
    hundred circular shifts could not go below ``1/(1 + n_shifts)``, too coarse for FDR over
    thousands of targets.
    """
    from scipy.stats import norm

    observed = np.asarray(observed, dtype=np.float64)
    z_null = np.arctanh(np.clip(null, -0.999999, 0.999999))
    z_obs = np.arctanh(np.clip(observed, -0.999999, 0.999999))
    mu, sd = z_null.mean(axis=0), z_null.std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = norm.sf((z_obs - mu) / sd)
    return np.where(np.isfinite(observed) & (sd > 0), p, np.nan)


@dataclass
class PermutationTest:
    """Observed r, its null, p-values and FDR-corrected q-values per target."""

    r: np.ndarray
    p: np.ndarray
    q: np.ndarray
    significant: np.ndarray
    null: np.ndarray
    method: str


def permutation_test(Y: np.ndarray, P: np.ndarray, method: str = "circular", alpha: float = 0.05,
                     n_perm: int = 1000, block_len: int = 10, min_shift: int | None = None,
                     pvalues: str | None = None, seed: int = 0) -> PermutationTest:
    """Is each target's held-out prediction better than chance? Autocorrelation-safe null + FDR.

    ``method``: ``"circular"`` (all circular shifts) or ``"block"`` (``n_perm`` block permutations).
    ``pvalues``: ``"empirical"`` (rank in the null) or ``"gaussian"`` (normal fit to the null in
    Fisher-z units); default gaussian for circular shifts (few distinct shifts), empirical for blocks.
    Returns r, one-sided p, BH-FDR q, ``significant = q < alpha``, per target.
    """
    Y, P = _check_pair(Y, P)
    y, p = _standardize(Y), _standardize(P)
    r = np.einsum("ij,ij->j", y, p)
    if method == "circular":
        null = circular_shift_null(Y, P, min_shift)
    elif method == "block":
        null = block_permutation_null(Y, P, n_perm, block_len, seed)
    else:
        raise InputError(f"method must be 'circular' or 'block', got {method!r}")
    pvalues = pvalues or ("gaussian" if method == "circular" else "empirical")
    if pvalues not in ("empirical", "gaussian"):
        raise InputError(f"pvalues must be 'empirical' or 'gaussian', got {pvalues!r}")
    pvals = gaussian_pvalues(r, null) if pvalues == "gaussian" else permutation_pvalues(r, null)
    reject, q = fdr_correct(pvals, alpha)
    return PermutationTest(r, pvals, q, reject, null, method)


def fdr_correct(p: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg FDR over the finite p-values: ``(reject (n,), q (n,))``; NaN stays NaN/False."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, dtype=np.float64)
    reject = np.zeros(p.shape, dtype=bool)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        reject[ok], q[ok], _, _ = multipletests(p[ok], alpha=alpha, method="fdr_bh")
    return reject, q


def block_resample(rng: np.random.Generator, n: int, block_len: int) -> np.ndarray:
    """(n,) row indices made of randomly placed contiguous blocks of ``block_len`` samples."""
    starts = rng.integers(0, n - block_len + 1, size=int(np.ceil(n / block_len)))
    return (starts[:, None] + np.arange(block_len)).ravel()[:n]


def block_bootstrap_ci(Y: np.ndarray, P: np.ndarray, n_boot: int = 1000, block_len: int = 10,
                       ci: float = 0.95, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Confidence interval of Pearson r per target by resampling contiguous time blocks.

    Returns ``(low, high)``, each (n_targets,), percentile interval at level ``ci``.
    """
    Y, P = _check_pair(Y, P)
    n = Y.shape[0]
    if not 1 <= block_len <= n // 2:
        raise InputError(f"block_len must be in 1..{n // 2} for {n} samples, got {block_len}")
    Y2 = np.asarray(Y, dtype=np.float64).reshape(n, -1)
    P2 = np.asarray(P, dtype=np.float64).reshape(n, -1)
    rng = np.random.default_rng(seed)
    stats = np.empty((n_boot, Y2.shape[1]))
    for b in range(n_boot):
        idx = block_resample(rng, n, block_len)
        stats[b] = np.einsum("ij,ij->j", _standardize(Y2[idx]), _standardize(P2[idx]))
    tail = (1 - ci) / 2
    return np.quantile(stats, tail, axis=0), np.quantile(stats, 1 - tail, axis=0)


@dataclass
class GroupSummary:
    """Across-subject summary of a per-subject statistic (e.g. ROI r), per column."""

    mean: np.ndarray
    sem: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    t: np.ndarray
    p: np.ndarray
    n: np.ndarray


def group_summary(values: np.ndarray, n_boot: int = 10000, ci: float = 0.95, seed: int = 0) -> GroupSummary:
    """Mean, s.e.m., bootstrap CI over subjects and a one-sample t-test against 0 per column.

    ``values``: (n_subjects,) or (n_subjects, n_columns); NaN entries (e.g. invalid targets) are
    left out of that column.
    """
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    v = v[:, None] if v.ndim == 1 else v
    n = np.sum(np.isfinite(v), axis=0)
    if np.any(n < 2):
        raise InputError(f"group statistics need at least 2 subjects per column, got {n.tolist()}")
    mean = np.nanmean(v, axis=0)
    sem = np.nanstd(v, axis=0, ddof=1) / np.sqrt(n)
    rng = np.random.default_rng(seed)
    low, high = np.empty(v.shape[1]), np.empty(v.shape[1])
    for j in range(v.shape[1]):
        col = v[np.isfinite(v[:, j]), j]
        boots = col[rng.integers(0, col.size, size=(n_boot, col.size))].mean(axis=1)
        low[j], high[j] = np.quantile(boots, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    t, p = stats.ttest_1samp(v, 0.0, axis=0, nan_policy="omit")
    return GroupSummary(mean, sem, low, high, np.asarray(t, dtype=float), np.asarray(p, dtype=float), n)
