"""Audio encoders: AST, wav2vec 2.0 and the Whisper encoder, every layer per TR window.

Each window's waveform (at the model's rate, 16 kHz) is turned into the model's input
here, in torch, matching the Hugging Face feature extractors (tests compare against
them):

- ``ast``: Kaldi-style log-mel filterbank (:func:`kaldi_fbank`: 25 ms frames every
  10 ms without edge padding, DC removal, pre-emphasis 0.97, symmetric Hann, 512-point
  power spectrum, 128 triangular mel bands on the Kaldi mel scale from 20 Hz, natural
  log), padded/cut to ``config.max_length`` frames and normalised
  ``(x - mean) / (2 * std)`` with the AudioSet statistics. Pooling ``"mean"`` averages the
  [CLS]/distillation tokens and the patches whose time span starts inside the real audio
  (not the zero padding); ``"cls"`` averages the two special tokens.
- ``wav2vec2``: the waveform normalised to zero mean / unit variance per window; one
  token per 20 ms frame (the CNN's hop), pooled over the frames whose centre lies in the
  window.
- ``whisper`` (encoder only): 80-band Slaney log-mel (:func:`whisper_logmel`) of the
  waveform zero-padded to the encoder's fixed input (30 s for the released models),
  clamped 8 log10 units below its maximum and scaled ``(x + 4) / 4``; one token per
  20 ms; pooled over the frames of the real audio (not the padding).

Layers: ``"layer-0"`` (the input embeddings the transformer sees) .. ``"layer-N"``.

Causal context (``context=SECONDS``, wav2vec2 and whisper): the model reads the
``SECONDS`` of audio that *end* at the TR window's end, and pooling keeps only the frames
whose centre lies in the current TR (the last ``current_samples`` samples). Such windows
are :class:`ContextWindowInput` (a :class:`WindowInput` that also says how many trailing
samples are the current TR); :func:`context_window_inputs` builds them from a run's
waveform and TR times, and the extraction driver builds the same windows from the
adapter's ``default_window`` (``"context:SECONDS"``), setting ``current_samples`` on each.
``window_params()`` records ``{"context": SECONDS}``. Any window that carries
``current_samples`` is pooled over its current TR only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mmneuro.errors import InputError
from mmneuro.models._hf import build_model, current_frame_mask, ensure_eager, preprocessor_config, waveform_of
from mmneuro.models.base import ModelAdapter, ModelOutput, WeightsInfo, WindowInput

AST_HUB_ID = "MIT/ast-finetuned-audioset-10-10-0.4593"
WAV2VEC2_HUB_ID = "facebook/wav2vec2-base-960h"
WHISPER_HUB_ID = "openai/whisper-base"

AUDIOSET_MEAN = -4.2677393
AUDIOSET_STD = 4.5689974


# ---- windows with causal context ------------------------------------------------------


@dataclass
class ContextWindowInput(WindowInput):
    """A waveform window with causal context.

    Attributes
    ----------
    current_samples : how many samples at the *end* of ``waveform`` belong to the current
        TR (the rest is preceding context).
    """

    current_samples: int | None = None


def context_window_inputs(waveform: np.ndarray, sample_rate: int, tr_times, tr: float, context: float) -> list[ContextWindowInput]:
    """Causal context windows of one run.

    For each TR window ``[t - tr/2, t + tr/2)`` the waveform ``[max(0, end - context), end)``
    with ``current_samples`` = the samples of ``[max(0, t - tr/2), end)``; ``end`` is clipped
    to the audio. ``context`` must be >= ``tr``.

    Returns one :class:`ContextWindowInput` per TR time.
    """
    from mmneuro.stimuli.windows import tr_windows

    if float(context) < float(tr):
        raise InputError(f"context ({context} s) must be at least one TR ({tr} s)")
    wav = np.asarray(waveform, dtype=np.float32)
    n = len(wav)
    out = []
    for start, end in tr_windows(tr_times, tr):
        b = min(n, int(round(end * sample_rate)))
        cur = max(0, int(round(start * sample_rate)))
        a = max(0, int(round((end - context) * sample_rate)))
        if b <= cur:
            raise InputError(f"TR window [{start:.3f}, {end:.3f}) s lies outside the {n / sample_rate:.3f} s of audio")
        out.append(ContextWindowInput(waveform=wav[a:b], sample_rate=sample_rate, current_samples=b - max(a, cur)))
    return out


# ---- features ---------------------------------------------------------------------------


def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: int, fmin: float = 20.0, fmax: float | None = None) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) triangles on the Kaldi mel scale ``1127 ln(1 + f/700)``.

    Triangles are drawn in mel space (rising from the left edge to the centre, falling to
    the right edge), unnormalised; edges equally spaced in mel between ``fmin`` and
    ``fmax`` (default Nyquist).
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    mel = lambda f: 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)  # noqa: E731
    edges = np.linspace(mel(fmin), mel(fmax), n_mels + 2)
    bins = mel(np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1))[:, None]
    left, centre, right = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    w = np.maximum(0.0, np.minimum((bins - left) / (centre - left), (right - bins) / (right - centre)))
    return torch.from_numpy(w.astype(np.float32))


def kaldi_fbank(wave: torch.Tensor, sample_rate: int = 16000, n_mels: int = 128, frame_ms: float = 25.0,
                hop_ms: float = 10.0, preemphasis: float = 0.97) -> torch.Tensor:
    """Kaldi-style log filterbank of a 1-D waveform -> (frames, n_mels) float32.

    Frames of ``frame_ms`` every ``hop_ms`` with no edge padding (``1 + (n - L) // H``
    frames); per frame: subtract its mean, pre-emphasise (``x[i] - a x[i-1]``, first sample
    ``x[0] (1 - a)``), symmetric Hann window, zero-pad to the next power of two, power
    spectrum, Kaldi mel banks from 20 Hz, ``log(max(e, float32 eps))``.
    """
    wave = wave.float()
    length = int(round(sample_rate * frame_ms / 1000))
    hop = int(round(sample_rate * hop_ms / 1000))
    if wave.ndim != 1 or wave.numel() < length:
        raise InputError(f"kaldi_fbank needs a 1-D waveform of at least {length} samples; got shape {tuple(wave.shape)}")
    n_fft = 1 << math.ceil(math.log2(length))
    frames = wave.unfold(0, length, hop)  # (T, L)
    frames = frames - frames.mean(dim=1, keepdim=True)
    frames = torch.cat([frames[:, :1] * (1 - preemphasis), frames[:, 1:] - preemphasis * frames[:, :-1]], dim=1)
    frames = frames * torch.hann_window(length, periodic=False, dtype=frames.dtype, device=frames.device)
    power = torch.fft.rfft(frames, n=n_fft).abs().square()
    mel = power @ kaldi_mel_banks(n_mels, n_fft, sample_rate).to(power.device)
    return torch.log(torch.clamp(mel, min=float(torch.finfo(torch.float32).eps)))


def slaney_mel_filters(n_mels: int, n_fft: int, sample_rate: int, fmin: float = 0.0, fmax: float = 8000.0) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) triangles on the Slaney mel scale, each of unit area (Slaney norm).

    Slaney scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above
    (27 mels per factor 6.4). Triangles are drawn in Hz between mel-spaced edges.
    """
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0

    def to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)

    def to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), m * f_sp)

    edges = to_hz(np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2))
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)[:, None]
    lo, mid, hi = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    w = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    w *= 2.0 / (hi - lo)
    return torch.from_numpy(w.astype(np.float32))


