"""Each on-disk format, as labs have it: `datasets init`, `datasets check`, then `mmneuro encode` recovers the plant.

For every layout the miniature (tests/formats.py) carries a planted signal in known targets.
Acceptance: the held-out r map separates planted from other targets (AUC >= 0.9) and the
planted targets' mean r is within 0.05 of the oracle's (the noise-free signal correlated with
the same cleaned, held-out responses the model is scored on).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from formats import write_algonauts, write_bids, write_movie10
from strict_json import read_json
from mmneuro import cli, pipeline
from mmneuro.analyses.heldout import evaluation_plan, heldout_responses
from mmneuro.datasets.description import read_description, write_description
from mmneuro.encoding import pearson_r
from mmneuro.results import latest_result


def oracle_r(ds, subject: str, signal: dict[str, np.ndarray]) -> np.ndarray:
    """Pearson r of the true signal with the cleaned held-out responses, per target."""
    plan = evaluation_plan(ds)
    truth = np.concatenate([signal[r.name] for r in plan.runs])[plan.scored]
    return pearson_r(heldout_responses(ds, ds.load_responses(subject)), truth)


def encode_cli(root: Path, out: Path, features: Path, subject: str = "all") -> None:
    code = cli.main(["encode", "--dataset", str(root), "--model", "planted", "--features", str(features),
                     "--subject", subject, "--out", str(out), "--no-progress", "--cache", str(out / "cache")])
    assert code == 0


def r_map(folder: Path, layer: str = "planted") -> np.ndarray:
    """The r map a result folder holds, whatever the target space wrote (.npy, NIfTI or GIfTI L/R)."""
    import nibabel as nib

    if (folder / f"r_{layer}.npy").is_file():
        return np.load(folder / f"r_{layer}.npy")
    gii = [folder / f"r_{layer}_hemi-{h}.func.gii" for h in "LR"]
    if all(p.is_file() for p in gii):
        return np.concatenate([nib.load(p).agg_data() for p in gii])
    raise AssertionError(f"no r map in {sorted(p.name for p in folder.iterdir())}")


def assert_recovered(ds, out_folder: Path, truth, subject: str, r: np.ndarray | None = None) -> tuple[float, float]:
    r = r_map(out_folder) if r is None else r
    r = np.nan_to_num(r, nan=0.0)
    auc = roc_auc_score(truth.planted, r)
    oracle = oracle_r(ds, subject, truth.signal[subject])
    got, best = float(r[truth.planted].mean()), float(np.nanmean(oracle[truth.planted]))
    print(f"\n{ds.name} sub-{subject}: AUC {auc:.3f}, planted mean r {got:.3f} vs oracle {best:.3f} "
          f"(gap {got - best:+.3f})")
    assert auc >= 0.9, auc
    assert abs(got - best) <= 0.05, (got, best)
    return auc, got - best


def test_bids_fmriprep_volume(tmp_path, capsys):
    root = tmp_path / "bids"
    truth = write_bids(root)
    assert cli.main(["datasets", "init", str(root)]) == 0
    printed = capsys.readouterr().out
    assert "TR 1.5 s from the sidecars" in printed and "using MNI152NLin2009cAsym" in printed
    desc = read_description(root)
    run = desc.runs[0]
    assert desc.format == "bids" and desc.targets.kind == "volume" and run.name == "task-movie_run-1"
    assert run.files[0].file == ("derivatives/fmriprep/sub-{subject}/func/sub-{subject}_task-movie_run-1_space-"
                                 "MNI152NLin2009cAsym_desc-preproc_bold.nii.gz")
    assert run.files[0].confounds.endswith("sub-{subject}_task-movie_run-1_desc-confounds_timeseries.tsv")
    assert run.audio == "stimuli/movie_run-1.wav" and run.events.endswith("_events.tsv")
    assert "cosine*" in desc.recipe.confounds and desc.evaluation.scheme == "leave-one-run-out"
    assert cli.main(["datasets", "check", str(root)]) == 0
    out = tmp_path / "out"
    encode_cli(root, out, truth.features, subject="2")
    ds = pipeline.load_dataset(root)
    folder = latest_result(out / ds.name / "sub-02", "planted")
    assert_recovered(ds, folder, truth, "02", r=_volume_r(folder))


def _volume_r(folder: Path) -> np.ndarray:
    import nibabel as nib

    return np.asarray(nib.load(folder / "r_planted.nii.gz").dataobj).reshape(-1)


def test_bids_confounds_are_regressed(tmp_path):
    """Without the confound regression the planted voxels lose most of their r (motion x 3 dominates)."""
    root = tmp_path / "bids"
    truth = write_bids(root, subjects=("01", "02"))
    cli.main(["datasets", "init", str(root)])
    ds = pipeline.load_dataset(root)
    clean = oracle_r(ds, "01", truth.signal["01"])
    desc = read_description(root)
    write_description(desc.model_copy(update={"recipe": desc.recipe.model_copy(update={"confounds": []})}), root)
    raw = oracle_r(pipeline.load_dataset(root), "01", truth.signal["01"])
    assert np.mean(clean[truth.planted]) > np.mean(raw[truth.planted]) + 0.2


def test_bids_tr_disagreeing_with_sidecar(tmp_path):
    root = tmp_path / "bids"
    write_bids(root, subjects=("01",), n_runs=1, n_trs=40)
    cli.main(["datasets", "init", str(root)])
    text = (root / "mmneuro.toml").read_text().replace("tr = 1.5", "tr = 2.0")
    (root / "mmneuro.toml").write_text(text)
    out = tmp_path / "out"
    assert cli.main(["encode", "--dataset", str(root), "--model", "x", "--features", str(root / "features"),
                     "--out", str(out)]) == 2
    assert not out.exists()


def test_algonauts_2025(tmp_path, capsys):
    root = tmp_path / "algonauts_2025.competitors"
    truth, skipped = write_algonauts(root)
    assert cli.main(["datasets", "init", str(root)]) == 0
    printed = capsys.readouterr().out
    for why in skipped:
        assert why in printed
    desc = read_description(root)
    assert desc.format == "algonauts2025" and desc.tr == 1.49 and desc.targets.kind == "parcels"
    assert [r.name for r in desc.runs] == ["s01e01a", "s01e01b", "s01e02a", "s01e02b"]
    assert desc.runs[0].files[0].file.endswith("desc-s123456_bold.h5#*_task-s01e01a")
    assert desc.runs[0].words == "stimuli/transcripts/friends/s1/friends_s01e01a.tsv"
    assert desc.targets.atlas.endswith("desc-dseg_parcellation.nii.gz")
    assert [r.split for r in desc.runs] == ["train", "train", "train", "test"]
    # the miniature's features sit on a 1.5 s grid; the release's TR is 1.49 s
    (root / "mmneuro.toml").write_text((root / "mmneuro.toml").read_text().replace("tr = 1.49", "tr = 1.5")
                                       .replace("first_tr_time = 0.745", "first_tr_time = 0.75"))
    assert cli.main(["datasets", "check", str(root)]) == 0
    out = tmp_path / "out"
    encode_cli(root, out, truth.features)
    ds = pipeline.load_dataset(root)
    for s in ds.subjects:
        assert_recovered(ds, latest_result(out / ds.name / f"sub-{s}", "planted"), truth, s)
    scores = read_json(latest_result(out / ds.name / "sub-01", "planted") / "scores.json")
    assert scores["ceiling"]["method"] == "loo-isc"


def test_algonauts_missing_key(tmp_path):
    import h5py

    root = tmp_path / "algonauts"
    write_algonauts(root)
    cli.main(["datasets", "init", str(root)])
    path = next((root / "fmri" / "sub-02" / "func").glob("*.h5"))
    with h5py.File(path, "a") as f:
        del f[next(k for k in f.keys() if k.endswith("s01e02a"))]
    with pytest.raises(Exception) as exc:
        pipeline.resolve_subjects(pipeline.load_dataset(root), "1")
    assert path.name in str(exc.value) and "*_task-s01e02a" in str(exc.value) and "\n" not in str(exc.value)


def test_movie10_oota(tmp_path, capsys):
    root = tmp_path / "movie10"
    root.mkdir()
    truth = write_movie10(root)
    assert cli.main(["datasets", "init", str(root)]) == 0
    assert "bourne: 60 TRs" in capsys.readouterr().out
    desc = read_description(root)
    assert [(r.name, r.split, r.rows) for r in desc.runs] == [("bourne", "train", (0, 60)), ("wolf", "train", (0, 60)),
                                                              ("life", "test", (0, 50))]
    assert desc.targets.kind == "surface" and desc.targets.mesh == "fsaverage6" and desc.targets.time_axis == 1
    out = tmp_path / "out"
    encode_cli(root, out, truth.features, subject="1")
    ds = pipeline.load_dataset(root)
    assert_recovered(ds, latest_result(out / ds.name / "sub-1", "planted"), truth, "1")


def test_bids_fmriprep_surface(tmp_path):
    """fsaverage5 GIfTI per hemisphere in, r maps out as GIfTI per hemisphere (left first)."""
    root = tmp_path / "bids"
    truth = write_bids(root, space="fsaverage5", subjects=("01", "02"), n_runs=2, n_trs=100)
    assert cli.main(["datasets", "init", str(root), "--space", "fsaverage5"]) == 0
    desc = read_description(root)
    assert desc.targets.kind == "surface" and desc.targets.mesh == "fsaverage5"
    assert desc.runs[0].files[0].file.endswith("sub-{subject}_task-movie_run-1_hemi-{hemi}_space-fsaverage5_bold.func.gii")
    out = tmp_path / "out"
    encode_cli(root, out, truth.features, subject="1")
    ds = pipeline.load_dataset(root)
    folder = latest_result(out / ds.name / "sub-01", "planted")
    assert (folder / "r_planted_hemi-L.func.gii").is_file() and (folder / "r_planted_hemi-R.func.gii").is_file()
    assert_recovered(ds, folder, truth, "01")


def test_missing_hemisphere_stops_before_anything_is_written(tmp_path, capsys):
    root = tmp_path / "bids"
    write_bids(root, space="fsaverage5", subjects=("01",), n_runs=2, n_trs=40)
    cli.main(["datasets", "init", str(root), "--space", "fsaverage5"])
    gone = next((root / "derivatives" / "fmriprep" / "sub-01" / "func").glob("*run-2_hemi-R_*.func.gii"))
    gone.unlink()
    capsys.readouterr()
    out = tmp_path / "out"
    assert cli.main(["encode", "--dataset", str(root), "--model", "x", "--features", str(root / "features"),
                     "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert gone.name in err and "\n" not in err, err
    assert not out.exists()
