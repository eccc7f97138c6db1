"""Feature removal (Oota et al.'s residual analysis): what is left of a model's alignment once the
part of its features that another model's features predict has been taken out?

For each evaluation fold, the *target* features (e.g. a multimodal model's layer) are predicted
from the *source* features (e.g. an audio model's layer) by ridge regression with one alpha per
target dimension, fitted on that fold's training rows only (no leakage from the held-out data);
the residual target features then go through the same encoding as the full ones, and the drop
in held-out r is tested per target and per ROI with a paired block bootstrap over time. ROI
contrasts (``drop(A) - drop(B)``, e.g. "removing audio costs the auditory ROI more than the
visual ROI") are tested on the same bootstrap draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import permutations
from typing import Sequence

import numpy as np

from mmneuro.analyses.heldout import evaluation_plan, fit_evaluate, heldout_responses
from mmneuro.analyses.stats import block_resample, fdr_correct
from mmneuro.datasets.base import Dataset, Responses
from mmneuro.encoding import LeaveRunsOut, RidgeCV
from mmneuro.encoding.metrics import pearson_r
from mmneuro.errors import InputError
from mmneuro.features.align import zscore_runs

DEFAULT_ALPHAS = np.logspace(-2, 5, 15)


def residualize(target: dict[str, np.ndarray], source: dict[str, np.ndarray], dataset: Dataset,
                train_rows: np.ndarray, alphas: np.ndarray = DEFAULT_ALPHAS, inner_folds: int = 5) -> dict[str, np.ndarray]:
    """``target - ridge(source -> target)`` per run, the ridge fitted on ``train_rows`` only.

    ``target`` {run: (n_trs, p)}, ``source`` {run: (n_trs, q)}; both are z-scored per run first.
    ``train_rows`` index the concatenated rows of ``evaluation_plan(dataset).runs``. Alphas are
    chosen per target dimension by leave-one-run-out CV within the training rows (contiguous
    folds when they hold one run). Returns {run: (n_trs, p) float32}.
    """
    plan = evaluation_plan(dataset)
    lengths = [run.n_trs for run in plan.runs]
    for name, feats in (("target", target), ("source", source)):
        for run in plan.runs:
            if feats[run.name].shape[0] != run.n_trs:
                raise InputError(f"{name} features of run {run.name} have {feats[run.name].shape[0]} rows "
                                 f"but the run has {run.n_trs} TRs")
    T = zscore_runs(np.concatenate([target[r.name] for r in plan.runs]).astype(np.float64), lengths)
    S = zscore_runs(np.concatenate([source[r.name] for r in plan.runs]).astype(np.float64), lengths)
    groups = plan.run_labels()[train_rows]
    if len(np.unique(groups)) > 1:
        model = RidgeCV(alphas=alphas, cv=LeaveRunsOut(), scoring="r2").fit(S[train_rows], T[train_rows], groups=groups)
    else:
        model = RidgeCV(alphas=alphas, cv=inner_folds, scoring="r2").fit(S[train_rows], T[train_rows])
    residual = (T - model.predict(S)).astype(np.float32)
    bounds = np.cumsum([0] + lengths)
    return {run.name: residual[lo:hi] for run, lo, hi in zip(plan.runs, bounds[:-1], bounds[1:])}


@dataclass
class RemovalResult:
    """Alignment with full and residual features, and the drop, for one subject.

    ``r_full``, ``r_residual``, ``drop`` (n_targets,); ``roi`` maps each ROI to a dict with
    ``r_full``, ``r_residual``, ``drop``, ``ci_low``, ``ci_high`` (bootstrap interval of the
    drop), ``p`` (one-sided: drop > 0) and ``q`` (BH-FDR over ROIs); ``voxel_p``/``voxel_q``
    per target; ``contrasts`` maps ``"A>B"`` to ``diff`` (drop(A) - drop(B)), ``ci_low``,
    ``ci_high``, ``p`` (one-sided: diff > 0) and ``q`` (BH-FDR over the contrasts).
    """

    r_full: np.ndarray
    r_residual: np.ndarray
    drop: np.ndarray
    roi: dict[str, dict[str, float]]
    voxel_p: np.ndarray
    voxel_q: np.ndarray
    contrasts: dict[str, dict[str, float]] = field(default_factory=dict)


Contrasts = Sequence[tuple[str, str]] | str | None


def resolve_contrasts(contrasts: Contrasts, rois: Sequence[str]) -> list[tuple[str, str]]:
    """ROI pairs ``(A, B)`` to test ``drop(A) > drop(B)``: ``None`` (none), ``"all"`` (every ordered
    pair), or pairs / ``"A>B"`` strings naming ROIs of ``rois``."""
    if contrasts is None:
        return []
    if isinstance(contrasts, str):
        if contrasts != "all":
            raise InputError(f"contrasts must be 'all', None or a list of (roi, roi) pairs / 'A>B'; got {contrasts!r}")
        return list(permutations(rois, 2))
    pairs = []
    for c in contrasts:
        a, b = c.split(">", 1) if isinstance(c, str) else c
        for name in (a, b):
            if name not in rois:
                raise InputError(f"contrast {a}>{b}: no ROI {name!r}; ROIs: {', '.join(rois)}")
        if a == b:
            raise InputError(f"contrast {a}>{b} compares an ROI with itself")
        pairs.append((a, b))
    return pairs


def feature_removal(dataset: Dataset, target: dict[str, np.ndarray], source: dict[str, np.ndarray],
                    responses: Responses, delays: Sequence[int] | None = None, n_boot: int = 1000,
                    block_len: int = 10, seed: int = 0, alpha: float = 0.05,
                    contrasts: Contrasts = None) -> RemovalResult:
    """Encode ``target`` features and their residual after removing ``source``; test the drop.

    ``target`` {run: (n_trs, p)}, ``source`` {run: (n_trs, q)}. Returns a :class:`RemovalResult`;
    the ROI-level drop is the difference of ROI-mean r, with a paired block bootstrap over
    held-out time (the same blocks for both models). ``contrasts`` (see
    :func:`resolve_contrasts`) are tested on the same bootstrap draws and FDR-corrected together.
    """
    pairs = resolve_contrasts(contrasts, list(dataset.rois))
    full = fit_evaluate(dataset, target, responses, delays, keep_predictions=True)
    residual = fit_evaluate(dataset, lambda train: residualize(target, source, dataset, train), responses, delays,
                            keep_predictions=True)
    Y = heldout_responses(dataset, responses)
    test = paired_drop_test(Y, full.prediction, residual.prediction, dataset.rois, n_boot, block_len, seed, pairs)
    valid = responses.valid if responses.valid is not None else np.ones(Y.shape[1], bool)
    voxel_p = np.where(valid, test["voxel_p"], np.nan)
    _, voxel_q = fdr_correct(voxel_p, alpha)
    _, roi_q = fdr_correct(np.array([test["roi"][k]["p"] for k in dataset.rois]), alpha)
    for k, q in zip(dataset.rois, roi_q):
        test["roi"][k]["q"] = float(q)
    if pairs:
        _, con_q = fdr_correct(np.array([c["p"] for c in test["contrasts"].values()]), alpha)
        for c, q in zip(test["contrasts"].values(), con_q):
            c["q"] = float(q)
    return RemovalResult(full.r, residual.r, full.r - residual.r, test["roi"], voxel_p, voxel_q,
                         test.get("contrasts", {}))


def paired_drop_test(Y: np.ndarray, P_full: np.ndarray, P_reduced: np.ndarray, rois: dict[str, np.ndarray],
                     n_boot: int = 1000, block_len: int = 10, seed: int = 0,
                     contrasts: Sequence[tuple[str, str]] = ()) -> dict:
    """Block-bootstrap test of ``r(Y, P_full) - r(Y, P_reduced)`` per target and per ROI mean.

    Y, P_full, P_reduced: (n_samples, n_targets). Time blocks of ``block_len`` samples are
    resampled with replacement, the same blocks for both predictions. Returns
    ``{"voxel_p": (n_targets,), "roi": {name: {r_full, r_residual, drop, ci_low, ci_high, p}}}``
    with one-sided p-values for drop > 0: ``(1 + #{boot drop <= 0}) / (1 + n_boot)``; with
    ``contrasts`` (ROI pairs (A, B)) also ``"contrasts": {"A>B": {diff, ci_low, ci_high, p}}``
    for ``drop(A) - drop(B) > 0``, from the same bootstrap draws.
    """
    n = Y.shape[0]
    if not (Y.shape == P_full.shape == P_reduced.shape):
        raise InputError(f"shapes differ: responses {Y.shape}, predictions {P_full.shape} and {P_reduced.shape}")
    if not 1 <= block_len <= n // 2:
        raise InputError(f"block_len must be in 1..{n // 2} for {n} samples, got {block_len}")

    r_full, r_red = pearson_r(Y, P_full), pearson_r(Y, P_reduced)
    names = list(rois)
    masks = np.stack([rois[k] for k in names])
    rng = np.random.default_rng(seed)
    voxel_le0 = np.zeros(Y.shape[1])
    roi_boot = np.empty((n_boot, len(names)))
    for b in range(n_boot):
        idx = block_resample(rng, n, block_len)
        d = pearson_r(Y[idx], P_full[idx]) - pearson_r(Y[idx], P_reduced[idx])
        voxel_le0 += np.nan_to_num(d, nan=0.0) <= 0
        roi_boot[b] = [np.nanmean(d[m]) for m in masks]
    roi = {}
    for j, k in enumerate(names):
        m = masks[j]
        roi[k] = {"r_full": float(np.nanmean(r_full[m])), "r_residual": float(np.nanmean(r_red[m])),
                  "drop": float(np.nanmean(r_full[m] - r_red[m])),
                  "ci_low": float(np.quantile(roi_boot[:, j], 0.025)),
                  "ci_high": float(np.quantile(roi_boot[:, j], 0.975)),
                  "p": float((1 + np.sum(roi_boot[:, j] <= 0)) / (1 + n_boot))}
    out = {"voxel_p": (1 + voxel_le0) / (1 + n_boot), "roi": roi}
    if contrasts:
        out["contrasts"] = {}
        for a, b in contrasts:
            boot = roi_boot[:, names.index(a)] - roi_boot[:, names.index(b)]
            out["contrasts"][f"{a}>{b}"] = {
                "diff": roi[a]["drop"] - roi[b]["drop"],
                "ci_low": float(np.quantile(boot, 0.025)), "ci_high": float(np.quantile(boot, 0.975)),
                "p": float((1 + np.sum(boot <= 0)) / (1 + n_boot))}
    return out


def removal_by_layer(dataset: Dataset, target: dict[str, dict[str, np.ndarray]], source: dict[str, np.ndarray],
                     responses: Responses, progress: bool = False, **kwargs) -> dict[str, RemovalResult]:
    """:func:`feature_removal` of one ``source`` {run: (n_trs, q)} from every layer of ``target``
    {layer: {run: (n_trs, p)}}; ``kwargs`` go to :func:`feature_removal`. Returns {layer: result}."""
    from tqdm.auto import tqdm

    return {layer: feature_removal(dataset, feats, source, responses, **kwargs)
            for layer, feats in tqdm(target.items(), desc="feature removal", unit="layer", disable=not progress)}


