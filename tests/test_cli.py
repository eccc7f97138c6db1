"""The `mmneuro` command end to end on the demo, its labels, and its errors on bad input."""

from __future__ import annotations


import nibabel as nib
import numpy as np
import pytest

from strict_json import read_json
from mmneuro import pipeline
from mmneuro.cli import main
from mmneuro.results import latest_result


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_encode_writes_scores_maps_figure_provenance(demo_root, feature_cache, tmp_path, capsys):
    out = tmp_path / "results"
    code, stdout, _ = run_cli(["encode", "--model", "melspec", "--subject", "1", "--dataset", str(demo_root),
                               "--out", str(out), "--cache", str(feature_cache), "--no-progress"], capsys)
    assert code == 0
    folder = latest_result(out / "demo" / "sub-01", "melspec")
    assert stdout.strip().splitlines()[-1] == str(folder)  # the last line is the results folder
    assert "ceiling" in stdout and "auditory" in stdout  # the table
    assert sorted(p.name for p in folder.iterdir()) == [
        ".mmneuro-result.json", "ceiling_r.nii.gz", "figure.png", "provenance.json", "r_logmel.nii.gz", "scores.json"]
    scores = read_json(folder / "scores.json")
    assert scores["best_layer"] == "logmel" and scores["random_weights"] is False
    assert set(scores["layers"]["logmel"]["roi_r"]) == {"visual", "motion", "auditory", "multisensory", "language"}
    assert scores["ceiling"]["method"] == "repeats"
    # the r map holds the same numbers as the ROI summary
    mask = nib.load(demo_root / "mask.nii.gz").get_fdata() > 0
    r_map = nib.load(folder / "r_logmel.nii.gz").get_fdata()
    assert r_map.shape == mask.shape
    aud = nib.load(demo_root / "ground_truth" / "roi-auditory_mask.nii.gz").get_fdata() > 0
    assert r_map[aud].mean() == pytest.approx(scores["layers"]["logmel"]["roi_r"]["auditory"], abs=1e-5)
    prov = read_json(folder / "provenance.json")
    assert {"command", "config", "versions", "git_revision", "weights", "seed", "timings_s"} <= set(prov)
    assert prov["versions"]["numpy"] == np.__version__ and prov["seed"] == 0
    assert prov["timings_s"]["features"] > 0 and prov["timings_s"]["ridge"] > 0


def test_missing_weights_exit_nonzero_with_guidance(demo_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    code, stdout, err = run_cli(["encode", "--model", "vit", "--dataset", str(demo_root), "--out",
                                 str(tmp_path / "r"), "--no-progress"], capsys)
    assert code != 0
    assert "--weights random" in err and "--weights /path" in err and "--download" in err
    assert not (tmp_path / "r").exists()


def test_random_weights_are_labelled_everywhere(demo, feature_cache, tmp_path, capsys):
    from transformers import ViTConfig

    tiny = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     image_size=32, patch_size=8)
    [result] = pipeline.encode(model="vit", subject=1, dataset=demo, weights="random", out=tmp_path,
                               cache=feature_cache, progress=False, model_options={"config": tiny})
    printed = capsys.readouterr().out
    assert "[RANDOM WEIGHTS]" in printed
    assert result.out_dir.name.rsplit("-", 1)[0] == "vit_random-weights"
    scores = read_json(result.out_dir / "scores.json")
    assert scores["random_weights"] is True and scores["weights"]["kind"] == "random"
    prov = read_json(result.out_dir / "provenance.json")
    assert prov["weights"]["is_random"] is True


def test_corrupt_features_file_is_named_and_nothing_is_written(demo_root, tmp_path, capsys):
    bad = tmp_path / "feats.npz"
    bad.write_bytes(b"not a zip file")
    out = tmp_path / "results"
    code, _, err = run_cli(["encode", "--model", "mine", "--features", str(bad), "--dataset", str(demo_root),
                            "--out", str(out), "--no-progress"], capsys)
    assert code == 2 and str(bad) in err
    assert not out.exists()


def test_features_with_mismatched_times_name_the_numbers(demo, demo_root, tmp_path, capsys):
    folder = tmp_path / "feats"  # one <run>.npz per run (a single file serves a one-run dataset only)
    folder.mkdir()
    for run in demo.runs:
        np.savez(folder / f"{run.name}.npz", times=run.tr_times, layer=np.zeros((run.n_trs, 3)))
    np.savez(folder / "train-02.npz", times=np.arange(5.0), layer=np.zeros((4, 3)))
    code, _, err = run_cli(["encode", "--model", "mine", "--features", str(folder), "--dataset", str(demo_root),
                            "--out", str(tmp_path / "r"), "--no-progress"], capsys)
    assert code == 2 and "train-02.npz" in err and "4 rows" in err and "5" in err


def test_failure_while_writing_leaves_no_result_folder(demo, feature_cache, tmp_path, monkeypatch):
    import mmneuro.plotting.figures as figures

    def broken(*args, **kwargs):
        raise RuntimeError("disk full while drawing")

    monkeypatch.setattr(figures, "encode_figure", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        pipeline.encode(model="melspec", subject=1, dataset=demo, out=tmp_path, cache=feature_cache,
                        progress=False, echo=None)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


def test_unknown_subject_lists_the_usable_ones(demo_root, tmp_path, capsys):
    code, _, err = run_cli(["encode", "--model", "melspec", "--subject", "7", "--dataset", str(demo_root),
                            "--out", str(tmp_path)], capsys)
    assert code == 2 and "subject '7'" in err and "01, 02, 03" in err


def test_missing_dataset_folder_says_what_to_do(tmp_path, capsys):
    code, _, err = run_cli(["encode", "--model", "melspec", "--dataset", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "nowhere" in err


def test_datasets_info_reports_alice_exclusions(alice_root, capsys):
    code, out, _ = run_cli(["datasets", "info", str(alice_root)], capsys)
    assert code == 0 and "27 subjects" in out and "subject 33 excluded" in out