def whisper_logmel(wave: torch.Tensor, n_samples: int, n_mels: int = 80, sample_rate: int = 16000, n_fft: int = 400,
                   hop: int = 160) -> torch.Tensor:
    """Whisper's log-mel input of a 1-D waveform -> (n_mels, n_samples // hop) float32.

    The waveform is zero-padded to ``n_samples``; centred STFT (reflect padding, periodic
    Hann of ``n_fft``), power, Slaney mel (0-8 kHz), ``log10(max(., 1e-10))``, clamped at
    ``max - 8``, then ``(x + 4) / 4``. The last STFT frame is dropped.
    """
    wave = wave.float()
    if wave.ndim != 1:
        raise InputError(f"waveform must be 1-D; got shape {tuple(wave.shape)}")
    if wave.numel() > n_samples:
        raise InputError(
            f"the audio window has {wave.numel()} samples but the Whisper encoder reads at most {n_samples} "
            f"({n_samples / sample_rate:g} s); use a shorter window/context"
        )
    x = torch.nn.functional.pad(wave, (0, n_samples - wave.numel()))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft, device=x.device), center=True,
                      pad_mode="reflect", return_complex=True)
    power = spec[:, :-1].abs().square()
    mel = slaney_mel_filters(n_mels, n_fft, sample_rate).to(x.device).T @ power
    logmel = torch.clamp(mel, min=1e-10).log10()
    logmel = torch.maximum(logmel, logmel.max() - 8.0)
    return (logmel + 4.0) / 4.0


