"""Timed words: read word onsets/offsets from a TSV, a per-TR transcript TSV or a Praat TextGrid.

Times are seconds on the stimulus clock of the file. Silence labels (``""``, ``"sp"``,
``"sil"``, ``"<sil>"``, ``"SIL"``) are dropped.
"""

from __future__ import annotations

import ast
import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmneuro.errors import InputError, describe_cell

SILENCE_LABELS = frozenset({"", "sp", "sil", "<sil>", "SIL", "<SIL>"})


@dataclass
class Words:
    """Words with their timing.

    Attributes
    ----------
    onsets, offsets : (n,) float64 seconds.
    words : the n word strings.
    """

    onsets: np.ndarray
    offsets: np.ndarray
    words: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.onsets = np.asarray(self.onsets, dtype=np.float64).reshape(-1)
        self.offsets = np.asarray(self.offsets, dtype=np.float64).reshape(-1)
        self.words = [str(w) for w in self.words]
        if not (len(self.onsets) == len(self.offsets) == len(self.words)):
            raise InputError(
                f"Words: {len(self.onsets)} onsets, {len(self.offsets)} offsets and "
                f"{len(self.words)} words must have the same length"
            )
        if not (np.all(np.isfinite(self.onsets)) and np.all(np.isfinite(self.offsets))):
            raise InputError("Words: onsets/offsets contain NaN or inf")
        if np.any(self.offsets < self.onsets):
            i = int(np.flatnonzero(self.offsets < self.onsets)[0])
            raise InputError(
                f"Words: word {i} ends ({self.offsets[i]}) before it starts "
                f"({self.onsets[i]})"
            )

    @property
    def midpoints(self) -> np.ndarray:
        """(n,) float64 seconds halfway between onset and offset."""
        return (self.onsets + self.offsets) / 2.0

    @property
    def durations(self) -> np.ndarray:
        return self.offsets - self.onsets

    def __len__(self) -> int:
        return len(self.words)


def _drop_silence(onsets, offsets, labels) -> Words:
    keep = [i for i, w in enumerate(labels) if w.strip() not in SILENCE_LABELS]
    return Words(
        onsets=np.asarray(onsets, dtype=np.float64)[keep],
        offsets=np.asarray(offsets, dtype=np.float64)[keep],
        words=[labels[i].strip() for i in keep],
    )


