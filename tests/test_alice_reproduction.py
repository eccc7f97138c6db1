"""Real data: MiniLM on Alice reproduces the reference result of ../shared/data/alice-brennan2016/README.md."""

from __future__ import annotations

import numpy as np
import pytest

from mmneuro import pipeline

REFERENCE_LAYER3 = {"LATL": 0.18, "RATL": 0.11, "LPTL": 0.19, "LIPL": 0.13, "LPreM": 0.12, "LIFG": 0.10}
REFERENCE_WORD_RATE = {"LATL": 0.04, "LPTL": 0.09}


@pytest.fixture(scope="module")
def alice(alice_root):
    return pipeline.load_dataset(alice_root)


def test_minilm_layer3_matches_reference(alice, feature_cache):
    results = pipeline.encode(model="minilm", subject="all", dataset=alice, layers=["layer-3"], out=None,
                              cache=feature_cache, progress=False, echo=None)
    assert len(results) == 27
    group = pipeline.group_summary(results)["layers"]["layer-3"]["roi_r_mean"]
    for roi in ("LATL", "LPTL"):
        assert abs(group[roi] - REFERENCE_LAYER3[roi]) <= 0.03, (roi, group[roi])


def test_word_rate_baseline_matches_reference(alice, tmp_path):
    """A constant 1 per word through the same resampling and delays (the README's baseline)."""
    from mmneuro.stimuli.words import read_words

    words = read_words(alice.runs[0].words)
    np.savez(tmp_path / "rate.npz", times=words.midpoints, rate=np.ones((len(words), 1), np.float32))
    results = pipeline.encode(model="word-rate", subject="all", dataset=alice, features=tmp_path / "rate.npz",
                              out=None, progress=False, echo=None)
    group = pipeline.group_summary(results)["layers"]["rate"]["roi_r_mean"]
    for roi, ref in REFERENCE_WORD_RATE.items():
        assert abs(group[roi] - ref) <= 0.03, (roi, group[roi])
