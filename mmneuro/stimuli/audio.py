"""Read audio files as mono float32 waveforms (soundfile), resampled on request."""

from __future__ import annotations

import warnings
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
    or empty, when ``sample_rate`` is not a positive integer, or when averaging the channels
    cancels the sound (channels in antiphase: mono RMS below :data:`DOWNMIX_MIN_RATIO` of the
    mean channel RMS). Warns (``UserWarning``) when the file's rate is below ``sample_rate``.
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
    if data.shape[1] > 1:
        _check_downmix(path, data, wav)
    sr = int(sr)
    if sample_rate is not None and sample_rate > sr:
        warnings.warn(f"audio file {path} is {sr} Hz, below the {sample_rate} Hz the model reads: it is upsampled, "
                      f"so the model hears nothing above {sr / 2:g} Hz; use a recording at >= {sample_rate} Hz "
                      f"if one exists", UserWarning, stacklevel=2)
    if sample_rate is not None and sample_rate != sr:
        from scipy.signal import resample_poly

        g = gcd(sample_rate, sr)
        wav = resample_poly(np.asarray(wav, dtype=np.float64), sample_rate // g, sr // g)
        sr = sample_rate
    return np.ascontiguousarray(wav, dtype=np.float32), sr


#: Averaging channels to mono must keep at least this fraction of the mean channel RMS; less means the
#: channels cancel (antiphase wiring), and the model would hear near-silence.
DOWNMIX_MIN_RATIO = 0.1
#: Channels quieter than this RMS (full scale 1.0, about -100 dBFS) count as silent.
SILENT_RMS = 1e-5


def _check_downmix(path: Path, data: np.ndarray, mono: np.ndarray) -> None:
    n = data.shape[0]
    columns = (data[:, c].astype(np.float64) for c in range(data.shape[1]))  # one float64 copy at a time
    channel_rms = [np.sqrt(np.dot(col, col) / n) for col in columns]
    mean_rms = float(np.mean(channel_rms))
    mono = np.asarray(mono, dtype=np.float64)
    mono_rms = float(np.sqrt(np.dot(mono, mono) / n))
    if mean_rms > SILENT_RMS and mono_rms < DOWNMIX_MIN_RATIO * mean_rms:
        raise InputError(
            f"audio file {path}: its {data.shape[1]} channels cancel when averaged to mono (mono RMS {mono_rms:.2g} vs "
            f"{mean_rms:.2g} per channel: antiphase?); keep one channel (e.g. `ffmpeg -i IN -af pan=mono|c0=c0 OUT`) "
            f"or fix the file")
