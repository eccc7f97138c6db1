"""Per-ROI summaries of encoding scores (``scores.json`` content): ROI means, AUCs, best layers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from mmneuro.brain.ceiling import normalized_alignment
from mmneuro.datasets.base import Dataset

if TYPE_CHECKING:
    from mmneuro.analyses.heldout import LayerFit
    from mmneuro.analyses.noise_ceiling import Ceiling

MIN_CEILING = 0.1


def roi_means(values: np.ndarray, rois: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean of ``values`` (n_targets,) over each ROI, ignoring NaN (invalid targets)."""
    out = {}
    for name, mask in rois.items():
        v = values[mask]
        out[name] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    return out


def roi_vs_rest_auc(r: np.ndarray, rois: dict[str, np.ndarray]) -> dict[str, float]:
    """Per ROI, the probability that a voxel inside it has a higher r than a voxel outside every ROI."""
    from sklearn.metrics import roc_auc_score

    outside = ~np.any(np.stack(list(rois.values())), axis=0)
    out = {}
    for name, mask in rois.items():
        keep = (mask | outside) & np.isfinite(r)
        labels = mask[keep]
        out[name] = float(roc_auc_score(labels, r[keep])) if 0 < labels.sum() < labels.size else float("nan")
    return out


def summarize(layers: Sequence[str], fits: dict[str, LayerFit], ceiling: Ceiling, dataset: Dataset,
              min_ceiling: float = MIN_CEILING) -> dict[str, Any]:
    """The ``scores.json`` content (per layer mean r, ROI r, normalised alignment; best layer; ceiling).

    Normalised alignment of an ROI = its mean r / its ceiling, NaN where the ceiling is below
    ``min_ceiling`` (too little explainable signal for the ratio to mean anything).
    """
    roi_ceiling = ceiling.roi_means(dataset.rois)
    names = list(dataset.rois)
    per_layer = {}
    for layer in layers:
        r = fits[layer].r
        roi_r = roi_means(r, dataset.rois)
        norm = normalized_alignment(np.array([roi_r[k] for k in names]), np.array([roi_ceiling[k] for k in names]),
                                    min_ceiling=min_ceiling)
        entry = {
            "mean_r": float(np.nanmean(r)),
            "roi_r": roi_r,
            "normalized_alignment": {k: float(v) for k, v in zip(names, norm)},
            "median_alpha": float(np.nanmedian(fits[layer].alpha)),
        }
        if dataset.mask_img is not None:
            entry["roi_vs_rest_auc"] = roi_vs_rest_auc(r, dataset.rois)
        per_layer[layer] = entry
    best = max(layers, key=lambda name: np.nanmean([per_layer[name]["roi_r"][k] for k in names]))
    return {
        "layers": per_layer,
        "best_layer": best,
        "best_layer_by_roi": {k: max(layers, key=lambda name: np.nan_to_num(per_layer[name]["roi_r"][k], nan=-1))
                              for k in names},
        "ceiling": {"method": ceiling.method, "min_ceiling": min_ceiling,
                    "roi_mean": roi_ceiling,
                    "fraction_above_min": float(np.mean(np.nan_to_num(ceiling.r) >= min_ceiling))},
    }
