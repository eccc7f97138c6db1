"""Autocorrelation-safe nulls, FDR and confidence intervals, checked by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from mmneuro.analyses import stats


def ar1(rng, n, m, rho):
    """(n, m) stationary AR(1) series with unit variance."""
    x = np.empty((n, m))
    x[0] = rng.standard_normal(m)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + np.sqrt(1 - rho ** 2) * rng.standard_normal(m)
    return x


def test_circular_null_equals_explicit_rotations():
    rng = np.random.default_rng(0)
    Y, P = rng.standard_normal((50, 3)), rng.standard_normal((50, 3))
    null = stats.circular_shift_null(Y, P, min_shift=5)
    explicit = np.array([[np.corrcoef(Y[:, j], np.roll(P[:, j], -k))[0, 1] for j in range(3)]
                         for k in range(5, 46)])
    assert null.shape == explicit.shape
    # the same set of values (the FFT's shift direction is a convention)
    np.testing.assert_allclose(np.sort(null, axis=0), np.sort(explicit, axis=0), atol=1e-10)


@pytest.mark.parametrize("method,pvalues", [("circular", "gaussian"), ("circular", "empirical"),
                                            ("block", "empirical")])
def test_false_positive_rate_on_autocorrelated_noise(method, pvalues):
    """Pure-noise targets (AR(1), rho 0.6) vs an independent AR(1) prediction: FPR ~ alpha."""
    rng = np.random.default_rng(1)
    Y = ar1(rng, 300, 1500, 0.6)
    P = ar1(rng, 300, 1500, 0.6)
    result = stats.permutation_test(Y, P, method=method, n_perm=400, block_len=20, pvalues=pvalues, seed=2)
    fpr = np.mean(result.p < 0.05)
    assert 0.03 <= fpr <= 0.07, fpr


def test_shuffling_single_samples_would_inflate_false_positives():
    """Why the nulls above exist: i.i.d. shuffles ignore autocorrelation and fail on the same data."""
    rng = np.random.default_rng(1)
    Y = ar1(rng, 300, 1500, 0.6)
    P = ar1(rng, 300, 1500, 0.6)
    naive = stats.permutation_test(Y, P, method="block", n_perm=400, block_len=1, seed=2)
    assert np.mean(naive.p < 0.05) > 0.09


def test_fdr_controls_false_discovery_proportion():
    """900 null and 100 signal targets, 20 simulations: mean false-discovery proportion <= 0.05."""
    rng = np.random.default_rng(3)
    fdps, powers = [], []
    for _ in range(20):
        P = ar1(rng, 200, 1000, 0.3)
        Y = ar1(rng, 200, 1000, 0.3)
        Y[:, :100] += 0.35 * P[:, :100]
        result = stats.permutation_test(Y, P, method="circular", alpha=0.05)
        discoveries = result.significant
        false = discoveries[100:].sum()
        fdps.append(false / max(discoveries.sum(), 1))
        powers.append(discoveries[:100].mean())
    assert np.mean(fdps) <= 0.05 + 0.01
    assert np.mean(powers) > 0.5  # and it still finds the signal


def test_fdr_matches_benjamini_hochberg_by_hand():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, np.nan])
    reject, q = stats.fdr_correct(p, 0.05)
    finite = p[:-1]
    order = np.argsort(finite)
    ranked = finite[order] * len(finite) / np.arange(1, len(finite) + 1)
    expected = np.minimum.accumulate(ranked[::-1])[::-1]
    np.testing.assert_allclose(q[:-1][order], np.minimum(expected, 1))
    assert reject.tolist() == [True, True, False, False, False, False, False, False, False]
    assert np.isnan(q[-1])


def test_block_bootstrap_interval_covers_the_true_correlation():
    rng = np.random.default_rng(4)
    true_r = 0.4
    common = ar1(rng, 400, 300, 0.5)
    Y = np.sqrt(true_r) * common + np.sqrt(1 - true_r) * ar1(rng, 400, 300, 0.5)
    P = np.sqrt(true_r) * common + np.sqrt(1 - true_r) * ar1(rng, 400, 300, 0.5)
    low, high = stats.block_bootstrap_ci(Y, P, n_boot=300, block_len=20, seed=5)
    coverage = np.mean((low <= true_r) & (true_r <= high))
    assert 0.85 <= coverage <= 0.99, coverage


def test_group_summary_matches_closed_forms():
    rng = np.random.default_rng(6)
    values = 0.15 + 0.05 * rng.standard_normal((27, 2))
    values[3, 1] = np.nan
    g = stats.group_summary(values, n_boot=5000)
    for j in range(2):
        col = values[np.isfinite(values[:, j]), j]
        assert g.n[j] == col.size
        assert g.mean[j] == pytest.approx(col.mean())
        assert g.sem[j] == pytest.approx(col.std(ddof=1) / np.sqrt(col.size))
        t, p = sps.ttest_1samp(col, 0.0)
        assert g.t[j] == pytest.approx(t) and g.p[j] == pytest.approx(p)
        # percentile bootstrap of the mean ~ mean +- 1.96 sem
        assert g.ci_low[j] == pytest.approx(col.mean() - 1.96 * g.sem[j], abs=0.35 * g.sem[j])
        assert g.ci_high[j] == pytest.approx(col.mean() + 1.96 * g.sem[j], abs=0.35 * g.sem[j])


def test_bad_shapes_are_named():
    from mmneuro.errors import InputError

    with pytest.raises(InputError, match=r"\(10, 2\).*\(10, 3\)"):
        stats.permutation_test(np.zeros((10, 2)), np.zeros((10, 3)))
