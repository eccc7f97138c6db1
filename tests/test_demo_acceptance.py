"""Ground truth on the demo: the oracle reaches the noise ceiling; model features find the right ROIs."""

from __future__ import annotations

import numpy as np
import pytest

from mmneuro import pipeline
from mmneuro.datasets.demo import ground_truth_regressors


@pytest.mark.parametrize("subject", ["01", "02", "03"])
def test_oracle_reaches_noise_ceiling_in_every_roi(demo, subject):
    """Encoding with the true regressors gets within 0.05 of each ROI's repeat-based ceiling."""
    responses = demo.load_responses(subject)
    fit = pipeline.fit_evaluate(demo, ground_truth_regressors(demo), responses, delays=(0,))
    ceiling = pipeline.noise_ceiling(demo, responses)
    assert ceiling.method == "repeats"
    oracle = pipeline.roi_means(fit.r, demo.rois)
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