# ---- the adapter ------------------------------------------------------------------------


class AudioAdapter(ModelAdapter):
    """Adapter around a ``transformers`` audio encoder (``ASTModel``, ``Wav2Vec2Model``,
    ``WhisperEncoder``). Build with :meth:`from_weights`.

    Parameters
    ----------
    model : the encoder module.
    kind : ``"ast"``, ``"wav2vec2"`` or ``"whisper"``.
    weights : where the weights came from.
    name : registry name.
    context : seconds of causal context (wav2vec2/whisper; None: the TR window alone).
    processor : the checkpoint's preprocessor_config.json values ({} for defaults).
    device : torch device (None: CUDA when available).
    """

    modalities = ("audio",)
    input_kind = "waveform"
    sample_rate = 16000
    batch_size = 8
    version = "audio-1"

    def __init__(self, model, kind: str, weights: WeightsInfo, name: str | None = None, context: float | None = None,
                 processor: dict | None = None, device=None):
        if kind not in ("ast", "wav2vec2", "whisper"):
            raise InputError(f"unknown audio model kind {kind!r}")
        if context is not None:
            if kind == "ast":
                raise InputError("causal context is available for wav2vec2 and whisper, not AST")
            if not float(context) > 0:
                raise InputError(f"context must be a positive number of seconds; got {context}")
        self.model = model.eval()
        self.config = model.config
        self.kind = kind
        self.weights = weights
        self.name = name or kind
        self.context = None if context is None else float(context)
        proc = processor or {}
        self.sample_rate = int(proc.get("sampling_rate", 16000))
        cfg = self.config
        if kind == "ast":
            self.n_mels = int(cfg.num_mel_bins)
            self.max_length = int(cfg.max_length)
            self.norm_mean = float(proc.get("mean", AUDIOSET_MEAN))
            self.norm_std = float(proc.get("std", AUDIOSET_STD))
            self.do_normalize = bool(proc.get("do_normalize", True))
            self.n_layers = int(cfg.num_hidden_layers)
            self.poolings = ("mean", "cls")
        elif kind == "wav2vec2":
            self.do_normalize = bool(proc.get("do_normalize", True))
            self.stride = int(np.prod(cfg.conv_stride))
            field, jump = 1, 1
            for k, s in zip(cfg.conv_kernel, cfg.conv_stride):
                field += (k - 1) * jump
                jump *= s
            self.field = field
            self.n_layers = int(cfg.num_hidden_layers)
            self.poolings = ("mean", "mean:window")
        else:
            self.n_mels = int(cfg.num_mel_bins)
            self.hop = int(proc.get("hop_length", 160))
            self.n_fft = int(proc.get("n_fft", 400))
            self.n_frames_in = int(cfg.max_source_positions) * 2  # conv2 has stride 2
            self.n_samples = self.n_frames_in * self.hop
            self.stride = 2 * self.hop
            self.n_layers = int(cfg.encoder_layers)
            self.poolings = ("mean", "mean:window")
        self.default_pooling = "mean"
        self.layer_names = [f"layer-{i}" for i in range(self.n_layers + 1)]
        self.to(device)

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_weights(cls, resolved, kind: str, name: str | None = None, config=None, attentions: bool = False, **kw):
        """Build from resolved weights; random weights use ``config`` or the default
        checkpoint's architecture (AST AudioSet, wav2vec2-base, whisper-base)."""
        import transformers as tf

        if kind == "ast":
            model = build_model(resolved, tf.ASTModel, tf.ASTConfig, config, attentions)
        elif kind == "wav2vec2":
            model = build_model(resolved, tf.Wav2Vec2Model, tf.Wav2Vec2Config, config, attentions)
        elif kind == "whisper":
            full = build_model(resolved, tf.WhisperModel, _whisper_base_config, config, attentions)
            model = full.get_encoder()
            del full
        else:
            raise InputError(f"unknown audio model kind {kind!r}")
        return cls(model, kind, resolved.info, name=name, processor=preprocessor_config(resolved), **kw)

    @property
    def default_window(self) -> str:
        """The window the extraction driver builds: ``"context:SECONDS"`` or ``"clip"``."""
        return "clip" if self.context is None else f"context:{self.context:g}"

    def window_params(self):
        p = super().window_params()
        if self.context is not None:
            p["context"] = self.context
        return p

    # ---- protocol -------------------------------------------------------------------
    def preprocess(self, sample: WindowInput) -> dict[str, torch.Tensor]:
        """One window -> model input (no batch axis) + which frames to pool.

        ast: ``input_values`` (max_length, n_mels), ``n_real`` (); wav2vec2: ``input_values``
        (n_samples,), ``current`` (); whisper: ``input_features`` (n_mels, frames),
        ``n_real`` (), ``current`` ().
        """
        w = torch.from_numpy(waveform_of(sample, self.sample_rate, self.name))
        current = getattr(sample, "current_samples", None)
        if self.context is not None:
            if current is None:
                raise InputError(
                    f"model {self.name!r} was built with context={self.context:g} s: each window must be the "
                    f"{self.context:g} s of audio ending at the TR's end with `current_samples` set "
                    "(mmneuro.models.audio.ContextWindowInput / context_window_inputs)"
                )
            if not 0 < int(current) <= w.numel():
                raise InputError(f"current_samples={current} outside the window's {w.numel()} samples")
        cur = torch.tensor(-1 if current is None else int(current))
        if self.kind == "ast" and current is not None:
            raise InputError("AST pools whole windows; give it 'clip' windows, not causal context windows")
        if self.kind == "ast":
            fb = kaldi_fbank(w, self.sample_rate, self.n_mels)
            n_real = min(fb.shape[0], self.max_length)
            x = torch.zeros(self.max_length, self.n_mels)
            x[:n_real] = fb[:n_real]
            if self.do_normalize:
                x = (x - self.norm_mean) / (2 * self.norm_std)
            return {"input_values": x, "n_real": torch.tensor(n_real)}
        if self.kind == "wav2vec2":
            if self.do_normalize:
                w = (w - w.mean()) / torch.sqrt(w.var(unbiased=False) + 1e-7)
            return {"input_values": w, "current": cur}
        feats = whisper_logmel(w, self.n_samples, self.n_mels, self.sample_rate, self.n_fft, self.hop)
        return {"input_features": feats, "n_real": torch.tensor(w.numel()), "current": cur}

    def collate(self, items):
        out = {}
        if self.kind == "wav2vec2":
            n = max(int(it["input_values"].shape[0]) for it in items)
            x = torch.zeros(len(items), n)
            lengths = torch.zeros(len(items), dtype=torch.long)
            for i, it in enumerate(items):
                t = int(it["input_values"].shape[0])
                x[i, :t] = it["input_values"]
                lengths[i] = t
            out = {"input_values": x, "lengths": lengths}
        else:
            key = "input_values" if self.kind == "ast" else "input_features"
            out = {key: torch.stack([it[key] for it in items])}
        for k in ("n_real", "current"):
            if k in items[0]:
                out[k] = torch.stack([it[k] for it in items])
        return out

    def forward(self, batch, want_attentions: bool = False) -> ModelOutput:
        if want_attentions:
            ensure_eager(self.model)
        with torch.autocast(device_type=self.device.type, enabled=False):
            if self.kind == "ast":
                return self._forward_ast(batch, want_attentions)
            if self.kind == "wav2vec2":
                return self._forward_wav2vec2(batch, want_attentions)
            return self._forward_whisper(batch, want_attentions)

    def _run(self, want_attentions, **inputs):
        out = self.model(**inputs, output_hidden_states=True, output_attentions=want_attentions)
        hs = out.hidden_states
        if len(hs) != len(self.layer_names):
            raise InputError(f"model {self.name!r} returned {len(hs)} hidden states; expected {len(self.layer_names)}")
        att = dict(zip(self.layer_names[1:], out.attentions)) if want_attentions else None
        return list(hs), att

    def _forward_ast(self, batch, want_attentions):
        x = batch["input_values"].to(self.device)
        hs, att = self._run(want_attentions, input_values=x)
        cfg = self.config
        f_dim = (self.n_mels - cfg.patch_size) // cfg.frequency_stride + 1
        t_dim = (self.max_length - cfg.patch_size) // cfg.time_stride + 1
        t_start = torch.arange(t_dim, device=self.device) * cfg.time_stride
        real_t = t_start[None, :] < batch["n_real"].to(self.device)[:, None]  # (B, t_dim)
        patches = real_t[:, None, :].expand(-1, f_dim, -1).reshape(len(x), f_dim * t_dim)
        special = torch.ones(len(x), 2, dtype=torch.bool, device=self.device)
        return ModelOutput(
            hidden=dict(zip(self.layer_names, hs)),
            token_groups={"all": torch.cat([special, patches], dim=1), "cls": slice(0, 2)},
            attentions=att,
        )

    def _forward_wav2vec2(self, batch, want_attentions):
        x, lengths = batch["input_values"], batch["lengths"]
        b = len(x)
        # windows of different lengths run separately: zero padding would change the
        # group-normalised CNN features of wav2vec2-base (which takes no attention mask)
        groups: dict[int, list[int]] = {}
        for i, n in enumerate(lengths.tolist()):
            groups.setdefault(int(n), []).append(i)
        n_out = {n: int(self.model._get_feat_extract_output_lengths(torch.tensor(n))) for n in groups}
        t_max = max(n_out.values())
        hidden = None
        att = {} if want_attentions else None
        window = torch.zeros(b, t_max, dtype=torch.bool)
        current = torch.zeros(b, t_max, dtype=torch.bool)
        for n, idx in groups.items():
            hs, a = self._run(want_attentions, input_values=x[idx, :n].to(self.device))
            if hidden is None:
                hidden = {l: hs[0].new_zeros(b, t_max, hs[0].shape[-1]) for l in self.layer_names}
            t = hs[0].shape[1]
            for l, h in zip(self.layer_names, hs):
                hidden[l][idx, :t] = h
            if a is not None:
                for l, v in a.items():
                    if l not in att:
                        att[l] = v.new_zeros(b, v.shape[1], t_max, t_max)
                    att[l][idx, :, :t, :t] = v
            for i in idx:
                c = int(batch["current"][i])
                window[i, :t] = current_frame_mask(t, n, None, self.stride, self.field)
                current[i, :t] = current_frame_mask(t, n, None if c < 0 else c, self.stride, self.field)
        return ModelOutput(
            hidden=hidden,
            token_groups={"all": current.to(self.device), "window": window.to(self.device)},
            attentions=att,
        )

    def _forward_whisper(self, batch, want_attentions):
        x = batch["input_features"].to(self.device)
        hs, att = self._run(want_attentions, input_features=x)
        t = hs[0].shape[1]
        b = len(x)
        window = torch.zeros(b, t, dtype=torch.bool)
        current = torch.zeros(b, t, dtype=torch.bool)
        for i in range(b):
            n = int(batch["n_real"][i])
            c = int(batch["current"][i])
            window[i] = current_frame_mask(t, n, None, self.stride, 0)
            current[i] = current_frame_mask(t, n, None if c < 0 else c, self.stride, 0)
        return ModelOutput(
            hidden=dict(zip(self.layer_names, hs)),
            token_groups={"all": current.to(self.device), "window": window.to(self.device)},
            attentions=att,
        )

    def pooling_label(self, how=None):
        how = how or self.default_pooling
        if how == "mean" and self.context is not None:
            return f"mean-current-tr,context{self.context:g}s"
        return {"mean": "mean-time", "cls": "cls+dist"}.get(how, how)


def _whisper_base_config():
    from transformers import WhisperConfig

    return WhisperConfig(
        num_mel_bins=80, d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048,
        decoder_layers=6, decoder_attention_heads=8, decoder_ffn_dim=2048,
    )
