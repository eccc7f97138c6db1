"""Held-out evaluation of one feature space for one subject: the design, the folds, the fits.

Shapes: features ``{run: (n_trs, n_features)}``, responses ``(n_repeats, n_trs, n_targets)`` per
run; score vectors ``(n_targets,)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from mmneuro.brain.preprocess import detrend
from mmneuro.datasets.base import Dataset, Responses, StimulusRun
from mmneuro.encoding import LeaveRunsOut, RidgeCV, pearson_r
from mmneuro.errors import InputError
from mmneuro.features.align import make_delayed, zscore_runs

DEFAULT_ALPHAS = np.logspace(0, 5, 11)


@dataclass
class LayerFit:
    """Held-out scores of one feature space for one subject.

    Attributes: ``r`` (n_targets,) Pearson r of the held-out predictions (NaN for invalid
    targets), ``alpha`` (n_targets,) chosen ridge penalty (geometric mean over folds),
    ``prediction`` (n_scored, n_targets) held-out predictions when asked for.
    """

    r: np.ndarray
    alpha: np.ndarray
    prediction: np.ndarray | None = None


#: A feature column "rests at 0" (0 means "nothing": event boxcars, counts, Lanczos-resampled
#: word features in silences) when at least this fraction of its rows are 0, within
#: ``REST_TOL * max|column|`` (all runs together); dense model features, which never sit at 0, do not.
REST_FRACTION = 0.1
REST_TOL = 1e-6


def design_matrix(features: dict[str, np.ndarray], runs: Sequence[StimulusRun],
                  delays: Sequence[int], detrend_order: int | None = None) -> np.ndarray:
    """FIR design of the runs' features ``{run: (n_trs, p)}``: (sum n_trs, p * n_delays) float32, delay-major.

    Delays never cross runs, and a row with no earlier feature row is padded so that it says
    nothing false about the stimulus. Columns that rest at 0 (:func:`rests_at_zero`: event
    indicators, counts) are delayed raw, padded with 0 ("no event") where the padded time precedes
    the stimulus (:func:`pad_unseen`), then detrended (``detrend_order``, optional) and z-scored
    within the run; z-scoring first would pad them with the mean, "part of an event is happening".
    Dense columns (model features) are detrended and z-scored within the run, then delayed with 0
    pads: the neutral value, since their raw value for "nothing" is unknown and any other pad
    puts a step at every run's start that a feature space can "explain" regardless of content.
    """
    xs = []
    for run in runs:
        x = np.asarray(features[run.name])
        if x.ndim != 2:
            raise InputError(f"run {run.name}: features must be (n_trs, n_features), got shape {x.shape}")
        if x.shape[0] != run.n_trs:
            raise InputError(f"run {run.name}: features have {x.shape[0]} rows but the run has {run.n_trs} TRs")
        if xs and x.shape[1] != xs[0].shape[1]:
            raise InputError(f"run {run.name}: features have {x.shape[1]} columns but run {runs[0].name} has "
                             f"{xs[0].shape[1]}")
        xs.append(x)
    rests = rests_at_zero(xs)
    n_delays = len(delays)
    blocks = []
    for run, x in zip(runs, xs):
        n, p = x.shape
        if not rests.any():  # dense features only: the former recipe, without copies
            dense = x if detrend_order is None else detrend(x, detrend_order)
            blocks.append(make_delayed(zscore_runs(np.asarray(dense, dtype=np.float32), None), delays))
            continue
        out = np.empty((n, n_delays, p), dtype=np.float32)
        if not rests.all():
            dense = x[:, ~rests] if detrend_order is None else detrend(x[:, ~rests], detrend_order)
            z = zscore_runs(np.asarray(dense, dtype=np.float32), None)
            out[:, :, ~rests] = make_delayed(z, delays).reshape(n, n_delays, -1)
        events = x[:, rests].astype(np.float32)
        delayed = pad_unseen(make_delayed(events, delays), events, run, delays)
        if detrend_order is not None:
            delayed = detrend(delayed, detrend_order)
        out[:, :, rests] = zscore_runs(delayed, None).reshape(n, n_delays, -1)
        blocks.append(out.reshape(n, n_delays * p))
    return np.concatenate(blocks)


def rests_at_zero(xs: Sequence[np.ndarray]) -> np.ndarray:
    """(p,) bool: which columns of the runs' features ``[(n_trs, p), ...]`` rest at 0 (see :data:`REST_FRACTION`)."""
    scale = np.max([np.abs(x).max(axis=0) for x in xs], axis=0)
    at_zero = sum((np.abs(x) <= REST_TOL * scale).sum(axis=0) for x in xs)
    return at_zero >= REST_FRACTION * sum(x.shape[0] for x in xs)


