"""Events as features: one column per trial type on a run's TR grid, cached like model features.

Conventions
-----------
* **What a TR row stands for.** Row ``i`` of a run, acquired at ``tr_times[i]`` on the stimulus
  clock, stands for the stimulus interval ``[tr_times[i] - TR/2, tr_times[i] + TR/2)``: with
  the demo's ``tr_times = (i + 0.5) * TR`` (acquisition midpoints) that is exactly the
  acquisition window ``[i*TR, (i+1)*TR)``.
* **Area of an event.** An event of duration ``d > 0`` and modulation ``m`` carries
  ``m`` per second over ``[onset, onset + d)`` (area ``m * d``). A zero-duration event (a BIDS
  impulse) is a unit impulse of area ``m * 1 s`` at its onset, counted in the interval
  ``[a, b)`` that holds its onset, so instantaneous events are visible and their size does not
  depend on ``oversampling``.
* ``kind="boxcar"``: ``X[i, j]`` = area of the type-``j`` events inside row ``i``'s interval,
  divided by TR, i.e. the fraction of the TR covered by the events (times modulation).
  Computed exactly from the intervals' overlaps, which is what averaging a super-sampled grid
  converges to: it does not depend on ``oversampling``.
* ``kind="hrf"``: a fine grid of ``oversampling`` samples per TR (step ``dt = TR /
  oversampling``) aligned with the rows' interval edges holds each sample's exact event area
  divided by ``dt`` (so an event covering 30% of a fine sample counts 0.3); that signal is
  convolved with SPM's canonical HRF (:func:`mmneuro.stimuli.events.canonical_hrf`, unit sum:
  a sustained event plateaus at 1) and read at ``tr_times`` (linear interpolation between
  fine-sample centres; with an odd ``oversampling`` and midpoint ``tr_times`` the rows fall
  exactly on sample centres). The grid starts early enough (up to the HRF's 32 s) for events
  before the first TR to contribute their tails; the response of an event starts at its onset.
* **Columns** are trial types in sorted order; for a dataset they are the sorted union over
  its runs (:func:`dataset_trial_types`), so every run has the same columns and a type absent
  from a run is a zero column there.

``event_features`` caches each run's array in a :class:`~mmneuro.features.store.FeatureStore`
under the model name ``"events"`` and the layer name ``kind``, keyed by the events file's
sha256, ``kind``, ``oversampling`` (hrf only), TR, the digest of ``tr_times`` and the column list.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from mmneuro.errors import InputError
from mmneuro.models.base import TimedFeatures
from mmneuro.stimuli.events import Events, canonical_hrf, read_events

__all__ = ["event_regressors", "dataset_trial_types", "event_features", "canonical_hrf", "EVENTS_VERSION",
           "DEFAULT_OVERSAMPLING", "HRF_LENGTH"]

EVENTS_VERSION = "1"
DEFAULT_OVERSAMPLING = 15
HRF_LENGTH = 32.0
KINDS = ("hrf", "boxcar")
_MAX_PAIRS = 1 << 22  # window x event pairs computed at once

Kind = Literal["hrf", "boxcar"]


def _check_tr_times(tr_times: Any, what: str) -> np.ndarray:
    t = np.asarray(tr_times, dtype=np.float64)
    if t.ndim != 1 or len(t) == 0:
        raise InputError(f"{what}: tr_times must be a non-empty 1-D array of seconds; got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise InputError(f"{what}: tr_times contain NaN or inf")
    if len(t) > 1 and np.any(np.diff(t) <= 0):
        i = int(np.flatnonzero(np.diff(t) <= 0)[0])
        raise InputError(f"{what}: tr_times must increase; tr_times[{i + 1}] = {t[i + 1]} <= tr_times[{i}] = {t[i]}")
    return t


def _resolve_tr(t: np.ndarray, tr: float | None, what: str) -> float:
    if tr is None:
        if len(t) < 2:
            raise InputError(f"{what}: one TR time only; pass tr= (seconds)")
        tr = float(np.median(np.diff(t)))
    tr = float(tr)
    if not (math.isfinite(tr) and tr > 0):
        raise InputError(f"{what}: TR must be a positive number of seconds; got {tr!r}")
    return tr


def _window_area(on: np.ndarray, off: np.ndarray, mod: np.ndarray, impulse: np.ndarray,
                 a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n_windows,) area of the events inside each window ``[a, b)``, exact.

    Interval events: ``mod * |[on, off) & [a, b)|``; impulses: ``mod * 1 s`` where ``a <= on < b``.
    """
    out = np.zeros(len(a), dtype=np.float64)
    if len(on) == 0:
        return out
    order = np.argsort(on, kind="stable")
    on, off, mod, impulse = on[order], off[order], mod[order], impulse[order]
    longest = float(np.max(off - on))
    s = 0
    while s < len(a):
        # windows [s, e) and the events that can touch them (onset in [a_s - longest, b_max])
        e = min(len(a), s + max(1, _MAX_PAIRS // max(1, min(len(on), 4096))))
        lo = int(np.searchsorted(on, a[s:e].min() - longest, side="left"))
        hi = int(np.searchsorted(on, b[s:e].max(), side="right"))
        if hi > lo:
            o, f, m, imp = on[lo:hi], off[lo:hi], mod[lo:hi], impulse[lo:hi]
            aa, bb = a[s:e, None], b[s:e, None]
            overlap = np.maximum(np.minimum(bb, f[None, :]) - np.maximum(aa, o[None, :]), 0.0)
            overlap = np.where(imp[None, :], ((aa <= o[None, :]) & (o[None, :] < bb)).astype(np.float64), overlap)
            out[s:e] = overlap @ m
        s = e
    return out


def event_regressors(events: Events | str | Path, tr_times: Any, trial_types: Sequence[str] | None = None,
                     kind: Kind = "hrf", oversampling: int = DEFAULT_OVERSAMPLING,
                     tr: float | None = None) -> tuple[np.ndarray, list[str]]:
    """One regressor per trial type, sampled at a run's TR times (see the module conventions).

    Parameters
    ----------
    events : :class:`~mmneuro.stimuli.events.Events` or the path of an events TSV.
    tr_times : (n_trs,) increasing seconds on the stimulus clock at which the response rows
        were acquired (``StimulusRun.tr_times``).
    trial_types : the columns, in order; None: the events' own types, sorted. Types listed but
        absent from ``events`` give zero columns; events of a type not listed are an error.
    kind : ``"hrf"`` (canonical-HRF convolved) or ``"boxcar"`` (fraction of each TR covered).
    oversampling : fine samples per TR for ``"hrf"`` (integer >= 1; ignored by ``"boxcar"``).
    tr : the TR in seconds (width of a row's interval); None: the median spacing of ``tr_times``.

    Returns
    -------
    ``(X, names)``: ``X`` (n_trs, n_types) float32 and the n_types column names (trial types).
    """
    ev = events if isinstance(events, Events) else read_events(events)
    what = f"events {ev.source}" if ev.source is not None else "events"
    if kind not in KINDS:
        raise InputError(f"{what}: kind must be one of {KINDS}; got {kind!r}")
    if isinstance(oversampling, bool) or not isinstance(oversampling, (int, np.integer)) or oversampling < 1:
        raise InputError(f"{what}: oversampling must be an integer >= 1; got {oversampling!r}")
    oversampling = int(oversampling)
    t = _check_tr_times(tr_times, what)
    tr = _resolve_tr(t, tr, what)
    names = list(trial_types) if trial_types is not None else ev.types
    if len(set(names)) != len(names):
        raise InputError(f"{what}: trial_types repeat a name: {sorted({n for n in names if names.count(n) > 1})}")
    unknown = sorted(set(ev.types) - set(names))
    if unknown:
        raise InputError(f"{what}: trial types {unknown} are not among the requested columns {names}")

    start, stop = t[0] - tr / 2, t[-1] + tr / 2
    if kind == "hrf":
        first = min(float(ev.onsets.min()), start) if len(ev) else start
        n_pre = int(math.ceil((start - max(first, start - HRF_LENGTH)) / tr - 1e-9))
        span_lo = start - n_pre * tr
    else:
        span_lo = start
    if len(ev) and not np.any((ev.offsets >= span_lo) & (ev.onsets < stop)):
        raise InputError(
            f"{what}: no event falls within the run's stimulus time [{span_lo:g}, {stop:g}) s "
            f"(events span [{ev.onsets.min():g}, {ev.offsets.max():g}] s); are the onsets on the run's stimulus clock?"
        )

    X = np.zeros((len(t), len(names)), dtype=np.float64)
    col = {n: j for j, n in enumerate(names)}
    types = np.asarray(ev.trial_types, dtype=object)
    if kind == "boxcar":
        a, b = t - tr / 2, t + tr / 2
        for name in ev.types:
            m = types == name
            X[:, col[name]] = _window_area(ev.onsets[m], ev.offsets[m], ev.modulation[m], ev.durations[m] == 0,
                                           a, b) / tr
        return X.astype(np.float32), names

    dt = tr / oversampling
    n_fine = int(math.ceil((stop - span_lo) / dt - 1e-6))
    edges = span_lo + np.arange(n_fine + 1, dtype=np.float64) * dt
    centres = edges[:-1] + dt / 2
    h = canonical_hrf(dt, HRF_LENGTH)
    for name in ev.types:
        m = types == name
        fine = _window_area(ev.onsets[m], ev.offsets[m], ev.modulation[m], ev.durations[m] == 0,
                            edges[:-1], edges[1:]) / dt
        conv = np.convolve(fine, h)[:n_fine]
        X[:, col[name]] = np.interp(t, centres, conv)
    return X.astype(np.float32), names


def dataset_trial_types(runs: Iterable[Any], *, na_duration: float | None = None,
                        default_trial_type: str | None = None) -> list[str]:
    """The sorted union of the trial types of every run's events file (runs without one are ignored).

    ``runs``: :class:`~mmneuro.datasets.base.StimulusRun`-like objects (``name``, ``events``).
    Raises :class:`InputError` when no run has an events file.
    """
    found: set[str] = set()
    any_file = False
    for run in runs:
        if getattr(run, "events", None) is None:
            continue
        any_file = True
        found.update(read_events(run.events, na_duration=na_duration, default_trial_type=default_trial_type).types)
    if not any_file:
        raise InputError("no run has an events file (StimulusRun.events); events features need one per run")
    return sorted(found)


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr, dtype="<f8").tobytes()).hexdigest()[:16]


