"""The extraction driver: stimulus run -> windows -> batches -> pooled layer features.

``extract_run(adapter, run)`` builds one window per sample according to the adapter's
``input_kind`` and a window kind (:class:`~mmneuro.stimuli.windows.WindowSpec`:
``"clip"``, the clip spanning each TR, or ``"context:SECONDS"``, the SECONDS of stimulus
ending where each TR's clip ends; default: the adapter's ``default_window`` or ``"clip"``):

- ``"frames"``: ``adapter.n_frames`` distinct frames per window, chosen by
  :func:`~mmneuro.stimuli.windows.select_frames` (a window showing fewer distinct frames
  repeats them in place, count recorded, or raises with ``short="raise"``);
- ``"waveform"``: the window's samples at ``adapter.sample_rate`` (resampled once per file);
- ``"frames+waveform"``: both;
- ``"words"``: one window per word (the ``adapter.n_context`` preceding words + the word),
  stamped with the word's midpoint (window kinds do not apply).

Frame/audio adapters that read text too (``adapter.wants_words``; when the attribute is
absent, ``"text" in adapter.modalities``) also get the words heard during each window:
``WindowInput.text`` lists, in file order, the words of ``run.words`` whose midpoints lie in
the window's ``[start, end)`` span (an empty list when none). The words file joins the
files keying the feature store and ``params["words"] = "midpoint-in-window"`` marks the
window parameters, so features computed without words are never reused for them.

Windows are clipped to the media at run starts and ends (shorter, never padded); a window
left empty is an error naming the TR.

The pipeline: a decoder thread streams the video **once, sequentially** for the whole run
(:func:`~mmneuro.stimuli.video.iter_frames`), assembles windows and hands each batch to a
pool of preprocessing threads; ready batches wait in a bounded queue, so the model (main
thread, ``torch.inference_mode``, bf16 autocast on CUDA, pinned host memory) only waits
when decoding is slower than the model. With a
:class:`~mmneuro.features.store.FeatureStore`, windows are computed in chunks of
``chunk_windows`` (a multiple of the batch size); every finished chunk is committed
atomically, so a killed extraction resumes at the first missing chunk and ends with
arrays bitwise equal to an uninterrupted run; stored layers are read back (verified
against their checksums) and only the missing ones computed. A stored layer or chunk that
fails its checksum is named in a RuntimeWarning and recomputed. Two processes extracting
the same key at once share chunks; the first to finish assembles each layer under the
key's lock and the other reads its arrays back (see :mod:`mmneuro.features.store`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from mmneuro.errors import InputError
from mmneuro.models.base import ModelAdapter, TimedFeatures, WindowInput, pick_device
from mmneuro.stimuli.windows import (
    WindowSpec, clip_to_media, parse_window, sample_bounds, select_frames, words_in_windows,
)

__all__ = [
    "TimedFeatures", "WindowPlan", "RunReport", "MediaRun", "extract_run", "compute_features", "plan_windows",
    "infer_tr", "stimulus_runs", "wants_words", "DEFAULT_CHUNK_WINDOWS",
]

#: windows per committed chunk (rounded up to a multiple of the batch size)
DEFAULT_CHUNK_WINDOWS = 256
#: batches decoded and preprocessed ahead of the model
DEFAULT_PREFETCH = 4

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
WORDS_SUFFIXES = (".tsv", ".textgrid")


def wants_words(adapter: ModelAdapter) -> bool:
    """Whether a frame/audio ``adapter`` reads the words heard in each window.

    ``adapter.wants_words`` when the adapter sets it, else ``"text" in adapter.modalities``.
    Word models (input_kind ``"words"``) read words by construction and return False here.
    """
    if adapter.input_kind == "words":
        return False
    flag = getattr(adapter, "wants_words", None)
    if flag is not None:
        return bool(flag)
    return "text" in tuple(adapter.modalities)


def infer_tr(tr_times: np.ndarray) -> float:
    """The TR as the median difference of ``tr_times``."""
    t = np.asarray(tr_times, dtype=np.float64)
    if t.ndim != 1 or len(t) < 2:
        raise InputError(f"cannot infer the TR from {t.size} TR time(s); pass tr=...")
    d = np.diff(t)
    tr = float(np.median(d))
    if not np.isfinite(tr) or tr <= 0:
        raise InputError(f"tr_times are not increasing (median step {tr}); pass tr=... or fix the run's tr_times")
    return tr


# --------------------------------------------------------------------------- windows


@dataclass
class WindowPlan:
    """The windows of one run for one adapter.

    Attributes
    ----------
    times : (n,) float64 sample time of each window (TR time or word midpoint).
    spans : (n, 2) float64 ``[start, end)`` seconds of each window (clipped to the media);
        for words, the word's onset/offset.
    files : stimulus files read (their hashes key the feature store).
    params : window parameters recorded in the store key.
    kind : the adapter's input kind.
    frame_index : (n, n_frames) int64 video frame indices per window (frame inputs).
    n_distinct : (n,) int64 distinct frames per window (frame inputs); rows with fewer
        than ``n_frames`` repeat frames in place.
    current_start : (n,) float64 start of each TR's own clip, for context windows: waveform
        windows then carry ``current_samples`` (how many trailing samples are the TR's clip).
    window_words : per window, the words (file order) whose midpoints lie in its span, for
        frame/audio adapters that read words; None otherwise.
    """

    times: np.ndarray
    spans: np.ndarray
    files: list[Path]
    params: dict[str, Any]
    kind: str = "frames"
    video: Path | None = None
    fps: float | None = None
    frame_index: np.ndarray | None = None
    n_distinct: np.ndarray | None = None
    audio: Path | None = None
    sample_rate: int | None = None
    audio_spans: np.ndarray | None = None
    words: list[str] | None = None
    n_context: int = 0
    current_start: np.ndarray | None = None
    window_words: list[list[str]] | None = None
    _wav: np.ndarray | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __len__(self) -> int:
        return int(len(self.times))

    @property
    def short_windows(self) -> int:
        """Windows that show fewer distinct frames than the model takes (frames repeated)."""
        if self.n_distinct is None or self.frame_index is None:
            return 0
        return int(np.sum(self.n_distinct < self.frame_index.shape[1]))

    def info(self) -> dict[str, Any]:
        """What the windows were, recorded beside stored features."""
        d: dict[str, Any] = {"n_windows": len(self), "kind": self.kind}
        if self.n_distinct is not None:
            d["short_windows"] = self.short_windows
            d["n_distinct_frames"] = [int(v) for v in self.n_distinct] if self.short_windows else None
        return d

    def waveform(self) -> np.ndarray:
        """The run's audio at ``sample_rate`` (decoded once, on first use)."""
        with self._lock:
            if self._wav is None:
                from mmneuro.stimuli.audio import read_audio

                self._wav, _ = read_audio(self.audio, sample_rate=self.sample_rate)
            return self._wav

    def stream(self, indices: Sequence[int] | None = None) -> Iterator[WindowInput]:
        """Yield the windows ``indices`` (increasing; default all), decoding the video once.

        Video frames are decoded sequentially up to the last frame any requested window
        needs; a decoded frame is held only until the last window using it is yielded.
        """
        idx = np.arange(len(self)) if indices is None else np.asarray(list(indices), dtype=np.int64)
        if len(idx) and (np.any(np.diff(idx) <= 0) or idx[0] < 0 or idx[-1] >= len(self)):
            raise InputError(f"window indices must be increasing and within [0, {len(self)})")
        if self.kind == "words":
            for i in idx:
                lo = max(0, int(i) - self.n_context)
                i = int(i)
                yield WindowInput(text=self.words[lo : i + 1], target_word_span=(i - lo, i - lo + 1))
            return
        wav = self.waveform() if self.audio is not None else None
        bounds = sample_bounds(self.audio_spans, self.sample_rate, len(wav)) if wav is not None else None
        current = None
        if wav is not None and self.current_start is not None:
            cur0 = np.clip(np.rint(self.current_start * self.sample_rate).astype(np.int64), 0, len(wav))
            current = bounds[:, 1] - np.maximum(bounds[:, 0], cur0)
        frames_of = self._frame_source(idx) if self.video is not None else None
        try:
            for i in idx:
                wi = WindowInput()
                if frames_of is not None:
                    wi.frames = frames_of(int(i))
                if self.window_words is not None:
                    wi.text = list(self.window_words[int(i)])
                if wav is not None:
                    a, b = bounds[i]
                    wi.waveform = wav[a:b]
                    wi.sample_rate = self.sample_rate
                    if current is not None:
                        wi.current_samples = int(current[i])  # type: ignore[attr-defined]
                yield wi
        finally:
            if frames_of is not None:
                frames_of.close()

    def _frame_source(self, idx: np.ndarray):
        from mmneuro.stimuli.video import iter_frames

        rows = self.frame_index[idx]
        need = np.unique(rows)
        pos = np.searchsorted(need, rows)  # (len(idx), n_frames) position of each frame in `need`
        upto = pos.max(axis=1)
        last_user: dict[int, int] = {}
        for j, r in enumerate(pos):
            for p in r:
                last_user[int(p)] = j
        free_after: dict[int, list[int]] = {}
        for p, j in last_user.items():
            free_after.setdefault(j, []).append(p)
        decoded = iter_frames(self.video, (need + 0.5) / self.fps)  # the centre of each frame's display
        buf: dict[int, np.ndarray] = {}
        state = {"next": 0, "j": 0}
        window_pos = {int(i): j for j, i in enumerate(idx)}

        def frames_of(i: int) -> np.ndarray:
            j = window_pos[i]
            while state["next"] <= upto[j]:
                buf[state["next"]] = next(decoded)
                state["next"] += 1
            out = np.stack([buf[int(p)] for p in pos[j]])
            for p in free_after.get(j, ()):
                buf.pop(p, None)
            return out

        frames_of.close = decoded.close  # type: ignore[attr-defined]
        return frames_of

    def make(self, indices: Sequence[int]) -> list[WindowInput]:
        """The windows ``indices`` (any order) as a list."""
        indices = [int(i) for i in indices]
        order = sorted(set(indices))
        got = dict(zip(order, self.stream(order)))
        return [got[i] for i in indices]


def plan_windows(adapter: ModelAdapter, run, tr: float | None = None, window: str | WindowSpec | None = None,
                 short: str = "repeat") -> WindowPlan:
    """Build the windows of ``run`` that ``adapter`` reads (see the module docstring).

    Parameters
    ----------
    adapter : the model adapter (its ``input_kind``, ``n_frames``, ``sample_rate``...).
    run : a stimulus run (``name``, ``tr_times``, ``video``, ``audio``, ``words``).
    tr : TR in seconds (default: median step of ``run.tr_times``).
    window : ``"clip"`` / ``"context:SECONDS"`` / a WindowSpec (default: the adapter's
        ``default_window`` attribute, else ``"clip"``). Word models accept only ``"clip"``
        (their context is ``n_context`` words).
    short : ``"repeat"`` or ``"raise"`` for windows showing fewer frames than ``n_frames``.
    """
    kind = adapter.input_kind
    spec = parse_window(window if window is not None else getattr(adapter, "default_window", "clip"))
    if kind == "words":
        from mmneuro.stimuli.words import read_words

        if window is not None and spec.kind != "clip":
            raise InputError(f"model {adapter.name!r} reads words (n_context={adapter.n_context} preceding words); "
                             f"window {spec.label!r} applies to frame and audio models only")
        if run.words is None:
            raise InputError(f"run {run.name!r} has no words file, but model {adapter.name!r} reads words")
        words = read_words(run.words)
        if len(words) == 0:
            raise InputError(f"words file {run.words} of run {run.name!r} holds no words")
        return WindowPlan(
            times=words.midpoints.astype(np.float64),
            spans=np.stack([words.onsets, words.offsets], axis=1),
            files=[Path(run.words)],
            params=adapter.window_params(),
            kind=kind,
            words=list(words.words),
            n_context=int(adapter.n_context),
        )

    if kind not in ("frames", "waveform", "frames+waveform"):
        raise InputError(f"model {adapter.name!r} has unknown input_kind {kind!r}")
    tr_times = np.asarray(run.tr_times, dtype=np.float64)
    if len(tr_times) == 0:
        raise InputError(f"run {run.name!r} has no TR times: model {adapter.name!r} samples one window per TR; for "
                         f"stimulus files give the TR that defines the grid (--tr SECONDS / tr=...)")
    tr = float(tr) if tr is not None else infer_tr(tr_times)
    spans = spec.spans(tr_times, tr)
    params = dict(adapter.window_params())
    params.update(spec.params(tr))
    params["tr_times_sha"] = _array_digest(tr_times)
    plan = WindowPlan(times=tr_times.copy(), spans=spans, files=[], params=params, kind=kind)
    if spec.kind == "context":
        plan.current_start = tr_times - tr / 2.0

    if "frames" in kind:
        from mmneuro.stimuli.video import read_video_info

        if run.video is None:
            raise InputError(f"run {run.name!r} has no video file, but model {adapter.name!r} reads frames")
        info = read_video_info(run.video)
        fspans = clip_to_media(spans, info.duration, tr_times, what=f"video {run.video}")
        plan.frame_index, plan.n_distinct = select_frames(
            fspans, info.fps, info.n_frames, int(adapter.n_frames), short=short, what=f"video {run.video}")
        plan.video, plan.fps, plan.spans = Path(run.video), info.fps, fspans
        plan.files.append(Path(run.video))
        params["frame_select"] = "uniform-distinct"
        params["short"] = short
    if "waveform" in kind:
        if run.audio is None:
            raise InputError(f"run {run.name!r} has no audio file, but model {adapter.name!r} reads audio")
        duration = _audio_duration(Path(run.audio))
        aspans = clip_to_media(spans, duration, tr_times, what=f"audio {run.audio}")
        plan.audio, plan.sample_rate, plan.audio_spans = Path(run.audio), int(adapter.sample_rate), aspans
        plan.files.append(Path(run.audio))
        if plan.video is None:
            plan.spans = aspans
    if wants_words(adapter):
        from mmneuro.stimuli.words import read_words

        if run.words is None:
            raise InputError(
                f"run {run.name!r} has no words file, but model {adapter.name!r} reads the words heard in each "
                f"window; give the run a words file (TSV/TextGrid) or build the model without its text input"
            )
        words = read_words(run.words)
        plan.window_words = [[words.words[j] for j in idx] for idx in words_in_windows(words.midpoints, plan.spans)]
        plan.files.append(Path(run.words))
        params["words"] = "midpoint-in-window"
    return plan


def _audio_duration(path: Path) -> float:
    import soundfile as sf

    if not path.is_file():
        raise InputError(f"audio file not found: {path}")
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise InputError(f"cannot read audio file {path}: {exc}") from exc
    if info.frames <= 0:
        raise InputError(f"audio file {path} holds no samples")
    return info.frames / float(info.samplerate)


def _array_digest(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float64).tobytes()).hexdigest()[:16]


