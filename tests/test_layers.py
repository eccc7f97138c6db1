"""Layer study on synthetic subjects whose best layer is known; its statistics against scipy,
closed forms and separate per-subject fits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from mmneuro.analyses.heldout import fit_evaluate
from mmneuro.analyses.layers import bootstrap_summary, layer_study, roi_block_bootstrap, stack_subjects
from mmneuro.datasets.base import Dataset, Responses, StimulusRun


def layered_study(n_subjects: int = 6, seed: int = 0, noise: float = 3.0):
    """Responses follow a latent L; 'layer-1' = L + lots of noise, 'layer-2' = L + little noise,
    'layer-3' = L + some noise; the baseline is unrelated. Best layer: layer-2."""
    rng = np.random.default_rng(seed)
    runs = [StimulusRun(n, (np.arange(100) + 0.5) * 2.0) for n in ("r1", "r2", "r3")]
    latent = {r.name: rng.standard_normal((100, 4)) for r in runs}
    spread = {"layer-1": 2.0, "layer-2": 0.2, "layer-3": 1.0}
    features = {layer: {r: (latent[r] + s * rng.standard_normal((100, 4))).astype(np.float32) for r in latent}
                for layer, s in spread.items()}
    baseline = {r: rng.standard_normal((100, 2)).astype(np.float32) for r in latent}
    W = rng.standard_normal((4, 8))
    subjects = [f"{i:02d}" for i in range(n_subjects)]
    data = {s: Responses(s, {r: (latent[r] @ W + noise * rng.standard_normal((100, 8)))[None].astype(np.float32)
                             for r in latent}) for s in subjects}
    rois = {"a": np.arange(8) < 4, "b": np.arange(8) >= 4}
    ds = Dataset(name="layers", root=Path("."), tr=2.0, runs=runs, subjects=subjects, rois=rois,
                 load_responses=data.__getitem__, evaluation="leave-one-run-out", delays=(0,))
    return ds, features, baseline


@pytest.fixture(scope="module")
def group_study():
    ds, features, baseline = layered_study()
    return ds, features, layer_study(ds, features, baseline=baseline, progress=False)


def test_best_layer_is_found_and_beats_first_last_and_baseline(group_study):
    _, _, study = group_study
    assert study.roi_r.shape == (6, 3, 2) and study.ceiling.shape == (6, 2)
    assert study.ci_method == "subjects" and study.ceiling_method == "loo-isc"  # "auto" without repeats
    assert study.best_layer == {"a": "layer-2", "b": "layer-2"}
    for roi in ("a", "b"):
        for other in ("first", "last", "baseline", "intermediate_vs_first", "intermediate_vs_last"):
            c = study.comparisons[roi][other]
            # the intermediate layer (layer-2, noise 0.2) beats layer-1 (2.0) and layer-3 (1.0)
            assert c["mean_difference"] > 0 and c["q"] < 0.05 and c["ci_low"] > 0, (roi, other, c)
    g = study.group["layer-2"]
    assert np.all(g.ci_low < g.mean) and np.all(g.mean < g.ci_high)
    # cross-subject ceiling (no repeats): subjects share the latent signal
    assert np.all(study.ceiling > 0.3)


def test_group_statistics_match_scipy_and_hand_computation(group_study):
    _, _, study = group_study
    b = study.layers.index("layer-2")
    for r, roi in enumerate(study.rois):
        for name, other in (("first", study.roi_r[:, 0, r]), ("last", study.roi_r[:, -1, r]),
                            ("baseline", study.baseline_r[:, r])):
            ref = stats.ttest_rel(study.roi_r[:, b, r], other)
            c = study.comparisons[roi][name]
            assert c["t"] == pytest.approx(ref.statistic, rel=1e-9) and c["p"] == pytest.approx(ref.pvalue, rel=1e-9)
            assert c["mean_difference"] == pytest.approx(np.mean(study.roi_r[:, b, r] - other))
        # with 3 layers the intermediate set is layer-2 alone
        ref = stats.ttest_rel(study.roi_r[:, 1, r], study.roi_r[:, -1, r])
        assert study.comparisons[roi]["intermediate_vs_last"]["p"] == pytest.approx(ref.pvalue, rel=1e-9)
        # one-sample t-test of every layer's ROI r against 0
        for j, layer in enumerate(study.layers):
            assert study.group[layer].p[r] == pytest.approx(stats.ttest_1samp(study.roi_r[:, j, r], 0).pvalue,
                                                             rel=1e-9)
    # normalised alignment = ROI r / ROI ceiling, subject by subject
    np.testing.assert_allclose(study.normalized(), study.roi_r / study.ceiling[:, None, :])
    np.testing.assert_allclose(study.normalized_group["layer-2"].mean, (study.roi_r[:, 1] / study.ceiling).mean(0))
    # BH q-values over all comparisons, by hand
    p = np.array([c["p"] for roi in study.rois for c in study.comparisons[roi].values()])
    q = np.array([c["q"] for roi in study.rois for c in study.comparisons[roi].values()])
    order = np.argsort(p)
    bh = np.minimum.accumulate((p[order] * len(p) / np.arange(1, len(p) + 1))[::-1])[::-1]
    np.testing.assert_allclose(q[order], np.minimum(bh, 1), rtol=1e-9)


def test_one_fit_for_all_subjects_equals_fitting_each_alone(group_study):
    ds, features, study = group_study
    for i, s in enumerate(study.subjects):
        alone = fit_evaluate(ds, features["layer-3"], ds.load_responses(s))
        np.testing.assert_allclose(study.voxel_r[i, 2], alone.r, atol=1e-5)
    # subjects whose runs differ in shape are not stacked
    a = Responses("a", {"r": np.zeros((1, 10, 3), np.float32)})
    b = Responses("b", {"r": np.zeros((2, 10, 3), np.float32)})
    assert stack_subjects([a, b]) is None
    both = stack_subjects([a, Responses("c", {"r": np.ones((1, 10, 2), np.float32)}, valid=np.array([True, False]))])
    assert both.runs["r"].shape == (1, 10, 5) and both.valid.tolist() == [True] * 3 + [True, False]


def test_encoding_a_subset_of_targets_keeps_their_scores(group_study):
    ds, features, study = group_study
    keep = np.arange(8) < 6  # ROI "a" (targets 0-3) whole, ROI "b" (4-7) in part
    part = layer_study(ds, features, targets=keep, progress=False)
    np.testing.assert_allclose(part.voxel_r[:, :, keep], study.voxel_r[:, :, keep], atol=1e-5)
    assert np.isnan(part.voxel_r[:, :, ~keep]).all()
    np.testing.assert_allclose(part.roi_r[:, :, 0], study.roi_r[:, :, 0], atol=1e-5)
    np.testing.assert_allclose(part.roi_r[:, :, 1], np.nanmean(study.voxel_r[:, :, 4:6], axis=-1), atol=1e-5)


def test_one_subject_gets_time_block_intervals():
    ds, features, baseline = layered_study(noise=1.5)
    study = layer_study(ds, features, subjects=["00"], baseline=baseline, n_boot=300, block_len=5, progress=False)
    assert study.ci_method == "time-blocks" and study.boot_r.shape == (300, 3, 2)
    assert study.best_layer == {"a": "layer-2", "b": "layer-2"}
    for layer in study.layers:
        g = study.group[layer]
        assert np.all(g.ci_low <= g.mean) and np.all(g.mean <= g.ci_high) and np.all(g.n == 1)
    for roi in study.rois:
        for name in ("first", "intermediate_vs_first", "intermediate_vs_last", "baseline"):
            c = study.comparisons[roi][name]
            assert c["mean_difference"] > 0 and c["p"] < 0.05 and c["ci_low"] > 0, (roi, name, c)
    # the single-subject point estimate is the subject's own fit
    alone = fit_evaluate(ds, features["layer-1"], ds.load_responses("00"))
    np.testing.assert_allclose(study.roi_r[0, 0], [np.mean(alone.r[:4]), np.mean(alone.r[4:])], atol=1e-6)


def test_block_bootstrap_spread_matches_the_fisher_standard_error():
    """White noise, block length 1: the bootstrap s.d. of r is close to (1 - r^2) / sqrt(n)."""
    rng = np.random.default_rng(1)
    n = 400
    x = rng.standard_normal((n, 2))
    Y = x + rng.standard_normal((n, 2)) * np.array([1.0, 2.0])  # r = 0.71 and 0.45
    rois = {"one": np.array([True, False]), "two": np.array([False, True])}
    boot = roi_block_bootstrap(Y, [x, x.copy()], rois, n_boot=2000, block_len=1, seed=0)
    r = np.array([np.corrcoef(Y[:, k], x[:, k])[0, 1] for k in range(2)])
    np.testing.assert_allclose(boot[:, 0].std(axis=0), (1 - r ** 2) / np.sqrt(n), rtol=0.15)
    np.testing.assert_allclose(boot[:, 0].mean(axis=0), r, atol=0.01)
    # the same rows for every prediction: identical predictions differ by exactly 0 in every resample
    assert np.array_equal(boot[:, 0], boot[:, 1])


def test_bootstrap_summary_by_hand():
    boot = np.array([[-0.1, 0.2], [0.1, 0.3], [0.2, 0.4], [0.3, 0.5]])
    g = bootstrap_summary(np.array([0.15, 0.35]), boot, ci=0.5)
    # two-sided p: 2 * (1 + #{<= 0}) / (1 + 4) for column 0, capped at 1; column 1 never <= 0
    assert g.p.tolist() == pytest.approx([2 * 2 / 5, 2 * 1 / 5])
    assert g.ci_low.tolist() == pytest.approx(np.quantile(boot, 0.25, axis=0).tolist())
    assert g.sem.tolist() == pytest.approx(boot.std(axis=0, ddof=1).tolist())
    # an undefined point (e.g. normalised alignment under a low ceiling) stays NaN, no error
    g = bootstrap_summary(np.array([np.nan, 0.35]), boot)
    assert np.isnan(g.mean[0]) and np.isnan(g.ci_low[0]) and np.isfinite(g.ci_low[1])


def test_columns_without_two_subjects_are_nan_not_an_error(group_study):
    from mmneuro.analyses.layers import subject_summary
    from mmneuro.analyses.stats import group_summary

    _, _, study = group_study
    values = np.column_stack([np.full(6, np.nan), study.roi_r[:, 1, 0]])
    g, ref = subject_summary(values), group_summary(study.roi_r[:, 1, 0])
    assert np.isnan([g.mean[0], g.ci_low[0], g.p[0]]).all() and g.n.tolist() == [0, 6]
    assert g.mean[1] == pytest.approx(ref.mean[0]) and g.ci_low[1] == pytest.approx(ref.ci_low[0])
    low = study.min_ceiling
    study.min_ceiling = 10.0  # every ceiling is "too low": normalised alignment undefined
    try:
        assert np.all(np.isnan(study.normalized()))
    finally:
        study.min_ceiling = low
