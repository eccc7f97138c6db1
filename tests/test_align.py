"""Alignment to the TR grid: Lanczos resampling, window means, FIR delays, per-run z-score."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmneuro.errors import InputError
from mmneuro.features.align import lanczos_resample, make_delayed, window_mean, zscore_runs

FAST = settings(max_examples=40, deadline=None)


# ----------------------------------------------------------------------------- Lanczos
def huth_lanczos_reference(data, old, new, window=3, cutoff_mult=1.0):
    """Dense, loop-by-loop transcription of the Huth-lab formula (mean TR, |ct| > window -> 0)."""
    cutoff = cutoff_mult / np.mean(np.diff(new))
    out = np.zeros((new.size, data.shape[1]))
    for i, t_new in enumerate(new):
        t = (t_new - old) * cutoff
        with np.errstate(divide="ignore", invalid="ignore"):
            k = window * np.sin(np.pi * t) * np.sin(np.pi * t / window) / (np.pi**2 * t**2)
        k[t == 0] = 1.0
        k[np.abs(t) > window] = 0.0
        out[i] = k @ data
    return out


# Tolerance for band-limited signals: the kernel integrates to 0.997 / c and its gain is
# flat within 1.5 % for frequencies up to 0.2 c (c = cutoff_mult / TR), so after dividing
# by the sample density the error is below 2 % of the summed amplitudes.
BANDLIMITED_RTOL = 0.02


@FAST
@given(
    tr=st.floats(0.5, 3.0),
    per_tr=st.integers(8, 30),
    cutoff_mult=st.floats(0.5, 1.0),
    freqs=st.lists(st.floats(0.0, 0.2), min_size=1, max_size=3),
    amps=st.lists(st.floats(0.2, 2.0), min_size=3, max_size=3),
    phases=st.lists(st.floats(0, 2 * np.pi), min_size=3, max_size=3),
    grid_shift=st.floats(0.0, 1.0),
)
def test_lanczos_recovers_bandlimited_signal(tr, per_tr, cutoff_mult, freqs, amps, phases, grid_shift):
    c = cutoff_mult / tr
    freqs_hz = np.array(freqs) * c  # all at or below 0.2 c: well inside the pass band
    amps, phases = np.array(amps[: len(freqs)]), np.array(phases[: len(freqs)])

    def signal(t):
        return (amps * np.cos(2 * np.pi * freqs_hz * t[:, None] + phases)).sum(axis=1)

    dt = tr / per_tr
    old = np.arange(0.0, 60 * tr, dt) + grid_shift * dt
    new = np.arange(0.0, 60 * tr, tr)
    out = lanczos_resample(signal(old), old, new, window=3, cutoff_mult=cutoff_mult)
    assert out.shape == new.shape
    reach = 3 / c
    inner = (new > old[0] + reach) & (new < old[-1] - reach)
    assert inner.sum() >= 10
    recovered = out[inner] * dt * c  # undo the sum over old samples (density 1/dt)
    err = np.max(np.abs(recovered - signal(new[inner])))
    assert err <= BANDLIMITED_RTOL * amps.sum()


@FAST
@given(
    n_old=st.integers(1, 80),
    p=st.integers(1, 3),
    window=st.integers(1, 4),
    cutoff_mult=st.floats(0.3, 2.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_lanczos_equals_dense_huth_formula_on_irregular_times(n_old, p, window, cutoff_mult, seed):
    rng = np.random.default_rng(seed)
    old = rng.uniform(0, 40, n_old)  # irregular and unsorted (e.g. word midpoints)
    data = rng.standard_normal((n_old, p))
    new = np.arange(0, 40, 2.0)
    out = lanczos_resample(data, old, new, window=window, cutoff_mult=cutoff_mult)
    np.testing.assert_allclose(out, huth_lanczos_reference(data, old, new, window, cutoff_mult),
                               rtol=1e-10, atol=1e-12)


def test_lanczos_word_rate():
    """Constant 1s at word times give about words per TR, not an average of 1."""
    tr, rate = 2.0, 3.0  # 3 words per second -> 6 words per TR
    words = np.arange(0.1, 300, 1 / rate)
    new = np.arange(0, 300, tr)
    out = lanczos_resample(np.ones(words.size), words, new)
    inner = (new > 10) & (new < 290)
    np.testing.assert_allclose(out[inner], 6.0, rtol=0.01)
    out1 = lanczos_resample(np.ones((words.size, 1)), words, new)
    assert out1.shape == (new.size, 1)
    assert lanczos_resample(np.ones(words.size, np.float32), words, new).dtype == np.float32


def test_lanczos_errors():
    with pytest.raises(InputError, match=r"data has 5 samples .* old_times has 4"):
        lanczos_resample(np.ones(5), np.arange(4.0), np.arange(3.0))
    with pytest.raises(InputError, match=r"at least 2 times"):
        lanczos_resample(np.ones(5), np.arange(5.0), np.array([1.0]))
    data = np.ones((5, 2))
    data[3, 1] = np.nan
    with pytest.raises(InputError, match=r"1 row\(s\) with NaN .* row 3"):
        lanczos_resample(data, np.arange(5.0), np.arange(3.0))


# ----------------------------------------------------------------------------- window mean
@FAST
@given(
    value=st.floats(-1e6, 1e6, allow_nan=False),
    n_old=st.integers(1, 200),
    width=st.floats(0.5, 5.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_window_mean_of_constant_is_constant(value, n_old, width, seed):
    rng = np.random.default_rng(seed)
    old = rng.uniform(0, 50, n_old)
    new = np.arange(0, 50, 1.7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # some windows may be empty
        out = window_mean(np.full((n_old, 2), value), old, new, width)
    counts = np.array([np.sum((old >= t - width / 2) & (old < t + width / 2)) for t in new])
    np.testing.assert_allclose(out[counts > 0], value, rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(out[counts == 0], 0.0)


@FAST
@given(n_old=st.integers(1, 150), width=st.floats(0.3, 6.0), seed=st.integers(0, 2**31 - 1))
def test_window_mean_equals_brute_force(n_old, width, seed):
    rng = np.random.default_rng(seed)
    old = np.round(rng.uniform(0, 30, n_old), 1)  # ties and samples exactly on window edges
    data = rng.standard_normal((n_old, 3))
    new = np.arange(0, 30, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = window_mean(data, old, new, width)
    for i, t in enumerate(new):
        inside = (old >= t - width / 2) & (old < t + width / 2)
        expected = data[inside].mean(axis=0) if inside.any() else np.zeros(3)
        np.testing.assert_allclose(out[i], expected, rtol=1e-10, atol=1e-12)


def test_window_mean_empty_windows_warn_with_count():
    old = np.array([0.1, 0.2, 5.0])
    new = np.array([0.0, 2.0, 4.0, 5.0])
    with pytest.warns(UserWarning, match=r"2 of 4 windows"):
        out = window_mean(np.array([1.0, 3.0, 5.0]), old, new, 1.0)
    np.testing.assert_array_equal(out, [2.0, 0.0, 0.0, 5.0])


def test_window_mean_nan_rows_are_an_error():
    data = np.ones((4, 2))
    data[1] = np.nan
    with pytest.raises(InputError, match=r"1 row\(s\) with NaN"):
        window_mean(data, np.arange(4.0), np.arange(4.0), 1.0)


# ----------------------------------------------------------------------------- delays
runs_and_delays = st.tuples(
    st.lists(st.integers(1, 15), min_size=1, max_size=6),
    st.lists(st.integers(-4, 6), min_size=1, max_size=5),
    st.integers(1, 3),
    st.sampled_from([np.float64, np.float32, np.int64]),
)


@FAST
@given(runs_and_delays)
def test_delays_never_cross_runs(args):
    run_lengths, delays, p, dtype = args
    n = sum(run_lengths)
    # strictly nonzero data: any nonzero value where padding belongs is a leak
    X = (np.arange(n * p).reshape(n, p) % 97 + 1).astype(dtype)
    out = make_delayed(X, delays, run_lengths)
    assert out.shape == (n, p * len(delays))
    assert out.dtype == X.dtype
    bounds = np.concatenate([[0], np.cumsum(run_lengths)])
    for j, d in enumerate(delays):
        block = out[:, j * p:(j + 1) * p]
        for a, b in zip(bounds[:-1], bounds[1:]):
            run_out, run_in = block[a:b], X[a:b]
            L = b - a
            if d >= 0:
                pad, kept, src = run_out[: min(d, L)], run_out[min(d, L):], run_in[: max(L - d, 0)]
            else:
                pad, kept, src = run_out[max(L + d, 0):], run_out[: max(L + d, 0)], run_in[min(-d, L):]
            assert not np.any(pad), f"delay {d}: nonzero padding in run [{a}, {b})"
            np.testing.assert_array_equal(kept, src)


def test_delays_column_order_is_delay_major():
    X = np.array([[1, 10], [2, 20], [3, 30]])
    out = make_delayed(X, [0, 1, -1])
    np.testing.assert_array_equal(
        out, [[1, 10, 0, 0, 2, 20], [2, 20, 1, 10, 3, 30], [3, 30, 2, 20, 0, 0]]
    )


def test_delay_errors():
    with pytest.raises(InputError, match=r"run_lengths sum to 9 but X has 10 rows"):
        make_delayed(np.ones((10, 2)), [1], [4, 5])
    with pytest.raises(InputError, match=r"whole numbers"):
        make_delayed(np.ones((10, 2)), [1.5])
    with pytest.raises(InputError, match=r"non-empty"):
        make_delayed(np.ones((10, 2)), [])


# ----------------------------------------------------------------------------- z-score
@FAST
@given(
    run_lengths=st.lists(st.integers(2, 30), min_size=1, max_size=5),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-3, 1e4),
    offset=st.floats(-1e4, 1e4),
)
def test_zscore_runs_mean0_std1_per_run(run_lengths, seed, scale, offset):
    rng = np.random.default_rng(seed)
    n = sum(run_lengths)
    X = rng.standard_normal((n, 3)) * scale + offset
    X[:, 2] = np.repeat(rng.uniform(-5, 5, len(run_lengths)), run_lengths)  # constant per run
    Z = zscore_runs(X, run_lengths)
    bounds = np.concatenate([[0], np.cumsum(run_lengths)])
    for a, b in zip(bounds[:-1], bounds[1:]):
        seg = Z[a:b]
        np.testing.assert_allclose(seg[:, :2].mean(axis=0), 0.0, atol=1e-9)
        np.testing.assert_allclose(seg[:, :2].std(axis=0), 1.0, rtol=1e-9)
        np.testing.assert_array_equal(seg[:, 2], 0.0)  # constant -> 0, not NaN
    assert Z.dtype == np.float64


def test_zscore_runs_is_per_run_not_global():
    X = np.r_[np.arange(4.0), np.arange(4.0) + 100][:, None]
    Z = zscore_runs(X, [4, 4])
    np.testing.assert_allclose(Z[:4], Z[4:])  # each run centred on its own mean
    assert zscore_runs(X.astype(np.float32), [4, 4]).dtype == np.float32
    with pytest.raises(InputError, match=r"run_lengths sum to 7 but X has 8 rows"):
        zscore_runs(X, [4, 3])
