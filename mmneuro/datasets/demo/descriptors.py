"""Interpretable stimulus descriptors measured on the rendered media, and their HRF regressors."""

from __future__ import annotations

import numpy as np

from mmneuro.datasets.demo.spec import DESCRIPTORS, FPS, SAMPLE_RATE
from mmneuro.datasets.demo.timeline import Timeline
from mmneuro.datasets.demo.render import frame_times


def compute_descriptors(
    frames: np.ndarray, coverage: np.ndarray, wav: np.ndarray, timeline: Timeline
) -> dict[str, np.ndarray]:
    """Stimulus descriptors at the frame rate, measured on the rendered media.

    ``wav`` is int16 PCM (read back as ``wav / 32768``, as soundfile does). Returns name ->
    (n_frames,) float64; the value of frame k describes the interval [k, k+1) / FPS.
    """
    n = len(frames)
    luminance, colour, motion = np.zeros(n), np.zeros(n), np.zeros(n)
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    chunk = 256  # bounds memory: a run is ~1600 frames
    for k0 in range(0, n, chunk):
        k1 = min(k0 + chunk, n)
        r, g, b = (frames[k0:k1, :, :, c] for c in range(3))
        luminance[k0:k1] = (luma[0] * r + luma[1] * g + luma[2] * b).mean(axis=(1, 2)) / 255.0
        mx = np.maximum(np.maximum(r, g), b).astype(np.float32)
        mn = np.minimum(np.minimum(r, g), b).astype(np.float32)
        colour[k0:k1] = ((mx - mn) / np.maximum(mx, 1.0)).mean(axis=(1, 2))  # HSV saturation
        prev = frames[max(k0 - 1, 0) : k1].astype(np.int16)
        diff = np.abs(np.diff(prev, axis=0)).mean(axis=(1, 2, 3)) / 255.0
        motion[k1 - len(diff) : k1] = diff  # frame 0 keeps 0

    hop = SAMPLE_RATE // FPS
    x = wav[: n * hop].astype(np.float64).reshape(n, hop) / 32768.0
    envelope = np.sqrt((x**2).mean(axis=1))
    power = np.abs(np.fft.rfft(x * np.hanning(hop), axis=1)) ** 2
    freqs_khz = np.fft.rfftfreq(hop, 1.0 / SAMPLE_RATE) / 1000.0
    centroid = (power @ freqs_khz) / np.maximum(power.sum(axis=1), 1e-20)
    spectral = centroid * envelope / (envelope + 0.01)  # fades to 0 in silence

    t = frame_times(n)
    onsets = np.sort(timeline.words.onsets)
    word_rate = (np.searchsorted(onsets, t + 0.5) - np.searchsorted(onsets, t - 0.5)).astype(np.float64)

    congruence = timeline.congruent_at(t) * (coverage > 0) * envelope
    return {
        "luminance": luminance,
        "motion": motion,
        "colour": colour,
        "envelope": envelope,
        "spectral": spectral,
        "word_rate": word_rate,
        "congruence": congruence.astype(np.float64),
    }


def canonical_hrf(dt: float, length: float = 32.0) -> np.ndarray:
    """SPM canonical double-gamma HRF sampled every ``dt`` s (peak ~5 s, undershoot ~15 s), unit sum."""
    from scipy.stats import gamma

    t = np.arange(0.0, length, dt)
    h = gamma.pdf(t, 6.0) - gamma.pdf(t, 16.0) / 6.0
    return h / h.sum()


def hrf_regressors(descriptors: dict[str, np.ndarray], tr_times: np.ndarray) -> np.ndarray:
    """(n_trs, n_descriptors) descriptors convolved with the canonical HRF, sampled at tr_times.

    Nothing precedes the run (the convolution starts from zero at t = 0).
    """
    dt = 1.0 / FPS
    h = canonical_hrf(dt)
    cols = []
    for name in DESCRIPTORS:
        d = descriptors[name]
        conv = np.convolve(d, h)[: len(d)]
        cols.append(np.interp(tr_times, frame_times(len(d)), conv))
    return np.stack(cols, axis=1)
