"""Loaders (NIfTI + mask, npy/HDF5, text) and per-run cleaning of the brain room."""

from __future__ import annotations

import gzip

import h5py
import nibabel as nib
import numpy as np
import pytest

from mmneuro.brain import (
    clean_run,
    constant_columns,
    detrend,
    load_array,
    load_nifti_runs,
    load_roi_timeseries,
    validate_responses,
)
from mmneuro.errors import InputError

SHAPE3 = (5, 4, 3)
AFFINE = np.array([[2.0, 0, 0, -4], [0, 2.0, 0, -3], [0, 0, 2.5, 1], [0, 0, 0, 1]])


@pytest.fixture
def nifti(tmp_path):
    """Two 4-D runs (20 and 13 TRs) and a mask with about half the voxels, on disk."""
    rng = np.random.default_rng(0)
    mask = rng.random(SHAPE3) < 0.5
    mask[0, 0, 0] = True
    mask[-1, -1, -1] = False
    mask_path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), AFFINE), mask_path)
    runs, paths = [], []
    for i, n_trs in enumerate((20, 13)):
        data = rng.standard_normal(SHAPE3 + (n_trs,)).astype(np.float32) * 10 + 100
        p = tmp_path / f"run-{i + 1}.nii.gz"
        nib.save(nib.Nifti1Image(data, AFFINE), p)
        runs.append(data)
        paths.append(p)
    return {"mask": mask, "mask_path": mask_path, "runs": runs, "paths": paths, "dir": tmp_path}


# --------------------------------------------------------------------------- NIfTI


def test_nifti_round_trip_in_mask_order(nifti):
    out = load_nifti_runs(nifti["paths"], nifti["mask_path"])
    n_vox = int(nifti["mask"].sum())
    assert [y.shape for y in out] == [(20, n_vox), (13, n_vox)]
    for y, data in zip(out, nifti["runs"]):
        assert y.dtype == np.float32
        # mask order: C order over the in-mask voxels, i.e. data[mask] transposed to (time, voxels)
        np.testing.assert_array_equal(y, data[nifti["mask"]].T)


def test_nifti_mask_given_as_image_matches_path(nifti):
    img = nib.load(nifti["mask_path"])
    a = load_nifti_runs(nifti["paths"][:1], img)[0]
    b = load_nifti_runs(nifti["paths"][:1], nifti["mask_path"])[0]
    np.testing.assert_array_equal(a, b)


def test_nifti_no_cleaning_by_nilearn(nifti):
    # raw values come through: mean near 100, not standardised or detrended away
    y = load_nifti_runs(nifti["paths"][:1], nifti["mask_path"])[0]
    assert abs(float(y.mean()) - 100.0) < 2.0


def test_nifti_wrong_shape_mask_names_both_shapes_and_file(nifti):
    bad_mask = nifti["dir"] / "small_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 4, 2), np.uint8), AFFINE), bad_mask)
    with pytest.raises(InputError) as info:
        load_nifti_runs(nifti["paths"], bad_mask)
    msg = str(info.value)
    assert "run-1.nii.gz" in msg
    assert "(5, 4, 3)" in msg and "(5, 4, 2)" in msg


def test_nifti_wrong_affine(nifti):
    other = nifti["dir"] / "shifted_mask.nii.gz"
    shifted = AFFINE.copy()
    shifted[0, 3] += 6.0
    nib.save(nib.Nifti1Image(nifti["mask"].astype(np.uint8), shifted), other)
    with pytest.raises(InputError, match="affine") as info:
        load_nifti_runs(nifti["paths"], other)
    assert "run-1.nii.gz" in str(info.value)


def test_nifti_3d_image_rejected(nifti):
    p = nifti["dir"] / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(SHAPE3, np.float32), AFFINE), p)
    with pytest.raises(InputError) as info:
        load_nifti_runs([p], nifti["mask_path"])
    assert "vol.nii.gz" in str(info.value) and "3-D" in str(info.value) and "(5, 4, 3)" in str(info.value)