def read_words(path: str | Path) -> Words:
    """Read timed words from a TSV or a Praat TextGrid.

    * ``.tsv`` / ``.txt`` / ``.csv``-like tab-separated file with a header holding the columns
      ``onset``, ``duration`` and ``word`` (any order, extra columns ignored; ``offset`` may
      replace ``duration``).
    * a per-TR transcript TSV (Algonauts 2025 / CNeuroMod layout): a header holding
      ``words_per_tr``, ``onsets_per_tr`` and ``durations_per_tr`` selects
      :func:`read_transcript_tsv`.
    * ``.TextGrid`` (Praat long text format, UTF-8 or UTF-16): the interval tier named
      ``word``/``words`` (any case), else the first interval tier.

    Silence labels are dropped. Raises :class:`~mmneuro.errors.InputError` naming the file for
    a missing file, a missing column, a malformed row, a TextGrid without interval tiers, or
    onsets that go backwards (the line or interval where they first do; ties are fine).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"words file not found: {path}")
    if path.suffix.lower() == ".textgrid":
        tier = read_textgrid_tier(path)
        _check_sorted(f"words file {path}, tier {tier['name']!r}", tier["xmin"],
                      [f"intervals [{i}]" for i in range(1, len(tier["xmin"]) + 1)])
        return _drop_silence(tier["xmin"], tier["xmax"], tier["text"])
    return _read_words_tsv(path)


def _check_sorted(where: str, onsets, places: list[str]) -> None:
    """Refuse onsets that go backwards (ties are fine), naming the first place where they do."""
    on = np.asarray(onsets, dtype=np.float64)
    back = np.flatnonzero(np.diff(on) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise InputError(f"{where}, {places[i]}: onset {on[i]:g} s comes before the onset {on[i - 1]:g} s of the "
                         f"word before it ({places[i - 1]}); words must be in time order: sort them by onset")


def _read_words_tsv(path: Path) -> Words:
    text = _read_text(path)
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    names = {c.strip().strip('"').lower() for c in first.split("\t")}
    if names & set(TRANSCRIPT_COLUMNS):
        return _read_transcript(path, text, tr=None)
    numbered = [(lineno, r) for lineno, r in
                enumerate(csv.reader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE), start=1)
                if any(c.strip() for c in r)]
    rows = [r for _, r in numbered]
    if not rows:
        raise InputError(f"words file {path} is empty; expected a header 'onset\\tduration\\tword'")
    header = [c.strip().lower() for c in rows[0]]
    if "onset" not in header or "word" not in header or not ({"duration", "offset"} & set(header)):
        raise InputError(
            f"words file {path}, line {numbered[0][0]}: the header must name the columns onset, duration (or "
            f"offset) and word, tab-separated"
        )
    i_on, i_w = header.index("onset"), header.index("word")
    i_dur = header.index("duration") if "duration" in header else None
    i_off = header.index("offset") if i_dur is None else None
    onsets, offsets, labels = [], [], []
    for lineno, row in numbered[1:]:
        try:
            on = float(row[i_on])
            end = on + float(row[i_dur]) if i_dur is not None else float(row[i_off])
            word = row[i_w] if i_w < len(row) else ""
        except (IndexError, ValueError) as exc:
            raise InputError(f"words file {path}, line {lineno}: expected a number in the onset and duration (or "
                             f"offset) columns ({type(exc).__name__})") from exc
        onsets.append(on)
        offsets.append(end)
        labels.append(word)
    _check_sorted(f"words file {path}", onsets, [f"line {lineno}" for lineno, _ in numbered[1:]])
    try:
        return _drop_silence(onsets, offsets, labels)
    except InputError as exc:
        raise InputError(f"words file {path}: {exc}") from exc


# ---- per-TR transcripts (Algonauts 2025 / CNeuroMod) -------------------------------------------
#
# Layout, checked against the Algonauts 2025 development-kit tutorial, which loads
# stimuli/transcripts/friends/s1/friends_s01e01a.tsv with ``pd.read_csv(path, sep='\t')`` and
# shows 591 rows x 4 columns (so no index column is written; the header is exactly
# ``text_per_tr  words_per_tr  onsets_per_tr  durations_per_tr``):
#
# * one row per TR of 1.49 s, row i covering [i * 1.49, (i + 1) * 1.49) s of the movie segment;
# * empty TRs: ``text_per_tr`` empty (pandas reads NaN), the three list columns ``[]``;
# * list cells are Python list literals written by pandas' ``to_csv``: ``['nothing', 'to', 'tell.']``,
#   ``[19.178, 19.476, 19.668]``; a cell holding a double quote (``["There's"]``) is therefore
#   written CSV-quoted as ``"[""There's""]"``, so the file is read with csv's default quoting;
# * words keep their punctuation (``'tell.'``), as the transcripts do.
#
# Onsets are ABSOLUTE seconds from the start of the segment's video (the run's stimulus clock),
# not relative to each TR. Evidence: the tutorial describes ``onsets_per_tr`` as "starting time
# (in seconds) of each word ... relative to movie onset", and its printout of friends_s01e01a.tsv
# shows row 12 (window [17.88, 19.37) s) holding onsets [18.97] and row 13 (window [19.37, 20.86))
# holding [19.178, 19.476, 19.668] with durations [0.244, 0.17, 0.572]: onsets grow with the row
# index and every word's offset lies inside its row's window. That is also the rule the tutorial
# states: a word belongs to the TR in which it ENDS, even if its onset lies in the previous TR
# (so an onset may be earlier than its row's start). ``read_transcript_tsv(path, tr=1.49)``
# checks that rule and fails loudly on a file whose onsets are relative to each TR.

TRANSCRIPT_COLUMNS = ("words_per_tr", "onsets_per_tr", "durations_per_tr")
_MAX_CELL = 100_000  # characters; a longer list cell is refused before parsing


def read_transcript_tsv(path: str | Path, tr: float | None = None, tolerance: float = 0.01) -> Words:
    """Read a per-TR transcript TSV (Algonauts 2025 ``stimuli/transcripts/...``) as timed words.

    Parameters
    ----------
    path : tab-separated file whose header holds ``words_per_tr``, ``onsets_per_tr`` and
        ``durations_per_tr`` (``text_per_tr`` and other columns are ignored); one row per TR;
        list cells are Python list literals (``['a', 'b']``, ``[0.1, 0.5]``, ``[]``), parsed
        with :func:`ast.literal_eval` only.
    tr : if given (1.49 for Algonauts), check that each word ends within its row's window
        ``[i * tr, (i + 1) * tr)`` (data row ``i`` from 0, ``tolerance`` seconds of slack), the
        files' rule; a file with onsets relative to each TR fails this check.
    tolerance : slack (s) of that check.

    Returns
    -------
    :class:`Words` in file order, onsets absolute on the segment's stimulus clock, offsets =
    onset + duration; silence labels dropped.

    Raises :class:`~mmneuro.errors.InputError` naming the file, the line (1-based, header = line
    1) and the column for a malformed cell: not a list literal, a list of the wrong element
    type, non-finite or negative numbers, lists of unequal lengths within a row, or onsets that
    go backwards from one word to the next.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"transcript file not found: {path}")
    if tr is not None and not (math.isfinite(float(tr)) and float(tr) > 0):
        raise InputError(f"read_transcript_tsv: tr must be a positive number of seconds; got {tr!r}")
    return _read_transcript(path, _read_text(path), tr=None if tr is None else float(tr), tolerance=tolerance)


