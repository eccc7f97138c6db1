"""Weight-free low-level auditory baseline: the log-mel spectrum of each TR window.

Per window of 16 kHz mono audio: power STFT (25 ms Hann window, 10 ms hop, zero-padded
at the edges), a 32-band triangular mel filterbank (HTK mel scale, 0-8 kHz, each band
normalised to unit area), ``log(power + 1e-10)``, averaged over the window's STFT
frames. One layer, ``"logmel"`` (dim 32), pooling ``"mean"`` (over time frames).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mmneuro.errors import InputError
from mmneuro.models.base import ModelAdapter, ModelOutput, WindowInput, WeightsInfo


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on the HTK mel scale, unit area each."""
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise InputError(f"mel band edges must satisfy 0 <= fmin < fmax <= sr/2; got {fmin}, {fmax}, sr={sample_rate}")
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / (mid - lo)
    down = (hi - freqs[None, :]) / (hi - mid)
    fb = np.clip(np.minimum(up, down), 0.0, None)
    fb *= (2.0 / (hi - lo))  # unit area per band
    empty = np.nonzero(fb.sum(axis=1) == 0)[0]
    if len(empty):
        raise InputError(f"mel bands {empty.tolist()} cover no FFT bin; use fewer bands or a longer n_fft")
    return fb.astype(np.float32)


class MelSpecAdapter(ModelAdapter):
    """Log-mel spectrogram baseline (no weights)."""

    modalities = ("audio",)
    input_kind = "waveform"
    poolings = ("mean",)
    default_pooling = "mean"
    batch_size = 32
    version = "melspec-1"

    def __init__(
        self,
        name: str = "melspec",
        sample_rate: int = 16000,
        n_mels: int = 32,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        fmin: float = 0.0,
        fmax: float | None = None,
        device=None,
    ):
        self.name = name
        self.sample_rate = int(sample_rate)
        self.n_mels = int(n_mels)
        self.win_length = int(round(sample_rate * win_ms / 1000))
        self.hop = int(round(sample_rate * hop_ms / 1000))
        self.n_fft = 1 << math.ceil(math.log2(self.win_length))
        self.fmin = float(fmin)
        self.fmax = float(fmax) if fmax is not None else self.sample_rate / 2
        self.filterbank = torch.from_numpy(mel_filterbank(self.n_mels, self.n_fft, self.sample_rate, self.fmin, self.fmax))
        self.window = torch.hann_window(self.win_length, periodic=True)
        self.layer_names = ["logmel"]
        tag = f"melspec:sr{self.sample_rate}-mels{self.n_mels}-win{self.win_length}-hop{self.hop}-fft{self.n_fft}-f{self.fmin:g}-{self.fmax:g}"
        self.weights = WeightsInfo(kind="none", location=None, identity=tag)
        self.to(device)

    def to(self, device):
        super().to(device)
        self.filterbank = self.filterbank.to(self.device)
        self.window = self.window.to(self.device)
        return self

    def preprocess(self, sample: WindowInput) -> dict[str, torch.Tensor]:
        if sample.waveform is None:
            raise InputError(f"model {self.name!r} reads audio but the window has none")
        if sample.sample_rate is not None and int(sample.sample_rate) != self.sample_rate:
            raise InputError(
                f"model {self.name!r} expects {self.sample_rate} Hz audio; the window is {sample.sample_rate} Hz"
            )
        w = np.asarray(sample.waveform, dtype=np.float32)
        if w.ndim != 1:
            raise InputError(f"waveform must be 1-D mono; got shape {w.shape}")
        if w.size == 0:
            raise InputError("the audio window is empty")
        return {"waveform": torch.from_numpy(np.ascontiguousarray(w))}

    def collate(self, items):
        """Zero-pad to the longest window; ``n_frames`` keeps each item's true STFT frame count."""
        n = max(int(it["waveform"].shape[0]) for it in items)
        wav = torch.zeros((len(items), n), dtype=torch.float32)
        frames = torch.zeros(len(items), dtype=torch.long)
        for i, it in enumerate(items):
            t = int(it["waveform"].shape[0])
            wav[i, :t] = it["waveform"]
            frames[i] = 1 + t // self.hop
        return {"waveform": wav, "n_frames": frames}

    def forward(self, batch, want_attentions: bool = False) -> ModelOutput:
        with torch.autocast(device_type=self.device.type, enabled=False):  # keep float32 under the driver's bf16
            return self._forward(batch)

    def _forward(self, batch) -> ModelOutput:
        wav = batch["waveform"].to(self.device).float()
        spec = torch.stft(
            wav,
            n_fft=self.n_fft,
            hop_length=self.hop,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (B, F, T)
        mel = torch.einsum("mf,bft->btm", self.filterbank, power)
        logmel = torch.log(mel + 1e-10)
        t = logmel.shape[1]
        valid = torch.arange(t, device=self.device)[None, :] < batch["n_frames"].to(self.device)[:, None]
        return ModelOutput(hidden={"logmel": logmel}, token_groups={"all": valid})

    def pooling_label(self, how=None):
        return "mean-time"
