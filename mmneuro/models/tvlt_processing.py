"""TVLT input processing in numpy: video frames -> pixel values, waveform -> log-mel patches.

This reproduces the numerics of the original ``TvltImageProcessor`` and
``TvltFeatureExtractor`` (transformers <= 4.57) without PIL or transformers:

Frames (``(n, H, W, 3)`` uint8 RGB)
    1. resize so the shorter edge is ``size`` (the longer edge ``int(size * long / short)``)
       with PIL's BILINEAR filter, re-implemented here bit-exactly: separable passes
       (horizontal, then vertical) with the triangle filter widened by the downscale
       factor, 22-bit fixed-point weights and uint8 rounding after each pass;
    2. centre crop to ``crop_size`` (top/left offset ``(in - out) // 2``; zero padding
       when the image is smaller);
    3. ``x / 255`` (float64, then float32), then ``(x - mean) / std`` in float32.
    The pixel mask has one entry per patch of each frame: ``n * (size // patch) ** 2`` ones.

Waveform (``(n_samples,)`` at 44.1 kHz)
    1. STFT: reflect-pad ``n_fft // 2`` on both sides, periodic Hann window of ``n_fft``,
       hop ``sampling_rate // 86`` (512 at 44.1 kHz), power spectrum (via complex64 as in
       the original);
    2. Slaney mel filter bank (``feature_size`` bands, 0 .. 22050 Hz, area-normalised),
       floor 1e-10, ``10 log10``, clipped to 80 dB below the clip's maximum;
    3. the last STFT frame is dropped, then ``clip((dB - 20) / 40, -2, 0) + 1`` (so values lie
       in [-1, 1]); the time axis is truncated to ``spectrogram_length`` frames and padded
       with ``padding_value`` up to a multiple of the audio patch height.
    The audio mask has one entry per audio patch: ``ceil(frames / patch_t) * (feature_size //
    patch_f)`` ones (padded patches of the last row count as real, as in the original).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmneuro.errors import InputError

__all__ = [
    "TvltProcessorConfig",
    "pil_bilinear_resize",
    "shortest_edge_size",
    "center_crop",
    "preprocess_frames",
    "slaney_mel_filters",
    "log_mel_spectrogram",
    "preprocess_waveform",
    "pad_audio",
]

_PRECISION_BITS = 22  # PIL's fixed-point precision for 8-bit resampling


@dataclass(frozen=True)
class TvltProcessorConfig:
    """Settings of the TVLT image processor and audio feature extractor.

    Defaults are those of ``ZinengTang/tvlt-base`` (the original processors' defaults).
    ``hop_length`` is ``sampling_rate // 86``; ``max_frequency`` of the mel bank is fixed
    at 22050 Hz in the original whatever the sampling rate.
    """

    size: int = 224  # shorter edge after resizing
    crop_size: tuple[int, int] = (224, 224)
    do_resize: bool = True
    do_center_crop: bool = True
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    num_frames: int = 8
    image_patch_size: tuple[int, int] = (16, 16)
    sampling_rate: int = 44100
    hop_length: int = 44100 // 86
    n_fft: int = 2048
    feature_size: int = 128
    spectrogram_length: int = 2048
    audio_patch_size: tuple[int, int] = (16, 16)
    padding_value: float = 0.0
    max_frequency: float = 22050.0

    @property
    def patches_per_frame(self) -> int:
        return (self.size // self.image_patch_size[0]) ** 2

    @property
    def freq_patches(self) -> int:
        return self.feature_size // self.audio_patch_size[1]

    @classmethod
    def from_model_config(cls, config: Any) -> "TvltProcessorConfig":
        """Processor settings implied by a model config (image size, frames, spectrogram)."""
        s = int(config.image_size)
        return cls(
            size=s,
            crop_size=(s, s),
            num_frames=int(config.num_frames),
            image_patch_size=tuple(int(v) for v in config.image_patch_size),
            feature_size=int(config.frequency_length),
            spectrogram_length=int(config.spectrogram_length),
            audio_patch_size=tuple(int(v) for v in config.audio_patch_size),
        )

    @classmethod
    def from_folder(cls, folder: str | Path, config: Any) -> "TvltProcessorConfig":
        """Read ``preprocessor_config.json`` in ``folder`` if present; else use the model config.

        Keys read: ``size``/``crop_size``/``do_resize``/``do_center_crop``/``rescale_factor``/
        ``image_mean``/``image_std``/``num_frames`` (image processor) and ``sampling_rate``/
        ``hop_length`` (or ``hop_length_to_sampling_rate``)/``n_fft``/``feature_size``/``spectrogram_length``/
        ``padding_value`` (feature extractor). Patch sizes always come from the model config.
        """
        base = cls.from_model_config(config)
        p = Path(folder) / "preprocessor_config.json"
        if not p.is_file():
            return base
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"cannot read {p}: {e}") from e
        kw: dict[str, Any] = {}
        size = d.get("size")
        if isinstance(size, dict):
            if "shortest_edge" in size:
                kw["size"] = int(size["shortest_edge"])
            elif "height" in size and "width" in size and size["height"] == size["width"]:
                kw["size"] = int(size["height"])
        elif isinstance(size, int):
            kw["size"] = size
        crop = d.get("crop_size")
        if isinstance(crop, dict) and "height" in crop:
            kw["crop_size"] = (int(crop["height"]), int(crop["width"]))
        elif isinstance(crop, int):
            kw["crop_size"] = (crop, crop)
        for key in ("do_resize", "do_center_crop", "do_rescale", "do_normalize"):
            if key in d:
                kw[key] = bool(d[key])
        if d.get("resample", 2) != 2:
            raise InputError(f"{p}: only PIL BILINEAR resampling (resample=2) is implemented; got {d['resample']!r}")
        if "rescale_factor" in d:
            kw["rescale_factor"] = float(d["rescale_factor"])
        for key in ("image_mean", "image_std"):
            if key in d:
                v = d[key]
                kw[key] = tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else (float(v),) * 3
        for key in ("num_frames", "sampling_rate", "n_fft", "feature_size", "spectrogram_length"):
            if key in d:
                kw[key] = int(d[key])
        if "padding_value" in d:
            kw["padding_value"] = float(d["padding_value"])
        if "hop_length" in d:
            kw["hop_length"] = int(d["hop_length"])
        else:
            sr = kw.get("sampling_rate", base.sampling_rate)
            kw["hop_length"] = int(sr) // int(d.get("hop_length_to_sampling_rate", 86))
        return replace(base, **kw)


# ---- frames --------------------------------------------------------------------------


def shortest_edge_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(H, W) after resizing the shorter edge to ``size`` (the longer one is truncated)."""
    if width <= height:
        return int(size * height / width), int(size)
    return int(size), int(size * width / height)


@lru_cache(maxsize=64)
def _pil_weights(n_in: int, n_out: int):
    """PIL's bilinear resampling as a sparse ``(n_in, n_out)`` matrix of 22-bit integer weights.

    The triangle filter of half-width 1 is stretched by ``max(1, n_in / n_out)``; each
    output's taps are normalised to sum 1, then scaled by 2**22 and rounded half away from
    zero, as PIL does for 8-bit images. Weights and all partial sums are integers below
    2**53, so float64 (sparse) products reproduce PIL's integer arithmetic exactly.
    """
    from scipy.sparse import csr_matrix

    scale = n_in / n_out
    stretch = max(scale, 1.0)
    support = stretch  # the bilinear filter's support is 1.0
    rows, cols, vals = [], [], []
    for j in range(n_out):
        centre = (j + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        pos = np.arange(lo, hi)
        w = 1.0 - np.abs((pos - centre + 0.5) * (1.0 / stretch))
        w = np.where(w > 0, w, 0.0)  # |x| >= 1 gives 0
        total = w.sum()
        if total != 0.0:
            w = w / total
        rows.append(pos)
        cols.append(np.full(len(pos), j))
        vals.append(np.trunc(0.5 + w * (1 << _PRECISION_BITS)))  # w >= 0
    return csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_in, n_out))


