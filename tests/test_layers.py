"""Layer study on synthetic subjects whose best layer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmneuro.analyses.layers import layer_study
from mmneuro.datasets.base import Dataset, Responses, StimulusRun
from mmneuro.errors import InputError


def layered_study(n_subjects: int = 6, seed: int = 0):
    """Responses follow a latent L; 'layer-1' = L + lots of noise, 'layer-2' = L + little noise,
    'layer-3' = L + some noise; the baseline is unrelated. Best layer: layer-2."""
    rng = np.random.default_rng(seed)
    runs = [StimulusRun(n, (np.arange(100) + 0.5) * 2.0) for n in ("r1", "r2", "r3")]
    latent = {r.name: rng.standard_normal((100, 4)) for r in runs}
    noise = {"layer-1": 2.0, "layer-2": 0.2, "layer-3": 1.0}
    features = {layer: {r: (latent[r] + s * rng.standard_normal((100, 4))).astype(np.float32) for r in latent}
                for layer, s in noise.items()}
    baseline = {r: rng.standard_normal((100, 2)).astype(np.float32) for r in latent}
    W = rng.standard_normal((4, 8))
    subjects = [f"{i:02d}" for i in range(n_subjects)]
    data = {s: Responses(s, {r: (latent[r] @ W + 3.0 * rng.standard_normal((100, 8)))[None].astype(np.float32)
                             for r in latent}) for s in subjects}
    rois = {"a": np.arange(8) < 4, "b": np.arange(8) >= 4}
    ds = Dataset(name="layers", root=Path("."), tr=2.0, runs=runs, subjects=subjects, rois=rois,
                 load_responses=data.__getitem__, evaluation="leave-one-run-out", delays=(0,))
    return ds, features, baseline


def test_best_layer_is_found_and_beats_first_last_and_baseline():
    ds, features, baseline = layered_study()
    study = layer_study(ds, features, baseline=baseline, progress=False)
    assert study.roi_r.shape == (6, 3, 2) and study.ceiling.shape == (6, 2)
    assert study.best_layer == {"a": "layer-2", "b": "layer-2"}
    for roi in ("a", "b"):
        for other in ("first", "last", "baseline"):
            c = study.comparisons[roi][other]
            assert c["mean_difference"] > 0 and c["q"] < 0.05, (roi, other, c)
    g = study.group["layer-2"]
    assert np.all(g.ci_low < g.mean) and np.all(g.mean < g.ci_high)
    # cross-subject ceiling (no repeats): subjects share the latent signal
    assert np.all(study.ceiling > 0.3)


def test_one_subject_is_not_a_group():
    ds, features, _ = layered_study()
    with pytest.raises(InputError, match="at least 2 subjects"):
        layer_study(ds, features, subjects=["00"], progress=False)
