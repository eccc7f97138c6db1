"""Variance partitioning: how much of each target's held-out variance is unique to one feature
space, and how much is shared, by the set-theoretic formulas over joint models.

Every non-empty subset of the feature spaces is fitted jointly with himalaya's banded ridge
(``GroupRidgeCV``: one regularisation per space, searched by cross-validation on the training
rows) and scored with R² on held-out rows. With spaces A and B::

    unique(A) = R²(A∪B) − R²(B)     unique(B) = R²(A∪B) − R²(A)     shared = R²(A) + R²(B) − R²(A∪B)

and in general ``unique(S) = R²(all) − R²(all \\ S)`` and the part shared by all spaces follows
from inclusion–exclusion over the subsets. The banded model of all spaces also gives a split
R² per space (himalaya's ``score(..., split=True)``), reported beside the partition.

:func:`partition_test` puts block-bootstrap intervals and p-values on the ROI means (the held-out
predictions of every subset are resampled together over time), including "dominance" contrasts
``unique(A) - unique(B)`` per ROI; :func:`compare_with_removal` sets the partition beside the
feature-removal answer (:mod:`mmneuro.analyses.removal`) ROI by ROI.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

import numpy as np

from mmneuro.analyses.heldout import design_matrix, evaluation_plan, response_matrix
from mmneuro.analyses.summary import roi_means
from mmneuro.datasets.base import Dataset, Responses
from mmneuro.encoding import LeaveRunsOut, contiguous_kfold, r2_score
from mmneuro.errors import InputError

DEFAULT_ALPHAS = np.logspace(0, 6, 13)


@dataclass
class PartitionResult:
    """Held-out R² of every subset of feature spaces, and the unique / shared parts, per target.

    ``r2[subset]`` (n_targets,) for each tuple of space names; ``unique[name]`` and ``shared``
    (the part common to all spaces) (n_targets,); ``split[name]`` the banded model's split R²;
    ``roi`` the ROI means of all of these; ``measured`` (n_scored, n_targets) the held-out
    responses and ``predictions[subset]`` (n_scored, n_targets) each subset's held-out prediction
    (what :func:`partition_test` resamples); ``valid`` (n_targets,) the usable targets.
    """

    spaces: list[str]
    r2: dict[tuple[str, ...], np.ndarray]
    unique: dict[str, np.ndarray]
    shared: np.ndarray
    split: dict[str, np.ndarray]
    roi: dict[str, dict[str, float]]
    measured: np.ndarray | None = None
    predictions: dict[tuple[str, ...], np.ndarray] | None = None
    valid: np.ndarray | None = None


def _inner_splits(groups: np.ndarray, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(np.unique(groups)) > 1:
        return list(LeaveRunsOut().split(np.zeros(len(groups)), groups=groups))
    return contiguous_kfold(len(groups), n_folds)


def _fit_predict(Xs: list[np.ndarray], Y: np.ndarray, train: np.ndarray, test: np.ndarray, groups: np.ndarray,
                 alphas: np.ndarray, n_iter: int, seed: int, split: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Banded ridge (himalaya GroupRidgeCV) on the training rows; held-out prediction (and split)."""
    from himalaya.ridge import GroupRidgeCV

    params = {"n_iter": n_iter, "alphas": alphas, "progress_bar": False}
    if len(Xs) == 1:
        params["n_iter"] = np.ones((1, 1))  # one space: plain ridge, only alpha is searched
    model = GroupRidgeCV(groups="input", solver_params=params, cv=_inner_splits(groups, 5), random_state=seed)
    model.fit([X[train] for X in Xs], Y[train])
    prediction = np.asarray(model.predict([X[test] for X in Xs]))
    parts = np.asarray(model.predict([X[test] for X in Xs], split=True)) if split else None
    return prediction, parts


