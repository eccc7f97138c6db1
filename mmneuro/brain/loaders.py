"""Read brain responses from disk into ``(time, targets)`` arrays.

Three sources: 4-D NIfTI runs under a brain mask (streamed volume by volume and masked in
nilearn ``NiftiMasker`` order, with no cleaning, so that cleaning stays in
:mod:`mmneuro.brain.preprocess`),
``.npy`` / HDF5 arrays (surface vertices, parcels), and whitespace-separated text ROI
series. Every failure is an :class:`~mmneuro.errors.InputError` naming the file.
"""

from __future__ import annotations

import gzip
import math
import tokenize
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from mmneuro.brain.preprocess import validate_responses
from mmneuro.errors import InputError

PathLike = str | Path

# Errors nibabel / gzip / numpy / zipfile raise on unreadable, corrupt or truncated files
# (nibabel's HeaderDataError is a bare Exception; zipfile raises NotImplementedError for
# unsupported compression flags in a corrupt member header).
_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile,
                NotImplementedError)


def _nibabel_errors() -> tuple[type[BaseException], ...]:
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError, HeaderTypeError

    return (ImageFileError, HeaderDataError, HeaderTypeError, *_READ_ERRORS, TypeError, AttributeError, IndexError,
            KeyError, OverflowError, MemoryError)


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

    p = _existing_file(path, what)
    try:
        img = nib.load(str(p))
        data = np.asarray(img.dataobj)
        _ = np.asarray(img.affine, dtype=np.float64)
    except _nibabel_errors() as exc:
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


