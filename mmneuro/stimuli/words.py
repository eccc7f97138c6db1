"""Timed words: read word onsets/offsets from a TSV or a Praat TextGrid.

Times are seconds on the stimulus clock of the file. Silence labels (``""``, ``"sp"``,
``"sil"``, ``"<sil>"``, ``"SIL"``) are dropped.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmneuro.errors import InputError

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
                f"Words: word {i} ({self.words[i]!r}) ends ({self.offsets[i]}) before it starts "
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
    * ``.TextGrid`` (Praat long text format, UTF-8 or UTF-16): the interval tier named
      ``word``/``words`` (any case), else the first interval tier.

    Silence labels are dropped. Raises :class:`~mmneuro.errors.InputError` naming the file for
    a missing file, a missing column, a malformed row, or a TextGrid without interval tiers.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"words file not found: {path}")
    if path.suffix.lower() == ".textgrid":
        tier = read_textgrid_tier(path)
        return _drop_silence(tier["xmin"], tier["xmax"], tier["text"])
    return _read_words_tsv(path)


def _read_words_tsv(path: Path) -> Words:
    text = _read_text(path)
    rows = list(csv.reader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"words file {path} is empty; expected a header 'onset\\tduration\\tword'")
    header = [c.strip().lower() for c in rows[0]]
    if "onset" not in header or "word" not in header or not ({"duration", "offset"} & set(header)):
        raise InputError(
            f"words file {path}: header {rows[0]} must name the columns onset, duration (or "
            f"offset) and word, tab-separated"
        )
    i_on, i_w = header.index("onset"), header.index("word")
    i_dur = header.index("duration") if "duration" in header else None
    i_off = header.index("offset") if i_dur is None else None
    onsets, offsets, labels = [], [], []
    for lineno, row in enumerate(rows[1:], start=2):
        try:
            on = float(row[i_on])
            end = on + float(row[i_dur]) if i_dur is not None else float(row[i_off])
            word = row[i_w] if i_w < len(row) else ""
        except (IndexError, ValueError) as exc:
            raise InputError(f"words file {path}, line {lineno}: cannot parse {row!r} ({exc})") from exc
        onsets.append(on)
        offsets.append(end)
        labels.append(word)
    try:
        return _drop_silence(onsets, offsets, labels)
    except InputError as exc:
        raise InputError(f"words file {path}: {exc}") from exc


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
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
                raise InputError(f"{path}, line {i}: bad time {value!r}") from exc
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
