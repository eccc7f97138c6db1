"""Events: BIDS-style events TSVs (onset, duration, trial_type[, modulation]) and the canonical HRF.

Onsets and durations are seconds on the run's stimulus clock (0 = start of the run's media).

File format (BIDS ``*_events.tsv``)
-----------------------------------
* Tab-separated, one header line, one event per line; blank lines are ignored; columns may come
  in any order and extra columns are ignored. Cells may be quoted the way pandas/``csv`` quote
  (a cell holding a tab or a quote).
* ``onset`` (required): a finite number, possibly negative (BIDS allows events before the
  first volume). ``n/a`` is an error.
* ``duration`` (required): a finite number ``>= 0``. ``0`` means an instantaneous event (an
  impulse, BIDS: "modeled as an impulse"). BIDS also allows ``n/a`` ("duration unavailable");
  that is an error unless the caller says what it means with ``na_duration=`` (e.g. ``0``).
* ``trial_type`` (optional in BIDS, required here): the event's condition, one regressor per
  distinct value. A row whose ``trial_type`` is ``n/a`` names no condition: it is skipped and
  its line number is kept in :attr:`Events.skipped_lines`. A file without the column is an
  error unless ``default_trial_type=`` names the one condition all its rows belong to (we do
  not name it after the file: every run's file has a different name, and the regressors of
  the runs of a dataset must share their columns).
* ``modulation`` (optional, as in nilearn): a finite number scaling the event's regressor
  (default 1). ``n/a`` is an error.

Errors are :class:`~mmneuro.errors.InputError` naming the file, the line (1-based; the header
is line 1) and the column; they quote only the offending cell (shortened), never other content.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmneuro.errors import InputError, describe_cell

NA = "n/a"
REQUIRED_COLUMNS = ("onset", "duration")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


@dataclass
class Events:
    """Events of one run.

    Attributes
    ----------
    onsets, durations : (n,) float64 seconds on the stimulus clock; durations >= 0
        (0 = impulse).
    trial_types : the n condition labels (non-empty strings).
    modulation : (n,) float64 amplitude of each event (1 when the file has no ``modulation``).
    source : the file read, or None for events built in memory.
    skipped_lines : line numbers of rows skipped because their ``trial_type`` was ``n/a``.
    """

    onsets: np.ndarray
    durations: np.ndarray
    trial_types: list[str] = field(default_factory=list)
    modulation: np.ndarray | None = None
    source: Path | None = None
    skipped_lines: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.onsets = np.asarray(self.onsets, dtype=np.float64).reshape(-1)
        self.durations = np.asarray(self.durations, dtype=np.float64).reshape(-1)
        self.trial_types = [str(t) for t in self.trial_types]
        n = len(self.onsets)
        if self.modulation is None:
            self.modulation = np.ones(n, dtype=np.float64)
        self.modulation = np.asarray(self.modulation, dtype=np.float64).reshape(-1)
        where = f" ({self.source})" if self.source is not None else ""
        if not (len(self.durations) == len(self.trial_types) == len(self.modulation) == n):
            raise InputError(
                f"Events{where}: {n} onsets, {len(self.durations)} durations, {len(self.trial_types)} trial types "
                f"and {len(self.modulation)} modulations must have the same length"
            )
        for name, arr in (("onsets", self.onsets), ("durations", self.durations), ("modulation", self.modulation)):
            if not np.all(np.isfinite(arr)):
                i = int(np.flatnonzero(~np.isfinite(arr))[0])
                raise InputError(f"Events{where}: {name}[{i}] is {arr[i]} (must be finite)")
        if np.any(self.durations < 0):
            i = int(np.flatnonzero(self.durations < 0)[0])
            raise InputError(f"Events{where}: durations[{i}] is {self.durations[i]} (must be >= 0)")
        if any(not t for t in self.trial_types):
            raise InputError(f"Events{where}: event {self.trial_types.index('')} has an empty trial type")

    @property
    def offsets(self) -> np.ndarray:
        """(n,) float64 seconds at which each event ends."""
        return self.onsets + self.durations

    @property
    def types(self) -> list[str]:
        """The distinct trial types, sorted."""
        return sorted(set(self.trial_types))

    def __len__(self) -> int:
        return int(len(self.onsets))


def _number(path: Path, lineno: int, col: str, cell: str, *, na: float | None = None,
            minimum: float | None = None) -> float:
    """The number in one cell; ``n/a`` gives ``na`` (an error when None)."""
    raw = cell.strip()
    where = f"events file {path}, line {lineno}, column {col!r}"
    if raw == NA:
        if na is not None:
            return float(na)
        hint = " (pass na_duration= to give n/a durations a value)" if col == "duration" else ""
        raise InputError(f"{where}: n/a is not allowed{hint}")
    if not _NUMBER.match(raw):
        raise InputError(f"{where}: {describe_cell(raw)} that is not a number")
    value = float(raw)
    if not math.isfinite(value):
        raise InputError(f"{where}: the value is not finite")
    if minimum is not None and value < minimum:
        raise InputError(f"{where}: the value is negative (must be >= 0)")
    return value


def read_events(path: str | Path, *, na_duration: float | None = None,
                default_trial_type: str | None = None) -> Events:
    """Read and validate a BIDS-style events TSV (see the module docstring for the rules).

    Parameters
    ----------
    path : the ``*_events.tsv`` file.
    na_duration : duration (s, >= 0) given to rows whose ``duration`` is ``n/a``; None (default)
        makes such rows an error.
    default_trial_type : condition of every row when the file has no ``trial_type`` column;
        None (default) makes a missing column an error.

    Returns
    -------
    :class:`Events`, rows in file order (``n/a`` trial types skipped).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"events file not found: {path}")
    if na_duration is not None and not (math.isfinite(float(na_duration)) and float(na_duration) >= 0):
        raise InputError(f"na_duration must be a finite number >= 0; got {na_duration!r}")
    if default_trial_type is not None and (not str(default_trial_type).strip() or default_trial_type == NA):
        raise InputError(f"default_trial_type must be a non-empty label other than 'n/a'; got {default_trial_type!r}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"events file {path} is not UTF-8 text (byte {exc.start})") from exc
    reader = csv.reader(text.splitlines(), delimiter="\t")
    header: list[str] | None = None
    onsets: list[float] = []
    durations: list[float] = []
    types: list[str] = []
    mods: list[float] = []
    skipped: list[int] = []
    cols: dict[str, int] = {}
    try:
        for row in reader:
            lineno = reader.line_num
            if not any(c.strip() for c in row):
                continue
            if header is None:
                header = [c.strip() for c in row]
                dup = sorted({h for h in header if header.count(h) > 1})
                if dup:
                    raise InputError(f"events file {path}, line {lineno}: the header repeats {len(dup)} column name(s)")
                missing = [c for c in REQUIRED_COLUMNS if c not in header]
                if "trial_type" not in header and default_trial_type is None:
                    missing.append("trial_type")
                if missing:
                    raise InputError(
                        f"events file {path}, line {lineno} (header): missing column(s) {missing}; an events TSV needs "
                        f"the tab-separated columns onset, duration and trial_type (optional: modulation)"
                        + (" -- or pass default_trial_type= to give every row one condition"
                           if "trial_type" in missing else "")
                    )
                cols = {c: header.index(c) for c in ("onset", "duration", "trial_type", "modulation") if c in header}
                continue
            if len(row) != len(header):
                raise InputError(
                    f"events file {path}, line {lineno}: {len(row)} tab-separated cells but the header has "
                    f"{len(header)}"
                )
            on = _number(path, lineno, "onset", row[cols["onset"]])
            dur = _number(path, lineno, "duration", row[cols["duration"]], na=na_duration, minimum=0.0)
            mod = _number(path, lineno, "modulation", row[cols["modulation"]]) if "modulation" in cols else 1.0
            if "trial_type" in cols:
                label = row[cols["trial_type"]].strip()
                if label == NA:
                    skipped.append(lineno)
                    continue
                if not label:
                    raise InputError(
                        f"events file {path}, line {lineno}, column 'trial_type': empty cell (BIDS writes a missing "
                        f"value as n/a)"
                    )
            else:
                label = str(default_trial_type)
            onsets.append(on)
            durations.append(dur)
            types.append(label)
            mods.append(mod)
    except csv.Error as exc:
        raise InputError(f"events file {path}, line {reader.line_num}: malformed TSV ({exc})") from exc
    if header is None:
        raise InputError(f"events file {path} is empty; expected a header 'onset\\tduration\\ttrial_type'")
    return Events(onsets=onsets, durations=durations, trial_types=types, modulation=mods, source=path,
                  skipped_lines=tuple(skipped))


def _gamma_pdf(t: np.ndarray, shape: float) -> np.ndarray:
    """Gamma density with unit scale at ``t >= 0`` (0 at t = 0 for shape > 1)."""
    out = np.zeros_like(t, dtype=np.float64)
    pos = t > 0
    out[pos] = np.exp((shape - 1.0) * np.log(t[pos]) - t[pos] - math.lgamma(shape))
    return out


def canonical_hrf(dt: float, length: float = 32.0) -> np.ndarray:
    """SPM's canonical double-gamma HRF sampled every ``dt`` seconds, normalised to unit sum.

    As ``spm_hrf`` with its default parameters: response delay 6 s, undershoot delay 16 s, both
    dispersions 1 s, response/undershoot ratio 6, onset 0, kernel length 32 s;
    ``h(t) = g(t; 6) - g(t; 16) / 6`` with ``g`` the unit-scale gamma density, sampled at
    ``t = 0, dt, ..., ceil(length / dt) * dt`` and divided by its sum (so a sustained unit input
    converges to 1). Only numpy and :mod:`math`, so every room may use it.

    Returns
    -------
    (ceil(length / dt) + 1,) float64.
    """
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise InputError(f"canonical_hrf: dt must be a positive number of seconds; got {dt!r}")
    if not (math.isfinite(float(length)) and length > dt):
        raise InputError(f"canonical_hrf: length must exceed dt; got length={length!r}, dt={dt}")
    n = int(math.ceil(float(length) / dt - 1e-9)) + 1
    t = np.arange(n, dtype=np.float64) * dt
    h = _gamma_pdf(t, 6.0) - _gamma_pdf(t, 16.0) / 6.0
    return h / h.sum()
