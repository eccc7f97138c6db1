"""The embedded demo dataset: layout, sizes, determinism, ground truth and learnability.

The whole demo is generated once per test session (``demo_root`` in conftest.py, ~30 s on
2 cores); determinism is checked by rebuilding pieces of it from the seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import soundfile as sf

from strict_json import read_json
from mmneuro.datasets import demo
from mmneuro.datasets.base import Dataset
from mmneuro.errors import InputError
from mmneuro.stimuli.audio import read_audio
from mmneuro.stimuli.video import read_frames, read_video_info
from mmneuro.stimuli.words import read_words



@pytest.fixture(scope="module")
def root(demo_root) -> Path:
    """The session's demo (tests/conftest.py generates it once with seed 0)."""
    return demo_root


@pytest.fixture(scope="module")
def seed(root) -> int:
    return int(read_json(root / "dataset_description.json")["seed"])


@pytest.fixture(scope="module")
def dataset(root) -> Dataset:
    return demo.load_demo(root)


@pytest.fixture(scope="module")
def responses(dataset):
    return dataset.load_responses("01")


def _gt(root, name):
    return np.load(root / "ground_truth" / name)


# ----------------------------------------------------------------------------- layout and sizes


def test_size_on_disk_under_100_mb(root):
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 100e6, f"demo is {total / 1e6:.1f} MB"
    assert not list(root.parent.glob(".demo.tmp-*")), "temporary build folder left behind"


def test_stimulus_media(root):
    desc = read_json(root / "dataset_description.json")
    assert desc["tr"] == 1.49 and desc["generator_version"] == demo.GENERATOR_VERSION
    assert [r["name"] for r in desc["runs"]] == ["train-01", "train-02", "train-03", "train-04", "test-01"]
    for r in desc["runs"]:
        duration = r["n_trs"] * 1.49
        info = read_video_info(root / "stimuli" / f"{r['name']}.mp4")
        assert info.width >= 112 and info.height >= 112 and info.fps >= 8
        assert info.duration == pytest.approx(duration, abs=1e-6)
        wav_info = sf.info(str(root / "stimuli" / f"{r['name']}.wav"))
        assert wav_info.samplerate == 16000 and wav_info.channels == 1 and wav_info.subtype == "PCM_16"
        assert wav_info.frames == round(duration * 16000)
        words = read_words(root / "stimuli" / f"{r['name']}_words.tsv")
        assert len(words) > 20


def test_bold_acquisitions(root):
    mask = np.asarray(nib.load(root / "mask.nii.gz").dataobj).astype(bool)
    total_trs = 0
    for subject in ("01", "02", "03"):
        for acq, run in [(1, "train-01"), (2, "train-02"), (3, "train-03"), (4, "train-04"), (5, "test-01"), (6, "test-01")]:
            stem = root / f"sub-{subject}" / "func" / f"sub-{subject}_task-demo_run-{acq}"
            sidecar = json.loads(Path(f"{stem}_bold.json").read_text())
            assert sidecar["RepetitionTime"] == 1.49 and sidecar["StimulusRun"] == run
            events = Path(f"{stem}_events.tsv").read_text().splitlines()
            assert events[0].split("\t") == ["onset", "duration", "trial_type", "stim_file"]
            assert events[1].split("\t")[3] == f"{run}.mp4"
            if subject == "01":
                img = nib.load(f"{stem}_bold.nii.gz")
                total_trs += img.shape[3]
    assert total_trs >= 600
    img = nib.load(root / "sub-01" / "func" / "sub-01_task-demo_run-1_bold.nii.gz")
    assert img.get_data_dtype() == np.int16 and img.dataobj.slope != 1.0
    assert img.header.get_zooms()[:3] == (4.0, 4.0, 4.0) and img.header.get_zooms()[3] == pytest.approx(1.49)
    assert int(img.header["sform_code"]) == 4  # MNI
    data = img.dataobj.get_unscaled()  # raw int16
    assert data.shape[:3] == mask.shape
    assert not data[~mask].any(), "voxels outside the brain must be zero"
    y = img.get_fdata()[mask]
    assert 950 < y.mean() < 1050
    # slow drift: the run-wise linear trend varies across voxels by more than the noise sd
    x = np.linspace(-1, 1, y.shape[1])
    slopes = y @ x / (x @ x)
    assert slopes.std() > 10