def pad_unseen(delayed: np.ndarray, x: np.ndarray, run: StimulusRun, delays: Sequence[int]) -> np.ndarray:
    """Fill the padded rows of one run's delayed raw features that rest at 0, in place; returns ``delayed``.

    ``delayed`` (n_trs, p * n_delays) is ``make_delayed(x, delays)`` of the run's features ``x``
    (n_trs, p), 0 where no row of ``x`` exists. For a delay ``d > 0``, row ``k < d`` stands for the
    time ``tr_times[0] + (k - d) * TR`` on the stimulus clock: before 0 nothing was presented and
    the 0 stays. At or after 0 the stimulus was already playing (volumes discarded before row 0,
    as in Alice) but is unknown, and the row gets the run's mean of ``x``, the neutral value; so do
    the last ``|d|`` rows of a lead ``d < 0``.
    """
    t = np.asarray(run.tr_times, dtype=np.float64)
    n, p = x.shape
    tr = float(np.median(np.diff(t))) if n > 1 else np.inf
    mean = x.mean(axis=0, dtype=np.float64)
    for j, d in enumerate(int(d) for d in delays):
        if d > 0:
            rows = np.arange(min(d, n))
            rows = rows[t[0] + (rows - d) * tr >= 0]
        else:
            rows = np.arange(max(n + d, 0), n)
        delayed[rows, j * p:(j + 1) * p] = mean
    return delayed


def response_matrix(responses: Responses, runs: Sequence[StimulusRun]) -> np.ndarray:
    """Concatenate runs' responses, averaging repeats: (sum n_trs, n_targets)."""
    blocks = []
    for run in runs:
        if run.name not in responses.runs:
            raise InputError(f"subject {responses.subject} has no responses for run {run.name}")
        y = responses.runs[run.name]
        if y.shape[1] != run.n_trs:
            raise InputError(f"subject {responses.subject}, run {run.name}: responses have {y.shape[1]} TRs but the "
                             f"stimulus run has {run.n_trs}")
        blocks.append(y.mean(axis=0))
    return np.concatenate(blocks).astype(np.float32)


@dataclass
class EvaluationPlan:
    """Which rows of the runs' concatenated series train and test each fold.

    ``runs`` in concatenation order; ``folds`` as (train_rows, test_rows) index arrays;
    ``scored`` the rows whose held-out predictions are scored (every test row, in order).
    """

    runs: list[StimulusRun]
    folds: list[tuple[np.ndarray, np.ndarray]]
    scored: np.ndarray

    def run_labels(self) -> np.ndarray:
        """(n_rows,) index of the run each row belongs to."""
        return np.concatenate([np.full(r.n_trs, i) for i, r in enumerate(self.runs)])


