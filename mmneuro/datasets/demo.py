"""The embedded demo dataset: a synthetic audiovisual "movie" and simulated BOLD with known truth.

:func:`generate_demo` writes a small study that looks like a real one (MP4 + WAV + word
TSV per stimulus run, BIDS-like 4D NIfTI per acquisition for three subjects, a brain mask in
MNI space) together with the ground truth it was built from; :func:`load_demo` reads it back
as a :class:`~mmneuro.datasets.base.Dataset`.

The generative model
--------------------
1. **Stimulus.** Each stimulus run is ``n_trs * TR`` seconds of 128x128 video at 10 fps and
   16 kHz mono audio. Coloured circles and squares appear, move and vanish over flat
   backgrounds that change at scene cuts (every 6-20 s). The run alternates between
   audiovisually *congruent* blocks (each object sounds a tone whose pitch is fixed by its
   colour, starting and stopping with the object, amplitude-modulated while it moves; scene
   cuts sound a noise burst) and *incongruent* blocks (tones, noise bursts and
   amplitude-modulated sounds at random times and pitches, unrelated to the picture), blocks
   of 20-40 s. A narration describes the picture ("a red circle appears", "it moves left",
   "the scene changes"); each word is rendered as a harmonic burst with formant-shaped
   spectrum (speech-like, no TTS).
2. **Descriptors** are measured on the rendered media at the frame rate (frame centres
   ``(k + 0.5) / fps``): luminance, motion energy, colour saturation, audio RMS envelope,
   spectral centroid, word rate and audiovisual congruence.
3. **Regressors** = descriptors convolved with the SPM canonical double-gamma HRF, sampled at
   the run's ``tr_times = (i + 0.5) * TR`` and standardised with dataset-wide constants.
4. **BOLD** of voxel ``v`` in ROI ``r`` = baseline (1000) + quadratic drift + AR(1) noise
   (rho 0.4, sd 10) + ``regressors @ w_v`` with positive per-subject weights on the
   descriptors that drive ``r``, scaled so that mean signal variance / noise variance = 0.5
   over the ROI voxels. Voxels outside the ROIs carry no signal. The noise is independent per
   subject and per acquisition; both presentations of the test run share the signal.
"""

from __future__ import annotations

import colorsys
import gzip
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmneuro.brain.atlas import mni152_mask
from mmneuro.datasets.base import Dataset, Responses, StimulusRun
from mmneuro.errors import InputError
from mmneuro.stimuli.words import Words

GENERATOR_VERSION = "1.0"

TR = 1.49
FPS = 10
SIZE = 128
SAMPLE_RATE = 16000
SUBJECTS = ("01", "02", "03")


@dataclass(frozen=True)
class RunSpec:
    name: str
    split: str
    n_trs: int

    @property
    def duration(self) -> float:
        return self.n_trs * TR

    @property
    def n_frames(self) -> int:
        return int(round(self.duration * FPS))

    @property
    def n_samples(self) -> int:
        return int(round(self.duration * SAMPLE_RATE))

    @property
    def tr_times(self) -> np.ndarray:
        return (np.arange(self.n_trs) + 0.5) * TR


RUNS = (
    RunSpec("train-01", "train", 110),
    RunSpec("train-02", "train", 110),
    RunSpec("train-03", "train", 110),
    RunSpec("train-04", "train", 110),
    RunSpec("test-01", "test", 80),
)
# acquisition (BIDS run number) -> stimulus run; the test run is presented twice
ACQUISITIONS = ((1, "train-01"), (2, "train-02"), (3, "train-03"), (4, "train-04"), (5, "test-01"), (6, "test-01"))

DESCRIPTORS = ("luminance", "motion", "colour", "envelope", "spectral", "word_rate", "congruence")

# ROI -> (sphere centres in MNI mm, descriptor weights)
ROI_RADIUS_MM = 12.0
ROIS: dict[str, tuple[tuple[tuple[float, float, float], ...], dict[str, float]]] = {
    "visual": (((-12, -90, 0), (12, -90, 0)), {"luminance": 1.0, "colour": 0.7}),
    "motion": (((-45, -70, 2), (45, -70, 2)), {"motion": 1.0}),
    "auditory": (((-52, -20, 6), (52, -20, 6)), {"envelope": 1.0, "spectral": 0.6}),
    "multisensory": (((-52, -45, 10), (52, -45, 10)), {"congruence": 1.0, "envelope": 0.25, "motion": 0.25}),
    "language": (((-48, 20, 12), (-50, 10, -25)), {"word_rate": 1.0}),
}

SNR = 0.5  # var(signal) within an acquisition / var(noise), averaged over acquisitions and ROI voxels
AR_RHO = 0.4
NOISE_SD = 10.0  # stationary sd of the AR(1) noise, BOLD units (1 % of baseline)
BASELINE = 1000.0
DRIFT_SD = (2.0 * NOISE_SD, 1.0 * NOISE_SD)  # sd of linear and quadratic Legendre drift amplitudes
SCL_SLOPE = NOISE_SD / 3.0  # int16 quantum; quantisation adds ~1 % to the noise variance
WEIGHT_JITTER = 0.3  # per-voxel, per-subject weights are base * U(1 - j, 1 + j)
DELAYS = (1, 2, 3, 4, 5, 6)
GZIP_LEVEL = 6

