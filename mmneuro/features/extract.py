"""The extraction driver: stimulus run -> windows -> batches -> pooled layer features.

``extract_run(adapter, run)`` builds one window per sample according to the adapter's
``input_kind``:

- ``"frames"``: one window per TR, ``[t - tr/2, t + tr/2)`` around each ``run.tr_times``
  entry (clipped to the video), ``adapter.n_frames`` frames sampled uniformly inside;
- ``"waveform"``: the same TR windows of audio at ``adapter.sample_rate``;
- ``"frames+waveform"``: both;
- ``"words"``: one window per word (the ``adapter.n_context`` preceding words + the word),
  stamped with the word's midpoint.

Media are decoded and preprocessed in a background thread while the model runs; batches
run under ``torch.inference_mode()`` (bf16 autocast on CUDA only). With a
:class:`~mmneuro.features.store.FeatureStore`, stored layers are read back and only the
missing ones are computed.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from mmneuro.errors import InputError
from mmneuro.models.base import ModelAdapter, TimedFeatures, WindowInput, pick_device

__all__ = ["TimedFeatures", "WindowPlan", "extract_run", "plan_windows", "infer_tr"]

#: bytes of raw decoded frames held at once (frames are decoded chunk by chunk)
FRAME_BUDGET_BYTES = 1 << 30


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
    make : callable(indices) -> list of :class:`WindowInput` for those windows.
    """

    times: np.ndarray
    spans: np.ndarray
    files: list[Path]
    params: dict[str, Any]
    make: Callable[[Sequence[int]], list[WindowInput]] = field(repr=False)
    chunk: int = 1 << 30  # windows decoded together at most

    def __len__(self) -> int:
        return int(len(self.times))


def _clip_spans(spans: np.ndarray, duration: float, what: str, path: Path, times: np.ndarray) -> np.ndarray:
    clipped = np.stack([np.maximum(spans[:, 0], 0.0), np.minimum(spans[:, 1], duration)], axis=1)
    bad = np.nonzero(clipped[:, 1] <= clipped[:, 0])[0]
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"{len(bad)} TR window(s) lie outside the {what} {path} ({duration:.3f} s long): the first is TR {i} at "
            f"t={times[i]:.3f} s, window [{spans[i, 0]:.3f}, {spans[i, 1]:.3f}) s. Trim the run's tr_times to the stimulus."
        )
    return clipped


def plan_windows(adapter: ModelAdapter, run, tr: float | None = None) -> WindowPlan:
    """Build the windows of ``run`` that ``adapter`` reads (see module docstring)."""
    from mmneuro.stimuli.windows import tr_windows, uniform_frame_times

    kind = adapter.input_kind
    if kind == "words":
        from mmneuro.stimuli.words import read_words

        if run.words is None:
            raise InputError(f"run {run.name!r} has no words file, but model {adapter.name!r} reads words")
        words = read_words(run.words)
        if len(words) == 0:
            raise InputError(f"words file {run.words} of run {run.name!r} holds no words")
        n_ctx = int(adapter.n_context)
        w = list(words.words)

        def make_words(idx):
            out = []
            for i in idx:
                lo = max(0, i - n_ctx)
                out.append(WindowInput(text=w[lo : i + 1], target_word_span=(i - lo, i - lo + 1)))
            return out

        return WindowPlan(
            times=words.midpoints.astype(np.float64),
            spans=np.stack([words.onsets, words.offsets], axis=1),
            files=[Path(run.words)],
            params=adapter.window_params(),
            make=make_words,
        )

    if kind not in ("frames", "waveform", "frames+waveform"):
        raise InputError(f"model {adapter.name!r} has unknown input_kind {kind!r}")
    tr_times = np.asarray(run.tr_times, dtype=np.float64)
    if len(tr_times) == 0:
        raise InputError(f"run {run.name!r} has no TR times")
    tr = float(tr) if tr is not None else infer_tr(tr_times)
    spans = tr_windows(tr_times, tr)
    params = dict(adapter.window_params())
    params["tr"] = tr
    params["tr_times_sha"] = _array_digest(tr_times)
    files: list[Path] = []
    frame_spans = audio_spans = None
    wav = sr = None
    chunk = 1 << 30

    if "frames" in kind:
        from mmneuro.stimuli.video import read_video_info

        if run.video is None:
            raise InputError(f"run {run.name!r} has no video file, but model {adapter.name!r} reads frames")
        info = read_video_info(run.video)
        frame_spans = _clip_spans(spans, info.duration, "video", Path(run.video), tr_times)
        files.append(Path(run.video))
        per_window = max(1, int(adapter.n_frames)) * info.width * info.height * 3
        chunk = max(1, FRAME_BUDGET_BYTES // per_window)
    if "waveform" in kind:
        from mmneuro.stimuli.audio import read_audio

        if run.audio is None:
            raise InputError(f"run {run.name!r} has no audio file, but model {adapter.name!r} reads audio")
        wav, sr = read_audio(run.audio, sample_rate=int(adapter.sample_rate))
        audio_spans = _clip_spans(spans, len(wav) / sr, "audio", Path(run.audio), tr_times)
        files.append(Path(run.audio))

    video_path = Path(run.video) if frame_spans is not None else None
    n_frames = int(adapter.n_frames)

    def make_av(idx):
        idx = list(idx)
        frames = None
        if frame_spans is not None:
            from mmneuro.stimuli.video import read_frames

            ft = np.concatenate([uniform_frame_times(*frame_spans[i], n_frames) for i in idx])
            frames = read_frames(video_path, ft)
            frames = frames.reshape(len(idx), n_frames, *frames.shape[1:])
        out = []
        for j, i in enumerate(idx):
            wi = WindowInput()
            if frames is not None:
                wi.frames = frames[j]
            if audio_spans is not None:
                a = int(round(audio_spans[i, 0] * sr))
                b = int(round(audio_spans[i, 1] * sr))
                wi.waveform = wav[a:b]
                wi.sample_rate = sr
            out.append(wi)
        return out

    return WindowPlan(
        times=tr_times.copy(),
        spans=frame_spans if frame_spans is not None else audio_spans,
        files=files,
        params=params,
        make=make_av,
        chunk=chunk,
    )


def _array_digest(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float64).tobytes()).hexdigest()[:16]


