"""Time windows on the stimulus clock: which stretch of stimulus belongs to each TR.

All times are seconds on the stimulus clock of one run (0 = start of the run's media).
Windows are half-open ``[start, end)`` rows of an ``(n, 2)`` float64 array.

Two kinds (:class:`WindowSpec`, parsed from ``"clip"`` / ``"context:SECONDS"``): the clip
spanning each TR, and the causal context ending where that clip ends (also
:func:`context_windows`). :func:`select_frames` picks a
window's video frames deterministically (distinct unless the window shows too few, which is
repeated in place with the count recorded, or raised); :func:`sample_bounds` its audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmneuro.errors import InputError


def _times(tr_times, name: str = "tr_times") -> np.ndarray:
    t = np.asarray(tr_times, dtype=np.float64)
    if t.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise InputError(f"{name} contain NaN or inf")
    return t


def _positive(value, name: str) -> float:
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be a positive number of seconds, got {value!r}")
    return v


def tr_windows(tr_times, tr: float) -> np.ndarray:
    """The clip spanning each TR, centred on its acquisition time.

    Parameters
    ----------
    tr_times : (n,) acquisition times in seconds.
    tr : repetition time in seconds.

    Returns
    -------
    (n, 2) float64 ``[t - tr/2, t + tr/2)``. With the common convention
    ``tr_times = (i + 0.5) * tr`` the windows tile the run exactly: ``[i*tr, (i+1)*tr)``.
    Windows are not clipped: a TR time earlier than ``tr/2`` gives a negative start.
    """
    t = _times(tr_times)
    half = _positive(tr, "tr") / 2.0
    return np.stack([t - half, t + half], axis=1)


def context_windows(tr_times, seconds: float, tr: float) -> np.ndarray:
    """The ``seconds`` of stimulus ending where each TR's clip ends.

    The one meaning of "context window" in mmneuro (the same spans as
    ``parse_window("context:SECONDS").spans``): the TR's own clip ``[t - tr/2, t + tr/2)``
    preceded by ``seconds - tr`` of earlier stimulus. Nothing after the TR's clip is read,
    and ``context_windows(t, tr, tr)`` equals :func:`tr_windows` ``(t, tr)``.

    Parameters
    ----------
    tr_times : (n,) acquisition times in seconds.
    seconds : context length in seconds.
    tr : repetition time in seconds.

    Returns
    -------
    (n, 2) float64 ``[t + tr/2 - seconds, t + tr/2)``, *not* clipped: the first TRs of a run
    start before 0. :func:`clip_to_media` clips them to the media (shorter windows, never
    padded), as the extraction driver does.
    """
    return WindowSpec("context", _positive(seconds, "seconds")).spans(tr_times, tr)


def words_in_windows(midpoints, spans) -> list[np.ndarray]:
    """Which words fall in each window: the indices of ``midpoints`` inside ``[start, end)``.

    Parameters
    ----------
    midpoints : (m,) word midpoints in seconds (any order).
    spans : (n, 2) window ``[start, end)`` seconds.

    Returns
    -------
    n int64 arrays of word indices, increasing (file order); empty for a window without words.
    Windows that tile time give every word to exactly one window.
    """
    mid = np.asarray(midpoints, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(mid)):
        raise InputError("word midpoints contain NaN or inf")
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    order = np.argsort(mid, kind="stable")
    ms = mid[order]
    lo = np.searchsorted(ms, spans[:, 0], side="left")
    hi = np.searchsorted(ms, spans[:, 1], side="left")
    return [np.sort(order[a:b]).astype(np.int64) for a, b in zip(lo, hi)]


def uniform_frame_times(start: float, end: float, n_frames: int) -> np.ndarray:
    """``n_frames`` distinct times evenly covering ``[start, end)``.

    The window is cut into ``n_frames`` equal sub-intervals and the centre of each is
    returned, so the times are deterministic, strictly increasing and never touch the window
    edges (a frame is never shared with the neighbouring window).

    Returns
    -------
    (n_frames,) float64.
    """
    if int(n_frames) != n_frames or n_frames < 1:
        raise InputError(f"n_frames must be a positive integer, got {n_frames!r}")
    start, end = float(start), float(end)
    if not (np.isfinite(start) and np.isfinite(end)) or end <= start:
        raise InputError(f"need start < end (finite seconds), got start={start}, end={end}")
    n = int(n_frames)
    step = (end - start) / n
    return start + (np.arange(n, dtype=np.float64) + 0.5) * step


# ----------------------------------------------------------------------------- window kinds

WINDOW_KINDS = ("clip", "context")
SHORT_POLICIES = ("repeat", "raise")
_EDGE_TOL = 1e-6  # seconds * fps rounding slack when deciding which frames a window shows


@dataclass(frozen=True)
class WindowSpec:
    """How the stretch of stimulus belonging to each sample time is chosen.

    Attributes
    ----------
    kind : ``"clip"``: the clip spanning each TR, ``[t - tr/2, t + tr/2)`` (Oota et al.);
        ``"context"``: the causal context ending where that clip ends,
        ``[t + tr/2 - seconds, t + tr/2)`` (TRIBE-style: the TR's clip preceded by
        ``seconds - tr`` of earlier stimulus; ``context:<tr>`` spans the same stretch as
        ``clip``). Nothing after the TR's clip is ever read.
    seconds : context length (``"context"`` only).

    Run edges, for both kinds: windows are clipped to ``[0, media duration]``; a clipped
    window is *shorter* (never padded with invented frames or silence) and a window left
    empty by clipping is an error naming the TR. For ``"context"`` this means the first
    ``(seconds - tr) / tr`` TRs of a run see less context than the rest.
    """

    kind: str = "clip"
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in WINDOW_KINDS:
            raise InputError(f"window kind must be one of {WINDOW_KINDS}, got {self.kind!r}")
        if self.kind == "context":
            _positive(self.seconds, "context window length")
        elif self.seconds is not None:
            raise InputError(f"a 'clip' window takes no length (got seconds={self.seconds!r}); use 'context:SECONDS'")

    @property
    def label(self) -> str:
        """``"clip"`` or ``"context:<seconds>"`` (round-trips through :func:`parse_window`)."""
        return "clip" if self.kind == "clip" else f"context:{float(self.seconds):g}"

    def params(self, tr: float) -> dict:
        """The json-able parameters recorded in the feature-store key."""
        d = {"window": self.kind, "tr": _positive(tr, "tr"), "edges": "clip-to-media"}
        if self.kind == "context":
            d["seconds"] = float(self.seconds)
            d["anchor"] = "tr-end"
        return d

    def spans(self, tr_times, tr: float) -> np.ndarray:
        """(n, 2) float64 unclipped ``[start, end)`` of each sample time's window."""
        clips = tr_windows(tr_times, _positive(tr, "tr"))
        if self.kind == "clip":
            return clips
        return np.stack([clips[:, 1] - float(self.seconds), clips[:, 1]], axis=1)