# --------------------------------------------------------------------------- the pipeline


@dataclass
class RunReport:
    """What one ``extract_run`` call did.

    Attributes
    ----------
    run, model : names. key : the store key digest ("" without a store). folder : its folder.
    n_windows : windows in the run. computed_windows : windows run through the model.
    reused_windows : windows taken from chunks of an interrupted extraction.
    cached_layers, computed_layers : layers read back / computed.
    seconds : wall time. wait_s : time the model thread waited for decoded batches.
    short_windows : windows with repeated frames. window : the window parameters.
    """

    run: str
    model: str
    key: str = ""
    folder: str = ""
    n_windows: int = 0
    computed_windows: int = 0
    reused_windows: int = 0
    cached_layers: list[str] = field(default_factory=list)
    computed_layers: list[str] = field(default_factory=list)
    seconds: float = 0.0
    wait_s: float = 0.0
    short_windows: int = 0
    window: dict[str, Any] = field(default_factory=dict)

    @property
    def windows_per_s(self) -> float:
        return self.computed_windows / self.seconds if self.seconds > 0 else float("nan")


def _chunk_bounds(n: int, chunk: int) -> list[tuple[int, int]]:
    return [(a, min(n, a + chunk)) for a in range(0, n, chunk)]


def _batches(plan: WindowPlan, chunks: Sequence[tuple[int, int]], batch_size: int) -> Iterator[tuple[int, list]]:
    """(chunk number in ``chunks``, windows of one batch); batches never cross chunk boundaries."""
    idx = [i for a, b in chunks for i in range(a, b)]
    stream = plan.stream(idx)
    try:
        for c, (a, b) in enumerate(chunks):
            for b0 in range(a, b, batch_size):
                n = min(b, b0 + batch_size) - b0
                yield c, [next(stream) for _ in range(n)]
    finally:
        stream.close()


