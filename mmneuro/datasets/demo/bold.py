"""Simulated BOLD: ROI spheres, per-subject weights, AR(1) noise with drift, NIfTI images."""

from __future__ import annotations

import numpy as np

from mmneuro.datasets.demo.spec import (
    AR_RHO, BASELINE, DESCRIPTORS, DRIFT_SD, NOISE_SD, ROIS, ROI_RADIUS_MM, SCL_SLOPE, SNR, STREAM_NOISE,
    STREAM_WEIGHTS, TR, WEIGHT_JITTER, rng_for,
)


def roi_labels(mask_img) -> np.ndarray:
    """(n_voxels,) int over in-mask voxels (C order): index into ``list(ROIS)``, -1 outside ROIs.

    A voxel inside spheres of several ROIs goes to the ROI of the nearest centre, so the ROIs
    are disjoint.
    """
    mask = np.asarray(mask_img.dataobj).astype(bool)
    ijk = np.argwhere(mask)  # C order, same as mask_data[mask]
    xyz = ijk @ mask_img.affine[:3, :3].T + mask_img.affine[:3, 3]
    best = np.full(len(xyz), np.inf)
    labels = np.full(len(xyz), -1, dtype=np.int64)
    for r, (centres, _) in enumerate(ROIS.values()):
        for c in centres:
            d = np.linalg.norm(xyz - np.asarray(c, dtype=np.float64), axis=1)
            take = (d <= ROI_RADIUS_MM) & (d < best)
            labels[take], best[take] = r, d[take]
    return labels


def _base_weights() -> np.ndarray:
    """(n_rois, n_descriptors) descriptor weights driving each ROI."""
    w = np.zeros((len(ROIS), len(DESCRIPTORS)))
    for r, (_, drives) in enumerate(ROIS.values()):
        for name, value in drives.items():
            w[r, DESCRIPTORS.index(name)] = value
    return w


def subject_weights(seed: int, subject_index: int, labels: np.ndarray, designs: list[np.ndarray]) -> np.ndarray:
    """(n_descriptors, n_roi_voxels) positive weights for the ROI voxels of one subject.

    ``labels`` are the ROI labels of the ROI voxels (>= 0); ``designs`` holds the
    (n_trs, n_descriptors) regressors of every acquisition. Each ROI is scaled so that the
    signal variance within an acquisition, averaged over acquisitions and the ROI's voxels,
    is ``SNR * NOISE_SD**2``.
    """
    rng = rng_for(seed, STREAM_WEIGHTS, subject_index)
    base = _base_weights()[labels].T  # (n_desc, n_vox)
    w = base * rng.uniform(1.0 - WEIGHT_JITTER, 1.0 + WEIGHT_JITTER, size=base.shape)
    var = np.mean([(x @ w).var(axis=0) for x in designs], axis=0)
    for r in range(len(ROIS)):
        cols = labels == r
        if cols.any():
            w[:, cols] *= np.sqrt(SNR * NOISE_SD**2 / var[cols].mean())
    return w


def simulate_acquisition(
    seed: int, subject_index: int, acquisition: int, n_voxels: int, signal: np.ndarray, signal_idx: np.ndarray
) -> np.ndarray:
    """(n_trs, n_voxels) BOLD in physical units: baseline + drift + AR(1) noise + signal.

    ``signal`` is (n_trs, len(signal_idx)), added to the columns ``signal_idx``. Drift and
    noise are drawn from a stream of their own for each (seed, subject, acquisition).
    """
    rng = rng_for(seed, STREAM_NOISE, subject_index, acquisition)
    n_trs = len(signal)
    innov = rng.standard_normal((n_trs, n_voxels)) * (NOISE_SD * np.sqrt(1 - AR_RHO**2))
    noise = np.empty_like(innov)
    noise[0] = rng.standard_normal(n_voxels) * NOISE_SD  # stationary start
    for i in range(1, n_trs):
        noise[i] = AR_RHO * noise[i - 1] + innov[i]
    x = np.linspace(-1.0, 1.0, n_trs)[:, None]
    a1 = rng.standard_normal(n_voxels) * DRIFT_SD[0]
    a2 = rng.standard_normal(n_voxels) * DRIFT_SD[1]
    y = BASELINE + a1 * x + a2 * (1.5 * x * x - 0.5) + noise
    y[:, signal_idx] += signal
    return y


def bold_image(y: np.ndarray, mask: np.ndarray, affine: np.ndarray):
    """4D int16 NIfTI (scl_slope = SCL_SLOPE, MNI codes, TR in pixdim) of (n_trs, n_voxels) BOLD."""
    import nibabel as nib

    vol = np.zeros(mask.shape + (y.shape[0],), dtype=np.int16)
    vol[mask] = np.rint(y / SCL_SLOPE).astype(np.int16).T
    img = nib.Nifti1Image(vol, affine)
    img.header.set_slope_inter(SCL_SLOPE, 0.0)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = TR
    img.set_sform(affine, code="mni")
    img.set_qform(affine, code="mni")
    return img
