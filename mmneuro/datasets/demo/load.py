"""Reading the demo back as a :class:`~mmneuro.datasets.base.Dataset`."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from mmneuro.datasets.base import Dataset, Responses, StimulusRun
from mmneuro.datasets.demo.spec import DELAYS
from mmneuro.datasets.demo.generate import bids_stem
from mmneuro.errors import InputError


def load_demo(root: str | Path) -> Dataset:
    """Read a folder written by :func:`generate_demo` as a :class:`Dataset`.

    ``rois`` are boolean masks over the in-mask voxels in NiftiMasker order (C order of
    ``mask.nii.gz``). ``load_responses(subject)`` returns run name -> (n_repeats, n_trs,
    n_voxels) float32, each acquisition detrended (quadratic) and z-scored.
    Raises :class:`~mmneuro.errors.InputError` if ``root`` holds no demo dataset.
    """
    import nibabel as nib

    root = Path(root)
    desc_path = root / "dataset_description.json"
    hint = f"run `mmneuro datasets demo --out {root}` (or mmneuro.datasets.demo.generate_demo) to create it"
    if not desc_path.is_file():
        raise InputError(f"no demo dataset in {root} (dataset_description.json missing); {hint}")
    try:
        desc = json.loads(desc_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{desc_path} is not valid JSON ({exc}); {hint}") from exc
    if desc.get("name") != "demo":
        raise InputError(f"{root} holds a dataset named {desc.get('name')!r}, not the demo; {hint}")
    mask_path = root / "mask.nii.gz"
    if not mask_path.is_file():
        raise InputError(f"demo dataset in {root} is incomplete: {mask_path} missing; {hint}")

    tr = float(desc["tr"])
    stim = root / "stimuli"
    runs = [
        StimulusRun(
            name=r["name"],
            tr_times=(np.arange(r["n_trs"]) + 0.5) * tr,
            video=stim / f"{r['name']}.mp4",
            audio=stim / f"{r['name']}.wav",
            words=stim / f"{r['name']}_words.tsv",
            split=r["split"],
        )
        for r in desc["runs"]
    ]
    for r in runs:
        for p in (r.video, r.audio, r.words):
            if not p.is_file():
                raise InputError(f"demo dataset in {root} is incomplete: {p} missing; {hint}")

    mask_img = nib.load(str(mask_path))
    mask = np.asarray(mask_img.dataobj).astype(bool)
    rois = {}
    for name in desc["rois"]:
        p = root / "ground_truth" / f"roi-{name}_mask.nii.gz"
        if not p.is_file():
            raise InputError(f"demo dataset in {root} is incomplete: {p} missing; {hint}")
        rois[name] = np.asarray(nib.load(str(p)).dataobj)[mask].astype(bool)

    subjects = [str(s) for s in desc["subjects"]]
    acquisitions = [(int(a["run"]), a["stimulus_run"]) for a in desc["acquisitions"]]

    def load_responses(subject: str) -> Responses:
        from mmneuro.brain.loaders import load_nifti_runs
        from mmneuro.brain.preprocess import clean_run, constant_columns

        subject = f"{subject:02d}" if isinstance(subject, (int, np.integer)) else str(subject).removeprefix("sub-")
        if subject not in subjects:
            raise InputError(f"demo dataset has no subject {subject!r}; subjects: {subjects}")
        paths = [root / f"sub-{subject}" / "func" / f"{bids_stem(subject, a)}_bold.nii.gz" for a, _ in acquisitions]
        for p in paths:
            if not p.is_file():
                raise InputError(f"demo dataset in {root} is incomplete: {p} missing; {hint}")
        data = load_nifti_runs(paths, mask_img)
        valid = np.ones(data[0].shape[1], dtype=bool)
        for path, y in zip(paths, data):
            constant = constant_columns(y)
            if constant.any():
                warnings.warn(f"{path}: {int(constant.sum())} of {y.shape[1]} in-mask voxels are constant "
                              f"(first indices {np.flatnonzero(constant)[:5].tolist()}); they are excluded from scores")
            valid &= ~constant
        grouped: dict[str, list[np.ndarray]] = {}
        for (_, run_name), y in zip(acquisitions, data):
            grouped.setdefault(run_name, []).append(clean_run(y, detrend_order=2))
        order = [r.name for r in runs]
        return Responses(
            subject=subject,
            runs={name: np.stack(grouped[name]).astype(np.float32, copy=False) for name in order if name in grouped},
            valid=None if valid.all() else valid,
        )

    return Dataset(
        name="demo",
        root=root,
        tr=tr,
        runs=runs,
        subjects=subjects,
        rois=rois,
        load_responses=load_responses,
        evaluation="heldout",
        delays=tuple(int(d) for d in desc.get("delays", DELAYS)),
        feature_detrend=2,  # the responses' drift model is removed from features too
        mask_img=mask_img,
        notes=[f"synthetic demo dataset (generator {desc.get('generator_version')}, seed {desc.get('seed')})"],
        ground_truth=root / "ground_truth",
    )


def ground_truth_regressors(dataset: Dataset) -> dict[str, np.ndarray]:
    """The exact regressors the demo's signal was built from, per stimulus run.

    Returns run name -> (n_trs, n_descriptors) float32: each descriptor of
    :data:`DESCRIPTORS`, convolved with the canonical HRF and sampled at the run's TR
    times. Encoding with these ("the oracle", delays ``(0,)``) reaches the noise ceiling.
    """
    if dataset.ground_truth is None:
        raise InputError(f"dataset {dataset.name!r} has no ground truth")
    out = {}
    for run in dataset.runs:
        path = Path(dataset.ground_truth) / f"regressors_{run.name}.npz"
        if not path.is_file():
            raise InputError(f"ground-truth regressors missing: {path}")
        with np.load(path) as z:
            out[run.name] = z["regressors"].astype(np.float32)
    return out