class _Pipeline:
    """Decoder thread -> preprocessing pool -> bounded queue of ready batches, in order."""

    def __init__(self, adapter: ModelAdapter, items: Iterator[tuple[int, list]], workers: int, depth: int, pin: bool):
        self.adapter, self.items, self.pin = adapter, items, pin
        self.q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="mmneuro-prep")
        self.thread = threading.Thread(target=self._decode, name="mmneuro-decode", daemon=True)
        self.wait_s = 0.0

    def _prep(self, windows: list) -> dict:
        batch = self.adapter.collate([self.adapter.preprocess(w) for w in windows])
        if self.pin:
            batch = {k: (v.pin_memory() if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        return batch

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode(self) -> None:
        try:
            for c, windows in self.items:
                if not self._put(("item", c, len(windows), self.pool.submit(self._prep, windows))):
                    return
            self._put(("done", None, 0, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put(("error", e, 0, None))

    def __iter__(self) -> Iterator[tuple[int, int, dict]]:
        self.thread.start()
        try:
            while True:
                t0 = time.perf_counter()
                tag, c, n, fut = self.q.get()
                if tag == "error":
                    raise c
                if tag == "done":
                    return
                batch = fut.result()
                self.wait_s += time.perf_counter() - t0
                yield c, n, batch
        finally:
            self.stop.set()
            while self.thread.is_alive():
                try:
                    _, _, _, fut = self.q.get_nowait()
                    if fut is not None:
                        fut.cancel()
                except queue.Empty:
                    pass
                self.thread.join(timeout=0.05)
            self.pool.shutdown(wait=True, cancel_futures=True)
            close = getattr(self.items, "close", None)
            if close is not None:
                close()


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def _default_workers(adapter: ModelAdapter) -> int:
    """``adapter.preprocess_workers`` if set; 1 for word models (fast tokenizers are not
    safe to share between threads); else ``min(4, cpus // 2)``, at least 1."""
    n = getattr(adapter, "preprocess_workers", None)
    if n is not None:
        return max(1, int(n))
    if adapter.input_kind == "words":
        return 1
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def compute_features(
    adapter: ModelAdapter,
    plan: WindowPlan,
    layers: Sequence[str],
    pooling: str | None = None,
    batch_size: int = 16,
    progress: bool = True,
    desc: str = "",
    *,
    chunk_windows: int | None = None,
    workers: int | None = None,
    prefetch: int = DEFAULT_PREFETCH,
    store=None,
    key=None,
    report: RunReport | None = None,
) -> dict[str, TimedFeatures]:
    """Run ``adapter`` over every window of ``plan``; pooled features of ``layers``.

    With ``store`` and ``key``, chunks of ``chunk_windows`` windows (rounded up to a
    multiple of ``batch_size``) are committed to the store as they finish, chunks already
    there are reused, and each layer's final array is assembled and saved at the end.
    ``workers``: preprocessing threads (default: ``adapter.preprocess_workers``, else 1 for
    word models and ``min(4, cpus // 2)`` for the others).

    Several processes may extract the same key at once: chunks are shared, the first to
    finish assembles each layer (under the key's lock) and the others read its arrays back;
    a chunk failing its checksum is named in a warning and recomputed.

    Returns layer -> :class:`TimedFeatures` (``data`` (n, p) float32, ``times`` (n,)).
    """
    pooling = pooling or adapter.default_pooling
    label = adapter.pooling_label(pooling)
    layers = list(layers)
    batch_size = int(batch_size)
    n = len(plan)
    chunk = int(chunk_windows or DEFAULT_CHUNK_WINDOWS)
    chunk = max(batch_size, -(-chunk // batch_size) * batch_size)
    bounds = _chunk_bounds(n, chunk)
    tag = f"b{batch_size}-k{chunk}"
    use_store = store is not None and key is not None
    t_start = time.perf_counter()
    info = {"computed": 0, "wait_s": 0.0}
    if not use_store:
        parts = _run_model(adapter, plan, layers, pooling, batch_size, progress, desc, bounds, n, workers, prefetch, info)
        result = {l: np.concatenate([parts[l][ab] for ab in bounds]) for l in layers}
    else:
        result = None
        for _attempt in range(MAX_ASSEMBLE_ATTEMPTS):
            # layers another process may have finished meanwhile need no chunks
            pending = [l for l in layers if not store.has(key, l)]
            if pending:
                _run_model(adapter, plan, pending, pooling, batch_size, progress, desc, bounds, n, workers, prefetch,
                           info, store=store, key=key, tag=tag)
            result = _assemble(adapter, label, store, key, tag, layers, bounds, plan)
            if result is not None:
                break
        if result is None:
            raise InputError(f"feature store {store.folder(key)}: chunks of layers {layers} failed verification "
                             f"{MAX_ASSEMBLE_ATTEMPTS} times in a row (a failing disk?); check the disk, delete that "
                             f"folder and run again")
    if report is not None:
        report.computed_windows += info["computed"]
        report.reused_windows += max(0, n - info["computed"])
        report.wait_s += info["wait_s"]
        report.seconds += time.perf_counter() - t_start
    return {l: TimedFeatures(data=result[l], times=plan.times, pooling=label, layer=l, model=adapter.name,
                             weights=adapter.weights.identity) for l in layers}


#: how many times a layer is recomputed when its chunks keep failing verification
MAX_ASSEMBLE_ATTEMPTS = 3


def _run_model(adapter, plan, layers, pooling, batch_size, progress, desc, bounds, n, workers, prefetch, info,
               store=None, key=None, tag=""):
    """Run the model over the chunks of ``bounds`` not stored yet; commit each to ``store`` or return them.

    With a store, stops early once every layer's final array exists (another process
    assembled them). ``info["computed"]`` counts the windows run through the model.
    """
    from tqdm.auto import tqdm

    device = adapter.device
    use_store = store is not None
    if use_store:
        todo = [(a, b) for a, b in bounds if any(not store.has_chunk(key, tag, l, a, b) for l in layers)]
    else:
        todo = list(bounds)
    parts: dict[str, dict[tuple[int, int], np.ndarray]] = {l: {} for l in layers}
    if not todo:
        return parts
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    )
    bar = tqdm(total=n, initial=n - sum(b - a for a, b in todo), unit="win", desc=desc or adapter.name,
               disable=not progress, leave=False)
    pipe = _Pipeline(adapter, _batches(plan, todo, batch_size), workers or _default_workers(adapter), prefetch,
                     pin=device.type == "cuda")
    acc: dict[str, list[np.ndarray]] = {l: [] for l in layers}
    filled = 0
    batches = iter(pipe)
    try:
        with torch.inference_mode():
            for c, m, batch in batches:
                with autocast:
                    out = adapter.forward(_to_device(batch, device))
                pooled = adapter.pool(out, pooling, layers=layers)
                for l in layers:
                    if pooled[l].shape[0] != m:
                        raise InputError(f"model {adapter.name!r} returned {pooled[l].shape[0]} rows for {m} windows")
                    acc[l].append(pooled[l])
                filled += m
                info["computed"] += m
                a, b = todo[c]
                if filled == b - a:  # the chunk is complete
                    for l in layers:
                        arr = np.concatenate(acc[l], axis=0)
                        if use_store:
                            if not store.has_chunk(key, tag, l, a, b):
                                store.save_chunk(key, tag, l, a, b, arr)
                        else:
                            parts[l][(a, b)] = arr
                        acc[l] = []
                    filled = 0
                    if use_store and all(store.has(key, l) for l in layers):
                        break  # another process assembled these layers: use its arrays
                bar.update(m)
    finally:
        batches.close()
        bar.close()
        info["wait_s"] += pipe.wait_s
    return parts


def _assemble(adapter, label, store, key, tag, layers, bounds, plan) -> dict[str, np.ndarray] | None:
    """Under ``key``'s exclusive lock: each layer's final array, from the store or assembled from its chunks.

    A layer already stored (by this or another process) is read back; the others are
    concatenated from their chunks, saved, and their chunks dropped. Corrupt chunks are
    named in a warning and deleted, missing ones noted; then None is returned so the caller
    computes them again.
    """
    from mmneuro.features.store import CorruptChunks

    with store.lock(key, exclusive=True):
        stored, _ = store.load_valid(key, [l for l in layers if store.has(key, l)])
        out = {l: np.asarray(tf.data) for l, tf in stored.items()}
        for l, tf in stored.items():
            if len(tf) != len(plan):
                raise InputError(f"stored features of layer {l!r} in {store.folder(key)} have {len(tf)} rows; the run "
                                 f"has {len(plan)} windows")
        retry = False
        for l in layers:
            if l in out:
                continue
            try:
                out[l] = store.load_chunks(key, tag, l, bounds)
            except CorruptChunks as err:
                for path, why in err.corrupt.items():
                    warnings.warn(f"feature store chunk {path} is corrupt ({why}); recomputing it", RuntimeWarning,
                                  stacklevel=4)
                store.drop_chunks(key, tag, l, err.bounds)
                retry = True
        if retry:
            return None
        new = {l: TimedFeatures(data=out[l], times=plan.times, pooling=label, layer=l, model=adapter.name,
                                weights=adapter.weights.identity) for l in layers if l not in stored}
        if new:
            store.save(key, new, info=plan.info())
        for l in layers:
            store.drop_partial(key, l)
    return out


def extract_run(
    adapter: ModelAdapter,
    run,
    layers: Sequence[str] | None = None,
    store=None,
    batch_size: int | None = None,
    device=None,
    progress: bool = True,
    tr: float | None = None,
    pooling: str | None = None,
    window: str | WindowSpec | None = None,
    short: str = "repeat",
    chunk_windows: int | None = None,
    workers: int | None = None,
    report: list | None = None,
) -> dict[str, TimedFeatures]:
    """Pooled features of ``run`` for ``layers`` of ``adapter``.

    Parameters
    ----------
    adapter : a :class:`~mmneuro.models.base.ModelAdapter`.
    run : a :class:`~mmneuro.datasets.base.StimulusRun` (or :class:`MediaRun`).
    layers : layer names (default: all of ``adapter.layer_names``).
    store : a :class:`~mmneuro.features.store.FeatureStore`, or None for no caching.
    batch_size : windows per forward pass (default: ``adapter.batch_size``).
    device : move the adapter there first (None: leave it where it is; adapters start on
        CUDA when available).
    progress : show a tqdm bar (windows/s).
    tr : TR in seconds (default: median step of ``run.tr_times``).
    pooling : pooling name (default: ``adapter.default_pooling``).
    window : ``"clip"`` or ``"context:SECONDS"`` (default: the adapter's, else clip).
    short : ``"repeat"`` / ``"raise"``: windows showing fewer distinct frames than
        ``adapter.n_frames``.
    chunk_windows : windows per committed chunk (default 256, rounded to the batch size).
    workers : preprocessing threads.
    report : a list; a :class:`RunReport` of this call is appended.

    Returns
    -------
    layer -> :class:`TimedFeatures` with ``data`` (n, p) float32 and ``times`` (n,): the
    run's TR times for frame/audio models, word midpoints for word models.
    """
    t0 = time.perf_counter()
    if layers is None:
        layers = list(adapter.layer_names)
    else:
        layers = list(dict.fromkeys(layers))
        unknown = [l for l in layers if l not in adapter.layer_names]
        if unknown:
            raise InputError(f"model {adapter.name!r} has no layers {unknown}; its layers are {adapter.layer_names}")
    if not layers:
        raise InputError("no layers requested")
    if batch_size is None:
        batch_size = int(getattr(adapter, "batch_size", 16))
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be >= 1; got {batch_size}")
    if device is not None:
        adapter.to(pick_device(device))
    pooling = pooling or adapter.default_pooling
    if pooling not in adapter.poolings:
        raise InputError(f"model {adapter.name!r} does not support pooling {pooling!r}; choose one of {list(adapter.poolings)}")
    plan = plan_windows(adapter, run, tr=tr, window=window, short=short)
    label = adapter.pooling_label(pooling)
    desc = f"{adapter.name} {getattr(run, 'name', '')}".strip()
    rep = RunReport(run=str(getattr(run, "name", "")), model=adapter.name, n_windows=len(plan),
                    short_windows=plan.short_windows, window=dict(plan.params))
    kw = dict(chunk_windows=chunk_windows, workers=workers, report=rep)

    if store is None:
        result = compute_features(adapter, plan, layers, pooling, batch_size, progress, desc, **kw)
    else:
        key = store.key(
            model=adapter.name,
            weights=adapter.weights.identity,
            pooling=label,
            window=plan.params,
            stimulus_files=plan.files,
            version=adapter.version,
        )
        rep.key, rep.folder = key.digest, str(store.folder(key))
        store.sweep(key)
        # verified reads: a corrupt layer is named in a warning, discarded and recomputed
        result, missing = store.load_valid(key, [l for l in layers if store.has(key, l)])
        missing = [l for l in layers if l not in result]
        cached = [l for l in layers if l in result]
        rep.cached_layers, rep.computed_layers = cached, list(missing)
        if missing:
            result.update(compute_features(adapter, plan, missing, pooling, batch_size, progress, desc,
                                           store=store, key=key, **kw))
        for l, tf in result.items():
            if len(tf) != len(plan):
                raise InputError(f"stored features of layer {l!r} have {len(tf)} rows; run {run.name!r} has {len(plan)} windows")
        result = {l: result[l] for l in layers}
    rep.seconds = time.perf_counter() - t0
    if report is not None:
        report.append(rep)
    return result


# --------------------------------------------------------------------------- stimulus files as runs


@dataclass(frozen=True)
class MediaRun:
    """A run made from stimulus files alone (no dataset): same fields as a StimulusRun.

    ``tr_times`` are ``(i + 0.5) * tr`` for every whole TR inside the shortest of the run's
    video/audio (empty without a TR: word models need none).
    """

    name: str
    tr_times: np.ndarray
    video: Path | None = None
    audio: Path | None = None
    words: Path | None = None

    @property
    def n_trs(self) -> int:
        return int(len(self.tr_times))


def _media_kind(p: Path) -> str | None:
    s = p.suffix.lower()
    return "video" if s in VIDEO_SUFFIXES else "audio" if s in AUDIO_SUFFIXES else "words" if s in WORDS_SUFFIXES else None


def stimulus_runs(path: str | Path, tr: float | None = None) -> list[MediaRun]:
    """Runs from a stimulus file or a folder of them (files sharing a stem form one run).

    Parameters
    ----------
    path : a video (.mp4, .mkv...), audio (.wav, .flac...) or words (.tsv, .TextGrid) file,
        or a folder holding such files (not recursive).
    tr : the TR in seconds defining the sample grid; needed for video/audio models.
    """
    from mmneuro.stimuli.video import read_video_info

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _media_kind(p))
        if not files:
            raise InputError(f"folder {path} holds no stimulus files ({', '.join(VIDEO_SUFFIXES + AUDIO_SUFFIXES + WORDS_SUFFIXES)})")
    elif path.is_file():
        if not _media_kind(path):
            raise InputError(f"{path} is not a stimulus file this tool reads "
                             f"({', '.join(VIDEO_SUFFIXES + AUDIO_SUFFIXES + WORDS_SUFFIXES)})")
        files = [path]
    else:
        raise InputError(f"stimuli {str(path)!r}: no such file or folder (and not a dataset name: 'demo', 'alice')")
    if tr is not None and not (np.isfinite(float(tr)) and float(tr) > 0):
        raise InputError(f"--tr must be a positive number of seconds; got {tr}")
    groups: dict[str, dict[str, Path]] = {}
    for f in files:
        kind = _media_kind(f)
        g = groups.setdefault(f.stem, {})
        if kind in g:
            raise InputError(f"two {kind} files share the stem {f.stem!r}: {g[kind].name} and {f.name}")
        g[kind] = f
    runs = []
    for stem, g in groups.items():
        durations = []
        if "video" in g:
            durations.append(read_video_info(g["video"]).duration)
        if "audio" in g:
            durations.append(_audio_duration(g["audio"]))
        if tr is not None and durations:
            n = int(np.floor(min(durations) / float(tr) + 1e-9))
            tr_times = (np.arange(n) + 0.5) * float(tr)
        else:
            tr_times = np.zeros(0)
        runs.append(MediaRun(stem, tr_times, g.get("video"), g.get("audio"), g.get("words")))
    return runs