def test_nifti_missing_file(nifti):
    missing = nifti["dir"] / "nope.nii.gz"
    with pytest.raises(InputError, match="nope.nii.gz"):
        load_nifti_runs([nifti["paths"][0], missing], nifti["mask_path"])


def test_nifti_missing_mask(nifti):
    with pytest.raises(InputError, match="no_mask.nii.gz"):
        load_nifti_runs(nifti["paths"], nifti["dir"] / "no_mask.nii.gz")


def test_nifti_truncated_gz(nifti):
    raw = nifti["paths"][0].read_bytes()
    p = nifti["dir"] / "truncated.nii.gz"
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="truncated.nii.gz"):
        load_nifti_runs([p], nifti["mask_path"])


def test_nifti_garbage_gz(nifti):
    p = nifti["dir"] / "garbage.nii.gz"
    p.write_bytes(gzip.compress(b"this is not a nifti header" * 20))
    with pytest.raises(InputError, match="garbage.nii.gz"):
        load_nifti_runs([p], nifti["mask_path"])


def test_nifti_nan_inside_mask_counted(nifti):
    data = nifti["runs"][0].copy()
    data[0, 0, 0, 3] = np.nan  # (0, 0, 0) is in the mask: column 0 in mask order
    data[0, 0, 0, 7] = np.nan
    p = nifti["dir"] / "nan.nii.gz"
    nib.save(nib.Nifti1Image(data, AFFINE), p)
    with pytest.raises(InputError) as info:
        load_nifti_runs([p], nifti["mask_path"])
    msg = str(info.value)
    assert "nan.nii.gz" in msg and "2 NaN" in msg and "first: 0)" in msg


def test_nifti_nan_outside_mask_is_fine(nifti):
    data = nifti["runs"][0].copy()
    data[-1, -1, -1, :] = np.nan  # outside the mask
    p = nifti["dir"] / "nan_out.nii.gz"
    nib.save(nib.Nifti1Image(data, AFFINE), p)
    y = load_nifti_runs([p], nifti["mask_path"])[0]
    np.testing.assert_array_equal(y, data[nifti["mask"]].T)


# --------------------------------------------------------------------------- arrays and text


def test_npy_round_trip(tmp_path):
    a = np.random.default_rng(1).standard_normal((30, 7)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    out = load_array(tmp_path / "a.npy")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, a)


def test_h5_round_trip_single_and_keyed(tmp_path):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((25, 4)).astype(np.float32)
    b = rng.standard_normal((25, 9)).astype(np.float32)
    with h5py.File(tmp_path / "one.h5", "w") as f:
        f["data"] = a
    np.testing.assert_array_equal(load_array(tmp_path / "one.h5"), a)
    with h5py.File(tmp_path / "two.hdf5", "w") as f:
        f["x"] = a
        f.create_group("g")["y"] = b
    np.testing.assert_array_equal(load_array(tmp_path / "two.hdf5", key="g/y"), b)
    with pytest.raises(InputError) as info:
        load_array(tmp_path / "two.hdf5")
    assert "two.hdf5" in str(info.value) and "2 datasets" in str(info.value)
    with pytest.raises(InputError, match="no dataset 'z'"):
        load_array(tmp_path / "two.hdf5", key="z")


@pytest.mark.parametrize("shape", [(12,), (3, 4, 5)])
def test_array_not_2d_names_file_and_shape(tmp_path, shape):
    np.save(tmp_path / "bad.npy", np.zeros(shape))
    with pytest.raises(InputError) as info:
        load_array(tmp_path / "bad.npy")
    assert "bad.npy" in str(info.value) and str(shape) in str(info.value)


def test_array_nan_rejected(tmp_path):
    a = np.ones((10, 3))
    a[4, 2] = np.nan
    np.save(tmp_path / "nan.npy", a)
    with pytest.raises(InputError) as info:
        load_array(tmp_path / "nan.npy")
    assert "nan.npy" in str(info.value) and "1 NaN" in str(info.value)