def parse_window(spec) -> WindowSpec:
    """``"clip"`` / ``"context:SECONDS"`` / a :class:`WindowSpec` -> :class:`WindowSpec`."""
    if isinstance(spec, WindowSpec):
        return spec
    if spec is None:
        return WindowSpec("clip")
    text = str(spec).strip()
    if text == "clip":
        return WindowSpec("clip")
    if text.startswith("context:"):
        value = text.split(":", 1)[1]
        try:
            seconds = float(value)
        except ValueError:
            raise InputError(f"window {text!r}: {value!r} is not a number of seconds (e.g. 'context:10')") from None
        return WindowSpec("context", seconds)
    raise InputError(f"window must be 'clip' or 'context:SECONDS' (e.g. 'context:10'), got {text!r}")


def clip_to_media(spans, duration: float, times=None, what: str = "media") -> np.ndarray:
    """Clip ``spans`` (n, 2) to ``[0, duration]``; InputError naming the first window left empty.

    ``times`` (n,) are the sample times quoted in the message; ``what`` names the file.
    """
    spans = np.asarray(spans, dtype=np.float64)
    clipped = np.stack([np.maximum(spans[:, 0], 0.0), np.minimum(spans[:, 1], float(duration))], axis=1)
    bad = np.nonzero(clipped[:, 1] <= clipped[:, 0])[0]
    if len(bad):
        i = int(bad[0])
        at = f" at t={float(times[i]):.3f} s" if times is not None else ""
        raise InputError(
            f"{len(bad)} TR window(s) lie outside the {what} ({float(duration):.3f} s long): the first is TR {i}{at}, "
            f"window [{spans[i, 0]:.3f}, {spans[i, 1]:.3f}) s. Trim the run's tr_times to the stimulus."
        )
    return clipped


