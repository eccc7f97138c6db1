"""pearson_r against scipy.stats.pearsonr and r2_score against scikit-learn, column by column."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import r2_score as sk_r2

from mmneuro.encoding import pearson_r, r2_score
from mmneuro.errors import InputError


def _pair(n=50, t=7, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((n, t)) + offset
    P = 0.6 * (Y - offset) + rng.standard_normal((n, t)) * np.linspace(0.1, 3, t) + offset
    return Y, P


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_pearson_r_matches_scipy_per_column(offset):
    Y, P = _pair(offset=offset)
    r = pearson_r(Y, P)
    expected = np.array([pearsonr(Y[:, j], P[:, j])[0] for j in range(Y.shape[1])])
    assert r.shape == (7,) and r.dtype == np.float64
    np.testing.assert_allclose(r, expected, rtol=1e-10, atol=1e-12)
    assert np.ptp(r) > 0.3  # columns really differ, so a column mix-up would show


def test_pearson_r_float32_accumulates_in_float64():
    Y, P = _pair(n=20000, t=3, seed=1, offset=100.0)
    Y32, P32 = Y.astype(np.float32), P.astype(np.float32)
    r = pearson_r(Y32, P32)
    assert r.dtype == np.float64
    # exact correlation of the float32 values, computed in float64 by scipy
    expected = np.array([pearsonr(Y32[:, j].astype(np.float64), P32[:, j].astype(np.float64))[0]
                         for j in range(3)])
    np.testing.assert_allclose(r, expected, rtol=1e-9)


def test_pearson_r_1d_and_signs():
    rng = np.random.default_rng(2)
    y = rng.standard_normal(30)
    r = pearson_r(y, 2 * y + 1)
    assert np.ndim(r) == 0 and r == pytest.approx(1.0, abs=1e-12)
    assert pearson_r(y, -y) == pytest.approx(-1.0, abs=1e-12)
    p = rng.standard_normal(30)
    assert pearson_r(y, p) == pytest.approx(pearsonr(y, p)[0], rel=1e-10)


@pytest.mark.parametrize("value", [0.0, 0.1, 7.3e5])
def test_pearson_r_constant_column_is_nan(value):
    Y, P = _pair(t=3, seed=3)
    Y[:, 0] = value  # constant measured column
    P[:, 2] = value  # constant predicted column
    r = pearson_r(Y, P)
    assert np.isnan(r[0]) and np.isnan(r[2])
    assert r[1] == pytest.approx(pearsonr(Y[:, 1], P[:, 1])[0], rel=1e-10)


def test_r2_matches_sklearn_per_column():
    Y, P = _pair(seed=4, offset=3.0)
    r2 = r2_score(Y, P)
    np.testing.assert_allclose(r2, sk_r2(Y, P, multioutput="raw_values"), rtol=1e-10)
    assert np.any(r2 < 0) and np.any(r2 > 0)  # both signs exercised
    assert r2_score(Y[:, 0], P[:, 0]) == pytest.approx(sk_r2(Y[:, 0], P[:, 0]), rel=1e-10)
    Y[:, 1] = 0.1
    r2 = r2_score(Y, P)
    assert np.isnan(r2[1]) and np.isfinite(r2[0])


@pytest.mark.parametrize("fn", [pearson_r, r2_score])
def test_input_errors(fn):
    Y, P = _pair(seed=5)
    with pytest.raises(InputError, match=r"Y.shape=\(50, 7\) and P.shape=\(49, 7\)"):
        fn(Y, P[:49])
    P[2, 3] = np.nan
    P[4, 1] = np.inf
    with pytest.raises(InputError, match=r"P contains 1 NaN and 1 infinite"):
        fn(Y, P)
    with pytest.raises(InputError, match=r"at least 2 samples; got n_samples=1"):
        fn(Y[:1], Y[:1])
    with pytest.raises(InputError, match=r"1-D or 2-D"):
        fn(np.zeros((3, 2, 2)), np.zeros((3, 2, 2)))
