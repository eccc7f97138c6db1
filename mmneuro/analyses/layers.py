"""Layerwise alignment: every layer of a model -> per-ROI held-out r and normalised alignment
(r / noise ceiling) per subject, confidence intervals, the best layer per ROI, and whether
intermediate layers beat the first and the last.

Two sources of uncertainty, chosen by the number of subjects:

- **several subjects** (``ci_method="subjects"``): each subject's ROI r is one observation;
  bootstrap CIs of the group mean, one-sample t-tests, and paired t-tests across subjects for
  the layer comparisons;
- **one subject** (``ci_method="time-blocks"``): the held-out time series is resampled in
  contiguous blocks (the same blocks for every layer, so comparisons are paired); CIs are
  percentile intervals and p-values two-sided bootstrap p-values.

Comparisons per ROI (BH-FDR over all of them): the best layer against the first layer, the
last layer and the baseline (e.g. word rate), and the mean of the intermediate layers
(every layer but the first and last) against the first and against the last. The best
layer is chosen on the same data, so its comparisons are optimistic; the intermediate ones
are not.

Shapes: ``roi_r`` (n_subjects, n_layers, n_rois), ``ceiling`` (n_subjects, n_rois),
``voxel_r`` (n_subjects, n_layers, n_targets), ``boot_r`` (n_boot, n_layers, n_rois).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from mmneuro.analyses.heldout import DEFAULT_ALPHAS, fit_evaluate, heldout_responses
from mmneuro.analyses.noise_ceiling import PER_SUBJECT, ceiling_method, noise_ceilings
from mmneuro.analyses.stats import (
    GroupSummary,
    block_resample,
    fdr_correct,
    group_summary,
)
from mmneuro.analyses.summary import MIN_CEILING, roi_means
from mmneuro.brain.ceiling import normalized_alignment
from mmneuro.datasets.base import Dataset, Responses
from mmneuro.errors import InputError

#: comparison name -> what it contrasts (``best`` = the ROI's best layer)
COMPARISONS = {
    "first": "best layer - first layer",
    "last": "best layer - last layer",
    "baseline": "best layer - baseline",
    "intermediate_vs_first": "mean of intermediate layers - first layer",
    "intermediate_vs_last": "mean of intermediate layers - last layer",
}


@dataclass
class LayerStudy:
    """Per-subject ROI r for every layer (and a baseline), with CIs, best layers and comparisons.

    ``group[layer]`` / ``normalized_group[layer]``: :class:`GroupSummary` of the ROI r /
    normalised alignment (columns = ROIs): across subjects, or over time blocks for one subject
    (then ``sem`` is the bootstrap s.d., ``p`` a two-sided bootstrap p-value and ``n`` 1).
    ``best_layer[roi]``: the layer with the highest mean r. ``comparisons[roi][name]``: dicts
    with ``mean_difference``, ``ci_low``, ``ci_high``, ``t``, ``p``, ``q`` (see :data:`COMPARISONS`).
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
    normalized_group: dict[str, GroupSummary] = field(default_factory=dict)
    baseline_group: GroupSummary | None = None
    ci_method: str = "subjects"
    ceiling_method: str = ""
    voxel_r: np.ndarray | None = None
    boot_r: np.ndarray | None = None
    boot_baseline_r: np.ndarray | None = None
    min_ceiling: float = MIN_CEILING

    def normalized(self) -> np.ndarray:
        """ROI r / ROI ceiling, (n_subjects, n_layers, n_rois); NaN where the ceiling < ``min_ceiling``."""
        return np.stack([normalized_alignment(self.roi_r[i], self.ceiling[i], self.min_ceiling)
                         for i in range(len(self.subjects))])

    def table(self) -> dict[str, np.ndarray]:
        """Mean r, CI and normalised alignment as (n_layers, n_rois) arrays (keys ``r``, ``ci_low``,
        ``ci_high``, ``normalized``, ``normalized_ci_low``, ``normalized_ci_high``)."""
        def stack(groups: dict[str, GroupSummary], attr: str) -> np.ndarray:
            return np.stack([getattr(groups[k], attr) for k in self.layers])

        return {"r": stack(self.group, "mean"), "ci_low": stack(self.group, "ci_low"),
                "ci_high": stack(self.group, "ci_high"), "normalized": stack(self.normalized_group, "mean"),
                "normalized_ci_low": stack(self.normalized_group, "ci_low"),
                "normalized_ci_high": stack(self.normalized_group, "ci_high")}


