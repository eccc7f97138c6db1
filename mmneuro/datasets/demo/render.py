"""Rendering a timeline into video frames and audio samples."""

from __future__ import annotations

import numpy as np

from mmneuro.datasets.demo.spec import COLOURS, FPS, SAMPLE_RATE, SIZE
from mmneuro.datasets.demo.timeline import Timeline


def frame_times(n_frames: int) -> np.ndarray:
    """Centres of the frame intervals, seconds: frame k is on screen over [k, k+1) / FPS."""
    return (np.arange(n_frames) + 0.5) / FPS


def render_frames(timeline: Timeline, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw the video.

    Returns
    -------
    frames : (n_frames, SIZE, SIZE, 3) uint8 RGB, the scene at each frame centre.
    coverage : (n_frames,) float64 fraction of pixels covered by objects.
    """
    t = frame_times(n_frames)
    scene = np.searchsorted(timeline.cuts, t, side="right") - 1
    frames = np.empty((n_frames, SIZE, SIZE, 3), dtype=np.uint8)
    frames[:] = timeline.backgrounds[scene][:, None, None, :]
    covered = np.zeros((n_frames, SIZE, SIZE), dtype=bool)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) + 0.5
    for obj in timeline.objects:
        k0, k1 = np.searchsorted(t, [obj.onset, obj.offset], side="left")
        if k1 <= k0:
            continue
        cx, cy = obj.position(t[k0:k1])
        dx = xx[None] - cx[:, None, None]
        dy = yy[None] - cy[:, None, None]
        if obj.shape == "circle":
            inside = dx * dx + dy * dy <= obj.radius**2
        else:
            inside = (np.abs(dx) <= obj.radius) & (np.abs(dy) <= obj.radius)
        frames[k0:k1][inside] = COLOURS[obj.colour][1]
        covered[k0:k1] |= inside
    return frames, covered.mean(axis=(1, 2))


def _ramp(n: int, ramp: int) -> np.ndarray:
    env = np.ones(n)
    r = min(ramp, n // 2)
    if r > 0:
        edge = 0.5 - 0.5 * np.cos(np.pi * (np.arange(r) + 0.5) / r)
        env[:r] = edge
        env[n - r :] = edge[::-1]
    return env


# rough (F1, F2) of English vowels, Hz
_VOWELS = ((730, 1090), (270, 2290), (530, 1840), (660, 1720), (570, 840), (300, 870), (440, 1020), (490, 1350))


def _speech_word(word: str, f0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """A harmonic burst with a formant-shaped spectrum gliding between two vowels."""
    codes = [ord(c) for c in word]
    v1 = _VOWELS[sum(codes) % len(_VOWELS)]
    v2 = _VOWELS[sum((i + 1) * c for i, c in enumerate(codes)) % len(_VOWELS)]
    u = (np.arange(n) + 0.5) / n
    f0_t = f0 * (1.05 - 0.1 * u)
    phase = 2 * np.pi * np.cumsum(f0_t) / SAMPLE_RATE
    glide = u * u * (3 - 2 * u)  # smoothstep from vowel 1 to vowel 2
    f1 = v1[0] + (v2[0] - v1[0]) * glide
    f2 = v1[1] + (v2[1] - v1[1]) * glide
    k = np.arange(1, int(3800 // (1.05 * f0)) + 1)[:, None]
    fk = k * f0_t[None]
    amp = (
        np.exp(-0.5 * ((fk - f1) / 90.0) ** 2)
        + 0.7 * np.exp(-0.5 * ((fk - f2) / 120.0) ** 2)
        + 0.25 * np.exp(-0.5 * ((fk - 2500.0) / 200.0) ** 2)
        + 0.08 / k
    )
    x = (amp * np.sin(k * phase[None])).sum(axis=0)
    syllables = max(1, round(len(word) / 3))
    env = np.sin(np.pi * u) ** 0.6 * (0.7 + 0.3 * np.cos(2 * np.pi * syllables * u) ** 2)
    x *= env
    x /= np.abs(x).max() + 1e-12
    burst = min(n, int(0.025 * SAMPLE_RATE))  # consonant-like noise onset
    x[:burst] += 0.15 * rng.standard_normal(burst) * np.hanning(burst)
    return 0.22 * x


def synthesize_audio(timeline: Timeline, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Mix sounds and narration into (n_samples,) int16 PCM."""
    out = np.zeros(n_samples)
    ramp = int(0.015 * SAMPLE_RATE)
    for s in timeline.sounds:
        i0, i1 = int(round(s.onset * SAMPLE_RATE)), min(int(round(s.offset * SAMPLE_RATE)), n_samples)
        if i1 <= i0:
            continue
        tt = np.arange(i1 - i0) / SAMPLE_RATE
        if s.freq > 0:
            x = 0.1 * (np.sin(2 * np.pi * s.freq * tt) + 0.35 * np.sin(2 * np.pi * 2 * s.freq * tt))
        else:
            x = 0.07 * rng.standard_normal(i1 - i0)
        since = tt + s.onset - s.am_onset
        mod = 1.0 - 0.4 * (1.0 - np.cos(2 * np.pi * s.am_rate * np.clip(since, 0, None)))
        x *= np.where(since >= 0, mod, 1.0) * _ramp(i1 - i0, ramp)
        out[i0:i1] += x
    w = timeline.words
    for on, off, word, f0 in zip(w.onsets, w.offsets, w.words, timeline.f0):
        i0, i1 = int(round(on * SAMPLE_RATE)), min(int(round(off * SAMPLE_RATE)), n_samples)
        if i1 > i0:
            out[i0:i1] += _speech_word(word, f0, i1 - i0, rng)
    return np.rint(np.clip(out, -1.0, 32767 / 32768) * 32768).astype(np.int16)
