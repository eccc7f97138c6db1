"""Ground truth on the demo: the oracle reaches the noise ceiling; model features find the right ROIs."""

from __future__ import annotations

import numpy as np
import pytest

from mmneuro import pipeline
from mmneuro.analyses import heldout, noise_ceiling, summary
from mmneuro.datasets.demo import ground_truth_regressors


@pytest.mark.parametrize("subject", ["01", "02", "03"])
def test_oracle_reaches_noise_ceiling_in_every_roi(demo, subject):
    """Encoding with the true regressors gets within 0.05 of each ROI's repeat-based ceiling."""
    responses = demo.load_responses(subject)
    fit = heldout.fit_evaluate(demo, ground_truth_regressors(demo), responses, delays=(0,))
    ceiling = noise_ceiling.noise_ceiling(demo, responses)
    assert ceiling.method == "repeats"
    oracle = summary.roi_means(fit.r, demo.rois)
    roof = ceiling.roi_means(demo.rois)
    for roi in demo.rois:
        assert roof[roi] > 0.4, (roi, roof[roi])  # the ROIs do carry signal
        assert abs(oracle[roi] - roof[roi]) <= 0.05, (roi, oracle[roi], roof[roi])
    outside = ~np.any(np.stack(list(demo.rois.values())), axis=0)
    assert abs(np.nanmean(fit.r[outside])) < 0.02  # and nothing is found where there is no signal


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    """A small random-weight ViT saved like a downloaded checkpoint (exercises --weights PATH)."""
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
                       image_size=112, patch_size=16)
    folder = tmp_path_factory.mktemp("tiny-vit")
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    return folder


def test_vision_features_find_the_visual_roi(demo, tiny_vit, feature_cache):
    [result] = pipeline.encode(model="vit", subject=1, dataset=demo, weights=str(tiny_vit), out=None,
                               cache=feature_cache, progress=False, echo=None)
    auc = max(entry["roi_vs_rest_auc"]["visual"] for entry in result.summary["layers"].values())
    assert auc >= 0.8, result.summary["layers"]


def test_audio_features_find_the_auditory_roi(demo, feature_cache):
    [result] = pipeline.encode(model="melspec", subject=1, dataset=demo, out=None, cache=feature_cache,
                               progress=False, echo=None)
    assert result.summary["layers"]["logmel"]["roi_vs_rest_auc"]["auditory"] >= 0.8, result.summary


def test_constant_voxels_are_reported_and_excluded(demo_root, tmp_path):
    """A dead voxel inside the mask is named with its file and count, and scored as NaN, not as 0."""
    import shutil

    import nibabel as nib

    from mmneuro.datasets.demo import load_demo

    copy = tmp_path / "demo"
    shutil.copytree(demo_root, copy)
    bold = copy / "sub-01" / "func" / "sub-01_task-demo_run-2_bold.nii.gz"
    img = nib.load(bold)
    data = np.asarray(img.dataobj).copy()
    mask = np.asarray(nib.load(copy / "mask.nii.gz").dataobj).astype(bool)
    i, j, k = np.argwhere(mask)[7]
    data[i, j, k, :] = data[i, j, k, 0]
    nib.Nifti1Image(data, img.affine, img.header).to_filename(bold)
    ds = load_demo(copy)
    with pytest.warns(UserWarning, match=r"run-2_bold.nii.gz: 1 of \d+ targets are constant \(first indices \[7\]\)"):
        responses = ds.load_responses("01")
    assert responses.valid is not None and np.flatnonzero(~responses.valid).tolist() == [7]
    fit = heldout.fit_evaluate(ds, ground_truth_regressors(ds), responses, delays=(0,))
    assert np.isnan(fit.r[7]) and np.isfinite(np.delete(fit.r, 7)).all()
