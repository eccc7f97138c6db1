"""Noise ceilings of a subject's held-out data: from repeats when there are any, else across subjects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from mmneuro.analyses.heldout import evaluation_plan, response_matrix
from mmneuro.analyses.summary import roi_means
from mmneuro.brain.ceiling import ceiling_r, cross_subject_ceiling, explainable_variance
from mmneuro.datasets.base import Dataset, Responses
from mmneuro.errors import InputError


@dataclass
class Ceiling:
    """Noise ceiling in r units per target and how it was obtained (``repeats`` or ``cross-subject``).

    For repeat-based ceilings ``ev`` (n_targets,) keeps the bias-corrected explainable variance:
    it is unbiased per target, while ``r`` (a concave function of it) is biased low when
    averaged over noisy targets, so ROI ceilings are computed from the ROI's mean ``ev``.
    """

    r: np.ndarray
    method: str
    ev: np.ndarray | None = None
    n_repeats: int | None = None

    def roi_means(self, rois: dict[str, np.ndarray]) -> dict[str, float]:
        """Ceiling per ROI: ``ceiling_r(mean ev)`` for repeats, the mean r for cross-subject."""
        if self.ev is None:
            return roi_means(self.r, rois)
        return {name: float(ceiling_r(np.array([value]), self.n_repeats)[0]) if np.isfinite(value) else float("nan")
                for name, value in roi_means(self.ev, rois).items()}


def noise_ceiling(dataset: Dataset, responses: Responses,
                  others: Callable[[], list[Responses]] | None = None) -> Ceiling:
    """Repeat-based ceiling when test runs were presented more than once, else cross-subject.

    ``others`` returns every usable subject's responses (the subject itself included); it is
    only called for the cross-subject ceiling, which follows the dataset's evaluation folds.
    For many subjects use :func:`noise_ceilings`, which computes the cross-subject part once.
    """
    repeat = repeat_ceiling(dataset, responses)
    if repeat is not None:
        return repeat
    if others is None:
        raise InputError("no repeated test run: a cross-subject ceiling needs the other subjects' responses")
    return cross_subject_ceilings(dataset, others())[responses.subject]


def noise_ceilings(dataset: Dataset, everyone: list[Responses]) -> dict[str, Ceiling]:
    """Every subject's ceiling: from repeats where available, else across subjects (computed once)."""
    repeats = {o.subject: repeat_ceiling(dataset, o) for o in everyone}
    if all(c is not None for c in repeats.values()):
        return repeats
    return cross_subject_ceilings(dataset, everyone)


def repeat_ceiling(dataset: Dataset, responses: Responses) -> Ceiling | None:
    """Ceiling from the repeated test runs (bias-corrected explainable variance), or None without repeats."""
    test_runs = dataset.test_runs if dataset.evaluation == "heldout" else []
    if not test_runs or any(responses.runs[r.name].shape[0] < 2 for r in test_runs):
        return None
    repeats = np.concatenate([responses.runs[r.name] for r in test_runs], axis=1)
    ev = explainable_variance(repeats)
    return Ceiling(ceiling_r(ev, repeats.shape[0]), "repeats", ev, repeats.shape[0])


def cross_subject_ceilings(dataset: Dataset, everyone: list[Responses]) -> dict[str, Ceiling]:
    """r of predicting each subject's held-out data from the other subjects', per target.

    Follows the dataset's evaluation folds (averaged over folds); invalid targets are NaN.
    """
    plan = evaluation_plan(dataset)
    series = [response_matrix(o, plan.runs) for o in everyone]
    per_fold = np.stack([cross_subject_ceiling([y[train] for y in series], [y[test] for y in series])
                         for train, test in plan.folds])
    r_all = np.nanmean(per_fold, axis=0)
    out = {}
    for o, r in zip(everyone, r_all):
        out[o.subject] = Ceiling(np.where(o.valid, r, np.nan) if o.valid is not None else r, "cross-subject")
    return out