def event_features(runs: Iterable[Any], tr: float, kind: Kind = "hrf", store: Any = None, *,
                   oversampling: int = DEFAULT_OVERSAMPLING, trial_types: Sequence[str] | None = None,
                   na_duration: float | None = None, default_trial_type: str | None = None) -> dict[str, np.ndarray]:
    """Event regressors of every run, with the same columns in every run, through the feature cache.

    Parameters
    ----------
    runs : the dataset's :class:`~mmneuro.datasets.base.StimulusRun` s; each needs ``events``.
    tr : the dataset's TR (s): the width of a row's interval.
    kind, oversampling : as :func:`event_regressors`.
    store : a :class:`~mmneuro.features.store.FeatureStore`, or None for no caching. A run is
        read from the store when its key (model ``"events"``, layer ``kind``) is there, else
        computed and saved.
    trial_types : the columns; None: :func:`dataset_trial_types` of ``runs``.
    na_duration, default_trial_type : passed to :func:`~mmneuro.stimuli.events.read_events`.

    Returns
    -------
    ``{run name: (n_trs, n_types) float32}``, columns in the order of ``trial_types`` (by
    default the sorted union of the runs' types).
    """
    runs = list(runs)
    lacking = [r.name for r in runs if getattr(r, "events", None) is None]
    if lacking:
        raise InputError(f"runs {lacking} have no events file (StimulusRun.events); events features need one per run")
    if kind not in KINDS:
        raise InputError(f"events kind must be one of {KINDS}; got {kind!r}")
    names = list(trial_types) if trial_types is not None else dataset_trial_types(
        runs, na_duration=na_duration, default_trial_type=default_trial_type)
    out: dict[str, np.ndarray] = {}
    for run in runs:
        times = _check_tr_times(run.tr_times, f"run {run.name}")
        key = None
        if store is not None:
            window = {
                "kind": kind,
                "tr": float(tr),
                "oversampling": int(oversampling) if kind == "hrf" else None,
                "hrf": f"spm-canonical-{HRF_LENGTH:g}s" if kind == "hrf" else None,
                "tr_times": _digest(times),
                "n_trs": int(len(times)),
                "trial_types": names,
                "na_duration": na_duration,
                "default_trial_type": default_trial_type,
            }
            key = store.key(model="events", weights="none", pooling=kind, window=window,
                            stimulus_files=[run.events], version=EVENTS_VERSION)
            cached, missing = store.load_valid(key, [kind])
            if not missing:
                out[run.name] = np.asarray(cached[kind].data, dtype=np.float32)
                continue
        ev = read_events(run.events, na_duration=na_duration, default_trial_type=default_trial_type)
        X, _ = event_regressors(ev, times, names, kind=kind, oversampling=oversampling, tr=tr)
        if store is not None:
            store.save(key, {kind: TimedFeatures(data=X, times=times, pooling=kind, layer=kind, model="events",
                                                 weights="none")},
                       info={"trial_types": names, "n_events": len(ev), "skipped_lines": list(ev.skipped_lines)})
        out[run.name] = X
    return out
