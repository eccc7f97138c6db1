"""The Alice in Wonderland fMRI ROI dataset (Brennan et al., 2016), as a described dataset.

Participants listened once to ~12 min of chapter 1 of *Alice's Adventures in Wonderland*;
the folder holds, per subject, 362 TRs (TR = 2 s) x 6 ROI time series
(``LATL RATL LPTL LIPL LPreM LIFG``), raw. The first ten volumes were discarded, so
response row ``i`` was acquired ``20 + 2 i`` seconds after audio onset.

The data folder is read-only, so its description ships with mmneuro
(``mmneuro/datasets/known/alice.toml``) and is read with the data folder as root: one run,
``story``, preprocessed as a whole and evaluated by contiguous halves (a model fit on one
half predicts the other, both ways, the two held-out predictions scored together).
Subjects whose file has the wrong shape, holds NaN / infinite values or is constant in
every column are excluded with a note; a column constant in the whole series or in either
half is marked invalid.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mmneuro.brain.loaders import load_roi_timeseries
from mmneuro.datasets.base import Dataset
from mmneuro.errors import InputError

ROI_NAMES = ["LATL", "RATL", "LPTL", "LIPL", "LPreM", "LIFG"]
TR = 2.0
N_TRS = 362
FIRST_TR_TIME = 20.0  # seconds of audio before response row 0 (10 discarded volumes x 2 s)
TEXTGRID = Path("stimulus") / "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid"
RESOLUTIONS = ("6mm", "10mm")
ENV_VAR = "MMNEURO_ALICE"
_REL_DEFAULT = Path("..") / "shared" / "data" / "alice-brennan2016"
DESCRIPTION = Path(__file__).parent / "known" / "alice.toml"


def _candidate_roots() -> list[Path]:
    """The default places, tried when ``$MMNEURO_ALICE`` is not set."""
    cands = []
    cands.append(Path.cwd() / _REL_DEFAULT)
    repo_root = Path(__file__).resolve().parents[2]
    cands.append(repo_root / _REL_DEFAULT)
    return cands


def resolve_alice_root(root: str | Path | None = None) -> Path:
    """The Alice folder: ``root`` if given, else ``$MMNEURO_ALICE``, else
    ``../shared/data/alice-brennan2016`` relative to the working directory, then to the
    repository root. Raises :class:`InputError` listing what was tried when none exists, and
    when ``$MMNEURO_ALICE`` is set but does not hold the data (never another copy instead)."""
    if root is not None:
        p = Path(root)
        if not (p / "fmri").is_dir():
            raise InputError(
                f"Alice dataset folder {p} not found or has no fmri/ subfolder; pass the folder "
                f"holding fmri/ and stimulus/ (alice-brennan2016)"
            )
        return p
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not (p / "fmri").is_dir():
            what = ("does not exist" if not p.exists() else "is not a folder" if not p.is_dir()
                    else "has no fmri/ subfolder")
            raise InputError(f"${ENV_VAR} is set to {p}, which {what}; point it at the alice-brennan2016 folder "
                             f"(holding fmri/ and stimulus/), or unset it to use the default copy")
        return p.resolve()
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


def alice_description(resolution: str = "6mm"):
    """The packaged description of Alice at ``resolution`` (ROI sphere radius ``"6mm"`` or ``"10mm"``)."""
    from mmneuro.datasets.description import read_description

    if resolution not in RESOLUTIONS:
        raise InputError(f"Alice resolution must be one of {RESOLUTIONS}, got {resolution!r}")
    desc = read_description(DESCRIPTION)
    if resolution == "6mm":
        return desc
    runs = [run.model_copy(update={"responses": [f.replace("/6mm/", f"/{resolution}/") for f in run.responses]})
            for run in desc.runs]
    return desc.model_copy(update={"name": f"alice-{resolution}", "runs": runs})


def load_alice(root: str | Path | None = None, resolution: str = "6mm") -> Dataset:
    """Load the Alice ROI dataset through its packaged description.

    Parameters
    ----------
    root : the ``alice-brennan2016`` folder; None resolves it as
        :func:`resolve_alice_root` does.
    resolution : ROI sphere radius, ``"6mm"`` (default) or ``"10mm"``.

    Returns
    -------
    Dataset named ``"alice"`` (``"alice-10mm"`` for 10 mm) with one run ``story`` (362 TRs),
    usable subjects (labels like ``"18"``), one ROI per column, evaluation by two contiguous
    folds (halves) and delays (1, 2, 3, 4). ``load_responses(subject)`` gives
    ``{"story": (1, 362, 6) float32}``, linear+quadratic detrended and z-scored over the whole
    series, with ``valid`` False for constant columns.
    """
    from mmneuro.datasets.described import load_described

    desc = alice_description(resolution)
    base = resolve_alice_root(root)
    if not (base / "fmri" / resolution).is_dir():
        raise InputError(f"Alice folder {base} has no fmri/{resolution} subfolder")
    if not (base / TEXTGRID).is_file():
        raise InputError(f"Alice word TextGrid {base / TEXTGRID} is missing; the dataset copy is incomplete")
    return load_described(DESCRIPTION, root=base, desc=desc)


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