def _open_image(path: PathLike, what: str):
    """The nibabel image of ``path`` with its header read and its data left on disk."""
    import nibabel as nib

    p = _existing_file(path, what)
    try:
        img = nib.load(str(p))
        shape = tuple(int(n) for n in img.shape)
        affine = np.asarray(img.affine, dtype=np.float64)
    except _nibabel_errors() as exc:
        raise InputError(
            f"{what} {p} could not be read as NIfTI (corrupt or truncated file?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not hasattr(img, "dataobj") or affine.shape != (4, 4):
        raise InputError(f"{what} {p} is a {type(img).__name__}, not a NIfTI volume image")
    return p, img, shape


def _scaler(proxy):
    """Function applying the proxy's scale factors exactly as ``np.asarray(proxy)`` does
    (nibabel's ``ArrayProxy._get_scaled``: the slope's dtype, float64 for scaled integers)."""
    from nibabel.volumeutils import apply_read_scaling

    slope = np.asanyarray(getattr(proxy, "slope", 1.0))
    inter = np.asanyarray(getattr(proxy, "inter", 0.0))
    if np.can_cast(inter, slope.dtype):
        inter = inter.astype(slope.dtype)
    return lambda raw: apply_read_scaling(raw, slope, inter)


#: Deflate cannot shrink data by more than about 1032:1; a .gz run whose header promises more
#: data than that is truncated or corrupt (checked before any buffer is allocated).
_MAX_DEFLATE_RATIO = 1100


def _iter_volumes(p: Path, img, shape: tuple[int, ...], what: str):
    """Yield each 3-D volume of a 4-D image as a flat Fortran-order array of its on-disk dtype.

    The file is read once, front to back, one volume at a time (a ``.nii.gz`` is decompressed
    as a stream), so memory stays at one volume whatever the run's length. Scale factors are
    not applied (see :func:`_scaler`). Corrupt or truncated data raise InputError naming ``p``.
    """
    from nibabel.arrayproxy import ArrayProxy
    from nibabel.openers import ImageOpener

    n_vox = int(np.prod(shape[:3]))
    proxy = img.dataobj
    stored = np.dtype(getattr(proxy, "dtype", None) or img.get_data_dtype())
    if stored.kind not in "biuf":
        raise InputError(f"{what} {p} holds values of type {stored} (complex or RGB); expected real numbers, one "
                         f"per voxel")
    if not isinstance(proxy, ArrayProxy) or getattr(proxy, "order", "F") != "F":
        try:  # in-memory or unusual images: hold the (unscaled) array
            whole = np.asarray(proxy.get_unscaled() if isinstance(proxy, ArrayProxy) else proxy)
        except (*_READ_ERRORS, MemoryError) as exc:
            raise InputError(f"{what} {p} could not be read: {type(exc).__name__}: {exc}") from exc
        for t in range(shape[3]):
            yield whole[..., t].reshape(-1, order="F")
        return
    dtype = np.dtype(proxy.dtype)
    nbytes = n_vox * dtype.itemsize
    need = int(proxy.offset) + shape[3] * nbytes
    data_file = Path(proxy.file_like) if isinstance(proxy.file_like, (str, Path)) else p
    size = data_file.stat().st_size
    compressed = str(data_file).lower().endswith((".gz", ".bz2", ".zst"))
    if need > (size * _MAX_DEFLATE_RATIO if compressed else size):
        raise InputError(
            f"{what} {data_file} is truncated or its header is corrupt: shape {shape} of {dtype} needs {need} bytes but the "
            f"file has {size}{' (compressed)' if compressed else ''}"
        )
    try:
        with ImageOpener(proxy.file_like, "rb") as fh:
            fh.seek(int(proxy.offset))
            for t in range(shape[3]):
                buf = fh.read(nbytes)
                if len(buf) != nbytes:
                    raise InputError(
                        f"{what} {p} is truncated: volume {t} of {shape[3]} has {len(buf)} of {nbytes} bytes "
                        f"(header shape {shape}, dtype {dtype})"
                    )
                yield np.frombuffer(buf, dtype=dtype)
    except InputError:
        raise
    except (*_READ_ERRORS, MemoryError) as exc:
        raise InputError(
            f"{what} {p} could not be read as NIfTI (corrupt or truncated file?): {type(exc).__name__}: {exc}"
        ) from exc


def _check_run_header(p: Path, shape: tuple[int, ...], affine: np.ndarray, grid: tuple[int, ...],
                      grid_affine: np.ndarray, grid_label: str, hint: str) -> None:
    if len(shape) != 4:
        raise InputError(
            f"NIfTI file {p} is {len(shape)}-D with shape {shape}; expected a 4-D (x, y, z, time) run"
        )
    if shape[:3] != tuple(grid):
        raise InputError(
            f"NIfTI file {p} has 3-D shape {shape[:3]} but the {grid_label} has shape {tuple(grid)}; {hint}"
        )
    if not np.all(np.isfinite(affine)) or not np.allclose(affine, grid_affine, atol=1e-4):
        raise InputError(
            f"NIfTI file {p} has affine\n{np.round(affine, 4)}\nbut the {grid_label} has "
            f"affine\n{np.round(grid_affine, 4)}; they must be in the same space"
        )


def fortran_index(indices_c: np.ndarray, shape3: tuple[int, ...]) -> np.ndarray:
    """Flat C-order voxel indices of a 3-D grid -> their positions in a Fortran-order volume."""
    return np.ravel_multi_index(np.unravel_index(indices_c, shape3), shape3, order="F")


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

    Each run is streamed volume by volume from disk: only the in-mask voxels of one volume
    are scaled (in the precision nibabel uses, float64 for scaled integers) and stored as
    float32, so the full 4-D array is never held (the values equal those of
    ``np.asarray(img.dataobj)[mask].T`` cast to float32).

    Raises
    ------
    InputError
        a missing, unreadable or truncated file; an image that is not 4-D; an image whose
        3-D shape or affine differs from the mask's (nilearn would silently resample);
        NaN / infinite values inside the mask. Each message names the file and the numbers.
    """
    if isinstance(paths, (str, Path)):
        raise InputError(f"load_nifti_runs expects a list of paths, got the single path {paths!r}")
    if len(paths) == 0:
        raise InputError("load_nifti_runs: no NIfTI paths given")
    mask, binary, mask_label = _mask_image(mask_img)
    idx = fortran_index(np.flatnonzero(binary), binary.shape)
    runs: list[np.ndarray] = []
    for path in paths:
        p, img, shape = _open_image(path, "NIfTI file")
        _check_run_header(p, shape, np.asarray(img.affine, np.float64), binary.shape,
                          np.asarray(mask.affine), mask_label,
                          "resample the mask (or the run) so they match")
        scale = _scaler(img.dataobj)
        Y = np.empty((shape[3], idx.size), dtype=np.float32)
        for t, vol in enumerate(_iter_volumes(p, img, shape, "NIfTI file")):
            Y[t] = scale(vol[idx])
        validate_responses(Y, f"NIfTI file {p} (in-mask voxels)")
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
    (time, targets) float32. ``.npy`` files and HDF5 datasets of another dtype (float64, ints)
    are converted while they are read, so no full-size copy of the stored dtype is held.
    """
    p = _existing_file(path, "array file")
    suffix = "".join(p.suffixes[-1:]).lower()
    label = f"array file {p}" + (f" [{key}]" if key is not None else "")
    try:
        if suffix == ".npy":
            if key is not None:
                raise InputError(f"array file {p}: key={key!r} given but .npy files hold one array")
            arr = _read_npy(p)
        elif suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                names = list(z.files)
                arr = _pick(p, names, key, lambda k: z[k])
        elif suffix in (".h5", ".hdf5", ".hdf"):
            import h5py

            with h5py.File(p, "r") as f:
                names = _h5_datasets(f)
                arr = _pick(p, names, key, lambda k: _read_h5(f[k], label))
        else:
            raise InputError(
                f"array file {p}: unknown extension {suffix!r}; expected .npy, .npz, .h5 or .hdf5"
            )
    except InputError:
        raise
    except (*_READ_ERRORS, KeyError, TypeError, IndexError, RuntimeError, MemoryError, UnicodeDecodeError,
            SyntaxError, tokenize.TokenError) as exc:  # numpy tokenizes an old .npy header: a damaged one ends there
        raise InputError(f"array file {p} could not be read: {type(exc).__name__}: {exc}") from exc
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise InputError(f"{label}: expected a 2-D (time, targets) array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) or np.issubdtype(arr.dtype,
                                                                                           np.complexfloating):
        raise InputError(f"{label}: expected real numbers, got an array of dtype {arr.dtype}")
    if arr.size == 0:
        raise InputError(f"{label}: empty array of shape {arr.shape}")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, caught below
        out = arr.astype(np.float32, copy=False)
    if check_finite:
        validate_responses(out, label)
    return out


def _numeric(dtype: np.dtype) -> bool:
    return (np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating)) or dtype == np.bool_