# ----------------------------------------------------------------------------- loading


def test_load_demo(dataset, root, responses):
    mask = np.asarray(nib.load(root / "mask.nii.gz").dataobj).astype(bool)
    n_vox = int(mask.sum())
    assert dataset.name == "demo" and dataset.tr == 1.49 and dataset.evaluation == "heldout"
    assert dataset.subjects == ["01", "02", "03"]
    assert dataset.delays == (1, 2, 3, 4, 5, 6)
    assert dataset.ground_truth == root / "ground_truth"
    assert [r.name for r in dataset.train_runs] == ["train-01", "train-02", "train-03", "train-04"]
    assert [r.name for r in dataset.test_runs] == ["test-01"]
    run = dataset.run("train-02")
    np.testing.assert_allclose(run.tr_times, (np.arange(110) + 0.5) * 1.49)
    assert run.video == root / "stimuli" / "train-02.mp4" and run.audio.is_file() and run.words.is_file()
    assert set(dataset.rois) == {"visual", "motion", "auditory", "multisensory", "language"}
    for name, m in dataset.rois.items():
        assert m.dtype == bool and m.shape == (n_vox,) and m.sum() > 50
        roi_vol = np.asarray(nib.load(root / "ground_truth" / f"roi-{name}_mask.nii.gz").dataobj).astype(bool)
        np.testing.assert_array_equal(m, roi_vol[mask])

    assert responses.subject == "01"
    assert {k: v.shape for k, v in responses.runs.items()} == {
        "train-01": (1, 110, n_vox),
        "train-02": (1, 110, n_vox),
        "train-03": (1, 110, n_vox),
        "train-04": (1, 110, n_vox),
        "test-01": (2, 80, n_vox),
    }
    y = responses.runs["test-01"][1]
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=0), 1, atol=1e-3)
    # the two test presentations differ (independent noise)
    assert not np.allclose(responses.runs["test-01"][0], responses.runs["test-01"][1])


def test_load_demo_without_demo(tmp_path):
    with pytest.raises(InputError, match="mmneuro datasets demo --out"):
        demo.load_demo(tmp_path)
    (tmp_path / "dataset_description.json").write_text(json.dumps({"name": "alice"}))
    with pytest.raises(InputError, match="mmneuro datasets demo --out"):
        demo.load_demo(tmp_path)


def test_unknown_subject(dataset):
    with pytest.raises(InputError, match="subject"):
        dataset.load_responses("09")


