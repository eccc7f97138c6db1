"""Miniature datasets in the exact on-disk layouts labs have, each with a planted signal.

Every writer returns a :class:`Planted` truth: which targets carry signal and the noise-free
signal itself, so tests can check both the pattern (AUC) and the level (r against the
oracle). The signal is a delayed linear map of smooth random features that are also written
as precomputed features (``features/<run>.npz``: ``times`` + ``planted``), so
``mmneuro encode --features`` reads exactly what generated the data.

Layouts (file names, keys and columns as the real releases have them):

* BIDS + fMRIPrep: ``derivatives/fmriprep/sub-XX/func/sub-XX_task-movie_run-N_space-
  MNI152NLin2009cAsym_desc-preproc_bold.nii.gz`` (+ ``.json`` sidecar with RepetitionTime),
  ``..._desc-brain_mask.nii.gz``, ``..._desc-confounds_timeseries.tsv`` (trans/rot, csf,
  white_matter, cosine00.., with ``n/a`` in the first row of derivatives), surfaces
  ``..._hemi-L|R_space-fsaverage5_bold.func.gii`` (one data array per volume), raw
  ``sub-XX/func/..._events.tsv`` with ``stim_file`` into ``stimuli/``.
* Algonauts 2025: ``fmri/sub-0X/func/sub-0X_task-friends_space-MNI152NLin2009cAsym_atlas-
  Schaefer18_parcel-1000Par7Net_desc-s123456_bold.h5`` with datasets ``ses-00N_task-s01e0Xa``
  of shape (n_TRs, 1000), ``fmri/sub-0X/atlas/..._desc-dseg_parcellation.nii.gz``,
  ``stimuli/transcripts/friends/s1/friends_s01e0Xa.tsv`` (``text_per_tr``, ``words_per_tr``,
  ``onsets_per_tr``, ``durations_per_tr`` as Python list literals).
* Movie10 (Oota et al.): ``sub{N}-{bourne|wolf|life}-fsaverage6.npy``, (81924, n_TRs).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmneuro.datasets.description import default_delays

TR = 1.5
DELAYS = default_delays(TR)  # (2, 3, 4, 5): the lags a description's default recipe models


@dataclass
class Planted:
    """Truth of a planted dataset: ``planted`` (n_targets,) bool; ``signal[subject][run]`` (n_trs, n_targets)."""

    planted: np.ndarray
    signal: dict[str, dict[str, np.ndarray]]
    features: Path


def smooth_features(rng: np.random.Generator, n: int, p: int = 2) -> np.ndarray:
    """(n, p) smooth random features (moving average of white noise over 3 TRs)."""
    white = rng.standard_normal((n + 2, p))
    return (white[:-2] + white[1:-1] + white[2:]) / np.sqrt(3)


def delayed_signal(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_d x[t - d] @ weights[d] over :data:`DELAYS` within one run (zeros before the run): (n, v)."""
    out = np.zeros((x.shape[0], weights.shape[-1]))
    z = (x - x.mean(0)) / x.std(0)
    for k, d in enumerate(DELAYS):
        out[d:] += z[:-d] @ weights[k]
    return out


def plant(root: Path, rng: np.random.Generator, subjects: list[str], runs: dict[str, int], n_targets: int,
          fraction: float = 0.2, snr: float = 1.0) -> tuple[Planted, dict[str, dict[str, np.ndarray]]]:
    """Features per run (written to ``root/features``), signal and noisy responses per subject and run."""
    planted = np.zeros(n_targets, dtype=bool)
    planted[rng.choice(n_targets, max(1, int(fraction * n_targets)), replace=False)] = True
    feats = {run: smooth_features(rng, n) for run, n in runs.items()}
    folder = root / "features"
    folder.mkdir(parents=True, exist_ok=True)
    for run, x in feats.items():
        np.savez(folder / f"{run}.npz", times=(np.arange(x.shape[0]) + 0.5) * TR, planted=x.astype(np.float32))
    signal: dict[str, dict[str, np.ndarray]] = {}
    noisy: dict[str, dict[str, np.ndarray]] = {}
    for s in subjects:
        w = np.zeros((len(DELAYS), feats[next(iter(feats))].shape[1], n_targets))
        w[..., planted] = np.abs(rng.standard_normal((len(DELAYS), w.shape[1], int(planted.sum()))))
        signal[s], noisy[s] = {}, {}
        for run, x in feats.items():
            sig = delayed_signal(x, w)
            scale = np.where(planted, sig.std(0), 1.0)
            sig = sig / scale * np.sqrt(snr)
            signal[s][run] = sig
            noisy[s][run] = sig + rng.standard_normal(sig.shape)
    return Planted(planted, signal, folder), noisy