def layer_study(dataset: Dataset, features: dict[str, dict[str, np.ndarray]], subjects: Sequence[str] | None = None,
                baseline: dict[str, np.ndarray] | None = None, delays: Sequence[int] | None = None,
                alphas: np.ndarray = DEFAULT_ALPHAS, load: Callable[[str], Responses] | None = None,
                n_boot: int = 1000, block_len: int = 10, seed: int = 0, min_ceiling: float = MIN_CEILING,
                targets: np.ndarray | None = None, progress: bool = True,
                ceiling_cache: str | Path | None = None) -> LayerStudy:
    """Encode every layer of ``features`` ({layer: {run: (n_trs, p)}}) for every subject.

    ``baseline``: optional {run: (n_trs, q)} features (e.g. word rate) encoded the same way and
    compared with the best layer. With several subjects the statistics are across subjects;
    with one, over ``n_boot`` resamples of ``block_len``-sample blocks of held-out time (seeded
    by ``seed``). Ceilings come from repeats when every chosen subject has them, else across all
    of the dataset's subjects. Normalised alignment is NaN where the ROI ceiling < ``min_ceiling``.
    ``targets``: optional (n_targets,) bool, the targets to encode (e.g. the ROIs' voxels, much
    faster than the whole brain); ``voxel_r`` is NaN elsewhere and ROI means use the chosen ones.
    ``ceiling_cache``: folder of cached ceilings (see :func:`~mmneuro.analyses.noise_ceiling.noise_ceilings`).
    """
    subjects = list(dataset.subjects if subjects is None else subjects)
    if not subjects:
        raise InputError("a layer study needs at least one subject")
    layers, rois = list(features), list(dataset.rois)
    if not layers:
        raise InputError("a layer study needs at least one layer of features")
    load = load or dataset.load_responses
    single = len(subjects) == 1
    n_all = next(iter(dataset.rois.values())).shape[0]
    keep = np.ones(n_all, bool) if targets is None else np.asarray(targets, bool)
    if keep.shape != (n_all,) or not keep.any():
        raise InputError(f"targets must be a (n_targets,) = ({n_all},) bool mask selecting at least one target")
    if targets is not None:
        load = _selecting(load, keep)
    masks = {k: np.asarray(m)[keep] for k, m in dataset.rois.items()}
    responses = {s: load(s) for s in subjects}
    ceilings = ceilings_for(dataset, responses, load, ceiling_cache)
    n_targets = int(keep.sum())
    spaces = [features[layer] for layer in layers] + ([baseline] if baseline is not None else [])
    scores = np.empty((len(subjects), len(spaces), n_targets), np.float32)
    predictions: list[np.ndarray] = []
    stacked = stack_subjects([responses[s] for s in subjects])
    for j, feats in enumerate(tqdm(spaces, desc="layer study", unit="feature space", disable=not progress)):
        if stacked is not None:  # one fit for every subject: same design, one alpha per target either way
            fit = fit_evaluate(dataset, feats, stacked, delays, alphas, keep_predictions=single)
            scores[:, j] = fit.r.reshape(len(subjects), n_targets)
        else:
            for i, s in enumerate(subjects):
                fit = fit_evaluate(dataset, feats, responses[s], delays, alphas, keep_predictions=single)
                scores[i, j] = fit.r
        if single:
            predictions.append(fit.prediction)
    roi_scores = np.stack([[_roi_vector(scores[i, j], masks, rois) for j in range(len(spaces))]
                           for i in range(len(subjects))])  # (n_subjects, n_spaces, n_rois)
    voxel_r = np.full((len(subjects), len(layers), n_all), np.nan, np.float32)
    voxel_r[:, :, keep] = scores[:, :len(layers)]
    roi_r = roi_scores[:, :len(layers)]
    base = roi_scores[:, len(layers)] if baseline is not None else None
    ceiling = np.array([[ceilings[s].roi_means(masks)[k] for k in rois] for s in subjects])
    study = LayerStudy(layers, rois, subjects, roi_r, ceiling, {}, {}, base, min_ceiling=min_ceiling,
                       ceiling_method=ceilings[subjects[0]].method, voxel_r=voxel_r,
                       ci_method="time-blocks" if single else "subjects")
    norm = study.normalized()
    if single:
        resp = responses[subjects[0]]
        Y = heldout_responses(dataset, resp)
        if resp.valid is not None:
            Y = np.where(resp.valid, Y, np.nan)
        boot = roi_block_bootstrap(Y, predictions, masks, n_boot, block_len, seed)
        study.boot_r = boot[:, :len(layers)]
        study.boot_baseline_r = boot[:, len(layers)] if base is not None else None
        roof = np.where(np.isfinite(ceiling[0]) & (ceiling[0] >= min_ceiling), ceiling[0], np.nan)
        boot_norm = study.boot_r / roof[None, None, :]  # the ceiling is held fixed
        study.group = {k: bootstrap_summary(roi_r[0, j], study.boot_r[:, j]) for j, k in enumerate(layers)}
        study.normalized_group = {k: bootstrap_summary(norm[0, j], boot_norm[:, j]) for j, k in enumerate(layers)}
        if base is not None:
            study.baseline_group = bootstrap_summary(base[0], study.boot_baseline_r)
    else:
        study.group = {k: subject_summary(roi_r[:, j], seed) for j, k in enumerate(layers)}
        study.normalized_group = {k: subject_summary(norm[:, j], seed) for j, k in enumerate(layers)}
        if base is not None:
            study.baseline_group = subject_summary(base, seed)
    means = np.stack([study.group[k].mean for k in layers])  # (n_layers, n_rois)
    study.best_layer = {roi: layers[int(np.nanargmax(np.nan_to_num(means[:, r], nan=-np.inf)))]
                        for r, roi in enumerate(rois)}
    study.comparisons = compare_layers(study, seed)
    return study