def _parse_list_cell(path: Path, lineno: int, column: str, cell: str, element: str) -> list:
    """A list literal of ``element`` (``"str"`` or ``"number"``) from one cell; empty cell = []."""
    raw = cell.strip()
    where = f"transcript file {path}, line {lineno}, column {column!r}"
    if not raw:
        return []
    if len(raw) > _MAX_CELL:
        raise InputError(f"{where}: cell of {len(raw)} characters is too long for a list of one TR")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise InputError(f"{where}: {describe_cell(raw)} that is not a Python list literal ({type(exc).__name__})") from exc
    if not isinstance(value, list):
        raise InputError(f"{where}: the cell is a {type(value).__name__}, not a list")
    for k, v in enumerate(value):
        if element == "str":
            if not isinstance(v, str):
                raise InputError(f"{where}: item {k} of the list is a {type(v).__name__}, not a string")
        else:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InputError(f"{where}: item {k} of the list is a {type(v).__name__}, not a number")
            if not math.isfinite(v):
                raise InputError(f"{where}: item {k} of the list is not finite")
    return value


def _read_transcript(path: Path, text: str, tr: float | None, tolerance: float = 0.01) -> Words:
    reader = csv.reader(text.splitlines(), delimiter="\t")
    header: list[str] | None = None
    idx: dict[str, int] = {}
    onsets: list[float] = []
    offsets: list[float] = []
    labels: list[str] = []
    places: list[str] = []
    row_index = -1
    try:
        for row in reader:
            lineno = reader.line_num
            if header is None:
                if not any(c.strip() for c in row):
                    continue
                header = [c.strip().lower() for c in row]
                missing = [c for c in TRANSCRIPT_COLUMNS if c not in header]
                if missing:
                    raise InputError(
                        f"transcript file {path}, line {lineno} (header): missing column(s) {missing}; a per-TR "
                        f"transcript needs the tab-separated columns {', '.join(TRANSCRIPT_COLUMNS)}"
                    )
                idx = {c: header.index(c) for c in TRANSCRIPT_COLUMNS}
                continue
            if not row:
                continue  # a blank line
            row_index += 1
            if len(row) != len(header):
                raise InputError(
                    f"transcript file {path}, line {lineno}: {len(row)} tab-separated cells but the header has "
                    f"{len(header)}"
                )
            words = _parse_list_cell(path, lineno, "words_per_tr", row[idx["words_per_tr"]], "str")
            ons = _parse_list_cell(path, lineno, "onsets_per_tr", row[idx["onsets_per_tr"]], "number")
            durs = _parse_list_cell(path, lineno, "durations_per_tr", row[idx["durations_per_tr"]], "number")
            if not (len(words) == len(ons) == len(durs)):
                raise InputError(
                    f"transcript file {path}, line {lineno}: words_per_tr has {len(words)} items, onsets_per_tr "
                    f"{len(ons)} and durations_per_tr {len(durs)}; they must have the same length"
                )
            for k, d in enumerate(durs):
                if d < 0:
                    raise InputError(
                        f"transcript file {path}, line {lineno}, column 'durations_per_tr': item {k} is negative ({d})"
                    )
            if tr is not None:
                lo, hi = row_index * tr - tolerance, (row_index + 1) * tr + tolerance
                for k, (o, d) in enumerate(zip(ons, durs)):
                    if not (lo <= o + d < hi):
                        raise InputError(
                            f"transcript file {path}, line {lineno}, column 'onsets_per_tr': item {k} ends at "
                            f"{o + d:g} s, outside this row's TR window [{row_index * tr:g}, {(row_index + 1) * tr:g}) "
                            f"s (TR {tr:g} s); onsets must be absolute seconds from the segment start, each word in "
                            f"the TR where it ends"
                        )
            onsets.extend(float(o) for o in ons)
            offsets.extend(float(o) + float(d) for o, d in zip(ons, durs))
            labels.extend(words)
            places.extend(f"line {lineno}" for _ in words)
    except csv.Error as exc:
        raise InputError(f"transcript file {path}, line {reader.line_num}: malformed TSV ({exc})") from exc
    if header is None:
        raise InputError(f"transcript file {path} is empty; expected a header with {', '.join(TRANSCRIPT_COLUMNS)}")
    _check_sorted(f"transcript file {path}", onsets, places)
    try:
        return _drop_silence(onsets, offsets, labels)
    except InputError as exc:
        raise InputError(f"transcript file {path}: {exc}") from exc


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InputError(f"text file {path} starts with a UTF-16 byte-order mark but is not valid UTF-16 "
                             f"({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


_KV = re.compile(r'^\s*([A-Za-z_]+)\s*(?:\[\s*\d*\s*\])?\s*=\s*(.*?)\s*$')


def _parse_string(value: str) -> str | None:
    """Unescape a Praat string starting at ``value[0] == '"'``; None if it is not closed."""
    j = 1
    while j < len(value):
        if value[j] == '"':
            if j + 1 < len(value) and value[j + 1] == '"':
                j += 2
                continue
            return value[1:j].replace('""', '"')
        j += 1
    return None


def read_textgrid_tier(path: str | Path, tier: str | None = None) -> dict:
    """Read one interval tier of a Praat TextGrid (long text format), silences included.

    Parameters
    ----------
    path : the TextGrid file.
    tier : tier name; None picks the tier named ``word``/``words`` (any case), else the
        first interval tier.

    Returns
    -------
    dict with ``name`` (str), ``xmin``, ``xmax`` ((n,) float64 seconds) and ``text`` (list of
    n labels), one entry per interval as stored (silence intervals kept).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"TextGrid file not found: {path}")
    lines = _read_text(path).splitlines()
    if not any("TextGrid" in ln for ln in lines[:3]):
        raise InputError(f"{path} is not a Praat TextGrid (no 'Object class = \"TextGrid\"' header)")
    tiers: list[dict] = []
    current: dict | None = None
    interval: dict | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        stripped = line.strip()
        if re.match(r"^item\s*\[\s*\d+\s*\]\s*:", stripped):
            current = {"class": None, "name": None, "xmin": [], "xmax": [], "text": []}
            tiers.append(current)
            interval = None
            continue
        if current is None:
            continue
        if re.match(r"^(intervals|points)\s*\[\s*\d+\s*\]\s*:", stripped):
            interval = {}
            continue
        m = _KV.match(line)
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        if value.startswith('"'):
            # a string may span lines; collect until its closing quote
            parsed = _parse_string(value)
            while parsed is None:
                if i >= len(lines):
                    raise InputError(f"{path}: unterminated string near line {i}")
                value += "\n" + lines[i]
                i += 1
                parsed = _parse_string(value)
            value = parsed
        if interval is None:
            if key == "class":
                current["class"] = value
            elif key == "name":
                current["name"] = value
            continue
        if current["class"] != "IntervalTier":
            continue  # points of a TextTier carry no word intervals
        if key in ("xmin", "xmax"):
            try:
                interval[key] = float(value)
            except ValueError as exc:
                raise InputError(f"{path}, line {i}: {key} is not a number") from exc
        elif key == "text":
            interval["text"] = value
            if "xmin" not in interval or "xmax" not in interval:
                raise InputError(f"{path}, line {i}: interval label before its xmin/xmax")
            current["xmin"].append(interval["xmin"])
            current["xmax"].append(interval["xmax"])
            current["text"].append(value)
            interval = {}
    interval_tiers = [t for t in tiers if t["class"] == "IntervalTier"]
    if not interval_tiers:
        raise InputError(f"{path}: no interval tier found (long-text-format TextGrid expected)")
    if tier is not None:
        chosen = [t for t in interval_tiers if t["name"] == tier]
        if not chosen:
            raise InputError(
                f"{path}: no interval tier named {tier!r}; tiers: {[t['name'] for t in interval_tiers]}"
            )
    else:
        chosen = [t for t in interval_tiers if (t["name"] or "").lower() in ("word", "words")]
        chosen = chosen or interval_tiers
    t = chosen[0]
    return {
        "name": t["name"],
        "xmin": np.asarray(t["xmin"], dtype=np.float64),
        "xmax": np.asarray(t["xmax"], dtype=np.float64),
        "text": list(t["text"]),
    }
