"""The one shape every dataset takes: stimulus runs on a TR grid, and per-subject responses.

A dataset is a list of stimulus runs (what was presented, with the stimulus-clock time
of every response row) plus a loader that returns one subject's responses by run.
Volumetric datasets also carry the brain mask that maps targets (columns) to voxels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import numpy as np

Split = Literal["train", "test"]
Evaluation = Literal["heldout", "leave-one-run-out", "contiguous-folds"]
CeilingMethod = Literal["auto", "repeats", "loo-isc", "split-half", "ridge"]


@dataclass(frozen=True)
class StimulusRun:
    """One presented stimulus segment.

    Attributes
    ----------
    name : run label, e.g. ``"run-1"``; keys the responses of every subject.
    tr_times : (n_trs,) float64 seconds on the stimulus clock (0 = start of this run's
        media files) at which each response row was acquired.
    video, audio, words : media files of the run (MP4, WAV, word TSV/TextGrid) or None.
        Words files hold onsets on the same stimulus clock.
    events : events TSV of the run (``onset``, ``duration``, ``trial_type``[, ``modulation``]),
        onsets on the same stimulus clock, or None.
    split : ``"train"`` or ``"test"`` (used when the dataset's evaluation is ``"heldout"``).
    """

    name: str
    tr_times: np.ndarray
    video: Path | None = None
    audio: Path | None = None
    words: Path | None = None
    split: Split = "train"
    events: Path | None = None

    @property
    def n_trs(self) -> int:
        return int(len(self.tr_times))


@dataclass
class Responses:
    """One subject's responses.

    Attributes
    ----------
    subject : subject label, e.g. ``"01"``.
    runs : run name -> (n_repeats, n_trs, n_targets) float32. Repeats are separate
        presentations of the same stimulus run (the demo's test run has 2).
    valid : (n_targets,) bool, False for targets unusable in this subject (constant
        columns); None means all valid. Summaries exclude invalid targets.
    """

    subject: str
    runs: dict[str, np.ndarray]
    valid: np.ndarray | None = None

    @property
    def n_targets(self) -> int:
        return int(next(iter(self.runs.values())).shape[-1])


@dataclass
class Dataset:
    """A study: stimulus runs, subjects, targets and how to evaluate.

    Attributes
    ----------
    name : short dataset name (``"demo"``, ``"alice"``) used in result paths.
    root : folder the dataset was read from.
    tr : repetition time in seconds.
    runs : the stimulus runs, in presentation order.
    subjects : subject labels (only usable subjects; see ``notes`` for excluded ones).
    rois : ROI name -> (n_targets,) bool mask over the response columns.
    load_responses : callable subject -> :class:`Responses` (preprocessed: detrended and
        z-scored per run and repeat).
    evaluation : how held-out predictions are made. ``"heldout"``: fit on train runs, predict
        the repeat-averaged test runs. ``"leave-one-run-out"``: each run is predicted by a model
        fit on the others. ``"contiguous-folds"``: the runs' concatenated time series is cut into
        ``eval_folds`` contiguous blocks, each predicted by a model fit on the rest. In the last
        two, the held-out predictions are concatenated and scored over the whole series.
    eval_folds : number of contiguous blocks for ``"contiguous-folds"``.
    delays : default FIR delays in TRs for this dataset.
    feature_detrend : polynomial order removed from each run's features before z-scoring, to
        match how the responses were detrended (None: features are only z-scored). This is
        part of the dataset's recipe: the demo detrends both sides (order 2); Alice follows
        its README's reference recipe, which does not detrend features.
    mask_img : for volumetric data, the NIfTI brain mask whose in-mask voxels are the
        targets (nilearn ``NiftiMasker`` order); None for ROI time series.
    target_names : names of the response columns when they are few (ROI series).
    space : the target space (:mod:`mmneuro.brain.spaces`: volume, surface or parcels) that
        turns per-target values back into images and files; None for a subset of targets.
    ceiling : how the noise ceiling is computed: ``"repeats"`` (explainable variance of the
        repeated test runs), ``"loo-isc"`` (leave-one-out inter-subject correlation against the
        mean of the other subjects), ``"split-half"`` (split-half reliability of repeats with
        Spearman-Brown), ``"ridge"`` (cross-subject ridge prediction), or ``"auto"`` (repeats
        when every test run was presented more than once, else loo-isc).
    notes : human-readable remarks from loading (excluded subjects, constant columns).
    ground_truth : folder holding the simulation truth, when the dataset has one.
    """

    name: str
    root: Path
    tr: float
    runs: list[StimulusRun]
    subjects: list[str]
    rois: dict[str, np.ndarray]
    load_responses: Callable[[str], Responses]
    evaluation: Evaluation = "heldout"
    eval_folds: int = 2
    delays: tuple[int, ...] = (1, 2, 3, 4)
    feature_detrend: int | None = None
    mask_img: object | None = None
    target_names: list[str] | None = None
    space: Any = None
    ceiling: CeilingMethod = "auto"
    notes: list[str] = field(default_factory=list)
    ground_truth: Path | None = None

    @property
    def train_runs(self) -> list[StimulusRun]:
        return [r for r in self.runs if r.split == "train"]

    @property
    def test_runs(self) -> list[StimulusRun]:
        return [r for r in self.runs if r.split == "test"]

    @classmethod
    def from_arrays(cls, responses: Mapping[str, Any], tr: float, **options: Any) -> "Dataset":
        """A dataset from responses in memory, cleaned by the same recipe as described datasets.

        Parameters
        ----------
        responses : subject label -> an array ``(n_trs, n_targets)`` (one run, ``"run-1"``) or
            ``(n_presentations, n_trs, n_targets)``, or ``{run: array}``. Raw values: each run and
            presentation is detrended (``detrend``, default 2) and z-scored on loading.
        tr : repetition time in seconds.
        **options : ``name``, ``runs`` (explicit :class:`StimulusRun` list), ``first_tr_time``
            (stimulus-clock time of row 0, default ``tr / 2``), ``media`` (``{"events": path,
            "video": path, ...}`` for one run, or ``{run: {...}}``), ``test_runs``, ``target_names``,
            ``rois`` (name -> (n_targets,) bool; default: one per named target), ``evaluation`` (default: heldout with test runs,
            leave-one-run-out with several runs, else contiguous-folds), ``folds``, ``delays``,
            ``delays`` (default: TRs spanning 2-8 s), ``detrend``, ``standardize``, ``feature_detrend``,
            ``ceiling``; see
            :func:`mmneuro.datasets.described.from_arrays`.

        Example: ``Dataset.from_arrays({"01": y1, "02": y2}, tr=0.8, media={"events": "events.tsv"},
        target_names=regions)``.
        """
        from mmneuro.datasets.described import from_arrays

        return from_arrays(responses, tr, **options)

    def preflight(self, subjects: list[str] | None = None) -> None:
        """Raise now, with an InputError naming the file and the key, if any of ``subjects``' (default:
        all) responses could not be loaded (missing files, wrong lengths, TR disagreeing with a sidecar).
        Reads file headers only; in-memory datasets were checked when they were made."""
        check = getattr(self.load_responses, "preflight", None)
        if check is not None:
            check(self.subjects if subjects is None else subjects)

    def run(self, name: str) -> StimulusRun:
        for r in self.runs:
            if r.name == name:
                return r
        raise KeyError(f"dataset {self.name!r} has no run {name!r}; runs: {[r.name for r in self.runs]}")