def _json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


# --------------------------------------------------------------------------- BIDS + fMRIPrep

CONFOUND_COLUMNS = ["global_signal", "csf", "white_matter", "trans_x", "trans_x_derivative1", "trans_y", "trans_z",
                    "rot_x", "rot_y", "rot_z", "framewise_displacement", "cosine00", "cosine01"]


def write_bids(root: Path, seed: int = 0, space: str = "MNI152NLin2009cAsym", subjects=("01", "02", "03"),
               n_trs: int = 120, n_runs: int = 3, tr_sidecar: float = TR) -> Planted:
    """A raw BIDS dataset with fMRIPrep derivatives (volume, or ``space='fsaverage5'`` surfaces)."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    surface = space.startswith("fsaverage")
    shape = (10, 10, 10)
    n_targets = 2 * 10242 if surface else int(np.prod(shape))
    runs = {f"task-movie_run-{k + 1}": n_trs for k in range(n_runs)}
    truth, noisy = plant(root, rng, list(subjects), runs, n_targets, fraction=0.02 if surface else 0.2)
    _json(root / "dataset_description.json", {"Name": "mini movie", "BIDSVersion": "1.8.0", "DatasetType": "raw"})
    (root / "stimuli").mkdir(exist_ok=True)
    deriv = root / "derivatives" / "fmriprep"
    _json(deriv / "dataset_description.json", {"Name": "fMRIPrep - fMRI PREProcessing workflow", "BIDSVersion": "1.8.0",
                                               "DatasetType": "derivative",
                                               "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.1"}]})
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    mask = np.ones(shape, dtype=np.uint8)
    for s in subjects:
        raw = root / f"sub-{s}" / "func"
        func = deriv / f"sub-{s}" / "func"
        raw.mkdir(parents=True, exist_ok=True)
        func.mkdir(parents=True, exist_ok=True)
        for k, run in enumerate(runs):
            stem = f"sub-{s}_task-movie_run-{k + 1}"
            wav = root / "stimuli" / f"movie_run-{k + 1}.wav"
            if not wav.exists():
                import soundfile as sf

                sf.write(wav, 0.01 * rng.standard_normal(int(n_trs * TR * 8000)).astype(np.float32), 8000)
            (raw / f"{stem}_events.tsv").write_text(
                f"onset\tduration\ttrial_type\tstim_file\n0.0\t{n_trs * TR:.1f}\tmovie\tmovie_run-{k + 1}.wav\n")
            _json(raw / f"{stem}_bold.json", {"RepetitionTime": tr_sidecar, "TaskName": "movie"})
            motion = np.cumsum(rng.standard_normal((n_trs, 6)) * 0.05, axis=0)
            cosines = np.cos(np.pi * np.outer(np.arange(n_trs) + 0.5, [1, 2]) / n_trs)
            confounds = {"global_signal": rng.standard_normal(n_trs), "csf": rng.standard_normal(n_trs),
                         "white_matter": rng.standard_normal(n_trs), "framewise_displacement": np.abs(
                             rng.standard_normal(n_trs)), "cosine00": cosines[:, 0], "cosine01": cosines[:, 1]}
            for j, name in enumerate(["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]):
                confounds[name] = motion[:, j]
            confounds["trans_x_derivative1"] = np.r_[np.nan, np.diff(motion[:, 0])]
            confounds["framewise_displacement"][0] = np.nan
            lines = ["\t".join(CONFOUND_COLUMNS)]
            for t in range(n_trs):
                lines.append("\t".join("n/a" if np.isnan(confounds[c][t]) else f"{confounds[c][t]:.6f}"
                                       for c in CONFOUND_COLUMNS))
            (func / f"{stem}_desc-confounds_timeseries.tsv").write_text("\n".join(lines) + "\n")
            nuisance = np.column_stack([motion, confounds["csf"], confounds["white_matter"]])
            y = 1000 + noisy[s][run] + 3 * nuisance @ rng.standard_normal((8, n_targets))
            if surface:
                for h, cols in (("L", slice(0, 10242)), ("R", slice(10242, None))):
                    arrays = [nib.gifti.GiftiDataArray(row.astype(np.float32), intent="NIFTI_INTENT_TIME_SERIES",
                                                       datatype="NIFTI_TYPE_FLOAT32") for row in y[:, cols]]
                    name = f"{stem}_hemi-{h}_space-{space}_bold"
                    nib.save(nib.GiftiImage(darrays=arrays), func / f"{name}.func.gii")
                    _json(func / f"{name}.json", {"RepetitionTime": tr_sidecar})
            else:
                vol = y.T.reshape(*shape, n_trs).astype(np.float32)
                name = f"{stem}_space-{space}_desc-preproc_bold"
                nib.save(nib.Nifti1Image(vol, affine), func / f"{name}.nii.gz")
                _json(func / f"{name}.json", {"RepetitionTime": tr_sidecar, "SkullStripped": True})
                nib.save(nib.Nifti1Image(mask, affine), func / f"{stem}_space-{space}_desc-brain_mask.nii.gz")
    return truth


# --------------------------------------------------------------------------- Algonauts 2025

ALGONAUTS_FILE = "sub-{s}_task-friends_space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net_desc-s123456_bold.h5"


def write_transcript(path: Path, n_trs: int, rng: np.random.Generator, tr: float = TR) -> None:
    """An Algonauts transcript TSV: one row per TR, list columns as Python literals (empty rows ``[]``)."""
    import pandas as pd

    rows = []
    for i in range(n_trs):
        k = int(rng.integers(0, 3))
        words = [f"w{i}x{j}" for j in range(k)]
        onsets = [round(i * tr + 0.3 * j + 0.1, 3) for j in range(k)]
        rows.append({"text_per_tr": " ".join(words) if words else np.nan, "words_per_tr": repr(words),
                     "onsets_per_tr": repr(onsets), "durations_per_tr": repr([0.25] * k)})
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)


def write_algonauts(root: Path, seed: int = 0, subjects=("01", "02"), n_trs: int = 70) -> tuple[Planted, list[str]]:
    """The Algonauts 2025 layout; returns the truth and the runs that must be skipped (with why)."""
    import h5py
    import nibabel as nib

    rng = np.random.default_rng(seed)
    episodes = ["s01e01a", "s01e01b", "s01e02a", "s01e02b"]
    truth, noisy = plant(root, rng, list(subjects), {e: n_trs for e in episodes}, 1000, fraction=0.2)
    for s in subjects:
        func = root / "fmri" / f"sub-{s}" / "func"
        func.mkdir(parents=True)
        with h5py.File(func / ALGONAUTS_FILE.format(s=s), "w") as f:
            for k, e in enumerate(episodes):
                f.create_dataset(f"ses-{k + 3 + int(s):03d}_task-{e}", data=noisy[s][e].astype(np.float32))
            if s == subjects[0]:
                f.create_dataset("ses-009_task-s01e03a", data=rng.standard_normal((n_trs, 1000)).astype(np.float32))
            f.create_dataset("ses-010_task-s01e03b", data=rng.standard_normal((n_trs, 1000)).astype(np.float32))
        atlas = np.zeros((12, 12, 12), dtype=np.int16)
        atlas.reshape(-1)[:1000] = np.arange(1, 1001)
        (root / "fmri" / f"sub-{s}" / "atlas").mkdir()
        nib.save(nib.Nifti1Image(atlas, np.diag([4.0, 4.0, 4.0, 1.0])), root / "fmri" / f"sub-{s}" / "atlas" /
                 f"sub-{s}_space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net_desc-dseg_parcellation.nii.gz")
    for e in episodes + ["s01e03a"]:
        write_transcript(root / "stimuli" / "transcripts" / "friends" / "s1" / f"friends_{e}.tsv", n_trs, rng)
    skipped = ["s01e03a: no fMRI for sub-02", "s01e03b: no transcript"]
    return truth, skipped


# --------------------------------------------------------------------------- Movie10 (Oota et al.)

def write_movie10(root: Path, seed: int = 0, subjects=("1", "2"), lengths=None) -> Planted:
    """``sub{N}-{movie}-fsaverage6.npy`` arrays, (81924 vertices, n_TRs), left hemisphere first."""
    rng = np.random.default_rng(seed)
    lengths = lengths or {"bourne": 60, "wolf": 60, "life": 50}
    truth, noisy = plant(root, rng, list(subjects), lengths, 81924, fraction=0.01)
    for s in subjects:
        for movie in lengths:
            np.save(root / f"sub{s}-{movie}-fsaverage6.npy", noisy[s][movie].T.astype(np.float32))
    return truth
