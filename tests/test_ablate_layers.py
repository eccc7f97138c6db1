"""`mmneuro ablate layers`: the face on the demo (one subject, time-block CIs) and on the real
Alice data (27 subjects, acceptance: MiniLM's best layer r >= 0.15 in LATL and LPTL, above word rate)."""

from __future__ import annotations

import argparse

import nibabel as nib
import numpy as np
import pytest

from strict_json import read_json
from mmneuro.ablate import layers as face
from mmneuro.errors import InputError
from mmneuro.results import latest_result


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    face.add_arguments(parser)
    return parser.parse_args(argv)


def test_demo_one_subject_writes_results_maps_figure_provenance(demo_root, feature_cache, tmp_path, capsys):
    args = parse(["--dataset", str(demo_root), "--subject", "1", "--model", "minilm", "--layers", "0", "3", "6",
                  "--n-boot", "200", "--out", str(tmp_path), "--cache", str(feature_cache), "--no-progress"])
    folder = face.run(args)
    assert folder == latest_result(tmp_path / "demo" / "sub-01" / "ablate-layers", "minilm")
    assert sorted(p.name for p in folder.iterdir()) == [
        ".mmneuro-result.json", "arrays.npz", "best_layer.nii.gz", "figure.png", "provenance.json", "r_layer-0.nii.gz", "r_layer-3.nii.gz",
        "r_layer-6.nii.gz", "results.json"]
    res = read_json(folder / "results.json")
    assert res["ci_method"] == "time-blocks" and res["subjects"] == ["01"] and res["random_weights"] is False
    assert res["layers"] == ["layer-0", "layer-3", "layer-6"] and res["ceiling"]["method"] == "repeats"
    table = capsys.readouterr().out
    assert "mid-first" in table and "language" in table

    # the maps hold the numbers of results.json: ROI mean of the r map = the layer's ROI r
    gt = demo_root / "ground_truth"
    arrays = np.load(folder / "arrays.npz")
    for roi in ("language", "auditory"):
        mask = nib.load(gt / f"roi-{roi}_mask.nii.gz").get_fdata() > 0
        for j, layer in enumerate(res["layers"]):
            r_map = nib.load(folder / f"r_{layer}.nii.gz").get_fdata()
            entry = res["per_layer"][layer][roi]
            assert r_map[mask].mean() == pytest.approx(entry["r"], abs=1e-5)
            assert entry["ci_low"] <= entry["r"] <= entry["ci_high"]
            assert entry["normalized"] == pytest.approx(entry["r"] / res["ceiling"]["roi_mean"][roi], rel=1e-6)
            assert arrays["roi_r"][0, j, res["rois"].index(roi)] == pytest.approx(entry["r"])
        best = res["best_layer"][roi]
        assert res["best"][roi]["r"] == max(res["per_layer"][k][roi]["r"] for k in res["layers"])
        # best_layer.nii.gz: per voxel, the 1-based position of the layer with the highest r
        stack = np.stack([nib.load(folder / f"r_{k}.nii.gz").get_fdata()[mask] for k in res["layers"]])
        assert np.array_equal(nib.load(folder / "best_layer.nii.gz").get_fdata()[mask], stack.argmax(0) + 1)
        assert best in res["layers"]
    assert arrays["boot_r"].shape == (200, 3, 5)
    # --targets rois (the default): only the ROIs' voxels are encoded, the maps are 0 elsewhere
    outside = (nib.load(demo_root / "mask.nii.gz").get_fdata() > 0) & ~np.any(
        [nib.load(gt / f"roi-{k}_mask.nii.gz").get_fdata() > 0 for k in res["rois"]], axis=0)
    assert not nib.load(folder / "r_layer-3.nii.gz").get_fdata()[outside].any()
    assert not nib.load(folder / "best_layer.nii.gz").get_fdata()[outside].any() and res["targets"] == "rois"

    # ground truth of the demo: the language ROI is driven by word rate, the visual ROI is not
    base = res["baseline"]["roi"]
    assert res["baseline"]["name"] == "word rate"
    assert base["language"]["r"] > 0.2 and base["language"]["ci_low"] > 0
    assert base["language"]["r"] > base["visual"]["r"] + 0.2
    # comparisons: all five, with bootstrap CIs and FDR q
    for roi in res["rois"]:
        assert set(res["comparisons"][roi]) == {"first", "last", "baseline", "intermediate_vs_first",
                                                "intermediate_vs_last"}
    prov = read_json(folder / "provenance.json")
    assert prov["config"]["study"] == "layers" and prov["config"]["n_boot"] == 200 and prov["seed"] == 0
    assert prov["weights"]["identity"] == res["weights"]["identity"]


def test_unknown_subject_or_baseline_fails_with_the_choices(demo_root, tmp_path):
    with pytest.raises(InputError, match="usable subjects: 01, 02, 03"):
        face.layerwise(dataset=demo_root, subject="7", out=tmp_path)
    with pytest.raises(InputError, match="auto, word-rate, none"):
        face.layerwise(dataset=demo_root, subject="1", baseline="rate", out=tmp_path)
    assert not list(tmp_path.iterdir())


def test_alice_minilm_27_subjects_meets_the_acceptance(alice_root, feature_cache, tmp_path):
    """Issue 5, acceptance 5, on the real data (skipped when ../shared/data/alice-brennan2016 is absent)."""
    from scipy import stats

    result = face.layerwise(dataset=alice_root, subject="all", model="minilm", out=tmp_path, cache=feature_cache,
                            progress=False, echo=None)
    study, res = result.study, result.summary
    assert len(study.subjects) == 27 and res["ci_method"] == "subjects"
    assert (latest_result(tmp_path / "alice" / "sub-all" / "ablate-layers", "minilm") / "results.json").exists()
    for roi in ("LATL", "LPTL"):
        best = res["best"][roi]
        assert best["r"] >= 0.15 and best["ci_low"] > res["baseline"]["roi"][roi]["r"], (roi, best)
        assert res["comparisons"][roi]["baseline"]["q"] < 0.05
        # the group mean is the mean of the 27 subjects' ROI r; the test against word rate is a paired t-test
        r = study.rois.index(roi)
        b = study.layers.index(best["layer"])
        assert best["r"] == pytest.approx(study.roi_r[:, b, r].mean())
        ref = stats.ttest_rel(study.roi_r[:, b, r], study.baseline_r[:, r])
        assert res["comparisons"][roi]["baseline"]["p"] == pytest.approx(ref.pvalue, rel=1e-9)