# object colours (RGB), their names and the tone pitch they sound in congruent blocks
COLOURS = (
    ("red", (220, 40, 40), 262.0),
    ("orange", (240, 140, 20), 330.0),
    ("yellow", (235, 220, 40), 392.0),
    ("green", (40, 180, 60), 523.0),
    ("blue", (40, 80, 230), 659.0),
    ("purple", (150, 60, 200), 784.0),
)
SHAPES = ("circle", "square")
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}

# seed streams: np.random.default_rng([seed, STREAM, ...]) keeps each part independent
_STREAM_TIMELINE, _STREAM_AUDIO, _STREAM_WEIGHTS, _STREAM_NOISE = 1, 2, 3, 4


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *keys])


# ----------------------------------------------------------------------------- timeline


@dataclass
class MovingObject:
    onset: float
    offset: float
    colour: int
    shape: str
    radius: float
    x0: float
    y0: float
    move_onset: float = np.inf  # inf: never moves
    direction: str | None = None
    speed: float = 0.0  # pixels per second

    def position(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        moving = np.clip(np.asarray(t, dtype=np.float64) - self.move_onset, 0.0, None)
        dx, dy = DIRECTIONS[self.direction] if self.direction else (0.0, 0.0)
        return self.x0 + dx * self.speed * moving, self.y0 + dy * self.speed * moving


@dataclass
class Sound:
    kind: str  # "tone", "noise" or "am"
    onset: float
    offset: float
    freq: float = 0.0  # tone / AM carrier pitch, Hz (0 = noise carrier)
    am_onset: float = np.inf  # modulation starts here (tones of moving objects)
    am_rate: float = 5.0


@dataclass
class Timeline:
    """Everything that happens in one stimulus run (seconds on the run's clock)."""

    duration: float
    cuts: np.ndarray  # scene onsets, first is 0
    backgrounds: np.ndarray  # (n_scenes, 3) uint8
    blocks: list[tuple[float, float, bool]]  # (start, end, congruent)
    objects: list[MovingObject]
    sounds: list[Sound]
    words: Words
    f0: list[float] = field(default_factory=list)  # narration pitch per word

    def congruent_at(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        out = np.zeros(t.shape, dtype=bool)
        for start, end, congruent in self.blocks:
            if congruent:
                out |= (t >= start) & (t < end)
        return out

    def to_json(self) -> dict:
        return {
            "duration": self.duration,
            "scene_cuts": [round(float(c), 4) for c in self.cuts],
            "backgrounds_rgb": self.backgrounds.tolist(),
            "blocks": [{"start": round(s, 4), "end": round(e, 4), "congruent": c} for s, e, c in self.blocks],
            "objects": [
                {
                    "onset": round(o.onset, 4),
                    "offset": round(o.offset, 4),
                    "colour": COLOURS[o.colour][0],
                    "shape": o.shape,
                    "radius_px": round(o.radius, 3),
                    "start_xy_px": [round(o.x0, 3), round(o.y0, 3)],
                    "move_onset": None if not np.isfinite(o.move_onset) else round(o.move_onset, 4),
                    "direction": o.direction,
                    "speed_px_per_s": round(o.speed, 3),
                }
                for o in self.objects
            ],
            "sounds": [
                {
                    "kind": s.kind,
                    "onset": round(s.onset, 4),
                    "offset": round(s.offset, 4),
                    "freq_hz": round(s.freq, 3),
                    "am_onset": None if not np.isfinite(s.am_onset) else round(s.am_onset, 4),
                    "am_rate_hz": round(s.am_rate, 3),
                }
                for s in self.sounds
            ],
        }


def _scenes(rng: np.random.Generator, duration: float) -> tuple[np.ndarray, np.ndarray]:
    cuts = [0.0]
    while True:
        t = cuts[-1] + rng.uniform(6.0, 20.0)
        if t > duration - 3.0:
            break
        cuts.append(t)
    backgrounds = []
    value = rng.uniform(0.15, 0.9)
    for _ in cuts:
        hue, sat = rng.uniform(0, 1), rng.uniform(0.1, 0.45)
        new = rng.uniform(0.12, 0.9)
        while abs(new - value) < 0.2:  # each cut changes the luminance visibly
            new = rng.uniform(0.12, 0.9)
        value = new
        backgrounds.append([round(255 * c) for c in colorsys.hsv_to_rgb(hue, sat, value)])
    return np.asarray(cuts), np.asarray(backgrounds, dtype=np.uint8)


def _blocks(rng: np.random.Generator, duration: float) -> list[tuple[float, float, bool]]:
    blocks, t, congruent = [], 0.0, bool(rng.random() < 0.5)
    while t < duration:
        end = min(t + rng.uniform(20.0, 40.0), duration)
        if duration - end < 10.0:  # no stub block at the end
            end = duration
        blocks.append((t, end, congruent))
        t, congruent = end, not congruent
    return blocks


def _objects(rng: np.random.Generator, duration: float) -> list[MovingObject]:
    objects: list[MovingObject] = []
    t = rng.uniform(0.5, 2.0)
    while t < duration - 3.0:
        if rng.random() < 0.2:  # an empty, silent stretch
            t += rng.uniform(4.0, 8.0)
            continue
        onset = t
        offset = min(onset + rng.uniform(3.0, 8.0), duration - 0.5)
        active = [o for o in objects if o.offset > onset]
        if len(active) >= 2:
            t = min(o.offset for o in active) + 0.3
            continue
        radius = rng.uniform(9.0, 18.0)
        lo, hi = radius + 2.0, SIZE - radius - 2.0
        obj = MovingObject(
            onset=onset,
            offset=offset,
            colour=int(rng.integers(len(COLOURS))),
            shape=SHAPES[int(rng.integers(2))],
            radius=radius,
            x0=rng.uniform(lo, hi),
            y0=rng.uniform(lo, hi),
        )
        move_onset = onset + rng.uniform(1.0, 2.0)
        if rng.random() < 0.7 and move_onset < offset - 1.0:
            direction = list(DIRECTIONS)[int(rng.integers(4))]
            speed = min(rng.uniform(15.0, 40.0), (hi - lo - 1.0) / (offset - move_onset))
            distance = speed * (offset - move_onset)
            dx, dy = DIRECTIONS[direction]
            # start where the whole path stays inside the frame
            if dx:
                obj.x0 = rng.uniform(lo, hi - distance) if dx > 0 else rng.uniform(lo + distance, hi)
            else:
                obj.y0 = rng.uniform(lo, hi - distance) if dy > 0 else rng.uniform(lo + distance, hi)
            obj.move_onset, obj.direction, obj.speed = move_onset, direction, speed
        objects.append(obj)
        t = onset + rng.uniform(1.0, 4.0)
    return objects


def _sounds(rng, duration, cuts, blocks, objects) -> list[Sound]:
    sounds: list[Sound] = []
    for start, end, congruent in blocks:
        if congruent:
            for o in objects:
                if start <= o.onset < end:
                    sounds.append(Sound("tone", o.onset, o.offset, COLOURS[o.colour][2], o.move_onset, 5.0))
            for c in cuts[1:]:
                if start <= c < end:
                    sounds.append(Sound("noise", float(c), min(float(c) + 0.3, duration)))
            continue
        t = start + rng.uniform(0.0, 1.0)
        while t < end - 0.3:
            if rng.random() < 0.25:  # silence stretch
                t += rng.uniform(3.0, 7.0)
                continue
            kind = ("tone", "noise", "am")[int(rng.choice(3, p=[0.45, 0.25, 0.3]))]
            length = {"tone": rng.uniform(0.5, 3.0), "noise": rng.uniform(0.15, 0.6), "am": rng.uniform(1.0, 3.0)}[kind]
            offset = min(t + length, end)
            if kind == "tone":
                sounds.append(Sound("tone", t, offset, float(rng.uniform(200.0, 1000.0))))
            elif kind == "noise":
                sounds.append(Sound("noise", t, offset))
            else:
                carrier = float(rng.uniform(200.0, 1000.0)) if rng.random() < 0.5 else 0.0
                sounds.append(Sound("am", t, offset, carrier, t, float(rng.uniform(3.0, 8.0))))
            t = offset + rng.uniform(0.3, 2.5)
    sounds.sort(key=lambda s: s.onset)
    return sounds


def _word_duration(word: str) -> float:
    return 0.16 + 0.045 * len(word)


def _narration(rng, duration, cuts, objects) -> tuple[Words, list[float]]:
    """Phrases describing visual events, spoken one after another shortly after each event."""
    phrases: list[tuple[float, list[str]]] = []
    for c in cuts[1:]:
        phrases.append((float(c) + 0.3, ["the", "scene", "changes"]))
    for o in objects:
        name = [COLOURS[o.colour][0], o.shape]
        phrases.append((o.onset + 0.25, ["a", *name, "appears"]))
        if o.direction:
            phrases.append((o.move_onset + 0.2, ["it", "moves", o.direction]))
        phrases.append((o.offset + 0.2, ["the", *name, "vanishes"]))
    phrases.sort(key=lambda p: p[0])
    onsets, offsets, words, f0s = [], [], [], []
    free = 0.0
    for wanted, phrase in phrases:
        start = max(wanted, free)
        length = sum(_word_duration(w) for w in phrase) + 0.06 * (len(phrase) - 1)
        if start - wanted > 2.0 or start + length > duration - 0.1:
            continue  # the narrator skips events it cannot describe in time
        f0 = rng.uniform(110.0, 150.0)
        t = start
        for i, w in enumerate(phrase):
            d = _word_duration(w)
            on, dur = round(t, 4), round(d, 4)
            onsets.append(on)
            offsets.append(round(on + dur, 4))
            words.append(w)
            f0s.append(f0 * (1.0 - 0.15 * i / max(len(phrase), 1)))  # declination
            t += d + 0.06
        free = t + 0.3
    return Words(np.asarray(onsets), np.asarray(offsets), words), f0s


def make_timeline(rng: np.random.Generator, duration: float) -> Timeline:
    """Draw scenes, congruence blocks, objects, sounds and narration for one run."""
    cuts, backgrounds = _scenes(rng, duration)
    blocks = _blocks(rng, duration)
    objects = _objects(rng, duration)
    sounds = _sounds(rng, duration, cuts, blocks, objects)
    words, f0 = _narration(rng, duration, cuts, objects)
    return Timeline(duration, cuts, backgrounds, blocks, objects, sounds, words, f0)


# ----------------------------------------------------------------------------- rendering


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


# ----------------------------------------------------------------------------- descriptors


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


# ----------------------------------------------------------------------------- media writers


def write_mp4(path: Path, frames: np.ndarray) -> None:
    """H.264 (yuv420p) MP4 at FPS; frame k has presentation time k / FPS."""
    import av
    from fractions import Fraction

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for k, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = k, Fraction(1, FPS)
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))


