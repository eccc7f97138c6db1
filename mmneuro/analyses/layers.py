"""Layerwise alignment: every layer of a model -> per-ROI held-out r (and normalised alignment)
per subject, group statistics with confidence intervals, the best layer per ROI, and whether
intermediate layers beat the first and the last (paired across subjects).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from mmneuro.analyses.heldout import DEFAULT_ALPHAS, fit_evaluate
from mmneuro.analyses.noise_ceiling import noise_ceilings
from mmneuro.analyses.stats import GroupSummary, fdr_correct, group_summary
from mmneuro.analyses.summary import roi_means
from mmneuro.datasets.base import Dataset, Responses
from mmneuro.errors import InputError


@dataclass
class LayerStudy:
    """Per-subject ROI r for every layer (and a baseline), with group statistics.

    ``roi_r``: (n_subjects, n_layers, n_rois) held-out r (ROI means); ``ceiling``: (n_subjects,
    n_rois); ``group[layer]``: :class:`GroupSummary` over subjects (columns = ROIs);
    ``best_layer[roi]``: the layer with the highest group mean; ``comparisons[roi]``: paired
    tests of the best layer against the first layer, the last layer and the baseline
    (mean difference, t, p, FDR q over all comparisons).
    """

    layers: list[str]
    rois: list[str]
    subjects: list[str]
    roi_r: np.ndarray
    ceiling: np.ndarray
    group: dict[str, GroupSummary]
    best_layer: dict[str, str]
    baseline_r: np.ndarray | None = None
    comparisons: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def normalized(self) -> np.ndarray:
        """ROI r / ROI ceiling, (n_subjects, n_layers, n_rois)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.roi_r / self.ceiling[:, None, :]


def layer_study(dataset: Dataset, features: dict[str, dict[str, np.ndarray]], subjects: Sequence[str] | None = None,
                baseline: dict[str, np.ndarray] | None = None, delays: Sequence[int] | None = None,
                alphas: np.ndarray = DEFAULT_ALPHAS, load: Callable[[str], Responses] | None = None,
                progress: bool = True) -> LayerStudy:
    """Encode every layer of ``features`` ({layer: {run: (n_trs, p)}}) for every subject.

    ``baseline``: optional {run: (n_trs, q)} features (e.g. word rate) encoded the same way and
    compared with the best layer. Needs at least 2 subjects for the group statistics.
    """
    subjects = list(dataset.subjects if subjects is None else subjects)
    if len(subjects) < 2:
        raise InputError(f"a layer study needs at least 2 subjects for group statistics, got {subjects}")
    load = load or dataset.load_responses
    layers, rois = list(features), list(dataset.rois)
    responses = {s: load(s) for s in subjects}
    roi_r = np.empty((len(subjects), len(layers), len(rois)))
    base = np.empty((len(subjects), len(rois))) if baseline is not None else None
    ceiling = np.empty((len(subjects), len(rois)))
    ceilings = noise_ceilings(dataset, list(responses.values()))
    for i, s in enumerate(tqdm(subjects, desc="layer study", unit="subject", disable=not progress)):
        for j, layer in enumerate(layers):
            fit = fit_evaluate(dataset, features[layer], responses[s], delays, alphas)
            roi_r[i, j] = [roi_means(fit.r, dataset.rois)[k] for k in rois]
        if base is not None:
            fit = fit_evaluate(dataset, baseline, responses[s], delays, alphas)
            base[i] = [roi_means(fit.r, dataset.rois)[k] for k in rois]
        roof = ceilings[s].roi_means(dataset.rois)
        ceiling[i] = [roof[k] for k in rois]
    group = {layer: group_summary(roi_r[:, j]) for j, layer in enumerate(layers)}
    best = {k: layers[int(np.nanargmax([group[layer].mean[r] for layer in layers]))] for r, k in enumerate(rois)}
    study = LayerStudy(layers, rois, subjects, roi_r, ceiling, group, best, base)
    study.comparisons = compare_best_layer(study)
    return study


def compare_best_layer(study: LayerStudy) -> dict[str, dict[str, dict[str, float]]]:
    """Paired t-tests across subjects: best layer vs first, last and baseline, per ROI; BH-FDR over all."""
    from scipy import stats

    out: dict[str, dict[str, dict[str, float]]] = {}
    pvals, keys = [], []
    for r, roi in enumerate(study.rois):
        b = study.layers.index(study.best_layer[roi])
        others = {"first": study.roi_r[:, 0, r], "last": study.roi_r[:, -1, r]}
        if study.baseline_r is not None:
            others["baseline"] = study.baseline_r[:, r]
        out[roi] = {}
        for name, other in others.items():
            diff = study.roi_r[:, b, r] - other
            ok = np.isfinite(diff)
            if not np.any(diff[ok]):
                out[roi][name] = {"mean_difference": 0.0, "t": float("nan"), "p": float("nan")}
                continue
            t, p = stats.ttest_rel(study.roi_r[ok, b, r], other[ok])
            out[roi][name] = {"mean_difference": float(diff[ok].mean()), "t": float(t), "p": float(p)}
            pvals.append(float(p))
            keys.append((roi, name))
    _, q = fdr_correct(np.array(pvals))
    for (roi, name), qv in zip(keys, q):
        out[roi][name]["q"] = float(qv)
    return out
