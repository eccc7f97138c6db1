"""Noise ceilings against synthetic data with a known signal-to-noise ratio."""

from __future__ import annotations

import numpy as np
import pytest

from mmneuro.brain import ceiling_r, cross_subject_ceiling, explainable_variance, normalized_alignment
from mmneuro.brain.ceiling import loo_isc, split_half_ceiling, split_half_reliability
from mmneuro.errors import InputError

N_REP, N_TRS, N_TARGETS = 4, 150, 800


def _repeats(snr: float, seed: int):
    """Signal of variance ``snr`` shared by all repeats plus unit-variance independent noise."""
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((N_TRS, N_TARGETS)) * np.sqrt(snr)
    return signal, signal[None] + rng.standard_normal((N_REP, N_TRS, N_TARGETS))


def _pearson(a, b):
    a = a - a.mean(0)
    b = b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


@pytest.mark.parametrize("snr", [0.25, 1.0, 3.0])
def test_explainable_variance_recovers_snr(snr):
    _, Y = _repeats(snr, seed=int(snr * 100))
    true_ev = snr / (1 + snr)
    ev = explainable_variance(Y)
    raw = explainable_variance(Y, bias_correction=False)
    assert ev.shape == (N_TARGETS,)
    assert abs(ev.mean() - true_ev) < 0.015
    # uncorrected is biased upward by (1 - EV) / n_repeats, far beyond the tolerance
    expected_raw = true_ev + (1 - true_ev) / N_REP
    assert abs(raw.mean() - expected_raw) < 0.015
    assert raw.mean() - true_ev > 0.04


def test_explainable_variance_ignores_repeat_scale():
    _, Y = _repeats(1.0, seed=7)
    scaled = Y * np.array([1.0, 5.0, 0.2, 3.0])[:, None, None] + np.array([0, 10, -3, 2])[:, None, None]
    np.testing.assert_allclose(explainable_variance(scaled), explainable_variance(Y), atol=1e-10)


def test_explainable_variance_pure_noise_near_zero_and_constant_zero():
    rng = np.random.default_rng(8)
    Y = rng.standard_normal((N_REP, N_TRS, 500))
    Y[:, :, 0] = 4.0  # constant target
    ev = explainable_variance(Y)
    assert ev[0] == 0.0
    assert abs(ev[1:].mean()) < 0.01


def test_explainable_variance_needs_two_repeats():
    with pytest.raises(InputError, match="at least 2 repeats"):
        explainable_variance(np.zeros((1, 10, 3)))
    with pytest.raises(InputError, match=r"shape \(10, 3\)"):
        explainable_variance(np.zeros((10, 3)))


@pytest.mark.parametrize("snr", [0.25, 1.0])
def test_ceiling_r_matches_empirical_perfect_model(snr):
    signal, Y = _repeats(snr, seed=int(snr * 1000) + 1)
    empirical = _pearson(signal, Y.mean(axis=0)).mean()  # a perfect model predicts the signal
    true_ev = snr / (1 + snr)
    assert abs(ceiling_r(true_ev, N_REP) - empirical) < 0.01
    assert abs(ceiling_r(explainable_variance(Y), N_REP).mean() - empirical) < 0.03
    # against a single presentation the ceiling is lower, sqrt(EV)
    single = _pearson(signal, Y[0]).mean()
    assert abs(ceiling_r(true_ev, 1) - single) < 0.01
    assert ceiling_r(true_ev, 1) < ceiling_r(true_ev, N_REP) - 0.05


def test_ceiling_r_limits_and_clipping():
    out = ceiling_r(np.array([-0.3, 0.0, 1.0, 1.7, np.nan, 0.5]), 3)
    np.testing.assert_allclose(out[:4], [0.0, 0.0, 1.0, 1.0])
    assert np.isnan(out[4])
    np.testing.assert_allclose(out[5], np.sqrt(1.5 / 2.0))
    with pytest.raises(InputError):
        ceiling_r(0.5, 0)


def _subjects(shared: bool, n_sub=5, n_train=200, n_test=100, v=300, seed=0):
    rng = np.random.default_rng(seed)
    common = rng.standard_normal((n_train + n_test, v))
    data = []
    for _ in range(n_sub):
        sig = common if shared else rng.standard_normal((n_train + n_test, v))
        data.append(sig + rng.standard_normal((n_train + n_test, v)))
    return [d[:n_train] for d in data], [d[n_train:] for d in data]


