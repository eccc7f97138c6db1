"""Events TSVs -> per-trial-type regressors on the TR grid (boxcar / canonical HRF), cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import gamma

from mmneuro.datasets.base import StimulusRun
from mmneuro.errors import InputError
from mmneuro.features import events as fe
from mmneuro.features.events import dataset_trial_types, event_features, event_regressors
from mmneuro.features.store import FeatureStore
from mmneuro.stimuli.events import Events, canonical_hrf, read_events


def write_events(path: Path, rows, header=("onset", "duration", "trial_type")) -> Path:
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(str(c) for c in r) + "\n" for r in rows))
    return path


def midpoints(n: int, tr: float) -> np.ndarray:
    return (np.arange(n) + 0.5) * tr


# ---------------------------------------------------------------------------- reading

def test_read_events_fields_and_na(tmp_path):
    p = write_events(tmp_path / "ev.tsv", [(1.0, 2, "face", 0.5), (3.5, 0, "house", 2), (4, 1, "n/a", 1)],
                     header=("onset", "duration", "trial_type", "modulation"))
    ev = read_events(p)
    assert len(ev) == 2 and ev.trial_types == ["face", "house"]
    np.testing.assert_array_equal(ev.onsets, [1.0, 3.5])
    np.testing.assert_array_equal(ev.durations, [2.0, 0.0])
    np.testing.assert_array_equal(ev.modulation, [0.5, 2.0])
    assert ev.skipped_lines == (4,) and ev.types == ["face", "house"] and ev.source == p


def test_read_events_na_duration_and_default_type(tmp_path):
    p = write_events(tmp_path / "ev.tsv", [(1.0, "n/a"), (2.0, 1.5)], header=("onset", "duration"))
    with pytest.raises(InputError, match="trial_type"):
        read_events(p)
    with pytest.raises(InputError, match=r"line 2, column 'duration'.*na_duration"):
        read_events(p, default_trial_type="event")
    ev = read_events(p, default_trial_type="event", na_duration=0.0)
    assert ev.trial_types == ["event", "event"]
    np.testing.assert_array_equal(ev.durations, [0.0, 1.5])


@pytest.mark.parametrize("header,rows,line,column,needle", [
    (("onset", "trial_type"), [(1, "a")], 1, None, "duration"),                     # missing column
    (("onset", "duration", "trial_type"), [(1, 1, "a"), ("soon", 1, "a")], 3, "onset", "a cell of 4 characters that is not a number"),
    (("onset", "duration", "trial_type"), [(1, -0.5, "a")], 2, "duration", "negative"),
    (("onset", "duration", "trial_type"), [(1, 1, "a"), ("n/a", 1, "a")], 3, "onset", "n/a"),
    (("onset", "duration", "trial_type"), [(1, 1, "")], 2, "trial_type", "empty"),
    (("onset", "duration", "trial_type", "modulation"), [(1, 1, "a", "nan")], 2, "modulation", "not a number"),
])
def test_bad_events_name_file_line_and_column(tmp_path, header, rows, line, column, needle):
    p = write_events(tmp_path / "sub-01_task-x_events.tsv", rows, header=header)
    with pytest.raises(InputError) as err:
        read_events(p)
    msg = str(err.value)
    assert str(p) in msg and f"line {line}" in msg and needle in msg
    if column is not None:
        assert f"column {column!r}" in msg
    else:
        assert "missing column" in msg


def test_bad_events_never_quote_the_file(tmp_path):
    secret = "do-not-echo-this-text"
    p = write_events(tmp_path / "ev.tsv", [(1, 1, secret), (secret + "x" * 500, 1, "a")])
    with pytest.raises(InputError) as err:
        read_events(p)
    msg = str(err.value)
    assert secret not in msg and "line 3" in msg and "a cell of 521 characters" in msg and len(msg) < 300


def test_ragged_and_empty_events_files(tmp_path):
    p = tmp_path / "ev.tsv"
    p.write_text("onset\tduration\ttrial_type\n1\t1\n")
    with pytest.raises(InputError, match=r"line 2: 2 tab-separated cells but the header has 3"):
        read_events(p)
    p.write_text("")
    with pytest.raises(InputError, match="empty"):
        read_events(p)
    with pytest.raises(InputError, match="not found"):
        read_events(tmp_path / "nope.tsv")


# ---------------------------------------------------------------------------- boxcar

def test_boxcar_covers_whole_trs_and_counts_partial_overlap():
    tr = 2.0
    t = midpoints(10, tr)  # row i covers [2i, 2i + 2)
    ev = Events(onsets=[4.0, 13.0], durations=[4.0, 2.0], trial_types=["a", "b"])
    X, names = event_regressors(ev, t, kind="boxcar")
    assert names == ["a", "b"] and X.shape == (10, 2) and X.dtype == np.float32
    expected_a = np.zeros(10)
    expected_a[2:4] = 1.0  # [4, 8) covers rows 2 and 3 exactly
    np.testing.assert_array_equal(X[:, 0], expected_a)
    expected_b = np.zeros(10)
    expected_b[6] = 0.5  # [13, 15) covers half of row 6 [12, 14) and half of row 7 [14, 16)
    expected_b[7] = 0.5
    np.testing.assert_array_equal(X[:, 1], expected_b)


def test_boxcar_short_event_modulation_and_impulse():
    t = midpoints(6, 1.5)
    ev = Events(onsets=[1.6, 4.6, 6.0], durations=[0.3, 0.0, 0.75], trial_types=["a", "a", "a"],
                modulation=[2.0, 1.0, 1.0])
    X, _ = event_regressors(ev, t, kind="boxcar")
    # 0.3 s of amplitude 2 inside [1.5, 3.0): 0.6 s / 1.5 s; impulse at 4.6 s: 1 s / 1.5 s in [4.5, 6)
    np.testing.assert_allclose(X[:, 0], [0, 0.4, 0, 1 / 1.5, 0.5, 0], atol=1e-6)


def test_columns_follow_trial_types_and_reject_unknown():
    t = midpoints(5, 2.0)
    ev = Events(onsets=[0.0], durations=[2.0], trial_types=["b"])
    X, names = event_regressors(ev, t, trial_types=["a", "b", "c"], kind="boxcar")
    assert names == ["a", "b", "c"]
    np.testing.assert_array_equal(X[:, [0, 2]], 0)
    assert X[0, 1] == 1.0
    with pytest.raises(InputError, match=r"\['b'\] are not among"):
        event_regressors(ev, t, trial_types=["a"], kind="boxcar")
    with pytest.raises(InputError, match="stimulus clock"):
        event_regressors(Events(onsets=[500.0], durations=[1.0], trial_types=["b"]), t, kind="boxcar")
    with pytest.raises(InputError, match="kind"):
        event_regressors(ev, t, kind="gauss")


# ---------------------------------------------------------------------------- hrf

def spm_double_gamma(dt: float) -> np.ndarray:
    """Independent SPM canonical HRF: scipy gamma densities, 6 s peak, 16 s undershoot, ratio 6, 0..32 s."""
    tt = np.arange(0.0, 32.0 + dt / 2, dt)
    h = gamma.pdf(tt, 6.0) - gamma.pdf(tt, 16.0) / 6.0
    return h / h.sum()


def test_canonical_hrf_shape():
    h = canonical_hrf(0.1)
    assert h.shape == (321,) and abs(h.sum() - 1) < 1e-12 and h[0] == 0
    assert 4.5 < np.argmax(h) * 0.1 < 5.5 and 14.0 < np.argmin(h) * 0.1 < 17.0
    np.testing.assert_allclose(h, spm_double_gamma(0.1), rtol=1e-10, atol=1e-14)


def test_hrf_regressor_matches_independent_convolution():
    tr, os_ = 2.0, 15
    n = 60
    t = midpoints(n, tr)
    ev = Events(onsets=[4.0, 30.0, 61.2], durations=[6.0, 2.0, 3.2], trial_types=["a", "a", "a"],
                modulation=[1.0, 0.5, 2.0])
    X, _ = event_regressors(ev, t, kind="hrf", oversampling=os_)

    dt = tr / os_
    centres = (np.arange(n * os_) + 0.5) * dt  # fine grid from 0 s, one sample per dt
    fine = np.zeros(n * os_)
    for on, dur, m in zip(ev.onsets, ev.durations, ev.modulation):
        fine[(centres >= on) & (centres < on + dur)] += m  # onsets fall on fine-sample edges here
    expected = np.convolve(fine, spm_double_gamma(dt))[: n * os_]
    rows = np.arange(n) * os_ + os_ // 2  # (i + 0.5) * TR is the centre of that fine sample (odd oversampling)
    np.testing.assert_allclose(centres[rows], t)
    np.testing.assert_allclose(X[:, 0], expected[rows], rtol=1e-5, atol=1e-6)
    assert X[:, 0].max() > 0.5  # the 6 s block rises well up towards the plateau of 1


def test_hrf_plateau_and_events_before_the_run():
    tr = 1.5
    t = midpoints(80, tr)
    X, _ = event_regressors(Events(onsets=[0.0], durations=[120.0], trial_types=["a"]), t, kind="hrf")
    np.testing.assert_allclose(X[40:79, 0], 1.0, atol=1e-4)  # sustained input, unit-sum HRF
    # an event 10 s before the run still shows its tail (the fine grid reaches back)
    Y, _ = event_regressors(Events(onsets=[-10.0], durations=[2.0], trial_types=["a"]), t, kind="hrf")
    assert Y[0, 0] > 0.01 and Y[-1, 0] < 1e-3


# ---------------------------------------------------------------------------- planted recovery

def test_planted_weights_recovered_by_ridge(tmp_path):
    from mmneuro.encoding import RidgeCV

    rng = np.random.default_rng(0)
    tr, n_trs, types = 2.0, 180, ["face", "house", "tool"]
    runs = []
    for r in range(3):
        n_ev = 45
        onsets = np.sort(rng.uniform(0, n_trs * tr - 20, n_ev))
        rows = [(f"{o:.3f}", f"{rng.uniform(0.5, 4.0):.3f}", types[i % 3]) for i, o in enumerate(onsets)]
        path = write_events(tmp_path / f"run-{r}_events.tsv", rows)
        runs.append(StimulusRun(name=f"run-{r}", tr_times=midpoints(n_trs, tr), events=path))
    assert dataset_trial_types(runs) == types
    feats = event_features(runs, tr, kind="hrf")
    X = np.concatenate([feats[r.name] for r in runs])
    X = (X - X.mean(0)) / X.std(0)
    W = rng.standard_normal((3, 20))
    Y = X @ W + 0.5 * rng.standard_normal((len(X), 20))
    groups = np.repeat(np.arange(3), n_trs)
    model = RidgeCV(alphas=np.logspace(-2, 4, 13), cv=3, fit_intercept=True).fit(X, Y, groups=groups)
    r = np.corrcoef(model.coef_.ravel(), W.ravel())[0, 1]
    assert r > 0.9, r


# ---------------------------------------------------------------------------- dataset + cache

def test_dataset_trial_types_union_and_zero_columns(tmp_path):
    a = write_events(tmp_path / "a.tsv", [(0, 2, "face")])
    b = write_events(tmp_path / "b.tsv", [(0, 2, "house"), (4, 2, "face")])
    runs = [StimulusRun("run-1", midpoints(10, 2.0), events=a), StimulusRun("run-2", midpoints(10, 2.0), events=b)]
    assert dataset_trial_types(runs) == ["face", "house"]
    feats = event_features(runs, 2.0, kind="boxcar")
    assert feats["run-1"].shape == feats["run-2"].shape == (10, 2)
    np.testing.assert_array_equal(feats["run-1"][:, 1], 0)
    with pytest.raises(InputError, match="run-3"):
        event_features(runs + [StimulusRun("run-3", midpoints(10, 2.0))], 2.0)


def test_event_features_cache_hit(tmp_path, monkeypatch):
    ev = write_events(tmp_path / "ev.tsv", [(1.0, 3.0, "a"), (9.5, 0.5, "b")])
    runs = [StimulusRun("run-1", midpoints(20, 2.0), events=ev)]
    store = FeatureStore(tmp_path / "cache")
    first = event_features(runs, 2.0, kind="hrf", store=store)
    assert (tmp_path / "cache" / "events").is_dir()

    def boom(*args, **kwargs):
        raise AssertionError("computed again instead of reading the cache")

    monkeypatch.setattr(fe, "event_regressors", boom)
    second = event_features(runs, 2.0, kind="hrf", store=store)
    np.testing.assert_array_equal(first["run-1"], second["run-1"])
    with pytest.raises(AssertionError, match="computed again"):  # other oversampling: another key
        event_features(runs, 2.0, kind="hrf", store=store, oversampling=9)
    with pytest.raises(AssertionError, match="computed again"):  # other tr_times: another key
        event_features([StimulusRun("run-1", np.arange(20) * 2.0, events=ev)], 2.0, kind="hrf", store=store)
    ev.write_text("onset\tduration\ttrial_type\n12.0\t3.0\ta\n9.5\t0.5\tb\n")  # new size and bytes
    with pytest.raises(AssertionError, match="computed again"):  # edited file: another sha256
        event_features(runs, 2.0, kind="hrf", store=store)
