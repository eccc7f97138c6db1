"""The Alice in Wonderland fMRI ROI dataset (Brennan et al., 2016).

Participants listened once to ~12 min of chapter 1 of *Alice's Adventures in Wonderland*;
the folder holds, per subject, 362 TRs (TR = 2 s) x 6 ROI time series
(``LATL RATL LPTL LIPL LPreM LIFG``), raw. The first ten volumes were discarded, so
response row ``i`` was acquired ``20 + 2 i`` seconds after audio onset.

The story is one stimulus run, ``story`` (362 TRs), preprocessed as a whole (as in the
README's reference recipe) and evaluated by contiguous halves: a model fit on one half
predicts the other, both ways, and the two held-out predictions are scored together. The
run's ``tr_times`` are on the audio clock, so words are looked up by time without offset.

Subjects are screened when the dataset is loaded: a subject whose file has the wrong
shape, holds NaN / infinite values, or is constant in every column is excluded (noted in
``Dataset.notes``); a column of a usable subject that is constant in the whole series or in
either evaluation half is noted and marked False in ``Responses.valid``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from mmneuro.brain.loaders import load_roi_timeseries
from mmneuro.brain.preprocess import clean_run, constant_columns
from mmneuro.datasets.base import Dataset, Responses, StimulusRun
from mmneuro.errors import InputError

ROI_NAMES = ["LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG"]
TR = 2.0
N_TRS = 362
FIRST_TR_TIME = 20.0  # seconds of audio before response row 0 (10 discarded volumes x 2 s)
HALVES = ((0, 181), (181, 362))  # the two evaluation blocks, screened for constant columns
TEXTGRID = Path("stimulus") / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid"
RESOLUTIONS = ("6mm", "10mm")
ENV_VAR = "MMNEURO_ALICE"
_REL_DEFAULT = Path("..") / "shared" / "data" / "alice-brennan2016"
_SUBJECT_FILE = re.compile(r"^s(\d+)-timecourses\.txt$")


def _candidate_roots() -> list[Path]:
    cands = []
    env = os.environ.get(ENV_VAR)
    if env:
        cands.append(Path(env))
    cands.append(Path.cwd() / _REL_DEFAULT)
    repo_root = Path(__file__).resolve().parents[2]
    cands.append(repo_root / _REL_DEFAULT)
    return cands


def resolve_alice_root(root: str | Path | None = None) -> Path:
    """The Alice folder: ``root`` if given, else ``$MMNEURO_ALICE``, else
    ``../shared/data/alice-brennan2016`` relative to the working directory, then to the
    repository root. Raises :class:`InputError` listing what was tried when none exists."""
    if root is not None:
        p = Path(root)
        if not (p / "fmri").is_dir():
            raise InputError(
                f"Alice dataset folder {p} not found or has no fmri/ subfolder; pass the folder "
                f"holding fmri/ and stimulus/ (alice-brennan2016)"
            )
        return p
    tried = _candidate_roots()
    for p in tried:
        if (p / "fmri").is_dir():
            return p.resolve()
    raise InputError(
        "Alice dataset not found; tried " + ", ".join(str(p) for p in tried)
        + f". Set ${ENV_VAR} to the alice-brennan2016 folder or pass root="
    )


def _subject_label(subject: str | int) -> str:
    s = str(subject).strip()
    if s.lower().startswith("s"):
        s = s[1:]
    if not s.isdigit():
        raise InputError(f"Alice subject label {subject!r} is not like '18' or 's18'")
    return f"{int(s):02d}"


def _screen(raw: np.ndarray) -> tuple[str | None, np.ndarray]:
    """Return (reason to exclude or None, (6,) bool constant-in-some-half mask)."""
    if raw.shape != (N_TRS, len(ROI_NAMES)):
        return f"shape {raw.shape}, expected ({N_TRS}, {len(ROI_NAMES)})", np.zeros(0, bool)
    bad = ~np.isfinite(raw)
    if bad.any():
        cols = [ROI_NAMES[j] for j in np.flatnonzero(bad.any(axis=0))]
        return f"{int(bad.sum())} NaN/infinite values in columns {cols}", np.zeros(0, bool)
    whole = constant_columns(raw)
    if whole.all():
        kind = "all zero" if not raw.any() else "constant"
        return f"every column is {kind}", np.zeros(0, bool)
    const = whole.copy()
    for lo, hi in HALVES:
        const |= constant_columns(raw[lo:hi])
    return None, const


def load_alice(root: str | Path | None = None, resolution: str = "6mm") -> Dataset:
    """Load the Alice ROI dataset as a :class:`~mmneuro.datasets.base.Dataset`.

    Parameters
    ----------
    root : the ``alice-brennan2016`` folder; None resolves it as
        :func:`resolve_alice_root` does.
    resolution : ROI sphere radius, ``"6mm"`` (default) or ``"10mm"``.

    Returns
    -------
    Dataset named ``"alice"`` (``"alice-10mm"`` for 10 mm) with one run ``story`` (362 TRs),
    usable subjects (labels like ``"18"``), one-hot ROIs over the 6 columns, evaluation by
    two contiguous folds (halves) and delays (1, 2, 3, 4). ``load_responses(subject)`` gives
    ``{"story": (1, 362, 6) float32}``, linear+quadratic detrended and z-scored over the whole
    series, with ``valid`` False for constant columns.
    """
    if resolution not in RESOLUTIONS:
        raise InputError(f"Alice resolution must be one of {RESOLUTIONS}, got {resolution!r}")
    base = resolve_alice_root(root)
    folder = base / "fmri" / resolution
    if not folder.is_dir():
        raise InputError(f"Alice folder {base} has no fmri/{resolution} subfolder")
    words = base / TEXTGRID
    if not words.is_file():
        raise InputError(f"Alice word TextGrid {words} is missing; the dataset copy is incomplete")

    files = sorted(
        (int(m.group(1)), f) for f in folder.iterdir() if (m := _SUBJECT_FILE.match(f.name))
    )
    if not files:
        raise InputError(f"Alice folder {folder} holds no sNN-timecourses.txt files")

    notes: list[str] = []
    raw_by_subject: dict[str, np.ndarray] = {}
    valid_by_subject: dict[str, np.ndarray] = {}
    excluded: dict[str, str] = {}
    for num, path in files:
        label = f"{num:02d}"
        try:
            raw = load_roi_timeseries(path, check_finite=False)
        except InputError as exc:
            reason = f"unreadable ({exc})"
        else:
            reason, const = _screen(raw)
        if reason is not None:
            excluded[label] = reason
            notes.append(f"subject s{label} excluded: {path.name}: {reason}")
            continue
        raw_by_subject[label] = raw
        valid_by_subject[label] = ~const
        if const.any():
            cols = [ROI_NAMES[j] for j in np.flatnonzero(const)]
            notes.append(
                f"subject s{label}: constant column(s) {cols} in {path.name} "
                f"(in the whole series or in one half); marked invalid"
            )
    n_const = sum(int((~v).sum()) for v in valid_by_subject.values())
    notes.append(
        f"{len(raw_by_subject)} of {len(files)} subjects usable at {resolution}; "
        f"{n_const} constant subject-ROI columns among them"
    )
    if not raw_by_subject:
        raise InputError(f"Alice folder {folder}: no usable subject; " + "; ".join(notes))

    runs = [StimulusRun(name="story", tr_times=FIRST_TR_TIME + TR * np.arange(N_TRS, dtype=np.float64),
                        words=words, split="train")]
    rois = {name: np.arange(len(ROI_NAMES)) == j for j, name in enumerate(ROI_NAMES)}

    def load_responses(subject: str | int) -> Responses:
        label = _subject_label(subject)
        if label not in raw_by_subject:
            why = f" (excluded: {excluded[label]})" if label in excluded else ""
            raise InputError(
                f"Alice subject {subject!r} is not usable{why}; usable: {sorted(raw_by_subject)}"
            )
        raw = raw_by_subject[label]
        story = clean_run(raw, detrend_order=2, name=f"Alice s{label}")[None]
        return Responses(subject=label, runs={"story": story}, valid=valid_by_subject[label].copy())

    return Dataset(
        name="alice" if resolution == "6mm" else f"alice-{resolution}",
        root=base,
        tr=TR,
        runs=runs,
        subjects=sorted(raw_by_subject, key=int),
        rois=rois,
        load_responses=load_responses,
        evaluation="contiguous-folds",
        eval_folds=len(HALVES),
        delays=(1, 2, 3, 4),
        mask_img=None,
        target_names=list(ROI_NAMES),
        notes=notes,
    )


def alice_regressor(root: str | Path | None, subject: str | int, name: str = "rate") -> np.ndarray:
    """A provided per-TR baseline regressor of one subject: ``"rate"`` (word rate) or
    ``"sndpwr"`` (sound power), already convolved with an HRF by the authors.

    Returns
    -------
    (362,) float64 on the same rows as the responses (row ``i`` at ``20 + 2 i`` s).
    """
    if name not in ("rate", "sndpwr"):
        raise InputError(f"Alice regressor name must be 'rate' or 'sndpwr', got {name!r}")
    base = resolve_alice_root(root)
    label = _subject_label(subject)
    path = base / "fmri" / f"s{label}-{name}.txt"
    arr = load_roi_timeseries(path)
    if arr.shape not in ((N_TRS, 1), (1, N_TRS)):
        raise InputError(f"Alice regressor file {path} has shape {arr.shape}; expected {N_TRS} values")
    return arr.reshape(-1)
