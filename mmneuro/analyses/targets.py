"""Working on a subset of targets (e.g. only the ROI voxels) and writing full-length maps back.

Studies that only report ROI numbers fit the voxels inside the ROIs; maps are then written
from full-length arrays with NaN outside the subset.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mmneuro.datasets.base import Dataset, Responses
from mmneuro.errors import InputError

__all__ = ["roi_union", "restrict_targets", "expand_targets"]


def roi_union(rois: dict[str, np.ndarray]) -> np.ndarray:
    """(n_targets,) bool: targets inside any ROI."""
    if not rois:
        raise InputError("the dataset defines no ROIs; use all targets instead")
    return np.any(np.stack([np.asarray(m, dtype=bool) for m in rois.values()]), axis=0)


def restrict_targets(dataset: Dataset, responses: Responses, keep: np.ndarray | None) -> tuple[Dataset, Responses]:
    """``dataset`` and ``responses`` on the targets where ``keep`` (n_targets,) is True (None: unchanged).

    ROI masks are sliced to the kept targets and the mask image and target space are dropped: write maps from
    full-length arrays (see :func:`expand_targets`).
    """
    if keep is None:
        return dataset, responses
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != (responses.n_targets,):
        raise InputError(f"target mask has shape {keep.shape}; the responses have {responses.n_targets} targets")
    if not keep.any():
        raise InputError("the target mask selects no targets")
    ds = dataclasses.replace(dataset, rois={k: m[keep] for k, m in dataset.rois.items()}, mask_img=None, space=None)
    resp = Responses(responses.subject, {k: v[..., keep] for k, v in responses.runs.items()},
                     None if responses.valid is None else responses.valid[keep])
    return ds, resp


def expand_targets(values: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """Values on the kept targets -> (n_targets,) float64 with NaN elsewhere (``keep=None``: unchanged)."""
    if keep is None:
        return np.asarray(values, dtype=np.float64)
    keep = np.asarray(keep, dtype=bool)
    out = np.full(keep.shape, np.nan)
    out[keep] = values
    return out