def test_roi_text_round_trip_and_ragged(tmp_path):
    a = np.random.default_rng(3).standard_normal((15, 6)) * 50 + 150
    np.savetxt(tmp_path / "s01-timecourses.txt", a, fmt="%.10e", delimiter="\t")
    np.testing.assert_allclose(load_roi_timeseries(tmp_path / "s01-timecourses.txt"), a, rtol=1e-9)
    (tmp_path / "ragged.txt").write_text("1 2 3\n4 5\n")
    with pytest.raises(InputError, match="ragged.txt"):
        load_roi_timeseries(tmp_path / "ragged.txt")
    with pytest.raises(InputError, match="absent.txt"):
        load_roi_timeseries(tmp_path / "absent.txt")


# --------------------------------------------------------------------------- validation


def test_validate_responses_messages():
    Y = np.zeros((50, 10))
    Y[[1, 2, 3], 7] = np.nan
    Y[9, 2] = np.inf
    with pytest.raises(InputError) as info:
        validate_responses(Y, "subject 05 run-2")
    msg = str(info.value)
    assert msg.startswith("subject 05 run-2")
    assert "3 NaN" in msg and "1 infinite" in msg and "2 of 10 columns" in msg and "2, 7" in msg
    with pytest.raises(InputError, match=r"3-D with shape \(2, 3, 4\)"):
        validate_responses(np.zeros((2, 3, 4)), "x")
    assert validate_responses(np.ones((4, 2)), "ok") is None


# --------------------------------------------------------------------------- cleaning


def test_detrend_removes_exact_quadratic():
    t = np.arange(200, dtype=float)
    Y = np.stack([3.0 + 0.5 * t - 0.01 * t**2, -2.0 + 0.1 * t, np.full(200, 7.0)], axis=1)
    np.testing.assert_allclose(detrend(Y, order=2), 0.0, atol=1e-9)
    # a linear detrend cannot remove the parabola, only the line and the constant
    lin = detrend(Y, order=1)
    assert np.abs(lin[:, 0]).max() > 1.0
    np.testing.assert_allclose(lin[:, 1:], 0.0, atol=1e-9)


def test_detrend_matches_least_squares_polyfit():
    rng = np.random.default_rng(4)
    Y = rng.standard_normal((60, 3))
    x = np.arange(60.0)
    expected = np.stack([Y[:, j] - np.polyval(np.polyfit(x, Y[:, j], 2), x) for j in range(3)], axis=1)
    np.testing.assert_allclose(detrend(Y, 2), expected, atol=1e-10)


def test_detrend_too_short():
    with pytest.raises(InputError, match="at least 4"):
        detrend(np.ones((3, 2)), order=2)


def test_clean_run_zscores_and_zeroes_constant():
    rng = np.random.default_rng(5)
    t = np.arange(120.0)
    Y = rng.standard_normal((120, 4)) * 3 + 50 + 0.2 * t[:, None]
    Y[:, 2] = 123.4  # constant column
    Y = Y.astype(np.float32)
    out = clean_run(Y)
    assert out.dtype == np.float32 and out.shape == Y.shape
    assert not np.isnan(out).any()
    ok = [0, 1, 3]
    np.testing.assert_allclose(out[:, ok].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out[:, ok].std(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out[:, 2], 0.0)
    assert constant_columns(Y).tolist() == [False, False, True, False]
    # the trend is gone: the cleaned series is uncorrelated with time
    assert abs(np.corrcoef(out[:, 0], t)[0, 1]) < 1e-5


def test_clean_run_exact_trend_becomes_zero_not_noise():
    t = np.arange(80.0)
    Y = np.stack([1000 + 2 * t + 0.05 * t**2, np.sin(t / 3)], axis=1).astype(np.float32)
    out = clean_run(Y, detrend_order=2)
    np.testing.assert_array_equal(out[:, 0], 0.0)
    assert abs(out[:, 1].std() - 1) < 1e-5


def test_clean_run_rejects_nan():
    Y = np.ones((10, 2))
    Y[0, 1] = np.nan
    with pytest.raises(InputError, match="1 NaN"):
        clean_run(Y, name="run-1")


def test_constant_columns_tolerance():
    Y = np.stack([np.full(50, 250.0), np.zeros(50), 250 + 0.5 * np.sin(np.arange(50.0))], axis=1)
    assert constant_columns(Y).tolist() == [True, True, False]
