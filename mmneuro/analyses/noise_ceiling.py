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
    """
    test_runs = dataset.test_runs if dataset.evaluation == "heldout" else []
    if test_runs and all(responses.runs[r.name].shape[0] > 1 for r in test_runs):
        repeats = np.concatenate([responses.runs[r.name] for r in test_runs], axis=1)
        ev = explainable_variance(repeats)
        return Ceiling(ceiling_r(ev, repeats.shape[0]), "repeats", ev, repeats.shape[0])
    if others is None:
        raise InputError("no repeated test run: a cross-subject ceiling needs the other subjects' responses")
    everyone = others()
    index = [o.subject for o in everyone].index(responses.subject)
    plan = evaluation_plan(dataset)
    series = [response_matrix(o, plan.runs) for o in everyone]
    per_fold = [cross_subject_ceiling([y[train] for y in series], [y[test] for y in series])[index]
                for train, test in plan.folds]
    r = np.nanmean(np.stack(per_fold), axis=0)
    return Ceiling(np.where(responses.valid, r, np.nan) if responses.valid is not None else r, "cross-subject")