def test_cross_subject_ceiling_shared_signal_is_high():
    train, test = _subjects(shared=True)
    r = cross_subject_ceiling(train, test)
    assert r.shape == (5, 300)
    # prediction ~ mean of 4 others: corr with signal sqrt(1/(1+1/4)); subject corr with signal sqrt(1/2)
    expected = np.sqrt(1 / 1.25) * np.sqrt(0.5)
    assert abs(r.mean() - expected) < 0.03
    assert (r.mean(axis=1) > 0.55).all()


def test_cross_subject_ceiling_independent_subjects_near_zero():
    train, test = _subjects(shared=False)
    r = cross_subject_ceiling(train, test, ridge_alpha=10.0)
    assert abs(r.mean()) < 0.02
    assert np.abs(r.mean(axis=1)).max() < 0.04


def test_cross_subject_ceiling_per_target():
    # targets 0..149 shared, 150..299 independent: the ceiling must tell them apart
    ts, es = _subjects(shared=True, seed=1)
    ti, ei = _subjects(shared=False, seed=2)
    train = [np.hstack([a[:, :150], b[:, 150:]]) for a, b in zip(ts, ti)]
    test = [np.hstack([a[:, :150], b[:, 150:]]) for a, b in zip(es, ei)]
    r = cross_subject_ceiling(train, test, chunk_size=64)
    assert r[:, :150].mean() > 0.55 and abs(r[:, 150:].mean()) < 0.03


def test_cross_subject_ceiling_input_checks():
    train, test = _subjects(shared=True, v=10)
    with pytest.raises(InputError, match="same"):
        cross_subject_ceiling(train[:-1] + [train[-1][:, :5]], test)
    with pytest.raises(InputError, match="2 subjects"):
        cross_subject_ceiling(train[:1], test[:1])
    with pytest.raises(InputError, match="5 train arrays but 4 test"):
        cross_subject_ceiling(train, test[:4])


def test_normalized_alignment():
    r = np.array([0.2, 0.3, 0.1, 0.4])
    c = np.array([0.5, 0.05, np.nan, 0.8])
    out = normalized_alignment(r, c, min_ceiling=0.1)
    np.testing.assert_allclose(out[[0, 3]], [0.4, 0.5])
    assert np.isnan(out[1]) and np.isnan(out[2])
    out2 = normalized_alignment(np.stack([r, 2 * r]), c)
    np.testing.assert_allclose(out2[1, [0, 3]], [0.8, 1.0])
    with pytest.raises(InputError, match="does not match"):
        normalized_alignment(r, c[:3])


# --------------------------------------------------------------------------- leave-one-out ISC

def test_loo_isc_matches_direct_corrcoef():
    rng = np.random.default_rng(11)
    shared = rng.standard_normal((120, 1)) * rng.uniform(0, 2, 25)  # targets with different shared signal
    subjects = [(shared + rng.standard_normal((120, 25)) * rng.uniform(0.5, 2)).astype(np.float32) + 3.0
                for _ in range(7)]
    expected = np.empty((7, 25))
    for s in range(7):
        others = np.mean([subjects[j].astype(np.float64) for j in range(7) if j != s], axis=0)
        for v in range(25):
            expected[s, v] = np.corrcoef(subjects[s][:, v].astype(np.float64), others[:, v])[0, 1]
    got = loo_isc(subjects)
    assert got.shape == (7, 25)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(loo_isc(np.stack(subjects), chunk_size=4), got, atol=1e-12, rtol=0)


def test_loo_isc_constant_columns_and_checks():
    rng = np.random.default_rng(12)
    subjects = [rng.standard_normal((50, 4)) for _ in range(3)]
    subjects[1][:, 2] = 0.7  # constant in one subject: its own r is NaN, the others still defined
    r = loo_isc(subjects)
    assert np.isnan(r[1, 2]) and np.isfinite(r[[0, 2], 2]).all()
    for y in subjects:
        y[:, 3] = 5.0  # constant everywhere
    assert np.isnan(loo_isc(subjects)[:, 3]).all()
    with pytest.raises(InputError, match="loo_isc: needs at least 2 subjects"):
        loo_isc(subjects[:1])
    with pytest.raises(InputError, match="same"):
        loo_isc([subjects[0], subjects[1][:40]])


