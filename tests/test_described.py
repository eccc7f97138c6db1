"""Dataset descriptions: schema errors, from_arrays, the described loader, and bad input that must stop early."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from mmneuro import cli, pipeline
from mmneuro.datasets.base import Dataset
from mmneuro.datasets.described import load_described
from mmneuro.datasets.description import read_description
from mmneuro.errors import InputError

DESC = """\
name = "rois"
tr = 0.8
first_tr_time = 0.4

[[runs]]
name = "movie"
events = "events.tsv"
responses = ["responses/sub-{subject}_movie.npy"]

[targets]
kind = "parcels"
names_file = "regions.txt"

[rois]
per_target = true

[evaluation]
scheme = "contiguous-folds"
folds = 2
"""


def roi_study(root: Path, n_subjects: int = 3, n_trs: int = 120, n_regions: int = 5, desc: str = DESC) -> Path:
    rng = np.random.default_rng(0)
    (root / "responses").mkdir(parents=True)
    for s in range(1, n_subjects + 1):
        np.save(root / "responses" / f"sub-{s:02d}_movie.npy", (rng.standard_normal((n_trs, n_regions)) + 5).astype(
            np.float32))
    (root / "regions.txt").write_text("\n".join(f"region{j}" for j in range(n_regions)) + "\n")
    (root / "events.tsv").write_text("onset\tduration\ttrial_type\n10\t2\tface\n40\t3\thouse\n")
    (root / "mmneuro.toml").write_text(desc)
    return root


def one_line_error(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text, text
    return text


def test_described_roi_study_loads_and_cleans(tmp_path):
    root = roi_study(tmp_path / "study")
    ds = pipeline.load_dataset(root)
    assert ds.name == "rois" and ds.tr == 0.8 and ds.subjects == ["01", "02", "03"]
    assert ds.evaluation == "contiguous-folds" and ds.eval_folds == 2 and ds.ceiling == "auto"
    run = ds.runs[0]
    np.testing.assert_allclose(run.tr_times[:3], [0.4, 1.2, 2.0])
    assert run.events == (root / "events.tsv").resolve()
    assert list(ds.rois) == [f"region{j}" for j in range(5)] and ds.rois["region2"].tolist() == [0, 0, 1, 0, 0]
    resp = ds.load_responses("sub-02")
    y = resp.runs["movie"][0].astype(np.float64)
    raw = np.load(root / "responses" / "sub-02_movie.npy").astype(np.float64)
    x = np.arange(120.0)
    resid = raw - np.stack([np.polyval(np.polyfit(x, raw[:, j], 2), x) for j in range(5)], axis=1)
    np.testing.assert_allclose(y, resid / resid.std(0), atol=1e-4)
    # the response source is a small record: a task graph ships it, not the data
    assert len(pickle.dumps(ds.load_responses)) < 20_000
    assert pickle.loads(pickle.dumps(ds.load_responses))("2").runs["movie"].shape == (1, 120, 5)


def test_from_arrays_matches_the_described_loader(tmp_path):
    root = roi_study(tmp_path / "study")
    described = pipeline.load_dataset(root)
    arrays = {f"{s:02d}": np.load(root / "responses" / f"sub-{s:02d}_movie.npy") for s in (1, 2, 3)}
    names = (root / "regions.txt").read_text().split()
    ds = Dataset.from_arrays(arrays, tr=0.8, media={"events": root / "events.tsv"}, target_names=names,
                             rois={n: np.arange(5) == j for j, n in enumerate(names)}, name="rois")
    assert ds.evaluation == "contiguous-folds" and ds.runs[0].events == root / "events.tsv"
    np.testing.assert_allclose(ds.runs[0].tr_times, described.runs[0].tr_times)
    for s in ("01", "03"):
        np.testing.assert_array_equal(ds.load_responses(s).runs["run-1"], described.load_responses(s).runs["movie"])


def test_from_arrays_runs_repeats_and_bad_shapes():
    rng = np.random.default_rng(1)
    ds = Dataset.from_arrays({"a": {"r1": rng.standard_normal((50, 3)), "t": rng.standard_normal((2, 30, 3))}},
                             tr=2.0, test_runs=["t"])
    assert ds.evaluation == "heldout" and [r.split for r in ds.runs] == ["train", "test"]
    assert ds.load_responses("a").runs["t"].shape == (2, 30, 3)
    with pytest.raises(InputError, match="subject b run r1: 40 rows but the run has 50 TRs"):
        Dataset.from_arrays({"a": {"r1": np.ones((50, 3))}, "b": {"r1": np.ones((40, 3))}}, tr=1.0)
    with pytest.raises(InputError, match="not a safe label"):
        Dataset.from_arrays({"../x": np.ones((50, 3))}, tr=1.0)
    with pytest.raises(InputError, match="not a safe label"):
        Dataset.from_arrays({"01": {"a/b": np.ones((50, 3))}}, tr=1.0)


def test_missing_key_names_file_and_key(tmp_path):
    root = roi_study(tmp_path / "study", desc=DESC.replace("tr = 0.8\n", ""))
    with pytest.raises(InputError) as exc:
        read_description(root)
    text = one_line_error(exc)
    assert str(root / "mmneuro.toml") in text and "tr: missing key" in text


def test_wrong_values_name_the_key(tmp_path):
    root = roi_study(tmp_path / "study", desc=DESC.replace('scheme = "contiguous-folds"', 'scheme = "halves"')
                     .replace("tr = 0.8", "tr = -1").replace("[rois]", "[rois]\ncolour = 1"))
    with pytest.raises(InputError) as exc:
        read_description(root)
    text = one_line_error(exc)
    assert "tr: Input should be greater than 0" in text
    assert "evaluation.scheme: Input should be 'heldout', 'leave-one-run-out' or 'contiguous-folds'" in text
    assert "rois.colour: unknown key (check its spelling)" in text


@pytest.mark.parametrize("bad", ["../outside", "a/b", "x\\\\y", ".."])
def test_unsafe_labels_and_paths_are_refused(tmp_path, bad):
    root = roi_study(tmp_path / "study", desc=DESC.replace('name = "movie"', f'name = "{bad}"'))
    with pytest.raises(InputError, match=r"runs\.0\.name: .*not a safe label"):
        read_description(root)
    root2 = roi_study(tmp_path / "study2", desc=DESC.replace('events = "events.tsv"', 'events = "../../etc/passwd"'))
    with pytest.raises(InputError, match=r"runs\.0\.events: .*relative to the dataset root, without '\.\.'"):
        read_description(root2)


def test_symlink_out_of_the_root_is_refused_without_echoing_it(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET LINE\n")
    root = roi_study(tmp_path / "study")
    (root / "events.tsv").unlink()
    (root / "events.tsv").symlink_to(secret)
    with pytest.raises(InputError) as exc:
        pipeline.load_dataset(root)
    assert "resolves outside the dataset root" in str(exc.value) and "TOP SECRET" not in str(exc.value)


def test_discovered_subject_labels_are_checked(tmp_path):
    root = roi_study(tmp_path / "study")
    np.save(root / "responses" / "sub-a..b_movie.npy", np.ones((120, 5), np.float32))
    ds = pipeline.load_dataset(root)
    assert ds.subjects == ["01", "02", "03"]
    assert any("ignored sub-a..b_movie.npy" in n for n in ds.notes)


def test_run_length_mismatch_stops_before_anything_is_written(tmp_path):
    root = roi_study(tmp_path / "study")
    np.save(root / "responses" / "sub-03_movie.npy", np.ones((100, 5), np.float32))
    out = tmp_path / "out"
    code = cli.main(["encode", "--dataset", str(root), "--model", "events", "--subject", "1", "--out", str(out),
                     "--no-progress"])
    assert code == 2 and not out.exists()
    with pytest.raises(InputError) as exc:
        pipeline.resolve_subjects(pipeline.load_dataset(root), "all")
    text = one_line_error(exc)
    assert "sub-03_movie.npy" in text and "runs.movie.responses" in text and "100 rows" in text


def test_h5_key_globs_and_missing_key(tmp_path):
    import h5py

    root = tmp_path / "study"
    root.mkdir()
    rng = np.random.default_rng(2)
    for s in ("01", "02"):
        with h5py.File(root / f"sub-{s}_bold.h5", "w") as f:
            f.create_dataset(f"ses-00{s}_task-ep1", data=rng.standard_normal((40, 4)))
            if s == "01":
                f.create_dataset("ses-009_task-ep2", data=rng.standard_normal((40, 4)))
    desc = ('name = "h5"\ntr = 1.49\n[[runs]]\nname = "ep1"\nresponses = ["sub-{subject}_bold.h5#*_task-ep1"]\n'
            '[[runs]]\nname = "ep2"\nresponses = ["sub-{subject}_bold.h5#*_task-ep2"]\n'
            '[targets]\nkind = "parcels"\n[evaluation]\nscheme = "leave-one-run-out"\n')
    (root / "mmneuro.toml").write_text(desc)
    ds = pipeline.load_dataset(root)
    assert ds.load_responses("01").runs["ep2"].shape == (1, 40, 4)
    with pytest.raises(InputError) as exc:
        ds.preflight()
    text = one_line_error(exc)
    assert "sub-02_bold.h5" in text and "no dataset matches key '*_task-ep2'" in text


def test_check_reports_sidecar_tr_and_coverage(tmp_path):
    import nibabel as nib

    root = tmp_path / "vol"
    (root / "func").mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.uint8), np.eye(4)), root / "mask.nii.gz")
    rng = np.random.default_rng(3)
    for s in ("01", "02"):
        nib.save(nib.Nifti1Image(rng.standard_normal((3, 3, 3, 30)).astype(np.float32), np.eye(4)),
                 root / "func" / f"sub-{s}_bold.nii.gz")
        (root / "func" / f"sub-{s}_bold.json").write_text('{"RepetitionTime": %s}' % (2.0 if s == "01" else 2.5))
    (root / "mmneuro.toml").write_text('name = "vol"\ntr = 2.0\n[[runs]]\nname = "r"\n'
                                       'responses = ["func/sub-{subject}_bold.nii.gz"]\n'
                                       '[targets]\nkind = "volume"\nmask = "mask.nii.gz"\n'
                                       '[evaluation]\nscheme = "contiguous-folds"\n')
    code = cli.main(["datasets", "check", str(root)])
    assert code == 2
    from mmneuro.datasets.check import check_dataset

    report = check_dataset(root)
    assert len(report.problems) == 1
    assert "sub-02_bold.nii.gz: RepetitionTime 2.5 s in its sidecar, but the description says tr = 2.0 s (key tr)" \
        in report.problems[0]
    with pytest.raises(InputError, match="RepetitionTime 2.5 s"):
        pipeline.resolve_subjects(pipeline.load_dataset(root), "1")


def test_init_arrays_guesses_and_round_trips(tmp_path, capsys):
    root = roi_study(tmp_path / "study")
    (root / "mmneuro.toml").unlink()
    assert cli.main(["datasets", "init", str(root)]) == 2  # arrays say nothing of the TR
    assert "pass --tr" in capsys.readouterr().err
    assert cli.main(["datasets", "init", str(root), "--tr", "0.8"]) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "target names from regions.txt" in printed and "events.tsv" in printed
    desc = read_description(root)
    assert desc.tr == 0.8 and desc.runs[0].events == "events.tsv" and desc.targets.names_file == "regions.txt"
    assert desc.evaluation.scheme == "contiguous-folds" and desc.rois.per_target
    assert cli.main(["datasets", "check", str(root)]) == 0
    assert cli.main(["datasets", "init", str(root), "--tr", "0.8"]) == 2  # never overwritten silently
    assert load_described(root).subjects == ["01", "02", "03"]


def test_unknown_folder_says_what_to_do(tmp_path):
    with pytest.raises(InputError, match=r"run `mmneuro datasets init"):
        pipeline.load_dataset(tmp_path)