def ceilings_for(dataset: Dataset, responses: dict[str, Responses], load: Callable[[str], Responses],
                 cache: str | Path | None = None) -> dict:
    """Each chosen subject's :class:`~mmneuro.analyses.noise_ceiling.Ceiling` by ``dataset.ceiling``
    (``"auto"``: from repeats when all chosen subjects have them, else leave-one-out ISC): per-subject
    methods use the chosen subjects only, cross-subject ones every usable subject of the dataset.
    ``cache``: folder of cached ceilings, or None."""
    method = ceiling_method(dataset, list(responses.values()))
    if method in PER_SUBJECT:
        return noise_ceilings(dataset, list(responses.values()), cache, method)
    everyone = [responses[s] if s in responses else load(s) for s in dataset.subjects]
    if len(everyone) < 2:
        raise InputError(f"dataset {dataset.name!r} has one subject: no {method!r} (cross-subject) noise ceiling; "
                         f"it needs repeated test runs and ceiling 'repeats' or 'split-half'")
    return noise_ceilings(dataset, everyone, cache, method)


def stack_subjects(responses: Sequence[Responses]) -> Responses | None:
    """Several subjects' responses side by side as one set of targets (subject-major columns).

    Every subject's features are the same, so one ridge fit with one alpha per target gives each
    subject's scores at once. Returns None when runs or their (n_repeats, n_trs) differ between
    subjects (then each subject is fitted alone).
    """
    first = responses[0]
    for r in responses[1:]:
        if set(r.runs) != set(first.runs) or any(r.runs[k].shape[:2] != first.runs[k].shape[:2] for k in first.runs):
            return None
    if len(responses) == 1:
        return first
    valid = None
    if any(r.valid is not None for r in responses):
        valid = np.concatenate([r.valid if r.valid is not None else np.ones(r.n_targets, bool)
                                for r in responses])
    return Responses("+".join(r.subject for r in responses),
                     {k: np.concatenate([r.runs[k] for r in responses], axis=-1) for k in first.runs}, valid)