def test_loo_isc_closed_form():
    # n subjects = signal (variance EV) + noise (1 - EV): r = sqrt(EV) sqrt(rho_m), m = n - 1 others
    rng = np.random.default_rng(13)
    ev, n = 0.3, 6
    signal = rng.standard_normal((400, 2000)) * np.sqrt(ev)
    subjects = [signal + rng.standard_normal((400, 2000)) * np.sqrt(1 - ev) for _ in range(n)]
    m = n - 1
    expected = np.sqrt(ev) * np.sqrt(m * ev / (1 + (m - 1) * ev))
    assert abs(loo_isc(subjects).mean() - expected) < 0.005


# --------------------------------------------------------------------------- split halves

def test_split_half_two_repeats_is_spearman_brown_of_their_correlation():
    rng = np.random.default_rng(21)
    Y = rng.standard_normal((2, 80, 30)) + rng.standard_normal((80, 30))
    r = _pearson(Y[0], Y[1])
    np.testing.assert_allclose(split_half_reliability(Y), r, atol=1e-12)
    np.testing.assert_allclose(split_half_ceiling(Y), np.sqrt(np.clip(2 * r / (1 + r), 0, 1)), atol=1e-12)


def test_split_half_four_repeats_by_hand():
    rng = np.random.default_rng(22)
    Y = rng.standard_normal((4, 90, 20)) + 0.8 * rng.standard_normal((90, 20))
    z = (Y - Y.mean(1, keepdims=True)) / Y.std(1, keepdims=True)
    halves = [((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))]  # every split of 4 into 2 + 2
    r = np.mean([_pearson(z[list(a)].mean(0), z[list(b)].mean(0)) for a, b in halves], axis=0)
    rho4 = 2 * r / (1 + r)  # Spearman-Brown from 2 to 4 repeats
    np.testing.assert_allclose(split_half_ceiling(Y), np.sqrt(np.clip(rho4, 0, 1)), atol=1e-12)
    np.testing.assert_allclose(split_half_reliability(Y), r / (2 - r), atol=1e-12)  # down to 1 repeat
    np.testing.assert_allclose(split_half_ceiling(Y), ceiling_r(split_half_reliability(Y), 4), atol=1e-15)


@pytest.mark.parametrize("n_rep", [3, 4, 5])
def test_split_half_recovers_simulated_signal_to_noise(n_rep):
    ev = 0.3
    rng = np.random.default_rng(100 + n_rep)
    signal = rng.standard_normal((300, 2000)) * np.sqrt(ev / (1 - ev))
    Y = signal[None] + rng.standard_normal((n_rep, 300, 2000))
    rel = split_half_reliability(Y)
    closed = float(ceiling_r(ev, n_rep))  # sqrt(n EV / (1 + (n - 1) EV))
    tol_ev, tol = 0.002, 0.004
    assert abs(rel.mean() - ev) < tol_ev
    assert abs(float(ceiling_r(rel.mean(), n_rep)) - closed) < tol
    assert abs(np.mean(_pearson(signal, Y.mean(0))) - closed) < tol  # a perfect model reaches it
    # wrong formulas miss by several tolerances: the half-mean r uncorrected, and (odd n) the
    # equal-halves Spearman-Brown 2r / (1 + r) applied to unequal halves, stepped down to one repeat
    a, b = n_rep // 2, n_rep - n_rep // 2
    rho = lambda k: k * ev / (1 + (k - 1) * ev)  # noqa: E731
    r_half = np.sqrt(rho(a) * rho(b))
    assert abs(np.sqrt(r_half) - closed) > 3 * tol
    if a != b:
        rho_n = 2 * r_half / (1 + r_half)
        assert abs(rho_n / (n_rep - (n_rep - 1) * rho_n) - ev) > 3 * tol_ev


def test_split_half_pure_noise_and_checks():
    rng = np.random.default_rng(23)
    Y = rng.standard_normal((4, 200, 1000))
    Y[:, :, 0] = 2.0
    rel = split_half_reliability(Y)
    assert np.isnan(rel[0]) and abs(np.nanmean(rel)) < 0.005
    with pytest.raises(InputError, match="at least 2 repeats"):
        split_half_reliability(Y[:1])
    with pytest.raises(InputError, match="shape"):
        split_half_reliability(Y[0])
    # many repeats: a seeded subset of splits, deterministic
    big = rng.standard_normal((12, 40, 5)) + rng.standard_normal((40, 5))
    np.testing.assert_array_equal(split_half_reliability(big, max_splits=8), split_half_reliability(big, max_splits=8))