def _read_h5(ds, label: str) -> np.ndarray:
    """An HDF5 dataset, converted to float32 while it is read when it holds real numbers of another dtype."""
    import h5py

    if not isinstance(ds, h5py.Dataset):
        raise InputError(f"{label}: {ds.name!r} is a group, not a dataset")
    if ds.dtype != np.float32 and _numeric(ds.dtype) and ds.ndim == 2 and ds.size:
        return ds.astype(np.float32)[()]
    return ds[()]


#: rows (or columns) converted per read by :func:`_read_npy`.
_NPY_CHUNK_BYTES = 8 << 20


def _read_npy(p: Path) -> np.ndarray:
    """A 2-D ``.npy`` file; real numbers of another dtype are read in chunks straight into float32."""
    import numpy.lib.format as fmt

    with open(p, "rb") as fh:
        version = fmt.read_magic(fh)
        if version not in ((1, 0), (2, 0)):
            return np.load(p, allow_pickle=False)
        reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = reader(fh)
        dtype = np.dtype(dtype)
        if dtype.hasobject or len(shape) != 2 or dtype == np.float32 or not _numeric(dtype) or 0 in shape:
            fh.seek(0)
            return np.load(fh, allow_pickle=False)
        n_rows, n_cols = (shape[1], shape[0]) if fortran else shape  # as stored: n_rows records of n_cols
        need = n_rows * n_cols * dtype.itemsize
        size = p.stat().st_size - fh.tell()
        if need > size:
            raise InputError(f"array file {p} is truncated: shape {tuple(shape)} of {dtype} needs {need} bytes of "
                             f"data, the file holds {size}")
        stored = np.empty((n_rows, n_cols), np.float32)
        step = max(1, _NPY_CHUNK_BYTES // max(1, n_cols * dtype.itemsize))
        for start in range(0, n_rows, step):
            k = min(step, n_rows - start)
            buf = fh.read(k * n_cols * dtype.itemsize)
            with np.errstate(over="ignore"):
                stored[start:start + k] = np.frombuffer(buf, dtype).reshape(k, n_cols)
    return stored.T if fortran else stored


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
        with open(p, encoding="utf-8-sig", newline="") as fh:
            lines = fh.read().splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"confounds file {p} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    header = [c.strip() for c in (lines[0] if lines else "").split("\t")]
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
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
                value = np.nan if cell in ("n/a", "") else float(cell)
            except ValueError:
                raise InputError(f"confounds file {p}, line {i + 2}, column {chosen[j]!r}: {cell[:20]!r} is not a "
                                 f"number") from None
            if math.isinf(value):
                raise InputError(f"confounds file {p}, line {i + 2}, column {chosen[j]!r}: {cell[:20]!r} is "
                                 f"infinite; repair the column or leave it out of recipe.confounds")
            out[i, j] = value
    missing = np.isnan(out)
    if missing.any():
        means = [col[~m].mean() if (~m).any() else 0.0 for col, m in zip(out.T, missing.T)]
        out = np.where(missing, np.asarray(means), out)
    return out, chosen
