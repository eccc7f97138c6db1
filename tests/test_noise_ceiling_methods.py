"""Noise-ceiling method chosen per dataset (``Dataset.ceiling``), computed on the scored rows,
and cached on disk keyed by the responses."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mmneuro.analyses import noise_ceiling as nc
from mmneuro.analyses.heldout import evaluation_plan
from mmneuro.analyses.layers import ceilings_for
from mmneuro.brain.ceiling import ceiling_r, cross_subject_ceiling, explainable_variance, split_half_reliability
from mmneuro.datasets.base import Dataset, Responses, StimulusRun
from mmneuro.errors import InputError

N_TARGETS = 12


def make_dataset(n_subjects=5, test_repeats=1, evaluation="heldout", ceiling="auto", seed=0, invalid=(3,)):
    """Two train runs (60 TRs) and a test run (40 TRs) of a shared signal plus subject noise."""
    rng = np.random.default_rng(seed)
    split = {"a": "train", "b": "train", "t": "test"}
    n_trs = {"a": 60, "b": 60, "t": 40}
    runs = [StimulusRun(name, (np.arange(n_trs[name]) + 0.5) * 2.0, split=split[name]) for name in split]
    signal = {name: rng.standard_normal((n_trs[name], N_TARGETS)) * np.linspace(0.2, 2.0, N_TARGETS) for name in split}
    subjects = [f"{i:02d}" for i in range(n_subjects)]
    data = {}
    for s in subjects:
        reps = {name: (test_repeats if split[name] == "test" else 1) for name in split}
        valid = np.ones(N_TARGETS, bool)
        valid[list(invalid)] = False
        data[s] = Responses(s, {name: (signal[name][None] + rng.standard_normal((reps[name], n_trs[name], N_TARGETS)))
                                .astype(np.float32) for name in split}, valid)
    rois = {"low": np.arange(N_TARGETS) < 6, "high": np.arange(N_TARGETS) >= 6}
    ds = Dataset(name="ceilings", root=Path("."), tr=2.0, runs=runs, subjects=subjects, rois=rois,
                 load_responses=data.__getitem__, evaluation=evaluation, ceiling=ceiling)
    return ds, [data[s] for s in subjects]


def direct_loo_isc(series: list[np.ndarray]) -> np.ndarray:
    """Independent reference: np.corrcoef of each subject with the mean of the others, column by column."""
    n, v = len(series), series[0].shape[1]
    out = np.empty((n, v))
    for s in range(n):
        others = np.mean([series[j].astype(np.float64) for j in range(n) if j != s], axis=0)
        for t in range(v):
            out[s, t] = np.corrcoef(series[s][:, t].astype(np.float64), others[:, t])[0, 1]
    return out


def scored_rows(ds: Dataset, o: Responses) -> np.ndarray:
    plan = evaluation_plan(ds)
    return np.concatenate([o.runs[r.name].mean(axis=0) for r in plan.runs])[plan.scored]


# --------------------------------------------------------------------------- choosing and computing

@pytest.mark.parametrize("evaluation", ["heldout", "leave-one-run-out", "contiguous-folds"])
def test_auto_without_repeats_is_loo_isc_on_the_scored_rows(evaluation):
    ds, everyone = make_dataset(evaluation=evaluation)
    out = nc.noise_ceilings(ds, everyone)
    assert {c.method for c in out.values()} == {"loo-isc"}
    expected = direct_loo_isc([scored_rows(ds, o) for o in everyone])
    expected[:, 3] = np.nan  # invalid target
    got = np.stack([out[o.subject].r for o in everyone])
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    n_rows = 40 if evaluation == "heldout" else 160
    assert scored_rows(ds, everyone[0]).shape[0] == n_rows


def test_auto_with_repeats_is_repeats_and_explicit_methods_are_honoured():
    ds, everyone = make_dataset(test_repeats=4)
    o = everyone[1]
    auto = nc.noise_ceilings(ds, everyone)[o.subject]
    assert auto.method == "repeats" and auto.n_repeats == 4
    ev = explainable_variance(o.runs["t"])
    np.testing.assert_allclose(auto.ev[np.arange(N_TARGETS) != 3], ev[np.arange(N_TARGETS) != 3])
    assert np.isnan(auto.r[3]) and np.isnan(auto.ev[3])

    half = nc.noise_ceilings(replace(ds, ceiling="split-half"), everyone)[o.subject]
    assert half.method == "split-half" and half.n_repeats == 4
    rel = split_half_reliability(o.runs["t"])
    keep = np.arange(N_TARGETS) != 3
    np.testing.assert_allclose(half.r[keep], ceiling_r(rel, 4)[keep])
    assert np.isnan(half.r[3])

    isc = nc.noise_ceilings(replace(ds, ceiling="loo-isc"), everyone)
    expected = direct_loo_isc([scored_rows(ds, p) for p in everyone])  # repeat-averaged test rows
    np.testing.assert_allclose(isc[o.subject].r[keep], expected[1, keep], atol=1e-6, rtol=0)
    assert isc[o.subject].method == "loo-isc"

    ridge = nc.noise_ceilings(replace(ds, ceiling="ridge"), everyone)
    plan = evaluation_plan(ds)
    series = [np.concatenate([p.runs[r.name].mean(axis=0) for r in plan.runs]) for p in everyone]
    (train, test), = plan.folds
    ref = cross_subject_ceiling([y[train] for y in series], [y[test] for y in series])
    np.testing.assert_allclose(ridge[o.subject].r[keep], ref[1, keep])
    assert ridge[o.subject].method == "ridge"


def test_auto_needs_every_subject_repeated():
    ds, everyone = make_dataset(test_repeats=2)
    single = make_dataset(test_repeats=1, seed=1)[1][0]
    mixed = everyone[:3] + [Responses("99", single.runs, single.valid)]
    assert nc.ceiling_method(ds, mixed) == "loo-isc"
    assert nc.ceiling_method(ds, everyone) == "repeats"
    assert nc.ceiling_method(replace(ds, evaluation="leave-one-run-out"), everyone) == "loo-isc"


def test_explicit_repeat_methods_fail_loudly_without_repeats():
    ds, everyone = make_dataset(test_repeats=1)
    for method in ("repeats", "split-half"):
        with pytest.raises(InputError, match="presented at least twice"):
            nc.noise_ceilings(replace(ds, ceiling=method), everyone)
    with pytest.raises(InputError, match="at least 2"):
        nc.noise_ceilings(replace(ds, ceiling="loo-isc"), everyone[:1])


def test_subject_ceilings_loads_others_only_for_cross_subject_methods():
    ds, everyone = make_dataset(test_repeats=3)
    calls = []

    def others():
        calls.append(1)
        return everyone

    assert list(nc.subject_ceilings(ds, everyone[0], others)) == [everyone[0].subject] and not calls
    out = nc.subject_ceilings(replace(ds, ceiling="loo-isc"), everyone[0], others)
    assert calls and sorted(out) == sorted(o.subject for o in everyone)
    assert nc.noise_ceiling(replace(ds, ceiling="loo-isc"), everyone[2], others).method == "loo-isc"


def test_layer_study_ceilings_follow_the_dataset(tmp_path):
    ds, everyone = make_dataset(evaluation="leave-one-run-out")
    chosen = {o.subject: o for o in everyone[:2]}
    out = ceilings_for(ds, chosen, ds.load_responses, cache=tmp_path)
    assert set(out) == {o.subject for o in everyone} and out["00"].method == "loo-isc"
    assert len(list(tmp_path.glob("loo-isc-*.npz"))) == 1
    ds2, everyone2 = make_dataset(test_repeats=2)
    out2 = ceilings_for(ds2, {o.subject: o for o in everyone2[:2]}, ds2.load_responses)
    assert set(out2) == {"00", "01"} and out2["00"].method == "repeats"


# --------------------------------------------------------------------------- the cache

def _assert_same(a, b):
    assert list(a) == list(b)
    for s in a:
        np.testing.assert_array_equal(a[s].r, b[s].r)
        assert a[s].method == b[s].method and a[s].n_repeats == b[s].n_repeats
        if a[s].ev is None:
            assert b[s].ev is None
        else:
            np.testing.assert_array_equal(a[s].ev, b[s].ev)


@pytest.mark.parametrize("method,target", [("loo-isc", "loo_isc"), ("ridge", "cross_subject_ceiling"),
                                           ("split-half", "split_half_reliability"),
                                           ("repeats", "explainable_variance")])
def test_second_call_reads_the_cache(tmp_path, monkeypatch, method, target):
    ds, everyone = make_dataset(test_repeats=3, ceiling=method)
    first = nc.noise_ceilings(ds, everyone, cache=tmp_path)
    files = sorted(tmp_path.glob(f"{method}-*.npz"))
    assert len(files) == (len(everyone) if method in nc.PER_SUBJECT else 1)
    assert not list(tmp_path.glob(".*.tmp"))  # temporary files moved into place

    def boom(*args, **kwargs):
        raise AssertionError(f"{target} called although the ceilings are cached")

    monkeypatch.setattr(nc, target, boom)
    second = nc.noise_ceilings(ds, everyone, cache=tmp_path)
    _assert_same(first, second)
    # another byte of any subject's responses is another key: computed again
    changed = [Responses(o.subject, {k: v.copy() for k, v in o.runs.items()}, o.valid) for o in everyone]
    changed[-1].runs["t"][0, 0, 0] += 1.0
    with pytest.raises(AssertionError, match="called although"):
        nc.noise_ceilings(ds, changed, cache=tmp_path)


def test_key_covers_method_plan_labels_and_valid_masks():
    ds, everyone = make_dataset(test_repeats=2, evaluation="heldout", ceiling="loo-isc")
    key = nc.ceiling_key(ds, "loo-isc", everyone)
    assert key == nc.ceiling_key(ds, "loo-isc", [Responses(o.subject, dict(o.runs), o.valid) for o in everyone])
    assert key != nc.ceiling_key(ds, "ridge", everyone)
    assert key != nc.ceiling_key(replace(ds, evaluation="contiguous-folds"), "loo-isc", everyone)
    assert key != nc.ceiling_key(replace(ds, evaluation="contiguous-folds", eval_folds=3), "loo-isc", everyone) \
        != nc.ceiling_key(replace(ds, evaluation="contiguous-folds"), "loo-isc", everyone)
    relabelled = [Responses("x" + o.subject, o.runs, o.valid) for o in everyone]
    assert key != nc.ceiling_key(ds, "loo-isc", relabelled)
    no_mask = [Responses(o.subject, o.runs, None) for o in everyone]
    assert key != nc.ceiling_key(ds, "loo-isc", no_mask)


def test_corrupt_cache_file_is_recomputed_with_a_warning(tmp_path):
    ds, everyone = make_dataset(ceiling="loo-isc")
    first = nc.noise_ceilings(ds, everyone, cache=tmp_path)
    (path,) = tmp_path.glob("loo-isc-*.npz")
    path.write_bytes(b"not a zip file")
    with pytest.warns(RuntimeWarning, match=str(path.name)):
        again = nc.noise_ceilings(ds, everyone, cache=tmp_path)
    _assert_same(first, again)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _assert_same(first, nc.noise_ceilings(ds, everyone, cache=tmp_path))  # rewritten, readable


def test_cache_folder_is_never_a_feature_store_model_folder():
    from mmneuro.features.store import _safe

    assert nc.ceiling_cache_dir(None) is None
    assert nc.ceiling_cache_dir("/c/features") == Path("/c/features/.ceilings")
    assert _safe(nc.CACHE_FOLDER) != nc.CACHE_FOLDER  # no model name maps to ".ceilings"
    assert _safe("ceilings") == "ceilings"  # whereas a model called "ceilings" would own root/ceilings