def test_generate_refuses_to_clobber(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="overwrite"):
        demo.generate_demo(tmp_path)
    with pytest.raises(InputError, match="not a demo"):
        demo.generate_demo(tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    with pytest.raises(InputError, match="seed"):
        demo.generate_demo(tmp_path / "new", seed=-1)
    assert not (tmp_path / "new").exists()


# ----------------------------------------------------------------------------- ground truth


def test_rois_disjoint_inside_mask_and_placed(root):
    mask_img = nib.load(root / "mask.nii.gz")
    mask = np.asarray(mask_img.dataobj).astype(bool)
    rois = {
        n: np.asarray(nib.load(root / "ground_truth" / f"roi-{n}_mask.nii.gz").dataobj).astype(bool)
        for n in demo.ROIS
    }
    count = np.sum(list(rois.values()), axis=0)
    assert count.max() == 1, "ROIs overlap"
    for name, roi in rois.items():
        assert not (roi & ~mask).any(), f"{name} leaves the brain mask"
        xyz = nib.affines.apply_affine(mask_img.affine, np.argwhere(roi))
        centres = np.asarray(demo.ROIS[name][0], dtype=float)
        nearest = np.linalg.norm(xyz[:, None] - centres[None], axis=2).min(axis=1)
        assert nearest.max() <= demo.ROI_RADIUS_MM + 1e-6
        # every sphere contributes voxels
        owner = np.linalg.norm(xyz[:, None] - centres[None], axis=2).argmin(axis=1)
        assert set(owner) == set(range(len(centres)))


def test_regressors_reproduce_signal(root):
    regs = {r: _gt(root, f"regressors_{r}.npz") for r in ("train-01", "train-02", "train-03", "train-04", "test-01")}
    for r, f in regs.items():
        assert list(f["names"]) == list(demo.DESCRIPTORS)
        assert f["regressors"].shape == (len(f["tr_times"]), len(demo.DESCRIPTORS))
        np.testing.assert_allclose(f["regressors"], (f["raw"] - f["mean"]) / f["std"])
    acq_run = {1: "train-01", 2: "train-02", 3: "train-03", 4: "train-04", 5: "test-01", 6: "test-01"}
    for subject in ("01", "02", "03"):
        s = _gt(root, f"sub-{subject}_signal.npz")
        w = s["weights"]
        assert (w >= 0).all() and (w > 0).any(axis=0).all()
        for acq, run in acq_run.items():
            expected = regs[run]["regressors"] @ w
            np.testing.assert_allclose(s[f"run-{acq}"], expected, rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(s["run-5"], s["run-6"])
    # weights differ between subjects
    assert not np.allclose(_gt(root, "sub-01_signal.npz")["weights"], _gt(root, "sub-02_signal.npz")["weights"])


def test_bold_is_signal_plus_ar1_noise_at_stated_snr(root):
    desc = read_json(root / "dataset_description.json")
    sd = desc["noise_sd"]
    mask = np.asarray(nib.load(root / "mask.nii.gz").dataobj).astype(bool)
    s = _gt(root, "sub-02_signal.npz")
    idx, labels = s["voxel_indices"], s["roi_labels"]
    # stated SNR: within-acquisition signal variance / noise variance, per ROI
    for r in range(len(s["roi_names"])):
        snr = np.mean([s[f"run-{a}"][:, labels == r].var(axis=0).mean() for a in range(1, 7)]) / sd**2
        assert snr == pytest.approx(desc["snr"], rel=1e-3)
    rhos = []
    for acq in (1, 5):
        img = nib.load(root / "sub-02" / "func" / f"sub-02_task-demo_run-{acq}_bold.nii.gz")
        y = img.get_fdata()[mask].T[:, idx]  # (n_trs, n_roi_voxels)
        resid = y - s[f"run-{acq}"]
        x = np.linspace(-1, 1, len(y))
        basis = np.stack([np.ones_like(x), x, 1.5 * x * x - 0.5], axis=1)
        resid = resid - basis @ np.linalg.lstsq(basis, resid, rcond=None)[0]
        # detrending short AR(1) runs removes a few % of the variance
        assert resid.std(axis=0).mean() == pytest.approx(sd, rel=0.1)
        rhos.append(np.mean((resid[1:] * resid[:-1]).sum(0) / (resid * resid).sum(0)))
    assert np.mean(rhos) == pytest.approx(desc["ar_rho"], abs=0.1)


def test_canonical_hrf_shape():
    h = demo.canonical_hrf(0.1)
    t = np.arange(len(h)) * 0.1
    assert h.sum() == pytest.approx(1.0)
    assert 4.0 < t[h.argmax()] < 6.0
    assert h.min() < 0 and 12.0 < t[h.argmin()] < 18.0


# ----------------------------------------------------------------------------- stimuli vs descriptors


def test_video_decodes_and_luminance_matches(dataset, root):
    run = dataset.run("test-01")
    d = _gt(root, "descriptors_test-01.npz")
    n_frames = round(run.n_trs * 1.49 * 10)
    assert read_video_info(run.video).n_frames == n_frames
    np.testing.assert_allclose(d["times"], (np.arange(n_frames) + 0.5) / 10)
    frames = read_frames(run.video, d["times"])
    assert frames.shape == (n_frames, 128, 128, 3)
    lum = (frames.astype(np.float64) @ [0.299, 0.587, 0.114]).mean(axis=(1, 2)) / 255
    assert np.corrcoef(lum, d["luminance"])[0, 1] > 0.95
    motion = np.abs(np.diff(frames.astype(np.float64), axis=0)).mean(axis=(1, 2, 3)) / 255
    assert np.corrcoef(motion, d["motion"][1:])[0, 1] > 0.9
    # scene cuts change the luminance; objects move
    assert d["luminance"].std() > 0.05 and (d["motion"] > 0).mean() > 0.2


def test_audio_descriptors_match_wav(dataset, root):
    run = dataset.run("test-01")
    wav, sr = read_audio(run.audio)
    d = _gt(root, "descriptors_test-01.npz")
    rms = np.sqrt((wav.astype(np.float64).reshape(len(d["times"]), sr // 10) ** 2).mean(axis=1))
    np.testing.assert_allclose(d["envelope"], rms, atol=1e-6)
    assert (d["envelope"] < 1e-4).mean() > 0.02, "no silence stretches"
    assert (d["spectral"] >= 0).all() and d["spectral"].max() > 1.0  # noise bursts are bright


def test_words_inside_run_and_audible(dataset, root):
    for run in dataset.runs:
        words = read_words(run.words)
        duration = run.n_trs * 1.49
        assert words.onsets.min() >= 0 and words.offsets.max() <= duration
        wav, sr = read_audio(run.audio)
        rms_in = np.array([np.sqrt(np.mean(wav[int(a * sr) : int(b * sr)] ** 2)) for a, b in zip(words.onsets, words.offsets)])
        assert (rms_in > 0.02).all(), "some words are silent"
        # the TSV is aligned with the audio: word coverage and audio RMS per 100 ms correlate
        # best at lag 0
        hop = sr // 10
        n = len(wav) // hop
        spoken = np.zeros(len(wav))
        for a, b in zip(words.onsets, words.offsets):
            spoken[int(a * sr) : int(b * sr)] = 1.0
        cover = spoken[: n * hop].reshape(n, hop).mean(axis=1)
        env = np.sqrt((wav[: n * hop].astype(np.float64).reshape(n, hop) ** 2).mean(axis=1))
        lags = np.arange(-10, 11)
        xc = [np.corrcoef(cover[max(0, k) : n + min(0, k)], env[max(0, -k) : n - max(0, k)])[0, 1] for k in lags]
        assert lags[int(np.argmax(xc))] == 0 and xc[10] > 0.3, f"{run.name}: word/audio correlation by lag {xc}"
        # word rate descriptor counts these words
        d = _gt(root, f"descriptors_{run.name}.npz")
        assert d["word_rate"].sum() / 10 == pytest.approx(len(words), rel=0.02)


def test_congruent_objects_sound_their_colour(root):
    """In congruent blocks an object's tone has the pitch of its colour; in incongruent blocks it does not."""
    pitch = {name: f for name, _, f in demo.COLOURS}
    hits = {True: [], False: []}
    for run in ("train-01", "train-02"):
        tl = read_json(root / "ground_truth" / f"timeline_{run}.json")
        wav, sr = read_audio(root / "stimuli" / f"{run}.wav")
        for o in tl["objects"]:
            if o["offset"] - o["onset"] < 2.0:
                continue
            block = [b for b in tl["blocks"] if b["start"] <= o["onset"] < b["end"]][0]
            seg = wav[int(o["onset"] * sr) : int(o["offset"] * sr)].astype(np.float64)
            spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
            freqs = np.fft.rfftfreq(len(seg), 1 / sr)
            f = pitch[o["colour"]]
            at_pitch = spec[np.abs(freqs - f) < 3].max()
            hits[block["congruent"]].append(at_pitch > 20 * np.median(spec[(freqs > 100) & (freqs < 2000)]))
    assert len(hits[True]) >= 3 and len(hits[False]) >= 3
    assert np.mean(hits[True]) == 1.0
    assert np.mean(hits[False]) < 0.5


# ----------------------------------------------------------------------------- determinism


def test_regeneration_is_deterministic(root, seed):
    spec = demo.RUNS[4]
    assert spec.name == "test-01"
    a = demo.build_run(seed, 4, spec)
    b = demo.build_run(seed, 4, spec)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.wav, b.wav)
    # ... and equals what generate_demo stored
    stored = _gt(root, "descriptors_test-01.npz")
    for name in demo.DESCRIPTORS:
        np.testing.assert_array_equal(a.descriptors[name], stored[name])
    wav, _ = read_audio(root / "stimuli" / "test-01.wav")
    np.testing.assert_array_equal(wav, a.wav / np.float32(32768))
    words = read_words(root / "stimuli" / "test-01_words.tsv")
    assert words.words == a.timeline.words.words
    np.testing.assert_allclose(words.onsets, a.timeline.words.onsets, atol=1e-9)
    frames = read_frames(root / "stimuli" / "test-01.mp4", stored["times"][::50])
    assert np.abs(frames.astype(int) - a.frames[::50].astype(int)).mean() < 2

    # BOLD of subject 02, second test presentation, rebuilt from the seed
    mask_img = nib.load(root / "mask.nii.gz")
    mask = np.asarray(mask_img.dataobj).astype(bool)
    s = _gt(root, "sub-02_signal.npz")
    designs = [_gt(root, f"regressors_{r}.npz")["regressors"] for _, r in demo.ACQUISITIONS]
    labels = demo.roi_labels(mask_img)
    np.testing.assert_array_equal(np.flatnonzero(labels >= 0), s["voxel_indices"])
    w = demo.subject_weights(seed, 1, labels[s["voxel_indices"]], designs)
    np.testing.assert_array_equal(w, s["weights"])
    sig = _gt(root, "regressors_test-01.npz")["regressors"] @ w
    y = demo.simulate_acquisition(seed, 1, 6, int(mask.sum()), sig, s["voxel_indices"])
    stored_img = nib.load(root / "sub-02" / "func" / "sub-02_task-demo_run-6_bold.nii.gz")
    np.testing.assert_array_equal(
        stored_img.dataobj.get_unscaled()[mask].T, np.rint(y / demo.SCL_SLOPE).astype(np.int16)
    )

    # another seed gives another movie and other noise
    c = demo.build_run(seed + 1, 4, spec)
    assert not np.array_equal(a.wav, c.wav)
    assert not np.array_equal(a.frames, c.frames)
    y2 = demo.simulate_acquisition(seed + 1, 1, 6, int(mask.sum()), sig, s["voxel_indices"])
    assert not np.allclose(y, y2)


# ----------------------------------------------------------------------------- learnability


def test_ground_truth_regressors_predict_held_out_auditory_responses(dataset, root, responses):
    regs = {r.name: _gt(root, f"regressors_{r.name}.npz")["regressors"] for r in dataset.runs}
    X = np.concatenate([regs[r.name] for r in dataset.train_runs])
    X = np.column_stack([X, np.ones(len(X))])
    Xt = np.column_stack([regs["test-01"], np.ones(80)])

    def test_r(cols):
        Y = np.concatenate([responses.runs[r.name][0][:, cols] for r in dataset.train_runs])
        B = np.linalg.lstsq(X, Y, rcond=None)[0]
        P, Yt = Xt @ B, responses.runs["test-01"].mean(axis=0)[:, cols]
        P, Yt = P - P.mean(0), Yt - Yt.mean(0)
        return (P * Yt).sum(0) / np.sqrt((P * P).sum(0) * (Yt * Yt).sum(0))

    r_aud = test_r(dataset.rois["auditory"])
    assert r_aud.mean() > 0.3 and np.median(r_aud) > 0.3
    outside = np.flatnonzero(~np.any(list(dataset.rois.values()), axis=0))[::50]
    r_out = test_r(outside)
    assert abs(r_out.mean()) < 0.1