def evaluation_plan(dataset: Dataset) -> EvaluationPlan:
    """The held-out scheme of ``dataset.evaluation`` as row indices (see :class:`Dataset`)."""
    if dataset.evaluation == "heldout":
        runs = dataset.train_runs + dataset.test_runs
        if not dataset.train_runs or not dataset.test_runs:
            raise InputError(f"dataset {dataset.name!r} needs train and test runs for held-out evaluation")
        n_train = sum(r.n_trs for r in dataset.train_runs)
        n = n_train + sum(r.n_trs for r in dataset.test_runs)
        test = np.arange(n_train, n)
        return EvaluationPlan(runs, [(np.arange(n_train), test)], test)
    runs = list(dataset.runs)
    n = sum(r.n_trs for r in runs)
    if dataset.evaluation == "leave-one-run-out":
        bounds = np.cumsum([0] + [r.n_trs for r in runs])
        blocks = [np.arange(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
    elif dataset.evaluation == "contiguous-folds":
        blocks = np.array_split(np.arange(n), dataset.eval_folds)
    else:
        raise InputError(f"unknown evaluation {dataset.evaluation!r}")
    folds = [(np.setdiff1d(np.arange(n), block), block) for block in blocks]
    return EvaluationPlan(runs, folds, np.arange(n))


FoldFeatures = Callable[[np.ndarray], dict[str, np.ndarray]]


def fit_evaluate(dataset: Dataset, features: dict[str, np.ndarray] | FoldFeatures, responses: Responses,
                 delays: Sequence[int] | None = None, alphas: np.ndarray = DEFAULT_ALPHAS,
                 inner_folds: int = 5, feature_detrend: int | None | str = "dataset",
                 keep_predictions: bool = False, backend: str = "numpy") -> LayerFit:
    """Fit ridge on each fold's training rows (alpha per target by inner CV) and score held-out rows.

    Features get FIR delays within each run and are detrended (optional) and z-scored per run,
    event-like columns after delaying (see :func:`design_matrix`); responses of repeated runs
    are averaged. The inner CV leaves one training run out when a fold trains on several runs,
    else uses ``inner_folds`` contiguous blocks. Held-out predictions of all folds are
    concatenated and scored together with Pearson r per target. ``feature_detrend``:
    ``"dataset"`` uses ``dataset.feature_detrend``; an int or None overrides it.

    ``features`` is ``{run: (n_trs, p)}``, or a callable ``train_rows -> {run: (n_trs, p)}`` for
    features that depend on the fold's training data (e.g. residualised on it, see
    :mod:`mmneuro.analyses.removal`); ``train_rows`` index the concatenated rows of
    ``evaluation_plan(dataset).runs``. With ``keep_predictions`` the held-out predictions
    (n_scored, n_targets) are kept in the result (see :func:`heldout_responses` for the data).
    ``backend``: the ridge backend (``"numpy"``, ``"torch"``, ``"torch_cuda"``).
    """
    delays = tuple(dataset.delays if delays is None else delays)
    order = dataset.feature_detrend if feature_detrend == "dataset" else feature_detrend
    plan = evaluation_plan(dataset)
    X = None if callable(features) else design_matrix(features, plan.runs, delays, order)
    Y = response_matrix(responses, plan.runs)
    labels = plan.run_labels()
    prediction = np.zeros_like(Y)
    log_alphas = []
    for train, test in plan.folds:
        Xf = design_matrix(features(train), plan.runs, delays, order) if X is None else X
        groups = labels[train]
        if len(np.unique(groups)) > 1:
            model = RidgeCV(alphas=alphas, cv=LeaveRunsOut(), scoring="correlation", backend=backend)
            model.fit(Xf[train], Y[train], groups=groups)
        else:
            model = RidgeCV(alphas=alphas, cv=inner_folds, scoring="correlation", backend=backend)
            model.fit(Xf[train], Y[train])
        prediction[test] = model.predict(Xf[test])
        if dataset.evaluation == "leave-one-run-out":  # on the held-out run's z-scale, as its responses are
            prediction[test] = run_standardized(prediction[test])
        log_alphas.append(np.log(model.alpha_))
    r = pearson_r(Y[plan.scored], prediction[plan.scored])
    if responses.valid is not None:
        r = np.where(responses.valid, r, np.nan)
    return LayerFit(r=np.asarray(r, dtype=np.float64), alpha=np.exp(np.mean(log_alphas, axis=0)),
                    prediction=prediction[plan.scored] if keep_predictions else None)


def run_standardized(prediction: np.ndarray) -> np.ndarray:
    """One held-out run's predictions (n_trs, n_targets), z-scored per target (constant -> 0).

    Leave-one-run-out pools the runs' predictions and scores them together. Alphas are chosen per
    fold by correlation, which ignores the predictions' scale, so two folds can pick alphas orders of
    magnitude apart and predict on scales just as far apart; pooled as they are, the run with the
    larger scale dominates and r falls (0.06-0.07 below the oracle on the planted BIDS miniature).
    Responses are z-scored per run, so the predictions are too: what correlation scores (the time
    course) is kept, the arbitrary scale is not, and every later use of the pooled predictions
    (bootstrap CIs, drop tests) sees the same thing. Contiguous folds inside one run (Alice) keep the
    reference recipe: raw predictions pooled, as its responses are standardised over the whole run.
    """
    p = np.asarray(prediction, dtype=np.float64)
    centred = p - p.mean(axis=0)
    sd = centred.std(axis=0)
    return (centred / np.where(sd > 0, sd, 1.0)).astype(np.float32)


def heldout_responses(dataset: Dataset, responses: Responses) -> np.ndarray:
    """The measured responses that held-out predictions are scored against: (n_scored, n_targets)."""
    plan = evaluation_plan(dataset)
    return response_matrix(responses, plan.runs)[plan.scored]
