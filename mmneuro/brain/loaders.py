"""Read brain responses from disk into ``(time, targets)`` arrays.

Three sources: 4-D NIfTI runs under a brain mask (via nilearn's ``NiftiMasker``, with all
of nilearn's cleaning switched off so that cleaning stays in :mod:`mmneuro.brain.preprocess`),
``.npy`` / HDF5 arrays (surface vertices, parcels), and whitespace-separated text ROI
series. Every failure is an :class:`~mmneuro.errors.InputError` naming the file.
"""

from __future__ import annotations

import gzip
import warnings
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from mmneuro.brain.preprocess import validate_responses
from mmneuro.errors import InputError

PathLike = str | Path

# Errors nibabel / gzip / numpy raise on unreadable, corrupt or truncated image files.
_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile)


def _existing_file(path: PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} {p} does not exist")
    if not p.is_file():
        raise InputError(f"{what} {p} is not a file")
    return p


def _read_image(path: PathLike, what: str):
    """Load a NIfTI fully into memory (so corruption shows here); returns (img, data)."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    p = _existing_file(path, what)
    try:
        img = nib.load(str(p))
        data = np.asarray(img.dataobj)
    except (ImageFileError, *_READ_ERRORS) as exc:
        raise InputError(
            f"{what} {p} could not be read as NIfTI (corrupt or truncated file?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return img, data


def _mask_image(mask_img):
    """Return (nibabel image, (x, y, z) bool array, label) for a mask path or image."""
    import nibabel as nib

    if isinstance(mask_img, (str, Path)):
        img, data = _read_image(mask_img, "mask file")
        label = f"mask {Path(mask_img)}"
    elif isinstance(mask_img, nib.spatialimages.SpatialImage):
        img, data = mask_img, np.asarray(mask_img.dataobj)
        label = f"mask image {getattr(mask_img, 'get_filename', lambda: None)() or '<in memory>'}"
    else:
        raise InputError(
            f"mask_img must be a path or a nibabel image, got {type(mask_img).__name__}"
        )
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{label} must be 3-D, got shape {data.shape}")
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise InputError(f"{label} contains {int((~np.isfinite(data)).sum())} NaN/infinite values")
    binary = data != 0
    n_in = int(binary.sum())
    if n_in == 0:
        raise InputError(f"{label} of shape {data.shape} has no voxel inside the mask (all zero)")
    clean = nib.Nifti1Image(binary.astype(np.uint8), img.affine)
    return clean, binary, label


def load_nifti_runs(paths: Sequence[PathLike], mask_img) -> list[np.ndarray]:
    """Load 4-D NIfTI runs as ``(n_trs, n_voxels)`` float32 arrays of in-mask voxels.

    Parameters
    ----------
    paths : one NIfTI file (``.nii`` / ``.nii.gz``) per run, each 4-D ``(x, y, z, time)``.
    mask_img : path or nibabel image of the 3-D brain mask; non-zero voxels are targets.
        Column order is nilearn ``NiftiMasker`` order (C order over the mask's voxels,
        i.e. ``data[mask]``), the same for every run.

    Returns
    -------
    list of (n_trs, n_voxels) float32, one per path, raw (no detrending, no scaling).

    Raises
    ------
    InputError
        a missing, unreadable or truncated file; an image that is not 4-D; an image whose
        3-D shape or affine differs from the mask's (nilearn would silently resample);
        NaN / infinite values inside the mask. Each message names the file and the numbers.
    """
    from nilearn.maskers import NiftiMasker

    if isinstance(paths, (str, Path)):
        raise InputError(f"load_nifti_runs expects a list of paths, got the single path {paths!r}")
    if len(paths) == 0:
        raise InputError("load_nifti_runs: no NIfTI paths given")
    mask, binary, mask_label = _mask_image(mask_img)
    masker = NiftiMasker(mask_img=mask, standardize=False, detrend=False, reports=False)
    masker.fit()
    runs: list[np.ndarray] = []
    for path in paths:
        img, data = _read_image(path, "NIfTI file")
        if data.ndim != 4:
            raise InputError(
                f"NIfTI file {path} is {data.ndim}-D with shape {data.shape}; expected a 4-D "
                f"(x, y, z, time) run"
            )
        if data.shape[:3] != binary.shape:
            raise InputError(
                f"NIfTI file {path} has 3-D shape {data.shape[:3]} but the {mask_label} has "
                f"shape {binary.shape}; resample the mask (or the run) so they match"
            )
        if not np.allclose(img.affine, mask.affine, atol=1e-4):
            raise InputError(
                f"NIfTI file {path} has affine\n{np.round(img.affine, 4)}\nbut the {mask_label} has "
                f"affine\n{np.round(mask.affine, 4)}; they must be in the same space"
            )
        # nilearn replaces NaN with 0 (with only a warning): check before masking
        if np.issubdtype(data.dtype, np.floating):
            finite = np.isfinite(data).all(axis=3)
            if not finite[binary].all():
                validate_responses(data[binary].T, f"NIfTI file {path} (in-mask voxels)")

        import nibabel as nib

        in_mem = nib.Nifti1Image(data, img.affine)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nilearn's chatter about dtypes / deprecations
            Y = masker.transform(in_mem)
        Y = np.asarray(Y, dtype=np.float32)
        if Y.shape != (data.shape[3], int(binary.sum())):  # defensive: masking changed shape
            raise InputError(
                f"NIfTI file {path}: masking gave shape {Y.shape}, expected "
                f"({data.shape[3]}, {int(binary.sum())})"
            )
        validate_responses(Y, f"NIfTI file {path} (in-mask voxels)")
        runs.append(Y)
    return runs


def _h5_datasets(h5file) -> list[str]:
    import h5py

    names: list[str] = []
    h5file.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def load_array(path: PathLike, key: str | None = None, check_finite: bool = True) -> np.ndarray:
    """Load a ``(time, targets)`` array from ``.npy``, ``.npz`` or HDF5 (``.h5`` / ``.hdf5``).

    Parameters
    ----------
    path : the file.
    key : HDF5 dataset path (or ``.npz`` member); None takes the file's only dataset.
    check_finite : raise on NaN / inf (see :func:`~mmneuro.brain.preprocess.validate_responses`).

    Returns
    -------
    (time, targets) float32.
    """
    p = _existing_file(path, "array file")
    suffix = "".join(p.suffixes[-1:]).lower()
    try:
        if suffix == ".npy":
            if key is not None:
                raise InputError(f"array file {p}: key={key!r} given but .npy files hold one array")
            arr = np.load(p, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                names = list(z.files)
                arr = _pick(p, names, key, lambda k: z[k])
        elif suffix in (".h5", ".hdf5", ".hdf"):
            import h5py

            with h5py.File(p, "r") as f:
                names = _h5_datasets(f)
                arr = _pick(p, names, key, lambda k: f[k][()])
        else:
            raise InputError(
                f"array file {p}: unknown extension {suffix!r}; expected .npy, .npz, .h5 or .hdf5"
            )
    except InputError:
        raise
    except _READ_ERRORS as exc:
        raise InputError(f"array file {p} could not be read: {type(exc).__name__}: {exc}") from exc
    arr = np.asarray(arr)
    label = f"array file {p}" + (f" [{key}]" if key is not None else "")
    if arr.ndim != 2:
        raise InputError(f"{label}: expected a 2-D (time, targets) array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise InputError(f"{label}: expected numbers, got an array of dtype {arr.dtype}")
    if arr.size == 0:
        raise InputError(f"{label}: empty array of shape {arr.shape}")
    if check_finite:
        validate_responses(arr, label)
    return arr.astype(np.float32, copy=False)


def _pick(path: Path, names: list[str], key: str | None, get):
    if key is None:
        if len(names) != 1:
            raise InputError(
                f"array file {path} holds {len(names)} datasets {names[:10]}; pass key= to choose one"
            )
        return get(names[0])
    if key.lstrip("/") not in names:
        raise InputError(f"array file {path} has no dataset {key!r}; it holds {names[:10]}")
    return get(key.lstrip("/"))


def load_roi_timeseries(path: PathLike, check_finite: bool = True) -> np.ndarray:
    """Load a whitespace-separated text table of ROI time series (rows = TRs).

    Used for the Alice dataset's ``sNN-timecourses.txt`` (362 rows x 6 ROIs).

    Parameters
    ----------
    path : the text file; ``#`` starts a comment.
    check_finite : raise on NaN / inf values; pass False to screen them yourself.

    Returns
    -------
    (n_trs, n_rois) float64 (text files are small; this keeps their digits).
    """
    p = _existing_file(path, "ROI time-series file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on empty files; we raise below
            arr = np.loadtxt(p, dtype=np.float64, ndmin=2)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(
            f"ROI time-series file {p} is not a table of numbers with the same count on every "
            f"row: {exc}"
        ) from exc
    if arr.size == 0:
        raise InputError(f"ROI time-series file {p} holds no numbers (shape {arr.shape})")
    if check_finite:
        validate_responses(arr, f"ROI time-series file {p}")
    return arr


def load_confounds(path: PathLike, columns: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Selected columns of a confounds TSV (fMRIPrep ``desc-confounds_timeseries.tsv``).

    Parameters
    ----------
    path : tab-separated table with a header row; ``n/a`` marks missing values (fMRIPrep
        writes it in the first row of derivative columns).
    columns : names or globs (``cosine*``). A plain name must exist; a glob may match none.

    Returns
    -------
    ((n_trs, k) float64, the k column names). Missing values are replaced by the column's
    mean over the rows that have one.
    """
    import fnmatch

    p = _existing_file(path, "confounds file")
    try:
        with open(p, encoding="utf-8") as fh:
            header = fh.readline().rstrip("\r\n").split("\t")
            rows = [line.rstrip("\r\n").split("\t") for line in fh if line.strip()]
    except UnicodeDecodeError as exc:
        raise InputError(f"confounds file {p} is not UTF-8 text ({exc.reason})") from None
    chosen: list[str] = []
    for pattern in columns:
        hits = [c for c in header if fnmatch.fnmatchcase(c, pattern)]
        if not hits and not any(ch in pattern for ch in "*?["):
            raise InputError(f"confounds file {p} has no column {pattern!r} (recipe.confounds); "
                             f"it has {len(header)} columns, e.g. {header[:8]}")
        chosen += [c for c in hits if c not in chosen]
    index = [header.index(c) for c in chosen]
    out = np.empty((len(rows), len(index)))
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise InputError(f"confounds file {p}, line {i + 2}: {len(row)} cells, the header has {len(header)}")
        for j, k in enumerate(index):
            cell = row[k].strip()
            try:
                out[i, j] = np.nan if cell in ("n/a", "") else float(cell)
            except ValueError:
                raise InputError(f"confounds file {p}, line {i + 2}, column {chosen[j]!r}: not a number") from None
    missing = np.isnan(out)
    if missing.any():
        means = [col[~m].mean() if (~m).any() else 0.0 for col, m in zip(out.T, missing.T)]
        out = np.where(missing, np.asarray(means), out)
    return out, chosen
