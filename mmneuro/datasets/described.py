"""From a description (or in-memory arrays) to a :class:`~mmneuro.datasets.base.Dataset`.

Both paths meet in :func:`assemble`: stimulus runs on the TR grid, subjects, ROIs, and a
*response source*, a small picklable record whose call ``source(subject)`` reads and cleans
one subject's responses (so a task graph ships the record, not the data). Cleaning follows
the description's recipe per run and presentation: confounds and polynomial drift regressed
out together, then z-scoring (:func:`mmneuro.brain.preprocess.clean_run`). Targets constant
in a run, a presentation or an evaluation block are marked invalid.
"""

from __future__ import annotations

import fnmatch
import re
import tokenize
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mmneuro.brain.preprocess import clean_run, constant_columns
from mmneuro.datasets.base import Dataset, Responses, StimulusRun
from mmneuro.datasets.description import (
    HEMISPHERES, Description, RecipeSpec, RunSpec, check_label, default_delays, description_root, read_description,
)
from mmneuro.errors import InputError

MEDIA = ("video", "audio", "words", "events")


# --------------------------------------------------------------------------- cleaning (shared)

@dataclass(frozen=True)
class Recipe:
    """How raw responses become model targets (see :class:`RecipeSpec`)."""

    detrend: int | None = 2
    standardize: bool = True
    confounds: tuple[str, ...] = ()
    eval_blocks: int | None = None  # contiguous-folds: also screen each block for constant targets


def clean_subject(subject: str, raw: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray | None, str]]],
                  recipe: Recipe) -> Responses:
    """Clean every presentation of every run; mark targets constant anywhere as invalid.

    ``raw``: run -> [(Y (n_trs, n_targets), confounds (n_trs, k) or None, label)] in presentation
    order. Returns :class:`Responses` with run -> (n_presentations, n_trs, n_targets) float32.
    """
    runs: dict[str, np.ndarray] = {}
    valid: np.ndarray | None = None
    series = []
    for run, presentations in raw.items():
        cleaned = []
        for y, conf, label in presentations:
            const = constant_columns(y)
            if const.any():
                warnings.warn(f"{label}: {int(const.sum())} of {y.shape[1]} targets are constant (first indices "
                              f"{np.flatnonzero(const)[:5].tolist()}); they are excluded from scores", stacklevel=2)
            valid = ~const if valid is None else valid & ~const
            cleaned.append(clean_run(y, recipe.detrend, name=label, confounds=conf, standardize=recipe.standardize))
        runs[run] = np.stack(cleaned)
        series.append(presentations[0][0])
    if recipe.eval_blocks:
        whole = np.concatenate(series)
        for block in np.array_split(np.arange(whole.shape[0]), recipe.eval_blocks):
            valid &= ~constant_columns(whole[block])
    return Responses(subject=subject, runs=runs, valid=None if valid is None or valid.all() else valid)


# --------------------------------------------------------------------------- in-memory arrays

@dataclass
class ArrayResponses:
    """Response source over in-memory arrays: subject -> run -> (n_presentations, n_trs, n_targets)."""

    arrays: dict[str, dict[str, np.ndarray]]
    recipe: Recipe

    def __call__(self, subject: str | int) -> Responses:
        label = _match_subject(subject, list(self.arrays))
        raw = {run: [(a[k], None, f"subject {label} run {run} presentation {k + 1}") for k in range(a.shape[0])]
               for run, a in self.arrays[label].items()}
        return clean_subject(label, raw, self.recipe)