def write_wav(path: Path, wav: np.ndarray) -> None:
    import soundfile as sf

    sf.write(str(path), wav, SAMPLE_RATE, subtype="PCM_16")


def write_words_tsv(path: Path, words: Words) -> None:
    lines = ["onset\tduration\tword"]
    for on, off, w in zip(words.onsets, words.offsets, words.words):
        lines.append(f"{on:.4f}\t{off - on:.4f}\t{w}")
    path.write_text("\n".join(lines) + "\n")


def _write_nifti_gz(path: Path, img) -> None:
    # gzip with mtime=0 so identical images give identical bytes
    path.write_bytes(gzip.compress(img.to_bytes(), compresslevel=GZIP_LEVEL, mtime=0))


def _savez(path: Path, **arrays) -> None:
    """Like ``np.savez_compressed`` but with fixed zip timestamps, so equal arrays give equal bytes."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


# ----------------------------------------------------------------------------- brain


def roi_labels(mask_img) -> np.ndarray:
    """(n_voxels,) int over in-mask voxels (C order): index into ``list(ROIS)``, -1 outside ROIs.

    A voxel inside spheres of several ROIs goes to the ROI of the nearest centre, so the ROIs
    are disjoint.
    """
    mask = np.asarray(mask_img.dataobj).astype(bool)
    ijk = np.argwhere(mask)  # C order, same as mask_data[mask]
    xyz = ijk @ mask_img.affine[:3, :3].T + mask_img.affine[:3, 3]
    best = np.full(len(xyz), np.inf)
    labels = np.full(len(xyz), -1, dtype=np.int64)
    for r, (centres, _) in enumerate(ROIS.values()):
        for c in centres:
            d = np.linalg.norm(xyz - np.asarray(c, dtype=np.float64), axis=1)
            take = (d <= ROI_RADIUS_MM) & (d < best)
            labels[take], best[take] = r, d[take]
    return labels


def _base_weights() -> np.ndarray:
    """(n_rois, n_descriptors) descriptor weights driving each ROI."""
    w = np.zeros((len(ROIS), len(DESCRIPTORS)))
    for r, (_, drives) in enumerate(ROIS.values()):
        for name, value in drives.items():
            w[r, DESCRIPTORS.index(name)] = value
    return w


def subject_weights(seed: int, subject_index: int, labels: np.ndarray, designs: list[np.ndarray]) -> np.ndarray:
    """(n_descriptors, n_roi_voxels) positive weights for the ROI voxels of one subject.

    ``labels`` are the ROI labels of the ROI voxels (>= 0); ``designs`` holds the
    (n_trs, n_descriptors) regressors of every acquisition. Each ROI is scaled so that the
    signal variance within an acquisition, averaged over acquisitions and the ROI's voxels,
    is ``SNR * NOISE_SD**2``.
    """
    rng = _rng(seed, _STREAM_WEIGHTS, subject_index)
    base = _base_weights()[labels].T  # (n_desc, n_vox)
    w = base * rng.uniform(1.0 - WEIGHT_JITTER, 1.0 + WEIGHT_JITTER, size=base.shape)
    var = np.mean([(x @ w).var(axis=0) for x in designs], axis=0)
    for r in range(len(ROIS)):
        cols = labels == r
        if cols.any():
            w[:, cols] *= np.sqrt(SNR * NOISE_SD**2 / var[cols].mean())
    return w


def simulate_acquisition(
    seed: int, subject_index: int, acquisition: int, n_voxels: int, signal: np.ndarray, signal_idx: np.ndarray
) -> np.ndarray:
    """(n_trs, n_voxels) BOLD in physical units: baseline + drift + AR(1) noise + signal.

    ``signal`` is (n_trs, len(signal_idx)), added to the columns ``signal_idx``. Drift and
    noise are drawn from a stream of their own for each (seed, subject, acquisition).
    """
    rng = _rng(seed, _STREAM_NOISE, subject_index, acquisition)
    n_trs = len(signal)
    innov = rng.standard_normal((n_trs, n_voxels)) * (NOISE_SD * np.sqrt(1 - AR_RHO**2))
    noise = np.empty_like(innov)
    noise[0] = rng.standard_normal(n_voxels) * NOISE_SD  # stationary start
    for i in range(1, n_trs):
        noise[i] = AR_RHO * noise[i - 1] + innov[i]
    x = np.linspace(-1.0, 1.0, n_trs)[:, None]
    a1 = rng.standard_normal(n_voxels) * DRIFT_SD[0]
    a2 = rng.standard_normal(n_voxels) * DRIFT_SD[1]
    y = BASELINE + a1 * x + a2 * (1.5 * x * x - 0.5) + noise
    y[:, signal_idx] += signal
    return y


def bold_image(y: np.ndarray, mask: np.ndarray, affine: np.ndarray):
    """4D int16 NIfTI (scl_slope = SCL_SLOPE, MNI codes, TR in pixdim) of (n_trs, n_voxels) BOLD."""
    import nibabel as nib

    vol = np.zeros(mask.shape + (y.shape[0],), dtype=np.int16)
    vol[mask] = np.rint(y / SCL_SLOPE).astype(np.int16).T
    img = nib.Nifti1Image(vol, affine)
    img.header.set_slope_inter(SCL_SLOPE, 0.0)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = TR
    img.set_sform(affine, code="mni")
    img.set_qform(affine, code="mni")
    return img


# ----------------------------------------------------------------------------- driver


@dataclass
class RenderedRun:
    spec: RunSpec
    timeline: Timeline
    frames: np.ndarray
    wav: np.ndarray
    descriptors: dict[str, np.ndarray]


def build_run(seed: int, index: int, spec: RunSpec) -> RenderedRun:
    """Draw, render and measure one stimulus run (deterministic in ``seed`` and ``index``)."""
    timeline = make_timeline(_rng(seed, _STREAM_TIMELINE, index), spec.duration)
    frames, coverage = render_frames(timeline, spec.n_frames)
    wav = synthesize_audio(timeline, spec.n_samples, _rng(seed, _STREAM_AUDIO, index))
    descriptors = compute_descriptors(frames, coverage, wav, timeline)
    return RenderedRun(spec, timeline, frames, wav, descriptors)


def _bids_stem(subject: str, acq: int) -> str:
    return f"sub-{subject}_task-demo_run-{acq}"


def _description(seed: int, n_mask: int, roi_counts: dict[str, int], stats) -> dict:
    return {
        "Name": "mmneuro demo: synthetic audiovisual movie with simulated BOLD",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "GeneratedBy": [{"Name": "mmneuro.datasets.demo", "Version": GENERATOR_VERSION}],
        "name": "demo",
        "seed": int(seed),
        "generator_version": GENERATOR_VERSION,
        "tr": TR,
        "fps": FPS,
        "frame_size": [SIZE, SIZE],
        "sample_rate": SAMPLE_RATE,
        "subjects": list(SUBJECTS),
        "runs": [
            {
                "name": s.name,
                "split": s.split,
                "n_trs": s.n_trs,
                "duration_s": round(s.duration, 6),
                "acquisitions": [a for a, r in ACQUISITIONS if r == s.name],
            }
            for s in RUNS
        ],
        "acquisitions": [{"run": a, "stimulus_run": r} for a, r in ACQUISITIONS],
        "n_acquired_trs": int(sum(next(s for s in RUNS if s.name == r).n_trs for _, r in ACQUISITIONS)),
        "tr_times": "(i + 0.5) * tr on the stimulus clock of the run (0 = start of its media)",
        "evaluation": "heldout",
        "delays": list(DELAYS),
        "snr": SNR,
        "snr_definition": "var(signal) within an acquisition / var(noise), averaged over acquisitions and ROI voxels (per ROI)",
        "ar_rho": AR_RHO,
        "noise_sd": NOISE_SD,
        "baseline": BASELINE,
        "drift_sd": {"linear": DRIFT_SD[0], "quadratic": DRIFT_SD[1]},
        "scl_slope": SCL_SLOPE,
        "hrf": "SPM canonical double gamma (gamma(6) - gamma(16)/6, unit sum), 32 s at 0.1 s",
        "descriptors": list(DESCRIPTORS),
        "descriptor_mean": dict(zip(DESCRIPTORS, map(float, stats[0]))),
        "descriptor_std": dict(zip(DESCRIPTORS, map(float, stats[1]))),
        "n_voxels_in_mask": int(n_mask),
        "rois": {
            name: {
                "centres_mm": [list(c) for c in centres],
                "radius_mm": ROI_RADIUS_MM,
                "drives": drives,
                "n_voxels": roi_counts[name],
            }
            for name, (centres, drives) in ROIS.items()
        },
        "weight_jitter": WEIGHT_JITTER,
        "space": "MNI152 (nilearn template), 4 mm grid: nilearn.datasets.load_mni152_brain_mask(resolution=4)",
    }


_GT_README = """# Ground truth of the mmneuro demo dataset