def select_frames(spans, fps: float, n_video_frames: int, n_frames: int, short: str = "repeat",
                  what: str = "the video") -> tuple[np.ndarray, np.ndarray]:
    """Deterministic frame indices for each window.

    Frame ``k`` is on screen over ``[k / fps, (k + 1) / fps)``; a window ``[s, e)`` *shows*
    the ``m`` distinct frames on screen at some instant inside it. When ``m >= n_frames``,
    ``n_frames`` of them are taken at positions ``floor((j + 0.5) * m / n_frames)``
    (uniform, and distinct because the step ``m / n_frames`` is at least 1). When
    ``m < n_frames``: ``short="repeat"`` takes all ``m`` frames, each repeated in place
    (nearest-neighbour in time, counts differing by at most one, same formula);
    ``short="raise"`` raises :class:`InputError` naming the window and the numbers.

    Parameters
    ----------
    spans : (n, 2) ``[start, end)`` seconds, already clipped to the video.
    fps : frame rate; n_video_frames : frames in the file.

    Returns
    -------
    indices : (n, n_frames) int64 frame indices, non-decreasing along each row.
    n_distinct : (n,) int64 distinct frames used by each window (``min(m, n_frames)``).
    """
    if short not in SHORT_POLICIES:
        raise InputError(f"short-window policy must be one of {SHORT_POLICIES}, got {short!r}")
    if int(n_frames) != n_frames or n_frames < 1:
        raise InputError(f"n_frames must be a positive integer, got {n_frames!r}")
    n = int(n_frames)
    fps = _positive(fps, "fps")
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    first = np.floor(spans[:, 0] * fps + _EDGE_TOL).astype(np.int64)
    stop = np.ceil(spans[:, 1] * fps - _EDGE_TOL).astype(np.int64)
    first = np.clip(first, 0, n_video_frames)
    stop = np.clip(stop, 0, n_video_frames)
    m = stop - first
    empty = np.nonzero(m < 1)[0]
    if len(empty):
        i = int(empty[0])
        raise InputError(f"window {i} [{spans[i, 0]:.3f}, {spans[i, 1]:.3f}) s shows no frame of {what} "
                         f"({n_video_frames} frames at {fps:g} fps)")
    if short == "raise":
        few = np.nonzero(m < n)[0]
        if len(few):
            i = int(few[0])
            raise InputError(
                f"{len(few)} window(s) show fewer distinct frames of {what} than the model's {n}: the first is window "
                f"{i} [{spans[i, 0]:.3f}, {spans[i, 1]:.3f}) s with {int(m[i])} frame(s) at {fps:g} fps. Use a longer "
                f"window, fewer frames, or short='repeat' (all distinct frames, repeated in place; count recorded)."
            )
    j = np.arange(n, dtype=np.float64) + 0.5
    pos = np.floor(j[None, :] * m[:, None] / n).astype(np.int64)
    return first[:, None] + pos, np.minimum(m, n)


def sample_bounds(spans, sample_rate: int, n_samples: int) -> np.ndarray:
    """(n, 2) int64 ``[a, b)`` sample indices of each window: ``round(t * sr)``, clipped.

    Windows that tile time (``end_i == start_{i+1}``) tile the samples: no gap, no overlap.
    """
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    b = np.rint(spans * float(sample_rate)).astype(np.int64)
    return np.clip(b, 0, int(n_samples))
