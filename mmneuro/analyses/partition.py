"""Variance partitioning: how much of each target's held-out variance is unique to one feature
space, and how much is shared, by the set-theoretic formulas over joint models.

Every non-empty subset of the feature spaces is fitted jointly with himalaya's banded ridge
(``GroupRidgeCV``: one regularisation per space, searched by cross-validation on the training
rows) and scored with R² on held-out rows. With spaces A and B::

    unique(A) = R²(A∪B) − R²(B)     unique(B) = R²(A∪B) − R²(A)     shared = R²(A) + R²(B) − R²(A∪B)

and in general ``unique(S) = R²(all) − R²(all \\ S)`` and the part shared by all spaces follows
from inclusion–exclusion over the subsets. The banded model of all spaces also gives a split
R² per space (himalaya's ``score(..., split=True)``), reported beside the partition.
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
    ``roi`` the ROI means of all of these.
    """

    spaces: list[str]
    r2: dict[tuple[str, ...], np.ndarray]
    unique: dict[str, np.ndarray]
    shared: np.ndarray
    split: dict[str, np.ndarray]
    roi: dict[str, dict[str, float]]


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
    X = {k: design_matrix(spaces[k], plan.runs, delays, dataset.feature_detrend).astype(np.float64) for k in names}
    Y = response_matrix(responses, plan.runs).astype(np.float64)
    labels = plan.run_labels()
    subsets = [s for size in range(1, len(names) + 1) for s in combinations(names, size)]
    predictions = {s: np.zeros((len(plan.scored), Y.shape[1])) for s in subsets}
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
    measured = Y[plan.scored]
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
    return PartitionResult(names, r2, unique, shared, split, roi)


def _split_r2(Y: np.ndarray, parts: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Per-space share of the banded model's R² (himalaya's ``r2_score_split``, on centred data);
    the shares add up to the R² of the summed, centred prediction."""
    from himalaya.scoring import r2_score_split

    centred = np.asarray(r2_score_split(Y - Y.mean(axis=0), parts - parts.mean(axis=1, keepdims=True)))
    return dict(zip(names, centred))
