"""``mmneuro datasets init``: look at a folder, recognise its layout, draft its description.

Four layouts are recognised, in this order:

* **BIDS + fMRIPrep** (read through pybids): ``derivatives/<pipeline>/sub-*/func/*_bold.nii.gz``
  with ``desc-preproc`` and its ``desc-brain_mask``, or ``*_hemi-L|R_space-fsaverage*_bold.func.gii``;
  ``desc-confounds_timeseries.tsv`` beside them; ``RepetitionTime`` from the sidecars;
  stimuli linked by the ``stim_file`` column of the raw ``events.tsv`` into ``stimuli/``.
* **Algonauts 2025** (courtois-neuromod/algonauts_2025.competitors): ``fmri/sub-XX/func/*.h5``
  with one dataset per run (``ses-001_task-s01e02a``, ``ses-XXX_task-bourne01[_run-N]``),
  ``fmri/sub-XX/atlas/*.nii.gz``, ``stimuli/movies/**/<task>.mkv`` and
  ``stimuli/transcripts/**/<task>.tsv``.
* **Movie10 as Oota et al. used it**: ``sub{N}-{bourne|wolf|life}-fsaverage6.npy``
  (vertices x time, left hemisphere first), train bourne[:4024] + wolf[:6989], test life[:2008].
* **Plain arrays**: ``sub-<label>[_<run>].npy|.h5|.txt`` (time x targets), with an events TSV
  and a names file when present.

Each scanner returns the description and the list of what it guessed, printed by the CLI so
the user can correct the file before running anything.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mmneuro.datasets.description import (
    DEFAULT_CONFOUNDS, FILENAME, Description, check_label, parse_description, write_description,
)
from mmneuro.errors import InputError

VIDEO = (".mp4", ".mkv", ".avi", ".mov", ".webm")
AUDIO = (".wav", ".flac", ".ogg", ".mp3")
ALGONAUTS_TR = 1.49
MOVIE10_ROWS = {"bourne": ("train", 4024), "wolf": ("train", 6989), "life": ("test", 2008)}
FSAVERAGE_VERTICES = {"fsaverage5": 10242, "fsaverage6": 40962, "fsaverage": 163842}


def init_dataset(path: str | Path, tr: float | None = None, space: str | None = None, name: str | None = None,
                 overwrite: bool = False) -> tuple[Path, Description, list[str]]:
    """Scan ``path``, write ``path/mmneuro.toml`` and return (its path, the description, the guesses).

    ``tr`` is needed for plain arrays (nothing on disk says it); ``space`` picks among several
    fMRIPrep output spaces (``MNI152NLin2009cAsym``, ``fsaverage5``, ...); ``name`` overrides the
    dataset name (default: the folder's name, made label-safe).
    """
    root = Path(path).resolve()
    if not root.is_dir():
        raise InputError(f"datasets init: {root} is not a folder")
    target = root / FILENAME
    if target.exists() and not overwrite:
        raise InputError(f"{target} exists; edit it, check it with `mmneuro datasets check {root}`, or pass "
                         f"--overwrite to replace it")
    label = name or re.sub(r"[^A-Za-z0-9._-]+", "-", root.name).strip("-.") or "dataset"
    for scanner in (scan_bids, scan_algonauts, scan_movie10, scan_arrays):
        found = scanner(root, tr=tr, space=space)
        if found is not None:
            data, guesses = found
            data = {"name": check_label(label, "dataset name"), **data}
            desc = parse_description(data, target)
            return write_description(desc, root), desc, guesses
    raise InputError(f"datasets init: {root} holds no layout mmneuro recognises (BIDS + fMRIPrep derivatives, "
                     f"Algonauts 2025, Movie10 fsaverage6 arrays, or sub-<label>*.npy|.h5|.txt arrays); write "
                     f"{FILENAME} by hand (see mmneuro.datasets.description)")


def _media_kind(name: str) -> str | None:
    low = name.lower()
    if low.endswith(VIDEO):
        return "video"
    if low.endswith(AUDIO):
        return "audio"
    if low.endswith((".textgrid", "_words.tsv")):
        return "words"
    return None


def _evaluation(n_runs: int) -> dict[str, Any]:
    return {"scheme": "leave-one-run-out", "ceiling": "auto"} if n_runs > 1 else \
        {"scheme": "contiguous-folds", "folds": 2, "ceiling": "auto"}


# --------------------------------------------------------------------------- BIDS + fMRIPrep

def scan_bids(root: Path, tr: float | None = None, space: str | None = None) -> tuple[dict, list[str]] | None:
    """A BIDS dataset with fMRIPrep derivatives, through pybids; None if ``root`` is not one."""
    if not (root / "dataset_description.json").is_file() or not (root / "derivatives").is_dir():
        return None
    from bids import BIDSLayout

    layout = BIDSLayout(str(root), derivatives=True, validate=False)
    bold = layout.get(suffix="bold", scope="derivatives", extension=[".nii.gz", ".nii", ".func.gii"],
                      return_type="object")
    if not bold:
        return None
    spaces = sorted({f.entities.get("space") for f in bold if f.entities.get("space")})
    chosen = space or next((s for s in spaces if not s.startswith("fsaverage")), spaces[0] if spaces else None)
    if chosen not in spaces:
        raise InputError(f"datasets init: fMRIPrep outputs in {root} have spaces {spaces}, not {space!r}")
    surface = chosen.startswith("fsaverage")
    guesses = [f"fMRIPrep outputs in spaces {spaces}; using {chosen}" + ("" if space else " (choose with --space)")]
    subjects = sorted(layout.get_subjects(scope="derivatives"))
    first = subjects[0]
    files = [f for f in bold if f.entities.get("space") == chosen and f.entities.get("subject") == first
             and (f.entities.get("hemi") == "L" if surface else f.entities.get("desc") == "preproc")]
    if not files:
        return None
    runs, trs = [], set()
    for f in sorted(files, key=lambda f: f.path):
        ent = f.entities
        run_name = f"task-{ent['task']}" + (f"_run-{ent['run']}" if ent.get("run") is not None else "")
        rel = Path(f.path).relative_to(root).as_posix()
        pattern = rel.replace(f"sub-{first}", "sub-{subject}")
        if surface:
            pattern = pattern.replace("hemi-L", "hemi-{hemi}")
        meta = layout.get_metadata(f.path)
        if "RepetitionTime" in meta:
            trs.add(float(meta["RepetitionTime"]))
        entry: dict[str, Any] = {"file": pattern}
        query = {k: v for k, v in ent.items() if k in ("subject", "session", "task", "run")}
        conf = layout.get(desc="confounds", suffix="timeseries", extension=".tsv", return_type="filename", **query)
        if conf:
            entry["confounds"] = Path(conf[0]).relative_to(root).as_posix().replace(f"sub-{first}", "sub-{subject}")
        run: dict[str, Any] = {"name": run_name, "split": "train", "responses": [entry]}
        events = layout.get(suffix="events", extension=".tsv", scope="raw", return_type="filename", **query)
        if events:
            run["events"] = Path(events[0]).relative_to(root).as_posix()
            for stim in _stim_files(Path(events[0]), root):
                kind = _media_kind(stim.name)
                if kind and kind not in run:
                    run[kind] = stim.relative_to(root).as_posix()
        runs.append(run)
    if tr is None:
        if len(trs) != 1:
            raise InputError(f"datasets init: the bold sidecars in {root} give RepetitionTime {sorted(trs) or 'none'}; "
                             f"pass --tr")
        tr = trs.pop()
        guesses.append(f"TR {tr} s from the sidecars' RepetitionTime")
    targets: dict[str, Any]
    if surface:
        targets = {"kind": "surface", "mesh": chosen}
    else:
        mask = layout.get(subject=first, space=chosen, desc="brain", suffix="mask", extension=[".nii.gz", ".nii"],
                          return_type="filename")
        if not mask:
            raise InputError(f"datasets init: no desc-brain_mask for sub-{first} in space {chosen}; fMRIPrep writes "
                             f"one beside each preprocessed run")
        targets = {"kind": "volume", "mask": Path(mask[0]).relative_to(root).as_posix()}
        guesses.append(f"brain mask of sub-{first} for every subject ({targets['mask']}); voxels outside another "
                       f"subject's brain are constant there and left out of its scores")
    guesses += [f"{len(subjects)} subjects, {len(runs)} runs (one per task and run of sub-{first})",
                f"confounds regressed per run: {', '.join(DEFAULT_CONFOUNDS)}",
                "response row i at (i + 0.5) x TR on the stimulus clock (first_tr_time = TR / 2)",
                f"evaluation: {_evaluation(len(runs))['scheme']}"]
    return {"format": "bids", "tr": tr, "first_tr_time": tr / 2, "runs": runs, "targets": targets,
            "evaluation": _evaluation(len(runs)), "recipe": {"detrend": 2, "confounds": list(DEFAULT_CONFOUNDS)}}, guesses


def _stim_files(events: Path, root: Path) -> list[Path]:
    """Files named in the ``stim_file`` column of a BIDS events TSV, under ``root/stimuli``."""
    lines = events.read_text(encoding="utf-8").splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    if "stim_file" not in header:
        return []
    k = header.index("stim_file")
    out = []
    for line in lines[1:]:
        cells = line.split("\t")
        name = cells[k].strip() if k < len(cells) else ""
        if name and name != "n/a":
            p = (root / "stimuli" / name).resolve()
            if p.is_file() and root in p.parents and p not in out:
                out.append(p)
    return out


# --------------------------------------------------------------------------- Algonauts 2025

_ALGONAUTS_KEY = re.compile(r"^ses-\d+_task-(?P<task>[A-Za-z0-9]+?)(?:_run-(?P<rep>\d+))?$")


def scan_algonauts(root: Path, tr: float | None = None, space: str | None = None) -> tuple[dict, list[str]] | None:
    """The Algonauts 2025 release layout; None if ``root`` is not one."""
    import h5py

    fmri = root / "fmri"
    subjects = sorted(p.name.removeprefix("sub-") for p in fmri.glob("sub-*") if (p / "func").is_dir()) \
        if fmri.is_dir() else []
    if not subjects:
        return None
    first = subjects[0]
    h5s = sorted(p for p in (fmri / f"sub-{first}" / "func").glob("*.h5") if "desc-cropped" not in p.name)
    if not h5s:
        return None
    guesses = [f"Algonauts 2025 layout; {len(subjects)} subjects; runs from sub-{first}'s files "
               f"{[p.name for p in h5s]} (desc-cropped files ignored)"]
    available: dict[str, set[tuple[str, str]]] = {}  # subject -> {(file template, key suffix)}
    for s in subjects:
        for p in (fmri / f"sub-{s}" / "func").glob("*.h5"):
            if "desc-cropped" in p.name:
                continue
            with h5py.File(p, "r") as f:
                for key in f.keys():
                    if (m := _ALGONAUTS_KEY.match(key)) is not None:
                        available.setdefault(s, set()).add((p.name.replace(f"sub-{s}", "sub-{subject}"), _suffix(m)))
    movies = {p.stem.split("_")[-1]: p for p in (root / "stimuli" / "movies").rglob("*.mkv")}
    transcripts = {p.stem.split("_")[-1]: p for p in (root / "stimuli" / "transcripts").rglob("*.tsv")}
    runs: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for h5 in h5s:
        with h5py.File(h5, "r") as f:
            keys = sorted(f.keys())
        template = h5.name.replace(f"sub-{first}", "sub-{subject}")
        pattern_file = h5.relative_to(root).as_posix().replace(f"sub-{first}", "sub-{subject}")
        for key in keys:
            m = _ALGONAUTS_KEY.match(key)
            if m is None:
                skipped.append(f"{h5.name}#{key}: not a ses-N_task-X[_run-N] key")
                continue
            task, suffix = m["task"], _suffix(m)
            lacking = [s for s in subjects if (template, suffix) not in available.get(s, set())]
            if lacking:
                skipped.append(f"{suffix.removeprefix('_task-')}: no fMRI for sub-{', sub-'.join(lacking)}")
                continue
            if task not in transcripts:
                skipped.append(f"{task}: no transcript under stimuli/transcripts")
                continue
            run = runs.setdefault(task, {"name": task, "split": "train", "responses": [],
                                         "words": transcripts[task].relative_to(root).as_posix()})
            if task in movies:
                run["video"] = movies[task].relative_to(root).as_posix()
            run["responses"].append(f"{pattern_file}#*{suffix}")
    names = list(runs)
    n_test = max(1, len(names) // 10)
    for name in names[-n_test:]:
        runs[name]["split"] = "test"
    atlas = sorted((fmri / f"sub-{first}" / "atlas").glob("*.nii*"))
    targets: dict[str, Any] = {"kind": "parcels"}
    if atlas:
        targets["atlas"] = atlas[0].relative_to(root).as_posix()
        guesses.append(f"parcel maps painted into sub-{first}'s atlas {atlas[0].name} (labels 1..1000)")
    if skipped:
        guesses.append(f"skipped {len(skipped)} runs: " + "; ".join(skipped[:8]) + ("; ..." if len(skipped) > 8 else ""))
    guesses += [f"TR {ALGONAUTS_TR} s; response row i covers [i, i + 1) x TR of the movie (first_tr_time = TR / 2)",
                f"{len(runs)} runs; the last {n_test} held out for testing (split = 'test')",
                "responses are already preprocessed: detrend 1, no confounds"]
    return {"format": "algonauts2025", "tr": tr or ALGONAUTS_TR, "first_tr_time": (tr or ALGONAUTS_TR) / 2,
            "runs": list(runs.values()), "targets": targets, "evaluation": {"scheme": "heldout", "ceiling": "auto"},
            "recipe": {"detrend": 1, "confounds": []}}, guesses


def _suffix(m: re.Match) -> str:
    """The subject- and session-independent end of an Algonauts key: ``_task-X[_run-N]``."""
    return f"_task-{m['task']}" + (f"_run-{m['rep']}" if m["rep"] else "")


# --------------------------------------------------------------------------- Movie10 (Oota et al.)

_MOVIE10 = re.compile(r"^sub(?P<s>\d+)-(?P<movie>bourne|wolf|life)-fsaverage6\.npy$")


def scan_movie10(root: Path, tr: float | None = None, space: str | None = None) -> tuple[dict, list[str]] | None:
    """Oota et al.'s Movie10 arrays on fsaverage6; None if ``root`` holds none."""
    found = [(m["s"], m["movie"], p) for p in sorted(root.glob("*.npy")) if (m := _MOVIE10.match(p.name))]
    if not found:
        return None
    import numpy as np

    movies = sorted({movie for _, movie, _ in found}, key=list(MOVIE10_ROWS).index)
    first = found[0][0]
    runs, short = [], []
    for movie in movies:
        split, n = MOVIE10_ROWS[movie]
        path = root / f"sub{first}-{movie}-fsaverage6.npy"
        n_file = np.load(path, mmap_mode="r").shape[1] if path.is_file() else n
        if n_file < n:
            short.append(f"{movie}: {n_file} TRs in {path.name}, fewer than Oota et al.'s {n}; using all {n_file}")
            n = n_file
        run: dict[str, Any] = {"name": movie, "split": split, "responses": [f"sub{{subject}}-{movie}-fsaverage6.npy"],
                               "rows": [0, n], "n_trs": n}
        video = next((p for p in sorted(root.rglob("*")) if p.suffix.lower() in VIDEO and movie in p.name.lower()), None)
        if video is not None:
            run["video"] = video.relative_to(root).as_posix()
        runs.append(run)
    guesses = [f"Movie10 arrays (vertices x time, left hemisphere first) for subjects "
               f"{sorted({s for s, _, _ in found}, key=int)}",
               "Oota et al.'s split: train bourne[:4024] + wolf[:6989], test life[:2008]; TR 1.49 s",
               "mesh fsaverage6: give a local mesh folder in targets.mesh for surface maps", *short]
    return {"format": "movie10", "tr": tr or ALGONAUTS_TR, "first_tr_time": (tr or ALGONAUTS_TR) / 2, "runs": runs,
            "targets": {"kind": "surface", "mesh": "fsaverage6", "time_axis": 1},
            "evaluation": {"scheme": "heldout", "ceiling": "auto"}, "recipe": {"detrend": 2, "confounds": []}}, guesses


# --------------------------------------------------------------------------- plain arrays

_SUBJECT_FILE = re.compile(r"^sub-(?P<s>[A-Za-z0-9]+)(?P<rest>[_-][A-Za-z0-9._-]*)?\.(?P<ext>npy|h5|hdf5|txt)$")


def scan_arrays(root: Path, tr: float | None = None, space: str | None = None) -> tuple[dict, list[str]] | None:
    """``sub-<label>[_<run>].npy|.h5|.txt`` arrays (time x targets) anywhere under ``root``."""
    hits = [(p, m) for p in sorted(root.rglob("sub-*")) if p.is_file() and (m := _SUBJECT_FILE.match(p.name))]
    if not hits:
        return None
    if tr is None:
        raise InputError(f"datasets init: {root} holds response arrays but nothing on disk gives the TR; pass --tr")
    first = hits[0][1]["s"]
    runs = []
    for p, m in hits:
        if m["s"] != first:
            continue
        rest = (m["rest"] or "").strip("_-")
        name = re.sub(r"(_bold|_responses)$", "", rest) or "run-1"
        pattern = p.relative_to(root).as_posix().replace(f"sub-{first}", "sub-{subject}")
        run: dict[str, Any] = {"name": check_label(name, "run name"), "split": "train", "responses": [pattern]}
        for candidate in (f"{name}_events.tsv", f"events_{name}.tsv", "events.tsv"):
            hit = next(iter(sorted(root.rglob(candidate))), None)
            if hit is not None:
                run["events"] = hit.relative_to(root).as_posix()
                break
        for media in sorted(p for p in root.rglob(f"{name}.*") if _media_kind(p.name)):
            run.setdefault(_media_kind(media.name), media.relative_to(root).as_posix())
        runs.append(run)
    names_file = next((p for p in sorted(root.rglob("*.txt")) if p.stem.lower() in ("regions", "labels", "names",
                                                                                     "parcels", "rois")), None)
    targets: dict[str, Any] = {"kind": "parcels"}
    guesses = [f"{len({m['s'] for _, m in hits})} subjects and {len(runs)} runs from sub-{first}'s files "
               f"(time x targets)", f"TR {tr} s (given); response row i at (i + 0.5) x TR (first_tr_time)"]
    rois: dict[str, Any] = {}
    if names_file is not None:
        targets["names_file"] = names_file.relative_to(root).as_posix()
        guesses.append(f"target names from {names_file.name}; every target is its own ROI")
        rois = {"per_target": True}
    events = [r["events"] for r in runs if "events" in r]
    if events:
        guesses.append(f"events TSV(s) {sorted(set(events))}: use them with --model events")
    guesses.append(f"evaluation: {_evaluation(len(runs))['scheme']}")
    return {"format": "arrays", "tr": tr, "first_tr_time": tr / 2, "runs": runs, "targets": targets, "rois": rois,
            "evaluation": _evaluation(len(runs)), "recipe": {"detrend": 2, "confounds": []}}, guesses


def sidecar_tr(path: Path) -> float | None:
    """``RepetitionTime`` of a BIDS image's JSON sidecar (same stem, ``.json``), if there is one."""
    name = path.name
    for ext in (".nii.gz", ".nii", ".func.gii"):
        if name.endswith(ext):
            sidecar = path.with_name(name[: -len(ext)] + ".json")
            if sidecar.is_file():
                try:
                    value = json.loads(sidecar.read_text(encoding="utf-8")).get("RepetitionTime")
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise InputError(f"sidecar {sidecar} is not valid JSON") from None
                return None if value is None else float(value)
    return None