@lru_cache(maxsize=64)
def _horizontal_operator(n_in: int, n_out: int, channels: int):
    """Acts on a frame flattened to ``(H, W * C)``: ``kron(weights, I_C)``, CSC."""
    from scipy.sparse import identity, kron

    return kron(_pil_weights(n_in, n_out), identity(channels), format="csc")


@lru_cache(maxsize=64)
def _vertical_operator(n_in: int, n_out: int):
    """Acts from the left on ``(H, W * C)``: ``weights.T``, CSR."""
    return _pil_weights(n_in, n_out).T.tocsr()


def _round_pass(acc: np.ndarray) -> np.ndarray:
    """PIL's ``clip8((acc + 2**21) >> 22)`` on exact float64 integer sums."""
    out = np.floor((acc + float(1 << (_PRECISION_BITS - 1))) * (1.0 / (1 << _PRECISION_BITS)))
    return np.clip(out, 0, 255)


def pil_bilinear_resize(images: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Resize uint8 images ``(..., H, W, C)`` to ``out_hw`` exactly as PIL's BILINEAR does.

    Horizontal pass first, then vertical, each rounded to uint8 (PIL's order); a pass is
    skipped when its size is unchanged. Returns ``(..., out_h, out_w, C)`` uint8.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise InputError(f"frames must be uint8 RGB; got dtype {images.dtype}")
    if images.ndim < 3:
        raise InputError(f"images must be (..., H, W, C); got shape {images.shape}")
    oh, ow = int(out_hw[0]), int(out_hw[1])
    if oh < 1 or ow < 1:
        raise InputError(f"resize target must be positive; got {(oh, ow)}")
    h, w, c = images.shape[-3:]
    if (h, w) == (oh, ow):
        return images.copy()
    lead = images.shape[:-3]
    flat = images.reshape((-1, h, w * c))
    out = np.empty((flat.shape[0], oh, ow * c), dtype=np.uint8)
    for i, frame in enumerate(flat):  # one frame at a time bounds the float64 temporaries
        x = frame.astype(np.float64)
        if w != ow:
            x = _round_pass(np.asarray(x @ _horizontal_operator(w, ow, c)))
        if h != oh:
            x = _round_pass(np.asarray(_vertical_operator(h, oh) @ x))
        out[i] = x
    return out.reshape(lead + (oh, ow, c))


def center_crop(images: np.ndarray, crop_hw: tuple[int, int]) -> np.ndarray:
    """Centre crop ``(..., H, W, C)`` to ``crop_hw``; zero-pads first when the image is smaller."""
    h, w = images.shape[-3], images.shape[-2]
    ch, cw = int(crop_hw[0]), int(crop_hw[1])
    if h < ch or w < cw:
        nh, nw = max(h, ch), max(w, cw)
        pad_t, pad_l = math.ceil((nh - h) / 2), math.ceil((nw - w) / 2)
        canvas = np.zeros(images.shape[:-3] + (nh, nw, images.shape[-1]), dtype=images.dtype)
        canvas[..., pad_t : pad_t + h, pad_l : pad_l + w, :] = images
        top, left = (h - ch) // 2 + pad_t, (w - cw) // 2 + pad_l
        top, left = max(0, top), max(0, left)
        return canvas[..., top : top + ch, left : left + cw, :]
    top, left = (h - ch) // 2, (w - cw) // 2
    return images[..., top : top + ch, left : left + cw, :]


def preprocess_frames(frames: np.ndarray, cfg: TvltProcessorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Frames of one clip -> model pixel values and pixel mask.

    Parameters
    ----------
    frames : (n, H, W, 3) uint8 RGB, ``1 <= n <= cfg.num_frames``.

    Returns
    -------
    pixel_values : (n, 3, crop_h, crop_w) float32.
    pixel_mask : (n * patches_per_frame,) float32 ones.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InputError(f"TVLT frames must be (n, H, W, 3) RGB; got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise InputError(f"TVLT frames must be uint8 (0..255); got dtype {frames.dtype}")
    n = frames.shape[0]
    if not 1 <= n <= cfg.num_frames:
        raise InputError(f"TVLT reads 1..{cfg.num_frames} frames per clip; got {n}")
    x = frames
    if cfg.do_resize:
        x = pil_bilinear_resize(x, shortest_edge_size(x.shape[1], x.shape[2], cfg.size))
    if cfg.do_center_crop:
        x = center_crop(x, cfg.crop_size)
    y = x.astype(np.float32)
    if cfg.do_rescale:
        y = (x.astype(np.float64) * cfg.rescale_factor).astype(np.float32)
    if cfg.do_normalize:
        y = (y - np.asarray(cfg.image_mean, dtype=np.float32)) / np.asarray(cfg.image_std, dtype=np.float32)
    pixel_values = np.ascontiguousarray(y.transpose(0, 3, 1, 2), dtype=np.float32)
    pixel_mask = np.ones(n * cfg.patches_per_frame, dtype=np.float32)
    return pixel_values, pixel_mask


# ---- audio ---------------------------------------------------------------------------


def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    lin = 3.0 * f / 200.0
    log = 15.0 + np.log(np.maximum(f, 1e-300) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    lin = 200.0 * m / 3.0
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


@lru_cache(maxsize=8)
def slaney_mel_filters(n_freqs: int, n_mels: int, f_min: float, f_max: float, sample_rate: int) -> np.ndarray:
    """Slaney-scale, area-normalised triangular mel filters, ``(n_freqs, n_mels)`` float64.

    FFT bin frequencies are ``linspace(0, sample_rate // 2, n_freqs)``; filter edges are
    equally spaced on the Slaney mel scale between ``f_min`` and ``f_max``.
    """
    edges_hz = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(f_min), _hz_to_mel_slaney(f_max), n_mels + 2))
    bins = np.linspace(0, sample_rate // 2, n_freqs)
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    rising = (bins[:, None] - lower[None, :]) / (centre - lower)[None, :]
    falling = (upper[None, :] - bins[:, None]) / (upper - centre)[None, :]
    tri = np.maximum(0.0, np.minimum(rising, falling))
    out = tri * (2.0 / (upper - lower))[None, :]
    out.setflags(write=False)
    return out


def log_mel_spectrogram(waveform: np.ndarray, cfg: TvltProcessorConfig) -> np.ndarray:
    """TVLT's scaled log-mel spectrogram of one mono clip.

    Parameters
    ----------
    waveform : (n_samples,) float, at ``cfg.sampling_rate``; at least ``cfg.hop_length`` samples.

    Returns
    -------
    (n_samples // hop_length, feature_size) float32 in [-1, 1], NOT yet truncated to
    ``spectrogram_length``.
    """
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise InputError(f"TVLT audio must be a mono (n_samples,) waveform; got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"TVLT audio must be float; got dtype {x.dtype}")
    if x.shape[0] < cfg.hop_length:
        raise InputError(
            f"TVLT audio clip has {x.shape[0]} samples; at least one hop ({cfg.hop_length} samples, "
            f"{cfg.hop_length / cfg.sampling_rate * 1000:.1f} ms at {cfg.sampling_rate} Hz) is needed"
        )
    if not np.all(np.isfinite(x)):
        raise InputError("TVLT audio clip holds NaN or infinite samples")
    n_fft, hop = cfg.n_fft, cfg.hop_length
    x = np.pad(x.astype(np.float32), (n_fft // 2, n_fft // 2), mode="reflect").astype(np.float64)
    n_frames = 1 + (x.shape[0] - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop][:n_frames]
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann
    spec = np.fft.rfft(frames * window, axis=-1).astype(np.complex64).astype(np.complex128)
    power = np.abs(spec) ** 2  # (frames, n_fft // 2 + 1)
    mel = slaney_mel_filters(n_fft // 2 + 1, cfg.feature_size, 0.0, float(cfg.max_frequency), int(cfg.sampling_rate))
    db = 10.0 * np.log10(np.maximum(power @ mel, 1e-10))
    db = np.maximum(db, db.max() - 80.0).astype(np.float32)
    db = db[:-1]
    return np.clip((db - np.float32(20.0)) / np.float32(40.0), -2.0, 0.0) + np.float32(1.0)


def preprocess_waveform(waveform: np.ndarray, cfg: TvltProcessorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Waveform of one clip -> audio values and audio mask (padded to whole patches).

    Returns
    -------
    audio_values : (1, T, feature_size) float32, ``T = ceil(frames / patch_t) * patch_t``
        with ``frames = min(n_samples // hop, spectrogram_length)``.
    audio_mask : (T // patch_t * feature_size // patch_f,) float32 ones.
    """
    spec = log_mel_spectrogram(waveform, cfg)[: cfg.spectrogram_length]
    pt = cfg.audio_patch_size[0]
    rows = math.ceil(spec.shape[0] / pt)
    values = np.full((1, rows * pt, cfg.feature_size), cfg.padding_value, dtype=np.float32)
    values[0, : spec.shape[0]] = spec
    mask = np.ones(rows * cfg.freq_patches, dtype=np.float32)
    return values, mask


def pad_audio(values: Sequence[np.ndarray], masks: Sequence[np.ndarray], padding_value: float = 0.0):
    """Pad per-clip audio values ``(1, T_i, F)`` and masks ``(N_i,)`` to the batch maximum.

    Returns ``(B, 1, T_max, F)`` float32 values and ``(B, N_max)`` float32 masks (zeros mark padding).
    """
    t_max = max(v.shape[1] for v in values)
    n_max = max(m.shape[0] for m in masks)
    f = values[0].shape[2]
    out_v = np.full((len(values), 1, t_max, f), padding_value, dtype=np.float32)
    out_m = np.zeros((len(masks), n_max), dtype=np.float32)
    for i, (v, m) in enumerate(zip(values, masks)):
        out_v[i, :, : v.shape[1]] = v
        out_m[i, : m.shape[0]] = m
    return out_v, out_m
