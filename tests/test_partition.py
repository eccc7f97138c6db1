"""Variance partitioning on a synthetic study whose unique and shared parts are known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmneuro.analyses.partition import variance_partition
from mmneuro.datasets.base import Dataset, Responses, StimulusRun
from mmneuro.errors import InputError


def two_space_study(seed: int = 0):
    """Space 'audio' = [A, C], space 'visual' = [V, C]. ROI 'aud' follows A, 'vis' follows V,
    'both' follows the common C: unique audio, unique visual and shared variance respectively."""
    rng = np.random.default_rng(seed)
    runs = [StimulusRun(n, (np.arange(k) + 0.5) * 2.0, split="test" if n == "test" else "train")
            for n, k in zip(["a", "b", "c", "test"], [160, 160, 160, 160])]
    w = rng.uniform(0.5, 1.5, size=(3, 15))
    audio, visual, resp = {}, {}, {}
    for run in runs:
        A, V, C = (rng.standard_normal((run.n_trs, 3)) for _ in range(3))
        audio[run.name] = np.hstack([A, C]).astype(np.float32)
        visual[run.name] = np.hstack([V, C]).astype(np.float32)
        signal = np.hstack([A @ np.diag(w[0, :3]) @ np.ones((3, 5)), V @ np.ones((3, 5)), C @ np.ones((3, 5))])
        reps = 2 if run.name == "test" else 1
        resp[run.name] = np.stack([signal + 2.0 * rng.standard_normal(signal.shape) for _ in range(reps)]
                                  ).astype(np.float32)
    idx = np.arange(15)
    rois = {"aud": idx < 5, "vis": (idx >= 5) & (idx < 10), "both": idx >= 10}
    ds = Dataset(name="av", root=Path("."), tr=2.0, runs=runs, subjects=["01"], rois=rois,
                 load_responses=lambda s: Responses(s, resp), delays=(0,))
    return ds, {"audio": audio, "visual": visual}, Responses("01", resp)


def test_unique_and_shared_parts_land_where_the_truth_puts_them():
    ds, spaces, responses = two_space_study()
    result = variance_partition(ds, spaces, responses, n_iter=10)
    roi = result.roi
    assert roi["unique_audio"]["aud"] > 0.3 and abs(roi["unique_visual"]["aud"]) < 0.05
    assert roi["unique_visual"]["vis"] > 0.3 and abs(roi["unique_audio"]["vis"]) < 0.05
    assert roi["shared"]["both"] > 0.3
    assert abs(roi["unique_audio"]["both"]) < 0.05 and abs(roi["unique_visual"]["both"]) < 0.05
    # the identities of the partition hold exactly per target
    r2 = result.r2
    np.testing.assert_allclose(result.unique["audio"] + result.shared, r2[("audio",)], atol=1e-9)
    np.testing.assert_allclose(result.unique["visual"] + result.shared, r2[("visual",)], atol=1e-9)
    # the banded model's split R² adds up to its R² (up to the centring of the held-out means)
    np.testing.assert_allclose(result.split["audio"] + result.split["visual"], r2[("audio", "visual")], atol=0.03)
    assert np.all(result.split["audio"][:5] > result.split["visual"][:5])


def test_single_space_fit_equals_plain_ridge_r2():
    """A one-space subset is ordinary ridge: compare with our RidgeCV on the same folds."""
    from mmneuro.analyses.heldout import design_matrix, evaluation_plan, response_matrix
    from mmneuro.encoding import LeaveRunsOut, RidgeCV, r2_score
    from mmneuro.analyses.partition import DEFAULT_ALPHAS

    ds, spaces, responses = two_space_study()
    result = variance_partition(ds, spaces, responses, n_iter=5)
    plan = evaluation_plan(ds)
    X = design_matrix(spaces["audio"], plan.runs, (0,)).astype(np.float64)
    Y = response_matrix(responses, plan.runs).astype(np.float64)
    train, test = plan.folds[0]
    model = RidgeCV(alphas=DEFAULT_ALPHAS, cv=LeaveRunsOut(), scoring="r2").fit(
        X[train], Y[train], groups=plan.run_labels()[train])
    ours = r2_score(Y[test], model.predict(X[test]))
    np.testing.assert_allclose(result.r2[("audio",)], ours, atol=0.02)


def test_too_many_spaces_are_refused():
    ds, spaces, responses = two_space_study()
    with pytest.raises(InputError, match="2 or 3 feature spaces"):
        variance_partition(ds, {k: spaces["audio"] for k in "abcd"}, responses)


def test_bootstrap_of_the_partition_recovers_which_space_dominates():
    """The bootstrap's point values are the partition's ROI means; dominance is significant where planted."""
    from mmneuro.analyses.partition import partition_test

    ds, spaces, responses = two_space_study()
    result = variance_partition(ds, spaces, responses, n_iter=5)
    stats = partition_test(result, ds.rois, n_boot=300, block_len=10)
    for roi in ds.rois:
        for part in ("unique_audio", "unique_visual", "shared"):
            s = stats["roi"][roi][part]
            assert s["value"] == pytest.approx(result.roi[part][roi], abs=1e-9)
            assert s["ci_low"] <= s["value"] <= s["ci_high"]
    dom = stats["dominance"]
    assert dom["aud"]["audio>visual"]["q"] < 0.05 and dom["aud"]["visual>audio"]["p"] > 0.5
    assert dom["vis"]["visual>audio"]["q"] < 0.05 and dom["vis"]["audio>visual"]["p"] > 0.5
    assert stats["roi"]["both"]["shared"]["p"] < 0.01 and stats["roi"]["both"]["shared"]["ci_low"] > 0.1
    # a single resample by hand: unique(audio) = R²(both) - R²(visual) on the resampled rows
    idx = np.arange(40, 120)
    Y = result.measured[idx]

    def r2(P):
        return 1 - ((Y - P[idx]) ** 2).sum(0) / ((Y - Y.mean(0)) ** 2).sum(0)

    by_hand = r2(result.predictions[("audio", "visual")]) - r2(result.predictions[("visual",)])
    from mmneuro.analyses.partition import _parts, _r2_columns

    ours = _parts({s: _r2_columns(Y, P[idx]) for s, P in result.predictions.items()}, ["audio", "visual"])
    np.testing.assert_allclose(ours["unique_audio"], by_hand, atol=1e-10)


def test_comparison_with_removal_names_the_top_space_of_each_answer():
    from mmneuro.analyses.partition import compare_with_removal

    partition_roi = {"unique_audio": {"aud": 0.3, "vis": 0.01}, "unique_visual": {"aud": -0.01, "vis": 0.2},
                     "shared": {"aud": 0.0, "vis": 0.0}}
    removal_roi = {"audio": {"aud": {"drop": 0.5, "q": 0.01}, "vis": {"drop": 0.3, "q": 0.2}},
                   "visual": {"aud": {"drop": 0.0, "q": 0.9}, "vis": {"drop": 0.1, "q": 0.04}}}
    out = compare_with_removal(partition_roi, removal_roi)
    assert out["aud"]["partition_top"] == out["aud"]["removal_top"] == "audio" and out["aud"]["agree"]
    assert out["vis"]["partition_top"] == "visual" and out["vis"]["removal_top"] == "audio"
    assert not out["vis"]["agree"] and out["vis"]["drop_q"] == {"audio": 0.2, "visual": 0.04}
    with pytest.raises(InputError, match="no space is both"):
        compare_with_removal(partition_roi, {"words": removal_roi["audio"]})
