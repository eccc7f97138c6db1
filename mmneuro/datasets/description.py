"""The dataset description: one small TOML file that says what a study holds and how to use it.

A description (``mmneuro.toml`` at the dataset's root, or any ``.toml`` file whose ``root``
key points at the data) is validated by the schema below; an error names the file, the key
and what was expected. Paths are relative to the root and may hold ``{subject}`` (and
``{hemi}`` for surface data held as one GIfTI per hemisphere; a surface array without
``{hemi}`` holds the left hemisphere's vertices first); an HDF5 dataset is addressed as
``file.h5#key``, where the key may be a glob (``#*task-s01e02a``) that must match exactly one
dataset. Every label that becomes part of a path (dataset, subject, run) is checked against
:data:`LABEL_PATTERN`, and every path must stay inside the root.

Example (ROI time series of a movie study, one run, events as features)::

    name = "movie-rois"
    tr = 0.8
    first_tr_time = 0.4            # stimulus-clock time (s) of response row 0

    [[runs]]
    name = "movie"
    events = "events.tsv"
    video = "stimuli/movie.mp4"
    responses = ["responses/sub-{subject}_movie.npy"]   # one entry per presentation

    [targets]
    kind = "parcels"
    names_file = "regions.txt"

    [evaluation]
    scheme = "contiguous-folds"
    folds = 2

The module reads and writes descriptions; :mod:`mmneuro.datasets.described` turns one into
a :class:`~mmneuro.datasets.base.Dataset`.
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from mmneuro.errors import InputError

FILENAME = "mmneuro.toml"
SCHEMA_VERSION = 1

#: Labels that become parts of paths: a letter or digit, then letters, digits, ``.``, ``_``, ``-``;
#: no separators and no ``..``.
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

#: Confound columns regressed out of fMRIPrep runs unless the description says otherwise.
DEFAULT_CONFOUNDS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z", "csf", "white_matter", "cosine*")

HEMISPHERES = ("L", "R")


def check_label(value: str, what: str = "label") -> str:
    """``value`` if it is a safe path component (see :data:`LABEL_PATTERN`), else InputError."""
    text = str(value)
    if not LABEL_PATTERN.fullmatch(text) or ".." in text:
        raise InputError(f"{what} {text!r} is not a safe label: use letters, digits, '.', '_' and '-' "
                         f"(no '/', '\\' or '..'), starting with a letter or digit")
    return text


def _label(value: str) -> str:
    if not LABEL_PATTERN.fullmatch(value) or ".." in value:
        raise ValueError(f"{value!r} is not a safe label (letters, digits, '.', '_', '-'; no '/', '\\' or '..')")
    return value


def _relative(value: str) -> str:
    path = value.split("#", 1)[0]
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path) or ".." in Path(path).parts:
        raise ValueError(f"{value!r} must be a path relative to the dataset root, without '..'")
    return value


Label = Annotated[str, AfterValidator(_label)]
RelPath = Annotated[str, AfterValidator(_relative)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResponseFile(_Strict):
    """One presentation of a run by one subject: the response file and, optionally, its confounds."""

    file: RelPath = Field(description="response file pattern ({subject}, {hemi}; 'x.h5#key' for HDF5)")
    confounds: RelPath | None = Field(None, description="confounds TSV pattern (fMRIPrep desc-confounds_timeseries)")


class RunSpec(_Strict):
    """One stimulus run: its media, how it is used, and every subject's responses to it."""

    name: Label
    split: Literal["train", "test"] = "train"
    responses: list[RelPath | ResponseFile] = Field(min_length=1)
    video: RelPath | None = None
    audio: RelPath | None = None
    words: RelPath | None = None
    events: RelPath | None = None
    first_tr_time: float | None = None
    rows: tuple[int, int] | None = Field(None, description="[start, stop) rows of the response files to use")
    n_trs: int | None = Field(None, gt=0, description="expected response rows (after 'rows'), checked")

    @property
    def files(self) -> list[ResponseFile]:
        """The responses as :class:`ResponseFile` records, one per presentation."""
        return [r if isinstance(r, ResponseFile) else ResponseFile(file=r) for r in self.responses]

    @model_validator(mode="after")
    def _rows_ordered(self) -> "RunSpec":
        if self.rows is not None and not 0 <= self.rows[0] < self.rows[1]:
            raise ValueError(f"rows must be [start, stop) with 0 <= start < stop, got {list(self.rows)}")
        return self


class TargetsSpec(_Strict):
    """What the response columns are."""

    kind: Literal["volume", "surface", "parcels"]
    mask: RelPath | None = Field(None, description="volume: brain mask NIfTI")
    mesh: str | None = Field(None, description="surface: fsaverage5 | fsaverage6 | fsaverage, or a mesh folder")
    names: list[str] | None = Field(None, description="parcels: one name per column")
    names_file: RelPath | None = Field(None, description="parcels: text file, one name per line")
    atlas: RelPath | None = Field(None, description="parcels: label image to paint parcel values into")
    time_axis: Literal[0, 1] = Field(0, description="1 when response files are (targets, time)")

    @model_validator(mode="after")
    def _kind_fields(self) -> "TargetsSpec":
        if self.kind == "volume" and self.mask is None:
            raise ValueError("kind 'volume' needs 'mask' (the brain mask NIfTI whose voxels are the targets)")
        if self.kind == "surface" and self.mesh is None:
            raise ValueError("kind 'surface' needs 'mesh' (fsaverage5, fsaverage6, fsaverage or a mesh folder)")
        if self.names is not None and self.names_file is not None:
            raise ValueError("give either 'names' or 'names_file', not both")
        return self


