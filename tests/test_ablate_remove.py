"""``mmneuro ablate remove`` on the demo's ground truth (issue 5, acceptance 1).

A joint audiovisual model (TVLT, tiny random config) carries both the sound and the picture of
the demo. Removing an audio model's features (``melspec``) from it must cost the auditory ROI
alignment (FDR q < 0.05) and cost it more than the visual ROI; removing a vision model's features
(tiny random ViT) must do the mirror. The demo's auditory ROI is driven by the sound envelope and
spectrum, its visual ROI by luminance and colour (``ground_truth/README.md``), so these are the
known answers.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from strict_json import read_json
from mmneuro.ablate import remove


@pytest.fixture(autouse=True)
def one_blas_thread():
    """On a shared 2-core machine spinning BLAS threads make these small fits ~10x slower."""
    with threadpool_limits(1):
        yield


def run_cli(argv: list[str]):
    parser = argparse.ArgumentParser()
    remove.add_arguments(parser)
    return remove.run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def removals(demo_root, feature_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    common = ["--dataset", str(demo_root), "--subject", "1", "--model", "tvlt", "--weights", "random",
              "--layers", "-1", "--n-boot", "500", "--out", str(out), "--cache", str(feature_cache), "--no-progress"]
    folders = {
        "audio": run_cli(common + ["--remove", "melspec"]),
        "visual": run_cli(common + ["--remove", "vit", "--remove-weights", "random"]),
    }
    return {k: (f, read_json(f / "results.json")) for k, f in folders.items()}


def test_removing_audio_costs_the_auditory_roi_more_than_the_visual(removals):
    folder, res = removals["audio"]
    assert folder.name.rsplit("-", 1)[0] == "tvlt_random-weights-minus-melspec"  # <label>-<config digest>
    assert res["random_weights"] == {"joint": True, "removed": False}
    [layer] = res["layers"]
    roi = res["by_layer"][layer]["roi"]
    assert roi["auditory"]["r_full"] > 0.3 and roi["visual"]["r_full"] > 0.3  # the joint model sees and hears
    assert roi["auditory"]["drop"] > 0.2 and roi["auditory"]["q"] < 0.05 and roi["auditory"]["ci_low"] > 0
    assert abs(roi["visual"]["drop"]) < 0.05
    contrast = res["by_layer"][layer]["contrasts"]["auditory>visual"]
    assert contrast["q"] < 0.05 and contrast["ci_low"] > 0


def test_removing_vision_costs_the_visual_roi_more_than_the_auditory(removals):
    folder, res = removals["visual"]
    assert folder.name.rsplit("-", 1)[0] == "tvlt_random-weights-minus-vit_random-weights"
    [layer] = res["layers"]
    roi = res["by_layer"][layer]["roi"]
    assert roi["visual"]["drop"] > 0.2 and roi["visual"]["q"] < 0.05 and roi["visual"]["ci_low"] > 0
    assert roi["auditory"]["drop"] < 0.05 and roi["auditory"]["q"] > 0.05  # no loss (the residual may even gain)
    contrast = res["by_layer"][layer]["contrasts"]["visual>auditory"]
    assert contrast["q"] < 0.05 and contrast["ci_low"] > 0


def test_result_folder_is_complete_and_consistent(removals, demo):
    import nibabel as nib

    folder, res = removals["audio"]
    for name in ("results.json", "arrays.npz", "provenance.json", "figure.png"):
        assert (folder / name).is_file(), name
    [layer] = res["layers"]
    arrays = np.load(folder / "arrays.npz")
    drop = arrays[f"drop_{layer}"]
    np.testing.assert_allclose(drop, arrays[f"r_full_{layer}"] - arrays[f"r_residual_{layer}"], atol=1e-6)
    # ROI numbers are the means of the per-voxel arrays; voxels outside the ROIs were not encoded
    for k, mask in demo.rois.items():
        assert res["by_layer"][layer]["roi"][k]["drop"] == pytest.approx(float(np.mean(drop[mask])), abs=1e-5)
    outside = ~np.any(np.stack(list(demo.rois.values())), axis=0)
    assert np.isnan(drop[outside]).all()
    img = nib.load(folder / f"drop_{layer}.nii.gz")
    assert img.shape == demo.mask_img.shape
    prov = read_json(folder / "provenance.json")
    assert prov["config"]["removed"]["model"] == "melspec" and prov["weights"]["joint"]["is_random"]


def test_bad_requests_fail_with_what_to_do(demo_root, feature_cache, tmp_path):
    from mmneuro.errors import InputError

    base = ["--dataset", str(demo_root), "--out", str(tmp_path), "--cache", str(feature_cache), "--no-progress"]
    with pytest.raises(InputError, match="no 'tiny' preset"):
        run_cli(base + ["--model", "minilm", "--weights", "random", "--remove", "melspec"])
    with pytest.raises(InputError, match="random weights only"):
        run_cli(base + ["--model", "tvlt", "--config", "{}", "--remove", "melspec"])