Generated by `mmneuro.datasets.demo` version {version} with seed {seed}.

## Stimulus

Each stimulus run is n_trs x {tr} s of 128x128 video at {fps} fps and 16 kHz mono audio.
Coloured circles and squares appear, move and vanish over flat backgrounds that change at
scene cuts (every 6-20 s). Congruent blocks (20-40 s): each object sounds a tone whose pitch
is set by its colour (red 262, orange 330, yellow 392, green 523, blue 659, purple 784 Hz)
from its appearance to its disappearance, amplitude-modulated at 5 Hz while it moves; scene
cuts sound a noise burst. Incongruent blocks: tones, noise bursts and amplitude-modulated
sounds at random times and pitches, unrelated to the picture. A narration ("a red circle
appears", "it moves left", "the red circle vanishes", "the scene changes") is rendered as
speech-like harmonic bursts with formant-shaped spectra; its timing is in
`../stimuli/<run>_words.tsv`. `timeline_<run>.json` lists every event.

## Generative model

For subject s, acquisition a (presentation of stimulus run r) and in-mask voxel v:

    BOLD[t, v] = {baseline} + a1_v * P1(t) + a2_v * P2(t) + noise[t, v] + signal[t, v]

* `P1`, `P2`: Legendre polynomials of degree 1 and 2 over the run (slow drift;
  a1 ~ N(0, {d1}^2), a2 ~ N(0, {d2}^2), new per voxel and acquisition).
* `noise`: AR(1), rho = {rho}, stationary sd = {sd}; independent per subject, acquisition
  and voxel (the two test presentations share the signal, not the noise).
* `signal[t, v] = regressors_r[t] @ weights_s[:, v]` for voxels in an ROI, 0 elsewhere.
* `regressors_r` (`regressors_<run>.npz`, key `regressors`): each descriptor of
  `descriptors_<run>.npz` (measured on the rendered media at {fps} Hz, value k over
  [k, k+1)/{fps} s) convolved with the SPM canonical double-gamma HRF
  (gamma(6) - gamma(16)/6, unit sum), sampled at tr_times = (i + 0.5) * {tr} by linear
  interpolation, then standardised with the dataset-wide mean/std (`mean`, `std`; the
  unstandardised values are under `raw`).
* `weights_s`: base ROI drive x U(1 - {jit}, 1 + {jit}) per voxel and subject, scaled per ROI so
  that var(signal) / {sd}^2 = SNR = {snr}, where var is taken within each acquisition and
  averaged over acquisitions and the ROI's voxels.
* Stored as int16 with scl_slope = {slope} (quantisation noise sd = slope / sqrt(12)).

## ROIs (spheres of radius {radius} mm in MNI mm, intersected with the brain mask, disjoint)

{rois}

## Descriptors

* luminance: mean Rec.601 luma of the frame, 0-1.
* motion: mean absolute difference from the previous frame, 0-1 (0 for frame 0).
* colour: mean HSV saturation of the frame.
* envelope: RMS of the audio samples of the frame interval (full scale 1).
* spectral: spectral centroid (kHz, Hann window) x envelope / (envelope + 0.01), so silence is 0.
* word_rate: narration word onsets within +-0.5 s of the frame centre, per second.
* congruence: (frame in a congruent block) x (an object is on screen) x envelope.

## Files

* `descriptors_<run>.npz`: `times` (frame centres, s) and one array per descriptor.
* `regressors_<run>.npz`: `regressors` (n_trs, n_descriptors), `raw`, `names`, `tr_times`, `mean`, `std`.
* `timeline_<run>.json`: scene cuts, congruence blocks, objects, sounds.
* `roi-<name>_mask.nii.gz`: ROI masks on the grid of `../mask.nii.gz`.
* `sub-XX_signal.npz`: `voxel_indices` (columns of the in-mask voxel order, NiftiMasker order),
  `roi_labels` (index into `roi_names`), `descriptor_names`, `weights` (n_descriptors, n_roi_voxels),
  and `run-<a>` (n_trs, n_roi_voxels) float32 noise-free signal of each acquisition a.
"""


def _check_out(out: Path, overwrite: bool) -> bool:
    """Whether ``out`` holds something to replace; raise if replacing is not allowed."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise InputError(f"generate_demo: {out} exists and is not a folder")
    if not any(out.iterdir()):
        return True
    is_demo = (out / "dataset_description.json").is_file() and (out / "ground_truth").is_dir()
    if not overwrite:
        raise InputError(
            f"generate_demo: {out} is not empty; pass overwrite=True (CLI: --overwrite) to replace "
            f"{'the demo there' if is_demo else 'it'}, or choose another folder"
        )
    if not is_demo:
        raise InputError(f"generate_demo: refusing to overwrite {out}: it is not a demo dataset folder")
    return True


def _write_stimuli(root: Path, seed: int, tick) -> dict[str, np.ndarray]:
    """Media and descriptors of every stimulus run; returns run -> standardised regressors."""
    gt = root / "ground_truth"
    raw: dict[str, np.ndarray] = {}
    for index, spec in enumerate(RUNS):
        run = build_run(seed, index, spec)
        write_mp4(root / "stimuli" / f"{spec.name}.mp4", run.frames)
        write_wav(root / "stimuli" / f"{spec.name}.wav", run.wav)
        write_words_tsv(root / "stimuli" / f"{spec.name}_words.tsv", run.timeline.words)
        _savez(gt / f"descriptors_{spec.name}.npz", times=frame_times(spec.n_frames), **run.descriptors)
        _write_json(gt / f"timeline_{spec.name}.json", run.timeline.to_json())
        raw[spec.name] = hrf_regressors(run.descriptors, spec.tr_times)
        tick()
    stacked = np.concatenate([raw[s.name] for s in RUNS])
    mean, std = stacked.mean(axis=0), stacked.std(axis=0)
    regs = {name: (r - mean) / std for name, r in raw.items()}
    for spec in RUNS:
        _savez(
            gt / f"regressors_{spec.name}.npz",
            regressors=regs[spec.name],
            raw=raw[spec.name],
            names=np.asarray(DESCRIPTORS),
            tr_times=spec.tr_times,
            mean=mean,
            std=std,
        )
    return regs


def _write_mask_and_rois(root: Path):
    """``mask.nii.gz`` and the ROI masks; returns (mask image, ROI label per in-mask voxel)."""
    import nibabel as nib

    mask_img = mni152_mask(4)
    mask = np.asarray(mask_img.dataobj).astype(bool)
    _write_nifti_gz(root / "mask.nii.gz", mask_img)
    labels = roi_labels(mask_img)
    for r, name in enumerate(ROIS):
        vol = np.zeros(mask.shape, dtype=np.uint8)
        vol[mask] = labels == r
        _write_nifti_gz(root / "ground_truth" / f"roi-{name}_mask.nii.gz", nib.Nifti1Image(vol, mask_img.affine, mask_img.header))
    return mask_img, labels


def _write_subject(root: Path, seed: int, s_index: int, regs: dict[str, np.ndarray], mask_img, labels) -> None:
    """BOLD, sidecars and events of every acquisition of one subject, plus its ground truth."""
    subject = SUBJECTS[s_index]
    mask = np.asarray(mask_img.dataobj).astype(bool)
    roi_idx = np.flatnonzero(labels >= 0)
    weights = subject_weights(seed, s_index, labels[roi_idx], [regs[r] for _, r in ACQUISITIONS])
    func = root / f"sub-{subject}" / "func"
    func.mkdir(parents=True)
    signals = {}
    for acq, run_name in ACQUISITIONS:
        spec = next(s for s in RUNS if s.name == run_name)
        signal = regs[run_name] @ weights
        signals[f"run-{acq}"] = signal.astype(np.float32)
        y = simulate_acquisition(seed, s_index, acq, int(mask.sum()), signal, roi_idx)
        stem = func / _bids_stem(subject, acq)
        _write_nifti_gz(Path(f"{stem}_bold.nii.gz"), bold_image(y, mask, mask_img.affine))
        _write_json(
            Path(f"{stem}_bold.json"),
            {
                "RepetitionTime": TR,
                "TaskName": "demo",
                "StimulusRun": run_name,
                "Repeat": [a for a, r in ACQUISITIONS if r == run_name].index(acq) + 1,
                "AcquisitionTimeOfVolumes": "volume i is acquired at stimulus time (i + 0.5) * RepetitionTime",
            },
        )
        Path(f"{stem}_events.tsv").write_text(
            f"onset\tduration\ttrial_type\tstim_file\n0.0\t{spec.duration:.4f}\tmovie\t{run_name}.mp4\n"
        )
    _savez(
        root / "ground_truth" / f"sub-{subject}_signal.npz",
        voxel_indices=roi_idx,
        roi_labels=labels[roi_idx],
        roi_names=np.asarray(list(ROIS)),
        descriptor_names=np.asarray(DESCRIPTORS),
        weights=weights,
        **signals,
    )


def _write_descriptions(root: Path, seed: int, mask_img, labels) -> None:
    counts = {name: int((labels == r).sum()) for r, name in enumerate(ROIS)}
    stats = np.load(root / "ground_truth" / f"regressors_{RUNS[0].name}.npz")
    _write_json(root / "dataset_description.json", _description(seed, len(labels), counts, (stats["mean"], stats["std"])))
    roi_lines = "\n".join(
        f"* {name}: centres {[list(c) for c in centres]} mm, {counts[name]} voxels, driven by {drives}"
        for name, (centres, drives) in ROIS.items()
    )
    (root / "ground_truth" / "README.md").write_text(
        _GT_README.format(
            version=GENERATOR_VERSION, seed=seed, baseline=BASELINE, d1=DRIFT_SD[0], d2=DRIFT_SD[1],
            rho=AR_RHO, sd=NOISE_SD, fps=FPS, tr=TR, jit=WEIGHT_JITTER, snr=SNR,
            slope=round(SCL_SLOPE, 6), radius=ROI_RADIUS_MM, rois=roi_lines,
        )
    )


def generate_demo(out: str | Path, seed: int = 0, overwrite: bool = False, progress: bool = False) -> Path:
    """Write the demo dataset to ``out`` and return its path.

    Parameters
    ----------
    out : folder to create (it may exist if empty, or hold an older demo with ``overwrite``).
    seed : non-negative integer; every random draw derives from it, and the same seed gives
        the same files (byte for byte with the same library versions).
    overwrite : replace an existing demo in ``out``.
    progress : show a tqdm progress bar (nothing is printed otherwise).

    The folder is built next to ``out`` and renamed into place at the end, so an interrupted
    run never leaves a half-written dataset at ``out`` (an existing demo is only replaced
    once the new one is complete). Layout: ``stimuli/`` (MP4, WAV, ``_words.tsv`` per
    stimulus run), ``sub-XX/func/`` (BOLD NIfTI + JSON sidecars + events), ``mask.nii.gz``,
    ``dataset_description.json`` and ``ground_truth/`` (see its README.md).
    Takes ~25 s and ~80 MB.
    """
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise InputError(f"generate_demo: seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    out = Path(out)
    replace = _check_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(RUNS) + 1 + len(SUBJECTS), desc="demo dataset", unit="step")

    def tick() -> None:
        if bar is not None:
            bar.update()

    try:
        (tmp / "stimuli").mkdir(parents=True)
        (tmp / "ground_truth").mkdir()
        regs = _write_stimuli(tmp, seed, tick)
        mask_img, labels = _write_mask_and_rois(tmp)
        tick()
        for s_index in range(len(SUBJECTS)):
            _write_subject(tmp, seed, s_index, regs, mask_img, labels)
            tick()
        _write_descriptions(tmp, seed, mask_img, labels)
        if replace:
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    return out


# ----------------------------------------------------------------------------- loading


def load_demo(root: str | Path) -> Dataset:
    """Read a folder written by :func:`generate_demo` as a :class:`Dataset`.

    ``rois`` are boolean masks over the in-mask voxels in NiftiMasker order (C order of
    ``mask.nii.gz``). ``load_responses(subject)`` returns run name -> (n_repeats, n_trs,
    n_voxels) float32, each acquisition detrended (quadratic) and z-scored.
    Raises :class:`~mmneuro.errors.InputError` if ``root`` holds no demo dataset.
    """
    import nibabel as nib

    root = Path(root)
    desc_path = root / "dataset_description.json"
    hint = f"run `mmneuro datasets demo --out {root}` (or mmneuro.datasets.demo.generate_demo) to create it"
    if not desc_path.is_file():
        raise InputError(f"no demo dataset in {root} (dataset_description.json missing); {hint}")
    try:
        desc = json.loads(desc_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{desc_path} is not valid JSON ({exc}); {hint}") from exc
    if desc.get("name") != "demo":
        raise InputError(f"{root} holds a dataset named {desc.get('name')!r}, not the demo; {hint}")
    mask_path = root / "mask.nii.gz"
    if not mask_path.is_file():
        raise InputError(f"demo dataset in {root} is incomplete: {mask_path} missing; {hint}")

    tr = float(desc["tr"])
    stim = root / "stimuli"
    runs = [
        StimulusRun(
            name=r["name"],
            tr_times=(np.arange(r["n_trs"]) + 0.5) * tr,
            video=stim / f"{r['name']}.mp4",
            audio=stim / f"{r['name']}.wav",
            words=stim / f"{r['name']}_words.tsv",
            split=r["split"],
        )
        for r in desc["runs"]
    ]
    for r in runs:
        for p in (r.video, r.audio, r.words):
            if not p.is_file():
                raise InputError(f"demo dataset in {root} is incomplete: {p} missing; {hint}")

    mask_img = nib.load(str(mask_path))
    mask = np.asarray(mask_img.dataobj).astype(bool)
    rois = {}
    for name in desc["rois"]:
        p = root / "ground_truth" / f"roi-{name}_mask.nii.gz"
        if not p.is_file():
            raise InputError(f"demo dataset in {root} is incomplete: {p} missing; {hint}")
        rois[name] = np.asarray(nib.load(str(p)).dataobj)[mask].astype(bool)

    subjects = [str(s) for s in desc["subjects"]]
    acquisitions = [(int(a["run"]), a["stimulus_run"]) for a in desc["acquisitions"]]

    def load_responses(subject: str) -> Responses:
        from mmneuro.brain.loaders import load_nifti_runs
        from mmneuro.brain.preprocess import clean_run, constant_columns

        subject = f"{subject:02d}" if isinstance(subject, (int, np.integer)) else str(subject).removeprefix("sub-")
        if subject not in subjects:
            raise InputError(f"demo dataset has no subject {subject!r}; subjects: {subjects}")
        paths = [root / f"sub-{subject}" / "func" / f"{_bids_stem(subject, a)}_bold.nii.gz" for a, _ in acquisitions]
        for p in paths:
            if not p.is_file():
                raise InputError(f"demo dataset in {root} is incomplete: {p} missing; {hint}")
        data = load_nifti_runs(paths, mask_img)
        valid = np.ones(data[0].shape[1], dtype=bool)
        for path, y in zip(paths, data):
            constant = constant_columns(y)
            if constant.any():
                warnings.warn(f"{path}: {int(constant.sum())} of {y.shape[1]} in-mask voxels are constant "
                              f"(first indices {np.flatnonzero(constant)[:5].tolist()}); they are excluded from scores")
            valid &= ~constant
        grouped: dict[str, list[np.ndarray]] = {}
        for (_, run_name), y in zip(acquisitions, data):
            grouped.setdefault(run_name, []).append(clean_run(y, detrend_order=2))
        order = [r.name for r in runs]
        return Responses(
            subject=subject,
            runs={name: np.stack(grouped[name]).astype(np.float32, copy=False) for name in order if name in grouped},
            valid=None if valid.all() else valid,
        )

    return Dataset(
        name="demo",
        root=root,
        tr=tr,
        runs=runs,
        subjects=subjects,
        rois=rois,
        load_responses=load_responses,
        evaluation="heldout",
        delays=tuple(int(d) for d in desc.get("delays", DELAYS)),
        feature_detrend=2,  # the responses' drift model is removed from features too
        mask_img=mask_img,
        notes=[f"synthetic demo dataset (generator {desc.get('generator_version')}, seed {desc.get('seed')})"],
        ground_truth=root / "ground_truth",
    )


def ground_truth_regressors(dataset: Dataset) -> dict[str, np.ndarray]:
    """The exact regressors the demo's signal was built from, per stimulus run.

    Returns run name -> (n_trs, n_descriptors) float32: each descriptor of
    :data:`DESCRIPTORS`, convolved with the canonical HRF and sampled at the run's TR
    times. Encoding with these ("the oracle", delays ``(0,)``) reaches the noise ceiling.
    """
    if dataset.ground_truth is None:
        raise InputError(f"dataset {dataset.name!r} has no ground truth")
    out = {}
    for run in dataset.runs:
        path = Path(dataset.ground_truth) / f"regressors_{run.name}.npz"
        if not path.is_file():
            raise InputError(f"ground-truth regressors missing: {path}")
        with np.load(path) as z:
            out[run.name] = z["regressors"].astype(np.float32)
    return out
