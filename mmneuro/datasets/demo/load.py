"""Reading the demo back as a :class:`~mmneuro.datasets.base.Dataset`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmneuro.datasets.base import Dataset
from mmneuro.errors import InputError


def load_demo(root: str | Path) -> Dataset:
    """Read a folder written by :func:`generate_demo` through its description (``mmneuro.toml``).

    ``rois`` are boolean masks over the in-mask voxels in NiftiMasker order (C order of
    ``mask.nii.gz``). ``load_responses(subject)`` returns run name -> (n_repeats, n_trs,
    n_voxels) float32, each acquisition detrended (quadratic) and z-scored; voxels constant in
    an acquisition are marked invalid. Raises :class:`~mmneuro.errors.InputError` if ``root``
    holds no demo dataset.
    """
    from mmneuro.datasets.described import load_described
    from mmneuro.datasets.description import FILENAME

    root = Path(root)
    hint = f"run `mmneuro datasets demo --out {root}` (or mmneuro.datasets.demo.generate_demo) to create it"
    if not (root / FILENAME).is_file():
        old = (root / "dataset_description.json").is_file()
        raise InputError(f"no demo dataset in {root} ({FILENAME} missing"
                         f"{'; it was written by an older mmneuro' if old else ''}); {hint} "
                         f"{'with --overwrite' if old else ''}".rstrip())
    ds = load_described(root)
    if ds.name != "demo":
        raise InputError(f"{root} holds a dataset named {ds.name!r}, not the demo; {hint}")
    return ds


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
