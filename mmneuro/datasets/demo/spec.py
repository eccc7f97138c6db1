"""Fixed design of the demo: timing, runs, acquisitions, descriptors, ROIs, noise and colours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


GENERATOR_VERSION = "1.1"  # 1.1: picture content balanced across congruence conditions

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
STREAM_TIMELINE, STREAM_AUDIO, STREAM_WEIGHTS, STREAM_NOISE = 1, 2, 3, 4


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *keys])
