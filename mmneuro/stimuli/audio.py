"""Read audio files as mono float32 waveforms (soundfile), resampled on request."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

from mmneuro.errors import InputError


def read_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as a mono waveform.

    Parameters
    ----------
    path : audio file soundfile can read (WAV, FLAC, OGG, ...).
    sample_rate : target rate in Hz; None keeps the file's rate. A different rate is reached
        with polyphase resampling (:func:`scipy.signal.resample_poly`, anti-aliased).

    Returns
    -------
    waveform : (n_samples,) float32, channels averaged, full scale = 1.0.
    sr : its sample rate in Hz.

    Raises :class:`~mmneuro.errors.InputError` naming the file when it is missing, unreadable
    or empty, or when ``sample_rate`` is not a positive integer.
    """
    import soundfile as sf

    path = Path(path)
    if sample_rate is not None:
        if int(sample_rate) != sample_rate or sample_rate <= 0:
            raise InputError(f"read_audio({path}): sample_rate must be a positive integer, got {sample_rate!r}")
        sample_rate = int(sample_rate)
    if not path.is_file():
        raise InputError(f"audio file not found: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile.LibsndfileError, RuntimeError, ...
        raise InputError(f"cannot read audio file {path}: {exc}") from exc
    if data.shape[0] == 0:
        raise InputError(f"audio file {path} holds no samples")
    wav = data.mean(axis=1, dtype=np.float64) if data.shape[1] > 1 else data[:, 0]
    sr = int(sr)
    if sample_rate is not None and sample_rate != sr:
        from scipy.signal import resample_poly

        g = gcd(sample_rate, sr)
        wav = resample_poly(np.asarray(wav, dtype=np.float64), sample_rate // g, sr // g)
        sr = sample_rate
    return np.ascontiguousarray(wav, dtype=np.float32), sr