def variance_partition(dataset: Dataset, spaces: dict[str, dict[str, np.ndarray]], responses: Responses,
                       delays: Sequence[int] | None = None, alphas: np.ndarray = DEFAULT_ALPHAS,
                       n_iter: int = 20, seed: int = 0) -> PartitionResult:
    """Partition each target's held-out R² among ``spaces`` ({name: {run: (n_trs, p)}}, 2 or 3 spaces).

    Follows the dataset's evaluation folds (held-out predictions of all folds pooled). Returns a
    :class:`PartitionResult`; unique parts of a well-specified model are >= 0 up to estimation noise.
    """
    names = list(spaces)
    if not 2 <= len(names) <= 3:
        raise InputError(f"variance partitioning takes 2 or 3 feature spaces, got {len(names)}: {names}")
    delays = tuple(dataset.delays if delays is None else delays)
    plan = evaluation_plan(dataset)
    # float32 for the solver (its SVDs dominate the time), float64 for the scores
    X = {k: design_matrix(spaces[k], plan.runs, delays, dataset.feature_detrend).astype(np.float32) for k in names}
    Y = response_matrix(responses, plan.runs).astype(np.float32)
    labels = plan.run_labels()
    subsets = [s for size in range(1, len(names) + 1) for s in combinations(names, size)]
    predictions = {s: np.zeros((len(plan.scored), Y.shape[1]), dtype=np.float64) for s in subsets}
    split_pred = np.zeros((len(names), len(plan.scored), Y.shape[1]))
    position = {row: i for i, row in enumerate(plan.scored)}
    for train, test in plan.folds:
        rows = np.array([position[t] for t in test])
        for s in subsets:
            whole = len(s) == len(names)
            pred, parts = _fit_predict([X[k] for k in s], Y, train, test, labels[train], alphas, n_iter, seed, whole)
            predictions[s][rows] = pred
            if whole:
                split_pred[:, rows] = parts
    measured = Y[plan.scored].astype(np.float64)
    r2 = {s: np.nan_to_num(r2_score(measured, predictions[s]), nan=0.0) for s in subsets}
    everything = tuple(names)
    unique = {k: r2[everything] - r2[tuple(n for n in names if n != k)] for k in names}
    # inclusion-exclusion: the part common to all spaces
    shared = sum((-1) ** (len(s) + 1) * r2[s] for s in subsets)
    split = _split_r2(measured, split_pred, names)
    if responses.valid is not None:
        for d in (r2, unique, split):
            for k in d:
                d[k] = np.where(responses.valid, d[k], np.nan)
        shared = np.where(responses.valid, shared, np.nan)
    roi = {"r2_all": roi_means(r2[everything], dataset.rois), "shared": roi_means(shared, dataset.rois)}
    roi.update({f"unique_{k}": roi_means(unique[k], dataset.rois) for k in names})
    roi.update({f"split_{k}": roi_means(split[k], dataset.rois) for k in names})
    return PartitionResult(names, r2, unique, shared, split, roi, measured, predictions, responses.valid)


