"""Pipeline logic on small in-memory datasets with a known answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmneuro import pipeline
from mmneuro.analyses import heldout, noise_ceiling, summary
from mmneuro.datasets.base import Dataset, Responses, StimulusRun
from mmneuro.errors import InputError


def synthetic(evaluation: str = "heldout", n_targets: int = 40, snr_targets: int = 20, seed: int = 0):
    """Features (n, 5) per run; the first ``snr_targets`` targets are a linear map of them plus noise."""
    rng = np.random.default_rng(seed)
    tr = 2.0
    names = ["a", "b", "c", "test"] if evaluation == "heldout" else ["h1", "h2"]
    lengths = [120, 100, 110, 90] if evaluation == "heldout" else [150, 150]
    runs = [StimulusRun(n, (np.arange(k) + 0.5) * tr, split="test" if n == "test" else "train")
            for n, k in zip(names, lengths)]
    W = np.zeros((5, n_targets))
    W[:, :snr_targets] = rng.standard_normal((5, snr_targets))
    feats, resp = {}, {}
    for run in runs:
        x = rng.standard_normal((run.n_trs, 5)).astype(np.float32)
        feats[run.name] = x
        reps = 2 if run.name == "test" else 1
        signal = x @ W
        resp[run.name] = np.stack([signal + rng.standard_normal(signal.shape) for _ in range(reps)]).astype(np.float32)
    rois = {"signal": np.arange(n_targets) < snr_targets, "noise": np.arange(n_targets) >= snr_targets}
    ds = Dataset(name="synthetic", root=Path("."), tr=tr, runs=runs, subjects=["01"], rois=rois,
                 load_responses=lambda s: Responses(s, resp), evaluation=evaluation, delays=(0,))
    return ds, feats, Responses("01", resp)


@pytest.mark.parametrize("evaluation", ["heldout", "leave-one-run-out"])
def test_fit_evaluate_recovers_signal_targets(evaluation):
    ds, feats, resp = synthetic(evaluation)
    fit = heldout.fit_evaluate(ds, feats, resp)
    assert fit.r.shape == (40,)
    assert np.nanmean(fit.r[:20]) > 0.7
    assert abs(np.nanmean(fit.r[20:])) < 0.1


def test_repeat_ceiling_bounds_the_true_model():
    ds, feats, resp = synthetic("heldout")
    ceiling = noise_ceiling.noise_ceiling(ds, resp)
    assert ceiling.method == "repeats"
    fit = heldout.fit_evaluate(ds, feats, resp)
    # a near-perfect linear model sits close to the ceiling on signal targets, never far above it
    assert abs(np.mean(fit.r[:20]) - np.mean(ceiling.r[:20])) < 0.05


def test_mismatched_feature_length_names_run_and_numbers():
    ds, feats, resp = synthetic("heldout")
    feats["b"] = feats["b"][:-3]
    with pytest.raises(InputError, match=r"run b: features have 97 rows but the run has 100 TRs"):
        heldout.fit_evaluate(ds, feats, resp)


def test_mismatched_response_length_names_subject_and_numbers():
    ds, feats, resp = synthetic("heldout")
    resp.runs["c"] = resp.runs["c"][:, :-1]
    with pytest.raises(InputError, match=r"run c: responses have 109 TRs but the stimulus run has 110"):
        heldout.fit_evaluate(ds, feats, resp)


def test_invalid_targets_are_excluded_not_scored():
    ds, feats, resp = synthetic("heldout")
    valid = np.ones(40, bool)
    valid[3] = False
    fit = heldout.fit_evaluate(ds, feats, Responses("01", resp.runs, valid=valid))
    assert np.isnan(fit.r[3]) and np.isfinite(np.delete(fit.r, 3)).all()


def test_select_layers_by_name_and_index():
    layers = ["layer-0", "layer-1", "layer-2"]
    assert pipeline.select_layers(layers, ["1", "layer-2", "-1"]) == ["layer-1", "layer-2", "layer-2"]
    assert pipeline.select_layers(layers, None) == layers
    with pytest.raises(InputError, match="layer-7.*available layers: layer-0, layer-1, layer-2"):
        pipeline.select_layers(layers, ["layer-7"])


def test_result_folder_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "out" / "model"
    with pytest.raises(RuntimeError):
        with pipeline.ResultFolder(final) as tmp:
            (tmp / "scores.json").write_text("{}")
            raise RuntimeError("boom")
    assert not final.exists() and list((tmp_path / "out").iterdir()) == []


def test_result_folder_replaces_previous_result(tmp_path):
    final = tmp_path / "model"
    for text in ("first", "second"):
        with pipeline.ResultFolder(final) as tmp:
            (tmp / "x.txt").write_text(text)
    assert (final / "x.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_roi_vs_rest_auc_ranks_roi_voxels():
    r = np.array([0.9, 0.8, 0.02, 0.0, -0.1, 0.05])
    rois = {"a": np.array([1, 1, 0, 0, 0, 0], bool), "b": np.array([0, 0, 1, 0, 0, 0], bool)}
    auc = summary.roi_vs_rest_auc(r, rois)
    assert auc["a"] == 1.0  # both ROI voxels beat all three outside voxels
    assert auc["b"] == pytest.approx(2 / 3)  # 0.02 beats 0.0 and -0.1, loses to 0.05


def test_torch_backend_gives_the_numpy_scores():
    ds, feats, resp = synthetic("heldout")
    a = heldout.fit_evaluate(ds, feats, resp, backend="numpy")
    b = heldout.fit_evaluate(ds, feats, resp, backend="torch")
    np.testing.assert_allclose(a.r, b.r, atol=1e-4)
    np.testing.assert_allclose(a.alpha, b.alpha, rtol=1e-6)
