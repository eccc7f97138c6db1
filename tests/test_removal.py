"""Feature removal on a synthetic study with a known answer, and its no-leakage guarantee."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmneuro.analyses.heldout import evaluation_plan
from mmneuro.analyses.removal import feature_removal, paired_drop_test, residualize
from mmneuro.datasets.base import Dataset, Responses, StimulusRun


def audiovisual_study(seed: int = 0):
    """'auditory' targets follow 4 audio sources, 'visual' targets 4 visual ones; the joint model's
    8 features mix both, the audio model's features are the audio sources plus a little noise."""
    rng = np.random.default_rng(seed)
    names, lengths = ["a", "b", "c", "test"], [150, 150, 150, 120]
    runs = [StimulusRun(n, (np.arange(k) + 0.5) * 2.0, split="test" if n == "test" else "train")
            for n, k in zip(names, lengths)]
    mix = rng.standard_normal((8, 8))
    w_aud, w_vis = rng.standard_normal((4, 30)), rng.standard_normal((4, 30))
    joint, audio, resp = {}, {}, {}
    for run in runs:
        A, V = rng.standard_normal((run.n_trs, 4)), rng.standard_normal((run.n_trs, 4))
        joint[run.name] = (np.hstack([A, V]) @ mix).astype(np.float32)
        audio[run.name] = (A + 0.1 * rng.standard_normal(A.shape)).astype(np.float32)
        signal = np.hstack([A @ w_aud, V @ w_vis])
        reps = 2 if run.name == "test" else 1
        resp[run.name] = np.stack([signal + 2.0 * rng.standard_normal(signal.shape) for _ in range(reps)]
                                  ).astype(np.float32)
    rois = {"auditory": np.arange(60) < 30, "visual": np.arange(60) >= 30}
    ds = Dataset(name="av", root=Path("."), tr=2.0, runs=runs, subjects=["01"], rois=rois,
                 load_responses=lambda s: Responses(s, resp), delays=(0,))
    return ds, joint, audio, Responses("01", resp)


def test_removing_audio_features_lowers_auditory_not_visual_alignment():
    ds, joint, audio, responses = audiovisual_study()
    result = feature_removal(ds, joint, audio, responses, n_boot=300, block_len=10)
    aud, vis = result.roi["auditory"], result.roi["visual"]
    assert aud["r_full"] > 0.5 and vis["r_full"] > 0.5
    assert aud["drop"] > 0.4 and aud["q"] < 0.05 and aud["ci_low"] > 0
    assert abs(vis["drop"]) < 0.05 and vis["ci_low"] <= 0 <= vis["ci_high"] + 0.02
    assert np.mean(result.voxel_q[ds.rois["auditory"]] < 0.05) > 0.9
    assert np.mean(result.voxel_q[ds.rois["visual"]] < 0.05) < 0.2


def test_residualizer_sees_only_training_rows():
    """Changing held-out feature values must not change the residuals of training rows."""
    ds, joint, audio, _ = audiovisual_study()
    plan = evaluation_plan(ds)
    train = plan.folds[0][0]
    before = residualize(joint, audio, ds, train)
    tampered = {k: v.copy() for k, v in joint.items()}
    tampered["test"] = tampered["test"] * 0 + 5.0 + np.random.default_rng(9).standard_normal(tampered["test"].shape)
    after = residualize(tampered, audio, ds, train)
    for run in ("a", "b", "c"):
        np.testing.assert_allclose(before[run], after[run], atol=1e-5)


def test_residual_is_orthogonal_to_source_on_training_rows():
    """Least-squares residuals (small alphas win here) are uncorrelated with the source they were fit on."""
    ds, joint, audio, _ = audiovisual_study()
    plan = evaluation_plan(ds)
    train = plan.folds[0][0]
    res = residualize(joint, audio, ds, train)
    R = np.concatenate([res[r] for r in ("a", "b", "c")])
    S = np.concatenate([audio[r] for r in ("a", "b", "c")])
    S = S - S.mean(0)
    corr = (R - R.mean(0)).T @ S / np.outer(np.linalg.norm(R - R.mean(0), axis=0), np.linalg.norm(S, axis=0))
    assert np.abs(corr).max() < 0.05


def test_paired_drop_test_finds_no_drop_between_identical_predictions():
    rng = np.random.default_rng(1)
    Y, P = rng.standard_normal((100, 5)), rng.standard_normal((100, 5))
    out = paired_drop_test(Y, P, P.copy(), {"all": np.ones(5, bool)}, n_boot=200)
    assert out["roi"]["all"]["drop"] == 0 and out["roi"]["all"]["p"] == pytest.approx(1.0)


def test_roi_contrasts_use_the_same_draws_and_point_the_right_way():
    """drop(auditory) - drop(visual) is the difference of the ROI drops, significant one way only."""
    ds, joint, audio, responses = audiovisual_study()
    result = feature_removal(ds, joint, audio, responses, n_boot=300, block_len=10, contrasts="all")
    assert set(result.contrasts) == {"auditory>visual", "visual>auditory"}
    up, down = result.contrasts["auditory>visual"], result.contrasts["visual>auditory"]
    assert up["diff"] == pytest.approx(result.roi["auditory"]["drop"] - result.roi["visual"]["drop"])
    assert down["diff"] == pytest.approx(-up["diff"])
    assert up["p"] < 0.01 and up["q"] < 0.05 and up["ci_low"] > 0
    assert down["p"] > 0.5
    # the same bootstrap draws: the two directions' intervals mirror each other
    assert down["ci_low"] == pytest.approx(-up["ci_high"]) and down["ci_high"] == pytest.approx(-up["ci_low"])


def test_contrast_names_are_checked():
    from mmneuro.analyses.removal import resolve_contrasts
    from mmneuro.errors import InputError

    assert resolve_contrasts(["a>b", ("b", "a")], ["a", "b"]) == [("a", "b"), ("b", "a")]
    assert resolve_contrasts(None, ["a", "b"]) == []
    with pytest.raises(InputError, match="no ROI 'c'"):
        resolve_contrasts(["a>c"], ["a", "b"])


def test_restricting_targets_round_trips():
    from mmneuro.analyses.targets import expand_targets, restrict_targets

    ds, _, _, responses = audiovisual_study()
    keep = np.arange(60) % 3 == 0
    sub, resp = restrict_targets(ds, responses, keep)
    assert resp.n_targets == 20 and sub.rois["auditory"].sum() == 10
    np.testing.assert_array_equal(resp.runs["a"], responses.runs["a"][..., keep])
    full = expand_targets(np.arange(20.0), keep)
    assert np.isnan(full[~keep]).all() and (full[keep] == np.arange(20)).all()