class RoisSpec(_Strict):
    """Regions of interest over the targets (ROI tables and figures summarise them)."""

    masks: dict[str, RelPath] | None = Field(None, description="name -> NIfTI mask (volume targets)")
    table: RelPath | None = Field(None, description="TSV with columns 'target' (name or index) and 'roi'")
    per_target: bool = Field(False, description="every target (parcel) is its own ROI (the default for named "
                                                "parcels when no masks or table are given)")


class EvaluationSpec(_Strict):
    """How held-out predictions are made and what they are compared with."""

    scheme: Literal["heldout", "leave-one-run-out", "contiguous-folds"] = "heldout"
    folds: int = Field(2, ge=2, description="blocks of 'contiguous-folds'")
    ceiling: Literal["auto", "repeats", "loo-isc", "split-half", "ridge"] = "auto"


def default_delays(tr: float) -> tuple[int, ...]:
    """FIR delays (in TRs) spanning 2-8 s after a stimulus, where the BOLD response peaks and falls:
    ``(1, 2, 3, 4)`` at TR 2 s, ``(2, ..., 5)`` at 1.49 s, ``(3, ..., 10)`` at 0.8 s."""
    first = max(1, math.ceil(2.0 / tr - 1e-9))
    return tuple(range(first, max(first, math.floor(8.0 / tr + 1e-9)) + 1))


class RecipeSpec(_Strict):
    """Preprocessing of responses (per run and presentation) and the design's delays."""

    delays: list[int] | None = Field(None, min_length=1, description="FIR delays in TRs; default: 2-8 s")
    detrend: int | None = Field(2, ge=0, description="polynomial order removed from each run (None: mean only)")
    confounds: list[str] = Field(list(DEFAULT_CONFOUNDS), description="confound columns (globs) to regress out")
    standardize: bool = True
    feature_detrend: int | None = Field(None, ge=0, description="polynomial order removed from features too")


class Description(_Strict):
    """A whole dataset description (see the module docstring)."""

    mmneuro_dataset: int = Field(SCHEMA_VERSION, description="schema version")
    name: Label
    format: Literal["arrays", "bids", "algonauts2025", "movie10", "demo", "alice"] = "arrays"
    root: str | None = Field(None, description="data folder, if not the folder holding this file")
    tr: float = Field(gt=0)
    first_tr_time: float | None = Field(None, description="stimulus-clock time of response row 0; default tr / 2")
    subjects: list[Label] | None = Field(None, description="default: every subject the first run's files show")
    on_bad_subject: Literal["error", "exclude"] = "error"
    runs: list[RunSpec] = Field(min_length=1)
    targets: TargetsSpec
    rois: RoisSpec = RoisSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    recipe: RecipeSpec = RecipeSpec()
    ground_truth: RelPath | None = None
    notes: list[str] = []

    @model_validator(mode="after")
    def _consistent(self) -> "Description":
        names = [r.name for r in self.runs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"run names must be unique; repeated: {dup}")
        if self.evaluation.scheme == "heldout" and not any(r.split == "test" for r in self.runs):
            raise ValueError("evaluation.scheme 'heldout' needs at least one run with split = 'test'")
        if self.evaluation.scheme == "heldout" and not any(r.split == "train" for r in self.runs):
            raise ValueError("evaluation.scheme 'heldout' needs at least one run with split = 'train'")
        surface = self.targets.kind == "surface"
        for run in self.runs:
            for f in run.files:
                if not surface and "{hemi}" in f.file:
                    raise ValueError(f"run {run.name!r}: response pattern {f.file!r} may hold {{hemi}} only for "
                                     f"surface targets")
        return self

    @property
    def delays(self) -> tuple[int, ...]:
        """The FIR delays in TRs: the recipe's, else :func:`default_delays` of the TR."""
        return tuple(self.recipe.delays) if self.recipe.delays is not None else default_delays(self.tr)

    def run_first_tr_time(self, run: RunSpec) -> float:
        """Stimulus-clock time of ``run``'s first response row."""
        if run.first_tr_time is not None:
            return run.first_tr_time
        return self.tr / 2 if self.first_tr_time is None else self.first_tr_time


def _format_error(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "missing key"
        elif err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling)"
        lines.append(f"{key}: {msg}")
    return f"dataset description {path}: " + "; ".join(lines)


def parse_description(data: dict[str, Any], source: Path) -> Description:
    """Validate a parsed description; InputError naming ``source``, each bad key and what it expects."""
    try:
        return Description.model_validate(data)
    except ValidationError as exc:
        raise InputError(_format_error(source, exc)) from None


def read_description(path: str | Path) -> Description:
    """Read and validate a description file (``mmneuro.toml`` or a folder holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / FILENAME
    if not p.is_file():
        raise InputError(f"no dataset description at {p}; run `mmneuro datasets init {p.parent}` to write one")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"dataset description {p} is not valid TOML ({exc})") from None
    return parse_description(data, p)


def description_root(desc: Description, path: Path) -> Path:
    """The data folder of a description read from ``path`` (a file or its folder)."""
    folder = path if path.is_dir() else path.parent
    if desc.root is None:
        return folder.resolve()
    root = Path(desc.root).expanduser()
    return (root if root.is_absolute() else folder / root).resolve()


def to_toml(desc: Description) -> str:
    """The description as TOML text (defaults included, so a reader sees every choice)."""
    import tomli_w

    data = desc.model_dump(mode="json", exclude_none=True)
    header = "# mmneuro dataset description (schema version 1); `mmneuro datasets check` validates it\n"
    return header + tomli_w.dumps(data)


def write_description(desc: Description, folder: str | Path, name: str = FILENAME) -> Path:
    """Write ``desc`` to ``folder/name`` atomically; returns the path."""
    import os
    import tempfile

    folder = Path(folder)
    target = folder / name
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(to_toml(desc))
    os.replace(tmp, target)
    return target