def _as_presentations(arr: Any, what: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise InputError(f"{what}: expected (n_trs, n_targets) or (n_presentations, n_trs, n_targets), "
                         f"got shape {a.shape}")
    return a


def from_arrays(responses: Mapping[str, Any], tr: float, *, name: str = "arrays",
                runs: Sequence[StimulusRun] | None = None, first_tr_time: float | None = None,
                media: Mapping[str, Any] | None = None, test_runs: Sequence[str] = (),
                target_names: Sequence[str] | None = None, rois: Mapping[str, np.ndarray] | None = None,
                evaluation: str | None = None, folds: int = 2, delays: Sequence[int] | None = None,
                detrend: int | None = 2, standardize: bool = True, feature_detrend: int | None = None,
                ceiling: str = "auto", root: str | Path = ".") -> Dataset:
    """A :class:`Dataset` from responses held in memory (see :meth:`Dataset.from_arrays`)."""
    check_label(name, "dataset name")
    if not responses:
        raise InputError("from_arrays: no subject given")
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for subject, value in responses.items():
        label = check_label(str(subject).removeprefix("sub-"), "subject label")
        by_run = value if isinstance(value, Mapping) else {"run-1": value}
        arrays[label] = {check_label(r, "run name"): _as_presentations(a, f"subject {label} run {r}").astype(
            np.float32, copy=False) for r, a in by_run.items()}
    first = next(iter(arrays.values()))
    start = tr / 2 if first_tr_time is None else float(first_tr_time)
    if runs is None:
        per_run = dict(media or {})
        if per_run and set(per_run) <= set(MEDIA):
            if len(first) != 1:
                raise InputError(f"from_arrays: media {sorted(per_run)} given for {len(first)} runs; "
                                 f"pass media={{run: {{...}}}} per run")
            per_run = {next(iter(first)): per_run}
        unknown = set(per_run) - set(first)
        if unknown:
            raise InputError(f"from_arrays: media for unknown runs {sorted(unknown)}; runs: {sorted(first)}")
        runs = [StimulusRun(name=r, tr_times=start + tr * np.arange(a.shape[1]),
                            split="test" if r in test_runs else "train",
                            **{k: Path(v) for k, v in per_run.get(r, {}).items() if k in MEDIA})
                for r, a in first.items()]
    for label, by_run in arrays.items():
        _check_lengths(label, by_run, runs)
    n_targets = next(iter(first.values())).shape[2]
    scheme = evaluation or ("heldout" if any(r.split == "test" for r in runs) else
                            "leave-one-run-out" if len(runs) > 1 else "contiguous-folds")
    recipe = Recipe(detrend=detrend, standardize=standardize, eval_blocks=folds if scheme == "contiguous-folds" else None)
    from mmneuro.brain.spaces import ParcelSpace

    space = ParcelSpace(list(target_names) if target_names is not None else
                        [f"parcel-{i + 1}" for i in range(n_targets)])
    rois = dict(rois) if rois is not None else ({n: np.arange(n_targets) == j for j, n in enumerate(target_names)}
                                                if target_names is not None else None)
    return assemble(space=space, name=name, root=Path(root), tr=tr, runs=list(runs), subjects=list(arrays),
                    source=ArrayResponses(arrays, recipe), n_targets=n_targets, rois=rois, target_names=target_names,
                    evaluation=scheme, folds=folds, delays=delays if delays is not None else default_delays(tr), feature_detrend=feature_detrend,
                    ceiling=ceiling)


def _check_lengths(label: str, by_run: Mapping[str, np.ndarray], runs: Sequence[StimulusRun]) -> None:
    names = {r.name for r in runs}
    if set(by_run) != names:
        raise InputError(f"subject {label}: responses for runs {sorted(by_run)}, the dataset has {sorted(names)}")
    widths = {a.shape[2] for a in by_run.values()}
    if len(widths) != 1:
        raise InputError(f"subject {label}: runs have different target counts {sorted(widths)}")
    for run in runs:
        if by_run[run.name].shape[1] != run.n_trs:
            raise InputError(f"subject {label} run {run.name}: {by_run[run.name].shape[1]} rows but the run "
                             f"has {run.n_trs} TRs")


# --------------------------------------------------------------------------- assembling

def assemble(*, name: str, root: Path, tr: float, runs: list[StimulusRun], subjects: list[str], source: Any,
             n_targets: int, rois: dict[str, np.ndarray] | None, target_names: Sequence[str] | None,
             evaluation: str, folds: int, delays: Sequence[int], feature_detrend: int | None, ceiling: str,
             space: Any, mask_img: Any = None, notes: list[str] | None = None,
             ground_truth: Path | None = None) -> Dataset:
    """The one constructor every dataset goes through; checks that ROIs, names and space fit the targets."""
    if space.n_targets != n_targets:
        raise InputError(f"dataset {name!r}: the {space.kind} target space has {space.n_targets} targets, the "
                         f"responses {n_targets}")
    if target_names is not None and len(target_names) != n_targets:
        raise InputError(f"dataset {name!r}: {len(target_names)} target names for {n_targets} targets")
    if not rois:
        rois = {"all": np.ones(n_targets, dtype=bool)}
    for roi, mask in rois.items():
        if np.asarray(mask).shape != (n_targets,):
            raise InputError(f"dataset {name!r}: ROI {roi!r} has shape {np.asarray(mask).shape}, "
                             f"expected ({n_targets},) over the targets")
    return Dataset(name=name, root=root, tr=float(tr), runs=runs, subjects=subjects,
                   rois={k: np.asarray(v, dtype=bool) for k, v in rois.items()}, load_responses=source,
                   evaluation=evaluation, eval_folds=folds, delays=tuple(int(d) for d in delays),
                   feature_detrend=feature_detrend, mask_img=mask_img, space=space,
                   target_names=list(target_names) if target_names is not None else None,
                   ceiling=ceiling, notes=list(notes or []), ground_truth=ground_truth)


def _match_subject(subject: str | int, labels: Sequence[str]) -> str:
    text = str(subject).removeprefix("sub-")
    if isinstance(subject, (int, np.integer)) or text.isdigit():
        for label in labels:
            if label == text or (label.isdigit() and text.isdigit() and int(label) == int(text)):
                return label
    if text in labels:
        return text
    raise InputError(f"subject {str(subject)!r} is not in this dataset; subjects: {', '.join(labels)}")


# --------------------------------------------------------------------------- files

def inside(root: Path, relative: str, what: str) -> Path:
    """``root / relative`` resolved (symlinks followed); InputError if it leaves ``root``."""
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise InputError(f"{what} {relative!r} resolves outside the dataset root {root}; "
                         f"keep data under the root (or set 'root' to a folder above it)")
    return path


def fill(pattern: str, subject: str | None = None, hemi: str | None = None) -> str:
    """A path pattern with ``{subject}`` / ``{hemi}`` filled in."""
    out = pattern
    if subject is not None:
        out = out.replace("{subject}", subject)
    if hemi is not None:
        out = out.replace("{hemi}", hemi)
    return out


def split_key(pattern: str) -> tuple[str, str | None]:
    """``"file.h5#key"`` -> (``"file.h5"``, ``"key"``)."""
    path, _, key = pattern.partition("#")
    return path, key or None


def h5_key(path: Path, key: str) -> str:
    """The one dataset of an HDF5 file matching ``key`` (a name or a glob); InputError otherwise."""
    import h5py

    from mmneuro.brain.loaders import _h5_datasets

    try:
        with h5py.File(path, "r") as f:
            names = _h5_datasets(f)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:  # h5py's errors for corrupt files
        raise InputError(f"HDF5 file {path} could not be read ({type(exc).__name__}: {exc})") from None
    hits = [n for n in names if fnmatch.fnmatchcase(n, key.lstrip("/"))]
    if len(hits) != 1:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        what = "no dataset matches" if not hits else f"{len(hits)} datasets match"
        raise InputError(f"HDF5 file {path}: {what} key {key!r}; it holds {len(names)} datasets ({shown})")
    return hits[0]


def discover_subjects(root: Path, pattern: str) -> tuple[list[str], list[str]]:
    """Subject labels whose files match ``pattern`` (with ``{subject}``), and notes on skipped names."""
    if "{subject}" not in pattern:
        raise InputError(f"response pattern {pattern!r} has no {{subject}}; list 'subjects' in the description")
    file = fill(split_key(pattern)[0], hemi=HEMISPHERES[0])
    regex, seen = "", False
    for part in re.split(r"(\{subject\})", file):
        if part == "{subject}":
            regex += "(?P=s)" if seen else "(?P<s>[^/]+)"
            seen = True
        else:
            regex += re.escape(part)
    found, notes = set(), []
    for path in root.glob(file.replace("{subject}", "*")):
        m = re.fullmatch(regex, path.relative_to(root).as_posix())
        if m is None:
            continue
        try:
            found.add(check_label(m.group("s"), "subject label"))
        except InputError as exc:
            notes.append(f"ignored {path.name}: {exc}")
    return sorted(found, key=_natural), notes


def _n_rows(path: Path, key: str | None, time_axis: int) -> int | None:
    """Rows (time points) of a response file from its header, or None where that needs a full read."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        shape = nib.load(str(path)).shape
        return int(shape[3]) if len(shape) == 4 else None
    if name.endswith(".npy"):
        try:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:
            raise InputError(f"array file {path} could not be read ({type(exc).__name__}): not a .npy array "
                             "numpy can open") from None
        return int(shape[time_axis]) if len(shape) == 2 else None
    if name.endswith((".h5", ".hdf5", ".hdf")):
        import h5py

        exact = h5_key(path, key) if key else None
        if exact is None:
            return None
        try:
            with h5py.File(path, "r") as f:
                shape = f[exact].shape
        except (OSError, KeyError, RuntimeError, ValueError, AttributeError) as exc:
            raise InputError(f"HDF5 file {path}: dataset {exact!r} could not be read ({type(exc).__name__}: "
                             f"{exc})") from None
        return int(shape[time_axis]) if len(shape) == 2 else None
    return None


def _natural(label: str) -> tuple:
    return (0, int(label), label) if label.isdigit() else (1, 0, label)


@dataclass
class FileResponses:
    """Response source reading a described dataset's files (picklable: paths and the description)."""

    root: Path
    desc: Description
    runs: list[StimulusRun]
    recipe: Recipe
    mask: Path | None = None
    excluded: dict[str, str] = field(default_factory=dict)
    _space: Any = field(default=None, repr=False, compare=False)

    def __call__(self, subject: str | int) -> Responses:
        text = str(subject).removeprefix("sub-")
        for label, reason in self.excluded.items():
            if label == text or (label.isdigit() and text.isdigit() and int(label) == int(text)):
                raise InputError(f"subject {label} of dataset {self.desc.name!r} is not usable (excluded: {reason})")
        label = _match_subject(subject, self.subjects)
        return clean_subject(label, self.raw(label), self.recipe)

    @property
    def subjects(self) -> list[str]:
        return list(self.desc.subjects or [])

    def raw(self, subject: str) -> dict[str, list[tuple[np.ndarray, np.ndarray | None, str]]]:
        """run -> [(raw responses (n_trs, n_targets), confounds or None, label)], checked against the runs."""
        out = {}
        n_targets = None
        for spec, run in zip(self.desc.runs, self.runs):
            presentations = []
            for k, rf in enumerate(spec.files):
                y, label = self.read(spec, rf.file, subject)
                if y.shape[0] != run.n_trs:
                    raise InputError(f"{label} (runs.{spec.name}): {y.shape[0]} rows but run {spec.name!r} has "
                                     f"{run.n_trs} TRs (n_trs / rows in the description)")
                if n_targets is not None and y.shape[1] != n_targets:
                    raise InputError(f"{label}: {y.shape[1]} targets, other files of subject {subject} have "
                                     f"{n_targets}")
                n_targets = y.shape[1]
                conf = None
                if rf.confounds is not None and self.recipe.confounds:
                    from mmneuro.brain.loaders import load_confounds

                    path = inside(self.root, fill(rf.confounds, subject), f"runs.{spec.name}.confounds")
                    conf, _ = load_confounds(path, self.recipe.confounds)
                    conf = self._rows(spec, conf, str(path))
                presentations.append((y, conf, label))
            out[spec.name] = presentations
        return out

    def problems(self, subject: str) -> list[str]:
        """What would stop ``subject``'s responses from loading, found without reading the data.

        Checks that every response and confounds file exists inside the root, that HDF5 keys
        resolve, that row counts fit the runs (headers only for NIfTI, .npy and HDF5) and that
        JSON sidecars agree with the TR. Each problem is one line naming the file and the key.
        """
        from mmneuro.datasets.scan import sidecar_tr

        out = []
        for spec, run in zip(self.desc.runs, self.runs):
            where = f"runs.{spec.name}.responses"
            for rf in spec.files:
                for hemi in (HEMISPHERES if "{hemi}" in rf.file else (None,)):
                    try:
                        rel, key = split_key(fill(rf.file, subject, hemi))
                        path = inside(self.root, rel, where)
                        if not path.is_file():
                            raise InputError(f"response file {path} ({where}) does not exist")
                        tr = sidecar_tr(path)
                        if tr is not None and abs(tr - self.desc.tr) > 1e-6:
                            raise InputError(f"{path}: RepetitionTime {tr} s in its sidecar, but the description "
                                             f"says tr = {self.desc.tr} s (key tr)")
                        n = _n_rows(path, key, self.desc.targets.time_axis)
                        if n is not None:
                            need = spec.rows[1] if spec.rows else run.n_trs
                            if (n < need) if spec.rows else (n != need):
                                raise InputError(f"{path}{'#' + key if key else ''} ({where}): {n} rows but run "
                                                 f"{spec.name!r} needs {need} (n_trs / rows in the description)")
                        if rf.confounds is not None and self.recipe.confounds:
                            c = inside(self.root, fill(rf.confounds, subject), f"runs.{spec.name}.confounds")
                            if not c.is_file():
                                raise InputError(f"confounds file {c} (runs.{spec.name}.confounds) does not exist")
                    except InputError as exc:
                        out.append(str(exc))
        return out

    def preflight(self, subjects: Sequence[str]) -> None:
        """Raise the first problem of any of ``subjects`` (see :meth:`problems`) before anything is computed."""
        for subject in subjects:
            found = self.problems(subject)
            if found:
                more = f" (and {len(found) - 1} more; `mmneuro datasets check` lists them)" if len(found) > 1 else ""
                raise InputError(found[0] + more)

    def read(self, spec: RunSpec, pattern: str, subject: str) -> tuple[np.ndarray, str]:
        """One response file (or hemisphere pair) -> ((n_trs, n_targets) float32 raw, label for messages)."""
        from mmneuro.brain import loaders

        where = f"runs.{spec.name}.responses"
        kind = self.desc.targets.kind
        if kind == "surface" and "{hemi}" in pattern:
            paths = {h: inside(self.root, fill(pattern, subject, h), where) for h in HEMISPHERES}
            y = self.space().load(paths)
            label = f"{paths['L'].parent / fill(Path(pattern).name, subject, '{L,R}')}"
            return self._rows(spec, y, label), label
        rel, key = split_key(fill(pattern, subject))
        path = inside(self.root, rel, where)
        label = f"{path}" + (f"#{key}" if key else "")
        name = path.name.lower()
        if name.endswith((".nii", ".nii.gz")):
            y = loaders.load_nifti_runs([path], self.mask)[0]
        elif name.endswith(".txt"):
            y = loaders.load_roi_timeseries(path, check_finite=True).astype(np.float32)
        elif name.endswith((".npy", ".npz", ".h5", ".hdf5", ".hdf")):
            if not path.is_file():
                raise InputError(f"response file {path} ({where}) does not exist")
            exact = h5_key(path, key) if key and name.endswith((".h5", ".hdf5", ".hdf")) else key
            y = loaders.load_array(path, exact, check_finite=False)
            if self.desc.targets.time_axis == 1:
                y = y.T
            from mmneuro.brain.preprocess import validate_responses

            validate_responses(y, label)
        else:
            raise InputError(f"response file {path} ({where}): unknown type; expected .nii(.gz), .func.gii, "
                             f".npy, .npz, .h5 or a .txt table")
        return self._rows(spec, y, label), label

    def _rows(self, spec: RunSpec, y: np.ndarray, label: str) -> np.ndarray:
        if spec.rows is None:
            return y
        start, stop = spec.rows
        if y.shape[0] < stop:
            raise InputError(f"{label} (runs.{spec.name}.rows): {y.shape[0]} rows, the description asks for "
                             f"rows {start}:{stop}")
        return y[start:stop]

    def space(self):
        if self._space is None:
            from mmneuro.brain.spaces import space_for

            self._space = space_for(self.desc.targets, self.root)
        return self._space


# --------------------------------------------------------------------------- description -> Dataset

def load_described(path: str | Path, root: str | Path | None = None, desc: Description | None = None) -> Dataset:
    """Read the description at ``path`` (file or folder) and return the dataset it describes.

    ``root`` overrides where the data are (packaged descriptions, read-only data folders);
    ``desc`` passes an already parsed description. Every failure is an InputError naming the
    file and the key.
    """
    path = Path(path)
    desc = desc or read_description(path)
    base = Path(root).resolve() if root is not None else description_root(desc, path)
    if not base.is_dir():
        raise InputError(f"dataset root {base} (description {path}) is not a folder")
    notes = list(desc.notes)
    subjects = list(desc.subjects or [])
    if not subjects:
        subjects, skipped = discover_subjects(base, desc.runs[0].files[0].file)
        notes += skipped
        if not subjects:
            raise InputError(f"no subject found for response pattern {desc.runs[0].files[0].file!r} under {base} "
                             f"(runs.{desc.runs[0].name}.responses); list 'subjects' or fix the pattern")
    desc = desc.model_copy(update={"subjects": subjects})
    mask = inside(base, desc.targets.mask, "targets.mask") if desc.targets.mask else None
    recipe = _recipe(desc.recipe, desc.evaluation.folds if desc.evaluation.scheme == "contiguous-folds" else None)
    placeholder = FileResponses(base, desc, [], recipe, mask)
    runs = [_stimulus_run(desc, spec, base, placeholder, subjects[0]) for spec in desc.runs]
    source = FileResponses(base, desc, runs, recipe, mask)
    mask_img = None
    if mask is not None:
        from mmneuro.brain.loaders import _mask_image

        if not mask.is_file():
            raise InputError(f"brain mask {mask} (targets.mask) does not exist")
        mask_img = _mask_image(mask)[0]
    n_targets, target_names = _targets(desc, base, source, mask_img, subjects[0])
    if desc.on_bad_subject == "exclude":
        subjects = _screen(source, subjects, notes)
        source.desc = desc.model_copy(update={"subjects": subjects})
    rois = _rois(desc, base, mask_img, target_names, n_targets)
    space = _space(desc, base, source, mask_img, n_targets)
    return assemble(space=space, name=desc.name, root=base, tr=desc.tr, runs=runs, subjects=subjects, source=source,
                    n_targets=n_targets, rois=rois, target_names=target_names, evaluation=desc.evaluation.scheme,
                    folds=desc.evaluation.folds, delays=desc.delays,
                    feature_detrend=desc.recipe.feature_detrend, ceiling=desc.evaluation.ceiling, mask_img=mask_img,
                    notes=notes, ground_truth=inside(base, desc.ground_truth, "ground_truth") if desc.ground_truth
                    else None)


def _space(desc: Description, base: Path, source: FileResponses, mask_img: Any, n_targets: int) -> Any:
    """The target space of a described dataset (parcel atlases must stay inside the root)."""
    from mmneuro.brain.spaces import VolumeSpace, space_for

    if desc.targets.kind == "volume":
        return VolumeSpace(mask_img)
    if desc.targets.kind == "surface":
        return source.space()
    if desc.targets.atlas is not None:
        inside(base, desc.targets.atlas, "targets.atlas")
    return space_for(desc.targets, base, n_targets)


def _recipe(spec: RecipeSpec, eval_blocks: int | None) -> Recipe:
    return Recipe(detrend=spec.detrend, standardize=spec.standardize, confounds=tuple(spec.confounds),
                  eval_blocks=eval_blocks)


def _stimulus_run(desc: Description, spec: RunSpec, base: Path, reader: FileResponses, subject: str) -> StimulusRun:
    media = {}
    for kind in MEDIA:
        rel = getattr(spec, kind)
        if rel is None:
            continue
        p = inside(base, rel, f"runs.{spec.name}.{kind}")
        if not p.is_file():
            raise InputError(f"{kind} file {p} (runs.{spec.name}.{kind}) does not exist")
        media[kind] = p
    n = spec.n_trs
    if n is None:
        n = spec.rows[1] - spec.rows[0] if spec.rows else reader.read(spec, spec.files[0].file, subject)[0].shape[0]
    start = desc.run_first_tr_time(spec)
    return StimulusRun(name=spec.name, tr_times=start + desc.tr * np.arange(n, dtype=np.float64), split=spec.split,
                       **media)


def _targets(desc: Description, base: Path, source: FileResponses, mask_img: Any,
             subject: str) -> tuple[int, list[str] | None]:
    """Number of targets and their names; files are read only when nothing else says the count."""
    t = desc.targets
    names = list(t.names) if t.names is not None else None
    if t.names_file is not None:
        p = inside(base, t.names_file, "targets.names_file")
        if not p.is_file():
            raise InputError(f"target names file {p} (targets.names_file) does not exist")
        names = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if names is not None:
        return len(names), names
    if mask_img is not None:
        return int((np.asarray(mask_img.dataobj) != 0).sum()), None
    if t.kind == "surface":
        return int(source.space().n_targets), None
    spec = desc.runs[0]
    return source.read(spec, spec.files[0].file, subject)[0].shape[1], None


def _screen(source: FileResponses, subjects: list[str], notes: list[str]) -> list[str]:
    """Read every subject once; exclude (with a note) those whose files are unusable."""
    usable, n_invalid = [], 0
    for label in subjects:
        try:
            raw = source.raw(label)
            for presentations in raw.values():
                for y, _, where in presentations:
                    if constant_columns(y).all():
                        raise InputError(f"{where}: every column is {'all zero' if not y.any() else 'constant'}")
            with warnings.catch_warnings():  # counted in the note below instead
                warnings.simplefilter("ignore", UserWarning)
                valid = clean_subject(label, raw, source.recipe).valid
            n_invalid += 0 if valid is None else int((~valid).sum())
        except InputError as exc:
            source.excluded[label] = str(exc)
            notes.append(f"subject {label} excluded: {exc}")
            continue
        usable.append(label)
    notes.append(f"{len(usable)} of {len(subjects)} subjects usable; {n_invalid} constant subject-target columns "
                 f"among them")
    if not usable:
        raise InputError(f"dataset {source.desc.name!r}: no usable subject; " + "; ".join(notes))
    return usable


def _rois(desc: Description, base: Path, mask_img: Any, names: list[str] | None,
          n_targets: int) -> dict[str, np.ndarray] | None:
    spec = desc.rois
    if spec.per_target:
        if names is None:
            raise InputError("rois.per_target needs target names (targets.names or targets.names_file)")
        return {name: np.arange(n_targets) == j for j, name in enumerate(names)}
    if spec.masks:
        if mask_img is None:
            raise InputError("rois.masks needs volume targets (targets.kind = 'volume' with a mask)")
        import nibabel as nib

        brain = np.asarray(mask_img.dataobj) != 0
        out = {}
        for roi, rel in spec.masks.items():
            p = inside(base, rel, f"rois.masks.{roi}")
            if not p.is_file():
                raise InputError(f"ROI mask {p} (rois.masks.{roi}) does not exist")
            data = np.asarray(nib.load(str(p)).dataobj)
            if data.shape != brain.shape:
                raise InputError(f"ROI mask {p} (rois.masks.{roi}) has shape {data.shape}, the brain mask "
                                 f"{brain.shape}")
            out[roi] = data[brain] != 0
        return out
    if spec.table:
        return _roi_table(inside(base, spec.table, "rois.table"), names, n_targets)
    if desc.targets.kind == "parcels" and names is not None:  # named regions are the ROIs of an ROI study
        return {name: np.arange(n_targets) == j for j, name in enumerate(names)}
    return None


def _roi_table(path: Path, names: list[str] | None, n_targets: int) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise InputError(f"ROI table {path} (rois.table) does not exist")
    lines = [line.rstrip("\r\n").split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    header = lines[0] if lines else []
    if "target" not in header or "roi" not in header:
        raise InputError(f"ROI table {path} (rois.table) needs the columns 'target' and 'roi'")
    ti, ri = header.index("target"), header.index("roi")
    out: dict[str, np.ndarray] = {}
    for n, row in enumerate(lines[1:], start=2):
        target = row[ti].strip()
        if names is not None and target in names:
            j = names.index(target)
        elif target.isdigit() and int(target) < n_targets:
            j = int(target)
        else:
            raise InputError(f"ROI table {path}, line {n}: target is neither a target name nor an index < {n_targets}")
        out.setdefault(row[ri].strip(), np.zeros(n_targets, dtype=bool))[j] = True
    return out
