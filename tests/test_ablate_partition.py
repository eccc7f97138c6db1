"""``mmneuro ablate partition`` on the demo's ground truth (issue 5, acceptance 1).

With spaces {audio: melspec, visual: tiny random ViT}, the auditory ROI's unique variance must go
to audio and the visual ROI's to visual (significant dominance, FDR), and feature removal from a
joint TVLT must name the same space in those two ROIs.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from strict_json import read_json
from mmneuro.ablate import partition


@pytest.fixture(autouse=True)
def one_blas_thread():
    """On a shared 2-core machine spinning BLAS threads make the banded-ridge SVDs ~10x slower."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def study(demo_root, feature_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    parser = argparse.ArgumentParser()
    partition.add_arguments(parser)
    args = parser.parse_args(["--dataset", str(demo_root), "--space", "audio=melspec", "--space", "visual=vit",
                              "--space-weights", "visual=random", "--joint", "tvlt", "--joint-weights", "random",
                              "--n-iter", "5", "--n-boot", "300", "--out", str(out), "--cache", str(feature_cache),
                              "--no-progress"])
    with threadpool_limits(1):
        folder = partition.run(args)
    return folder, read_json(folder / "results.json")


def test_unique_variance_goes_to_the_matching_space(study):
    folder, res = study
    assert folder.name.rsplit("-", 1)[0] == "audio-melspec+visual-vit_random-weights"  # <label>-<config digest>
    stats = res["stats"]
    aud, vis = stats["roi"]["auditory"], stats["roi"]["visual"]
    assert aud["unique_audio"]["value"] > 0.1 and aud["unique_audio"]["value"] > 5 * max(aud["unique_visual"]["value"], 0.01)
    assert stats["dominance"]["auditory"]["audio>visual"]["q"] < 0.05
    # the tiny random ViT explains the visual ROI weakly (held-out R² ~0.1), so its dominance there is
    # a clear point estimate (several times the audio part) but its interval is wide
    assert vis["unique_visual"]["value"] > 0.05 and vis["unique_visual"]["value"] > 3 * max(vis["unique_audio"]["value"], 0.01)
    assert stats["dominance"]["visual"]["visual>audio"]["diff"] > 0.05


def test_partition_and_removal_agree_where_the_truth_is_unimodal(study):
    _, res = study
    comp = res["comparison"]
    assert comp["auditory"]["partition_top"] == comp["auditory"]["removal_top"] == "audio"
    assert comp["visual"]["partition_top"] == comp["visual"]["removal_top"] == "visual"
    assert res["removal"]["by_space"]["audio"]["auditory"]["q"] < 0.05
    assert res["removal"]["by_space"]["visual"]["visual"]["q"] < 0.05


def test_partition_folder_is_complete_and_identities_hold(study, demo):
    folder, res = study
    for name in ("results.json", "arrays.npz", "provenance.json", "figure.png", "unique_audio.nii.gz",
                 "unique_visual.nii.gz", "shared.nii.gz"):
        assert (folder / name).is_file(), name
    a = np.load(folder / "arrays.npz")
    keep = np.isfinite(a["shared"])
    assert keep.sum() == np.any(np.stack(list(demo.rois.values())), axis=0).sum()
    # set-theoretic identities per voxel: unique(A) + shared = R²(A); R²(A∪B) = unique(A) + unique(B) + shared
    np.testing.assert_allclose((a["unique_audio"] + a["shared"])[keep], a["r2_audio"][keep], atol=1e-5)
    np.testing.assert_allclose((a["unique_audio"] + a["unique_visual"] + a["shared"])[keep],
                               a["r2_audio+visual"][keep], atol=1e-5)
    assert res["random_weights"] == {"audio": False, "visual": True, "joint": True}