def _split_r2(Y: np.ndarray, parts: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Per-space share of the banded model's R² (himalaya's ``r2_score_split``, on centred data);
    the shares add up to the R² of the summed, centred prediction."""
    from himalaya.scoring import r2_score_split

    centred = np.asarray(r2_score_split(Y - Y.mean(axis=0), parts - parts.mean(axis=1, keepdims=True)))
    return dict(zip(names, centred))


def _r2_columns(Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """R² per column of held-out predictions ``P`` against ``Y`` (both (n, t)), 0 for constant ``Y``."""
    ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    ss_res = ((Y - P) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, 0.0)


def _parts(r2: dict[tuple[str, ...], np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """Unique part of each space and the part shared by all, from the R² of every subset."""
    everything = tuple(names)
    out = {f"unique_{k}": r2[everything] - r2[tuple(n for n in names if n != k)] for k in names}
    out["shared"] = sum((-1) ** (len(s) + 1) * v for s, v in r2.items())
    return out


def partition_test(result: PartitionResult, rois: dict[str, np.ndarray], n_boot: int = 1000, block_len: int = 10,
                   seed: int = 0, alpha: float = 0.05) -> dict:
    """Block bootstrap over held-out time of the ROI-mean unique and shared parts.

    Every subset's held-out prediction and the measured series are resampled with the same
    blocks of ``block_len`` samples (``n_boot`` times); R² is recomputed on each resample.
    Returns ``{"roi": {roi: {part: {value, ci_low, ci_high, p}}}, "dominance": {roi: {"A>B":
    {diff, ci_low, ci_high, p, q}}}}`` where ``part`` is ``unique_<space>`` or ``shared``,
    ``p`` is one-sided for value > 0 (``(1 + #{boot <= 0}) / (1 + n_boot)``), and dominance
    tests ``unique(A) - unique(B) > 0`` for every ordered pair of spaces, BH-FDR over all
    ROIs and pairs. ``value`` is the ROI mean on the original series (as ``result.roi``).
    """
    from itertools import permutations

    from mmneuro.analyses.stats import block_resample, fdr_correct

    if result.measured is None or result.predictions is None:
        raise InputError("partition_test needs the held-out predictions: use a PartitionResult from variance_partition")
    Y = result.measured
    n = Y.shape[0]
    if not 1 <= block_len <= n // 2:
        raise InputError(f"block_len must be in 1..{n // 2} for {n} samples, got {block_len}")
    names = list(result.spaces)
    roi_names = list(rois)
    valid = result.valid if result.valid is not None else np.ones(Y.shape[1], bool)
    masks = [np.asarray(rois[k], bool) & valid for k in roi_names]
    used = np.any(np.stack(masks), axis=0)  # only targets in some ROI enter ROI means
    Yu = Y[:, used]
    Pu = {s: P[:, used] for s, P in result.predictions.items()}
    masks_u = [m[used] for m in masks]

    def roi_parts(idx: np.ndarray | None) -> dict[str, np.ndarray]:
        r2 = {s: _r2_columns(Yu if idx is None else Yu[idx], P if idx is None else P[idx]) for s, P in Pu.items()}
        return {k: np.array([v[m].mean() if m.any() else np.nan for m in masks_u]) for k, v in _parts(r2, names).items()}

    observed = roi_parts(None)
    rng = np.random.default_rng(seed)
    boots = {k: np.empty((n_boot, len(roi_names))) for k in observed}
    for b in range(n_boot):
        parts = roi_parts(block_resample(rng, n, block_len))
        for k, v in parts.items():
            boots[k][b] = v

    def summary(value: float, boot: np.ndarray) -> dict[str, float]:
        return {"value": float(value), "ci_low": float(np.quantile(boot, 0.025)),
                "ci_high": float(np.quantile(boot, 0.975)), "p": float((1 + np.sum(boot <= 0)) / (1 + n_boot))}

    roi = {k: {part: summary(observed[part][j], boots[part][:, j]) for part in observed}
           for j, k in enumerate(roi_names)}
    dominance: dict[str, dict[str, dict[str, float]]] = {k: {} for k in roi_names}
    for j, k in enumerate(roi_names):
        for a, b in permutations(names, 2):
            entry = summary(observed[f"unique_{a}"][j] - observed[f"unique_{b}"][j],
                            boots[f"unique_{a}"][:, j] - boots[f"unique_{b}"][:, j])
            entry["diff"] = entry.pop("value")
            dominance[k][f"{a}>{b}"] = entry
    flat = [e for k in roi_names for e in dominance[k].values()]
    if flat:
        _, q = fdr_correct(np.array([e["p"] for e in flat]), alpha)
        for e, qq in zip(flat, q):
            e["q"] = float(qq)
    return {"roi": roi, "dominance": dominance, "n_boot": n_boot, "block_len": block_len}


def compare_with_removal(partition_roi: dict[str, dict[str, float]], removal_roi: dict[str, dict[str, dict[str, float]]],
                         ) -> dict[str, dict]:
    """ROI by ROI, the space with the largest unique variance beside the space whose removal costs most.

    ``partition_roi``: :attr:`PartitionResult.roi` (``unique_<space>`` -> {roi: value});
    ``removal_roi``: {space: :attr:`RemovalResult.roi`} ({roi: {drop, q, ...}}) for the spaces
    removed from a joint model. Returns {roi: {"unique": {space: R²}, "drop": {space: Δr},
    "drop_q": {space: q}, "partition_top", "removal_top", "agree"}} over the spaces both name.
    """
    spaces = [k[len("unique_"):] for k in partition_roi if k.startswith("unique_") and k[len("unique_"):] in removal_roi]
    if not spaces:
        raise InputError(f"no space is both partitioned ({[k for k in partition_roi if k.startswith('unique_')]}) "
                         f"and removed ({list(removal_roi)}): name the removed models like the partition spaces")
    rois = list(partition_roi[f"unique_{spaces[0]}"])
    out = {}
    for roi in rois:
        unique = {k: float(partition_roi[f"unique_{k}"][roi]) for k in spaces}
        drop = {k: float(removal_roi[k][roi]["drop"]) for k in spaces}
        top_u, top_d = max(unique, key=unique.get), max(drop, key=drop.get)
        out[roi] = {"unique": unique, "drop": drop, "drop_q": {k: float(removal_roi[k][roi].get("q", np.nan))
                                                               for k in spaces},
                    "partition_top": top_u, "removal_top": top_d, "agree": top_u == top_d}
    return out
