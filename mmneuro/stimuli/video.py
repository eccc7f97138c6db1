"""Read video files: stream facts and the frames on screen at given times (PyAV).

Times are seconds on the stimulus clock, 0 = the first frame of the file. A frame with
presentation time ``p`` is on screen over ``[p, p_next)``; the frame *displayed at* time
``t`` is the last frame with ``p <= t`` (a tolerance of 1 microsecond absorbs the rounding of
container time bases, so ``t = k / fps`` gives frame ``k``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from mmneuro.errors import InputError

_TIME_TOL = 1e-6


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video file's first video stream.

    Attributes
    ----------
    fps : average frame rate in frames per second.
    n_frames : number of frames in the stream.
    width, height : frame size in pixels.
    duration : seconds from the first frame's onset to the end of the last frame.
    """

    fps: float
    n_frames: int
    width: int
    height: int
    duration: float


def _open(path: str | Path):
    import av

    path = Path(path)
    if not path.is_file():
        raise InputError(f"video file not found: {path}")
    try:
        container = av.open(str(path))
    except Exception as exc:  # PyAV raises several FFmpeg error classes
        raise InputError(f"cannot open video file {path}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise InputError(f"{path} holds no video stream")
    context = container.streams.video[0].codec_context
    if context is None or not context.width or not context.height:
        container.close()
        raise InputError(f"video file {path}: its first video stream has no decoder or no frame size (corrupt or "
                         f"unsupported codec?)")
    return container


def _count_packets(container, stream) -> int:
    n = 0
    for packet in container.demux(stream):
        if packet.size:
            n += 1
    return n


def read_video_info(path: str | Path) -> VideoInfo:
    """Return frame rate, frame count, size and duration of the first video stream.

    Raises :class:`~mmneuro.errors.InputError` naming the file when it is missing, is not a
    video, or is corrupt.
    """
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise InputError(f"{path}: the video stream has no frame rate")
        fps = float(rate)
        width = int(stream.codec_context.width)
        height = int(stream.codec_context.height)
        n_frames = int(stream.frames or 0)
        if n_frames <= 0:
            n_frames = _count_packets(container, stream)
        if n_frames <= 0:
            raise InputError(f"{path}: the video stream holds no frames")
        duration = n_frames / fps
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read video file {path}: {exc}") from exc
    finally:
        container.close()
    return VideoInfo(fps=fps, n_frames=n_frames, width=width, height=height, duration=duration)


def read_frames(path: str | Path, times: np.ndarray) -> np.ndarray:
    """Return the frames displayed at ``times``.

    Parameters
    ----------
    path : video file (any container/codec FFmpeg decodes).
    times : (n,) seconds on the file's clock, any order, repeats allowed; each must lie in
        ``[0, duration]``.

    Returns
    -------
    (n, height, width, 3) uint8 RGB frames, row ``i`` being the frame on screen at
    ``times[i]``.

    The file is decoded once, sequentially, up to the latest requested time (no seeking);
    see :func:`iter_frames` to stream frames without holding them all.
    Raises :class:`~mmneuro.errors.InputError` for a missing or corrupt file, non-finite times,
    or times outside the video.
    """
    path = Path(path)
    times = _check_times(path, times, "read_frames")
    order = np.argsort(times, kind="stable")
    container = _open(path)
    try:
        stream = container.streams.video[0]
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        out = np.empty((len(times), height, width, 3), dtype=np.uint8)
        for k, rgb in enumerate(_stream(path, container, times[order], "read_frames")):
            out[order[k]] = rgb
    finally:
        container.close()
    return out


def iter_frames(path: str | Path, times: np.ndarray) -> Iterator[np.ndarray]:
    """Stream the frames displayed at non-decreasing ``times``, decoding the file once.

    Parameters
    ----------
    path : video file.
    times : (n,) non-decreasing seconds in ``[0, duration]`` (repeats allowed).

    Yields
    ------
    (height, width, 3) uint8 read-only RGB frame for each time, in order. Only the frames
    asked for are converted to RGB; memory stays at one decoded frame. The file is opened
    when iteration starts and closed when it ends (or the generator is closed).
    """
    path = Path(path)
    times = _check_times(path, times, "iter_frames")
    if len(times) and np.any(np.diff(times) < 0):
        i = int(np.nonzero(np.diff(times) < 0)[0][0])
        raise InputError(f"iter_frames({path}): times must be non-decreasing; times[{i + 1}]={times[i + 1]:.6f} s "
                         f"< times[{i}]={times[i]:.6f} s (use read_frames for any order)")

    def gen():
        container = _open(path)
        try:
            yield from _stream(path, container, times, "iter_frames")
        finally:
            container.close()

    return gen()


def _check_times(path: Path, times, fn: str) -> np.ndarray:
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1:
        raise InputError(f"{fn}({path}): times must be 1-D, got shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise InputError(f"{fn}({path}): times contain NaN or inf")
    if len(times) and times.min() < -_TIME_TOL:
        raise InputError(f"{fn}({path}): time {times.min():.6f} s is before the first frame (0 s)")
    return times


def _stream(path: Path, container, sorted_t: np.ndarray, fn: str) -> Iterator[np.ndarray]:
    """Yield the frame on screen at each of the sorted times ``sorted_t``, decoding once."""
    if len(sorted_t) == 0:
        return
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    first_pts: float | None = None
    prev = None  # the last decoded av.VideoFrame
    prev_rgb: np.ndarray | None = None  # its RGB array, converted on first use
    prev_t = 0.0
    frame_dur = 0.0
    k = 0  # next request to fill

    def rgb_of_prev() -> np.ndarray:
        nonlocal prev_rgb
        if prev_rgb is None:
            prev_rgb = prev.to_ndarray(format="rgb24")
            prev_rgb.flags.writeable = False
        return prev_rgb

    decoder = container.decode(stream)
    while True:
        try:
            frame = next(decoder)
        except StopIteration:
            break
        except Exception as exc:  # FFmpeg errors
            raise InputError(f"cannot decode video file {path}: {exc}") from exc
        if frame.pts is None:
            continue
        t = float(frame.pts * frame.time_base)
        if first_pts is None:
            first_pts = t
        t -= first_pts
        # requests strictly before this frame's onset are shown by the previous frame
        while k < len(sorted_t) and sorted_t[k] < t - _TIME_TOL:
            if prev is None:  # only possible for t < 0, excluded by _check_times
                raise InputError(f"{fn}({path}): no frame at {sorted_t[k]:.6f} s")
            yield rgb_of_prev()
            k += 1
        if k >= len(sorted_t):
            return
        frame_dur = t - prev_t if prev is not None else frame_dur
        prev, prev_rgb, prev_t = frame, None, t
    if prev is None:
        raise InputError(f"{path}: the video stream holds no decodable frames")
    # the last frame stays on screen for one frame period
    rate = stream.average_rate or stream.guessed_rate
    period = float(1 / Fraction(rate)) if rate else frame_dur
    end = prev_t + period
    if sorted_t[-1] > end + _TIME_TOL:
        raise InputError(f"{fn}({path}): time {sorted_t[-1]:.6f} s is after the end of the video ({end:.6f} s)")
    while k < len(sorted_t):
        yield rgb_of_prev()
        k += 1