def _selecting(load: Callable[[str], Responses], keep: np.ndarray) -> Callable[[str], Responses]:
    """``load`` returning only the ``keep`` columns (targets) of each subject's responses."""
    def selected(subject: str) -> Responses:
        r = load(subject)
        return Responses(r.subject, {k: v[..., keep] for k, v in r.runs.items()},
                         None if r.valid is None else r.valid[keep])
    return selected


def _roi_vector(values: np.ndarray, masks: dict[str, np.ndarray], rois: list[str]) -> np.ndarray:
    means = roi_means(values, masks)
    return np.array([means[k] for k in rois])


def roi_block_bootstrap(Y: np.ndarray, predictions: Sequence[np.ndarray], rois: dict[str, np.ndarray],
                        n_boot: int = 1000, block_len: int = 10, seed: int = 0) -> np.ndarray:
    """ROI-mean Pearson r of several predictions on the same block-bootstrap resamples of time.

    ``Y`` (n_samples, n_targets) measured (NaN columns = invalid targets, left out), each
    prediction (n_samples, n_targets); ``rois`` name -> (n_targets,) bool. Every resample draws
    contiguous blocks of ``block_len`` samples with replacement, the same rows for every
    prediction (so differences between predictions are paired). Only ROI targets are used.
    Returns (n_boot, n_predictions, n_rois) float64.
    """
    Y = np.asarray(Y, dtype=np.float64)
    n = Y.shape[0]
    for P in predictions:
        if P.shape != Y.shape:
            raise InputError(f"prediction of shape {P.shape} does not match responses {Y.shape}")
    if not 1 <= block_len <= n // 2:
        raise InputError(f"block_len must be in 1..{n // 2} for {n} held-out samples, got {block_len}")
    names = list(rois)
    cols = np.flatnonzero(np.any(np.stack([rois[k] for k in names]), axis=0))
    masks = [np.asarray(rois[k])[cols] for k in names]
    y = Y[:, cols]
    ps = [np.asarray(P, dtype=np.float64)[:, cols] for P in predictions]
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, len(ps), len(names)))
    for b in range(n_boot):
        idx = block_resample(rng, n, block_len)
        yb = y[idx] - y[idx].mean(axis=0)
        yn = np.sqrt((yb * yb).sum(axis=0))
        for j, p in enumerate(ps):
            pb = p[idx] - p[idx].mean(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                r = (yb * pb).sum(axis=0) / (yn * np.sqrt((pb * pb).sum(axis=0)))
            out[b, j] = [np.nanmean(r[m]) if np.isfinite(r[m]).any() else np.nan for m in masks]
    return out


def bootstrap_summary(point: np.ndarray, boot: np.ndarray, ci: float = 0.95) -> GroupSummary:
    """A :class:`GroupSummary` from a point estimate (n_columns,) and its bootstrap (n_boot, n_columns).

    CI: percentile interval; ``sem``: bootstrap s.d.; ``t`` = point / sem; ``p``: two-sided
    bootstrap p-value of 0, ``min(1, 2 min(1 + #{boot <= 0}, 1 + #{boot >= 0}) / (1 + n_boot))``;
    ``n``: 1 (one subject). Columns without a finite point are NaN.
    """
    point = np.asarray(point, dtype=np.float64)
    boot = np.asarray(boot, dtype=np.float64)
    ok = np.isfinite(point) & np.all(np.isfinite(boot), axis=0)
    tail = (1 - ci) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(ok, np.nanquantile(np.where(ok, boot, 0.0), tail, axis=0), np.nan)
        high = np.where(ok, np.nanquantile(np.where(ok, boot, 0.0), 1 - tail, axis=0), np.nan)
        sd = np.where(ok, boot.std(axis=0, ddof=1), np.nan)
        t = point / sd
    n_boot = boot.shape[0]
    below = 1 + np.sum(boot <= 0, axis=0)
    above = 1 + np.sum(boot >= 0, axis=0)
    p = np.where(ok, np.minimum(1.0, 2 * np.minimum(below, above) / (1 + n_boot)), np.nan)
    return GroupSummary(np.where(ok, point, np.nan), sd, low, high, t, p, np.where(ok, 1, 0))


def subject_summary(values: np.ndarray, seed: int = 0) -> GroupSummary:
    """:func:`~mmneuro.analyses.stats.group_summary` over subjects (rows) for every column with at
    least 2 finite values; other columns (e.g. normalised alignment under a low ceiling) are NaN."""
    v = np.asarray(values, dtype=np.float64)
    v = v[:, None] if v.ndim == 1 else v
    n = np.sum(np.isfinite(v), axis=0)
    nan = np.full(v.shape[1], np.nan)
    out = GroupSummary(nan.copy(), nan.copy(), nan.copy(), nan.copy(), nan.copy(), nan.copy(), n)
    ok = np.flatnonzero(n >= 2)
    if ok.size:
        g = group_summary(v[:, ok], seed=seed)
        for name in ("mean", "sem", "ci_low", "ci_high", "t", "p"):
            getattr(out, name)[ok] = getattr(g, name)
    return out


def _contrast_side(study: LayerStudy, r: int, single: bool,
                   index: int | str | Sequence[int]) -> tuple[np.ndarray, np.ndarray | None]:
    """ROI ``r``'s per-subject values (n_subjects,) and bootstrap draws (n_boot,) or None, of one layer,
    the mean of several layers, or ``"baseline"``."""
    if index == "baseline":
        return study.baseline_r[:, r], (study.boot_baseline_r[:, r] if single else None)
    idx = [index] if isinstance(index, int) else list(index)
    per = np.nanmean(study.roi_r[:, idx, r], axis=1)
    return per, (np.nanmean(study.boot_r[:, idx, r], axis=1) if single else None)


def compare_layers(study: LayerStudy, seed: int = 0) -> dict[str, dict[str, dict[str, float]]]:
    """Every comparison of :data:`COMPARISONS` per ROI, BH-FDR ``q`` over all of them.

    Across subjects: paired t-test (``t``, ``p``) and bootstrap CI of the mean difference;
    one subject: the paired time-block bootstrap of the study (``t`` = difference / bootstrap s.d.).
    A contrast that is identically zero (the best layer *is* the first) gets p = q = NaN.
    """
    layers = study.layers
    n_layers = len(layers)
    single = study.ci_method == "time-blocks"
    out: dict[str, dict[str, dict[str, float]]] = {}
    pvals, keys = [], []
    for r, roi in enumerate(study.rois):
        b = layers.index(study.best_layer[roi])
        values = partial(_contrast_side, study, r, single)
        best = values(b)
        pairs = {"first": (best, values(0)), "last": (best, values(n_layers - 1))}
        if study.baseline_r is not None:
            pairs["baseline"] = (best, values("baseline"))
        if n_layers >= 3:
            middle = values(range(1, n_layers - 1))
            pairs["intermediate_vs_first"] = (middle, values(0))
            pairs["intermediate_vs_last"] = (middle, values(n_layers - 1))
        out[roi] = {}
        for name, ((a, a_boot), (c, c_boot)) in pairs.items():
            diff = a - c
            ok = np.isfinite(diff)
            if not np.any(diff[ok]):
                out[roi][name] = {"mean_difference": 0.0, "ci_low": 0.0, "ci_high": 0.0, "t": float("nan"),
                                  "p": float("nan"), "q": float("nan")}
                continue
            g = (bootstrap_summary(diff, (a_boot - c_boot)[:, None]) if single
                 else subject_summary(diff[ok], seed))
            out[roi][name] = {"mean_difference": float(g.mean[0]), "ci_low": float(g.ci_low[0]),
                              "ci_high": float(g.ci_high[0]), "t": float(g.t[0]), "p": float(g.p[0])}
            pvals.append(float(g.p[0]))
            keys.append((roi, name))
    _, q = fdr_correct(np.array(pvals))
    for (roi, name), qv in zip(keys, q):
        out[roi][name]["q"] = float(qv)
    return out


compare_best_layer = compare_layers  # the earlier name