def _iter_batches(adapter: ModelAdapter, plan: WindowPlan, batch_size: int) -> Iterator[tuple[int, dict]]:
    """Yield (n_windows, collated batch) in window order; decodes ``plan.chunk`` windows at a time."""
    n = len(plan)
    step = plan.chunk if plan.chunk < batch_size else (plan.chunk // batch_size) * batch_size
    step = max(1, min(step, n))
    for c0 in range(0, n, step):
        idx = range(c0, min(n, c0 + step))
        windows = plan.make(idx)
        for b0 in range(0, len(windows), batch_size):
            part = windows[b0 : b0 + batch_size]
            yield len(part), adapter.collate([adapter.preprocess(w) for w in part])


def _prefetch(gen: Iterator, depth: int = 2) -> Iterator:
    """Run ``gen`` in a background thread, ``depth`` items ahead; re-raise its errors here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            for item in gen:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("done", done))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(("error", e))

    t = threading.Thread(target=work, name="mmneuro-decode", daemon=True)
    t.start()
    try:
        while True:
            tag, item = q.get()
            if tag == "item":
                yield item
            elif tag == "error":
                raise item
            else:
                return
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            t.join(timeout=0.05)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def compute_features(
    adapter: ModelAdapter,
    plan: WindowPlan,
    layers: Sequence[str],
    pooling: str | None = None,
    batch_size: int = 16,
    progress: bool = True,
    desc: str = "",
) -> dict[str, TimedFeatures]:
    """Run ``adapter`` over every window of ``plan``; pooled features of ``layers``."""
    from tqdm.auto import tqdm

    pooling = pooling or adapter.default_pooling
    label = adapter.pooling_label(pooling)
    device = adapter.device
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    )
    chunks: dict[str, list[np.ndarray]] = {l: [] for l in layers}
    bar = tqdm(total=len(plan), unit="win", desc=desc or adapter.name, disable=not progress, leave=False)
    try:
        with torch.inference_mode():
            for n, batch in _prefetch(_iter_batches(adapter, plan, int(batch_size))):
                with autocast:
                    out = adapter.forward(_to_device(batch, device))
                pooled = adapter.pool(out, pooling, layers=layers)
                for l in layers:
                    if pooled[l].shape[0] != n:
                        raise InputError(f"model {adapter.name!r} returned {pooled[l].shape[0]} rows for {n} windows")
                    chunks[l].append(pooled[l])
                bar.update(n)
    finally:
        bar.close()
    return {
        l: TimedFeatures(
            data=np.concatenate(chunks[l], axis=0),
            times=plan.times,
            pooling=label,
            layer=l,
            model=adapter.name,
            weights=adapter.weights.identity,
        )
        for l in layers
    }


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
) -> dict[str, TimedFeatures]:
    """Pooled features of ``run`` for ``layers`` of ``adapter``.

    Parameters
    ----------
    adapter : a :class:`~mmneuro.models.base.ModelAdapter`.
    run : a :class:`~mmneuro.datasets.base.StimulusRun`.
    layers : layer names (default: all of ``adapter.layer_names``).
    store : a :class:`~mmneuro.features.store.FeatureStore`, or None for no caching.
    batch_size : windows per forward pass (default: ``adapter.batch_size``: 16 for ViT,
        64 for text models, 32 for the mel spectrogram).
    device : move the adapter there first (None: leave it where it is; adapters start on
        CUDA when available).
    progress : show a tqdm bar (windows/s).
    tr : TR in seconds for TR windows (default: median step of ``run.tr_times``).
    pooling : pooling name (default: ``adapter.default_pooling``).

    Returns
    -------
    layer -> :class:`TimedFeatures` with ``data`` (n, p) float32 and ``times`` (n,): the
    run's TR times for frame/audio models, word midpoints for word models.
    """
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
    plan = plan_windows(adapter, run, tr=tr)
    label = adapter.pooling_label(pooling)
    desc = f"{adapter.name} {getattr(run, 'name', '')}".strip()

    if store is None:
        return compute_features(adapter, plan, layers, pooling, batch_size, progress, desc)

    key = store.key(
        model=adapter.name,
        weights=adapter.weights.identity,
        pooling=label,
        window=plan.params,
        stimulus_files=plan.files,
        version=adapter.version,
    )
    missing = store.missing(key, layers)
    cached = [l for l in layers if l not in missing]
    result = store.load(key, cached) if cached else {}
    if missing:
        fresh = compute_features(adapter, plan, missing, pooling, batch_size, progress, desc)
        store.save(key, fresh)
        result.update(fresh)
    for l, tf in result.items():
        if len(tf) != len(plan):
            raise InputError(f"stored features of layer {l!r} have {len(tf)} rows; run {run.name!r} has {len(plan)} windows")
    return {l: result[l] for l in layers}
