"""``mmneuro datasets check``: validate a described dataset without fitting anything.

Checks, in order: the description against its schema; every file it names exists, inside
the root, with the run lengths the description states (from file headers) and a TR that
agrees with the images' JSON sidecars; the stimulus media
cover the runs (video and audio last at least until the last response row, words and events
start before the run ends). Every problem is one line naming the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mmneuro.datasets.base import Dataset
from mmneuro.errors import InputError


@dataclass
class CheckReport:
    """What ``check`` found: ``problems`` (each one line) and ``facts`` (what was verified)."""

    path: Path
    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dataset(spec: str | Path) -> CheckReport:
    """Validate the dataset at ``spec`` (a folder with ``mmneuro.toml``, a description file or a known name)."""
    from mmneuro.datasets.catalog import open_dataset

    report = CheckReport(Path(str(spec)))
    try:
        ds = open_dataset(spec)
    except InputError as exc:
        report.problems.append(str(exc))
        return report
    report.facts.append(f"{ds.name}: {len(ds.subjects)} subjects, {len(ds.runs)} runs, TR {ds.tr} s, "
                        f"evaluation {ds.evaluation}, ceiling {ds.ceiling}")
    _check_subjects(ds, report)
    _check_media(ds, report)
    return report


def _check_subjects(ds: Dataset, report: CheckReport) -> None:
    problems = getattr(ds.load_responses, "problems", None)
    if problems is None:  # in-memory arrays were checked when the dataset was made
        return
    before = len(report.problems)
    for subject in ds.subjects:
        report.problems += problems(subject)
    if len(report.problems) == before:
        report.facts.append(f"every file of {len(ds.subjects)} subjects is there, with run lengths "
                            f"{[r.n_trs for r in ds.runs]} and TRs agreeing with their sidecars")


def _check_media(ds: Dataset, report: CheckReport) -> None:
    from mmneuro.features.extract import _audio_duration
    from mmneuro.stimuli.video import read_video_info

    for run in ds.runs:
        last = float(run.tr_times[-1])
        for kind, path in (("video", run.video), ("audio", run.audio)):
            if path is None:
                continue
            try:
                duration = read_video_info(path).duration if kind == "video" else _audio_duration(Path(path))
            except InputError as exc:
                report.problems.append(f"{exc} (runs.{run.name}.{kind})")
                continue
            if duration < last:
                report.problems.append(f"{kind} {path} lasts {duration:.2f} s but run {run.name!r} has response rows "
                                       f"until {last:.2f} s on the stimulus clock (runs.{run.name}.{kind}, "
                                       f"first_tr_time, n_trs)")
            else:
                report.facts.append(f"{run.name}: {kind} {duration:.1f} s covers rows until {last:.1f} s")
        for kind, path in (("words", run.words), ("events", run.events)):
            if path is None:
                continue
            try:
                onsets = _onsets(kind, Path(path))
            except InputError as exc:
                report.problems.append(f"{exc} (runs.{run.name}.{kind})")
                continue
            if len(onsets) and min(onsets) > last:
                report.problems.append(f"{kind} {path}: the first onset {min(onsets):.2f} s is after the last response "
                                       f"row ({last:.2f} s) of run {run.name!r} (runs.{run.name}.{kind})")


def _onsets(kind: str, path: Path):
    if kind == "words":
        from mmneuro.stimuli.words import read_words

        return read_words(path).onsets
    from mmneuro.stimuli.events import read_events

    return read_events(path, default_trial_type="event", na_duration=0.0).onsets  # onsets only
