"""TVLT (Textless Vision-Language Transformer) encoder in plain torch, checkpoint-compatible.

transformers 5 dropped TVLT; this module is our own implementation of its encoder that
reads the original checkpoints (``config.json`` + ``model.safetensors`` /
``pytorch_model.bin`` with ``TvltModel`` parameter names, or ``TvltForPreTraining``
checkpoints whose encoder sits under ``tvlt.``).

Architecture (one joint sequence, pre-norm ViT blocks)::

    tokens = [CLS] + video patches (frame-major: frame 0 patches, frame 1 patches, ...)
                   + audio patches (time-major: for each time row, the frequency patches)
    video patch (f, p) = conv16x16(frame f)[p] + pos_v[p] + time_v[f] + type_v
    audio patch (t, q) = conv16x16(spectrogram)[t, q] + freq_a[q] + pos_a[t] + type_a
    block: h = h + Attn(LN1(h)); h = h + MLP(LN2(h))        (MLP: Linear-GELU-Linear)
    last_hidden_state = LN_final(h)

Padding masks (1 = real, 0 = padding) exclude keys from attention; the CLS token uses the
first video patch's mask entry, as in the original. ``block_cross_modal=True`` also removes
attention between the modalities: video tokens see only video tokens, audio tokens only
audio tokens, and neither sees CLS (which may carry the other modality after layer 1);
CLS still reads every token. Video states then never depend on the audio, nor audio
states on the video, at any depth.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmneuro.errors import InputError, WeightsUnavailableError

__all__ = ["TvltConfig", "TvltEncoder", "TvltOutput", "load_tvlt", "save_tvlt", "read_tvlt_state_dict"]

_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
}


@dataclass
class TvltConfig:
    """Encoder hyper-parameters; defaults are ``ZinengTang/tvlt-base`` (HF ``TvltConfig()``).

    Unknown keys of a ``config.json`` (decoder sizes, mask ratios, ...) are kept in ``extra``
    and written back by :meth:`to_dict`.
    """

    image_size: int = 224
    spectrogram_length: int = 2048
    frequency_length: int = 128
    image_patch_size: tuple[int, int] = (16, 16)
    audio_patch_size: tuple[int, int] = (16, 16)
    num_image_channels: int = 3
    num_audio_channels: int = 1
    num_frames: int = 8
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    use_mean_pooling: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.image_patch_size = _pair(self.image_patch_size)
        self.audio_patch_size = _pair(self.audio_patch_size)
        if self.hidden_size % self.num_attention_heads:
            raise InputError(f"TVLT hidden_size {self.hidden_size} is not a multiple of {self.num_attention_heads} heads")
        if self.hidden_act not in _ACTIVATIONS:
            raise InputError(f"TVLT hidden_act {self.hidden_act!r} is not supported; use one of {sorted(_ACTIVATIONS)}")
        if self.frequency_length % self.audio_patch_size[1]:
            raise InputError(
                f"TVLT frequency_length {self.frequency_length} is not a multiple of the audio patch width "
                f"{self.audio_patch_size[1]}"
            )

    @property
    def patches_per_frame(self) -> int:
        return (self.image_size // self.image_patch_size[0]) * (self.image_size // self.image_patch_size[1])

    @property
    def freq_patches(self) -> int:
        return self.frequency_length // self.audio_patch_size[1]

    @property
    def time_patches(self) -> int:
        return self.spectrogram_length // self.audio_patch_size[0]

    @classmethod
    def from_dict(cls, d: dict) -> "TvltConfig":
        known = {f.name for f in fields(cls)} - {"extra"}
        kw = {k: v for k, v in d.items() if k in known}
        extra = {k: v for k, v in d.items() if k not in known}
        if isinstance(kw.get("image_size"), (list, tuple)):
            a, b = kw["image_size"]
            if a != b:
                raise InputError(f"TVLT image_size must be square; got {kw['image_size']}")
            kw["image_size"] = int(a)
        return cls(**kw, extra=extra)

    def to_dict(self) -> dict:
        d = asdict(self)
        extra = d.pop("extra")
        d["image_patch_size"] = list(d["image_patch_size"])
        d["audio_patch_size"] = list(d["audio_patch_size"])
        out = {"model_type": "tvlt", "architectures": ["TvltModel"]}
        out.update(extra)
        out.update(d)
        return out


@dataclass
class TvltOutput:
    """What :meth:`TvltEncoder.forward` returns.

    Attributes
    ----------
    hidden_states : ``num_hidden_layers + 1`` tensors ``(B, L, D)``: the embeddings, then
        each block's output (before the final LayerNorm), ``L = 1 + Nv + Na``.
    last_hidden_state : ``(B, L, D)`` final block output after the final LayerNorm (the
        last block's output when the config uses mean pooling, which has no final norm).
    attentions : ``num_hidden_layers`` tensors ``(B, heads, L, L)`` when asked for, else None.
    n_video : Nv, video tokens at ``1 : 1 + Nv``.
    n_audio : Na, audio tokens at ``1 + Nv :``.
    token_mask : ``(B, L)`` bool, True for real (non-padding) tokens.
    """

    hidden_states: tuple[torch.Tensor, ...]
    last_hidden_state: torch.Tensor
    attentions: tuple[torch.Tensor, ...] | None
    n_video: int
    n_audio: int
    token_mask: torch.Tensor

    @property
    def video_slice(self) -> slice:
        return slice(1, 1 + self.n_video)

    @property
    def audio_slice(self) -> slice:
        return slice(1 + self.n_video, 1 + self.n_video + self.n_audio)


class _Block(nn.Module):
    """Pre-norm transformer block: multi-head self-attention, then a GELU MLP."""

    def __init__(self, cfg: TvltConfig):
        super().__init__()
        d = cfg.hidden_size
        self.heads = cfg.num_attention_heads
        self.head_dim = d // self.heads
        self.norm_attn = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.q = nn.Linear(d, d, bias=cfg.qkv_bias)
        self.k = nn.Linear(d, d, bias=cfg.qkv_bias)
        self.v = nn.Linear(d, d, bias=cfg.qkv_bias)
        self.attn_out = nn.Linear(d, d)
        self.norm_mlp = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.mlp_in = nn.Linear(d, cfg.intermediate_size)
        self.mlp_out = nn.Linear(cfg.intermediate_size, d)
        self.act = _ACTIVATIONS[cfg.hidden_act]

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, H, L, dh)
        b, l, _ = x.shape
        return x.view(b, l, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, h: torch.Tensor, allowed: torch.Tensor | None, want_probs: bool):
        """h (B, L, D); allowed (B or 1, 1, L or 1, L) bool or None -> (h, probs or None)."""
        x = self.norm_attn(h)
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        probs = None
        if want_probs:
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim)
            if allowed is not None:
                scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
            probs = scores.softmax(dim=-1)
            ctx = probs @ v
        else:
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        b, _, l, _ = ctx.shape
        h = h + self.attn_out(ctx.transpose(1, 2).reshape(b, l, -1))
        h = h + self.mlp_out(self.act(self.mlp_in(self.norm_mlp(h))))
        return h, probs


class TvltEncoder(nn.Module):
    """The TVLT encoder (``TvltModel`` without its masking-for-pretraining branch).

    Parameters are named in our own layout; :data:`CHECKPOINT_NAMES` maps the original
    checkpoint names to them (:func:`load_tvlt` / :func:`save_tvlt` translate).
    """

    def __init__(self, cfg: TvltConfig):
        super().__init__()
        self.config = cfg
        d = cfg.hidden_size
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.video_patch = nn.Conv2d(cfg.num_image_channels, d, cfg.image_patch_size, stride=cfg.image_patch_size)
        self.video_pos = nn.Parameter(torch.zeros(1, cfg.patches_per_frame, d))
        self.video_time = nn.Parameter(torch.zeros(1, cfg.num_frames, d))
        self.video_type = nn.Parameter(torch.zeros(1, 1, d))
        self.audio_patch = nn.Conv2d(cfg.num_audio_channels, d, cfg.audio_patch_size, stride=cfg.audio_patch_size)
        self.audio_freq = nn.Parameter(torch.zeros(1, cfg.freq_patches, d))
        self.audio_time = nn.Parameter(torch.zeros(1, cfg.time_patches, d))
        self.audio_type = nn.Parameter(torch.zeros(1, 1, d))
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.num_hidden_layers))
        self.final_norm = None if cfg.use_mean_pooling else nn.LayerNorm(d, eps=cfg.layer_norm_eps)

    def reset_parameters(self) -> None:
        """Random init: weights and embeddings ~ N(0, initializer_range), biases 0, norms 1/0.

        (The original leaves the position/type embeddings and CLS at zero until trained; here
        they are drawn too, so a random-weights control is position-aware.)
        """
        std = self.config.initializer_range
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.normal_(m.weight, 0.0, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for p in (self.cls, self.video_pos, self.video_time, self.video_type, self.audio_freq, self.audio_time, self.audio_type):
            nn.init.normal_(p, 0.0, std)

    # ---- embeddings -------------------------------------------------------------------
    def embed_video(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, F, C, S, S) -> (B, F * P, D)."""
        cfg = self.config
        if pixel_values.ndim != 5:
            raise InputError(f"TVLT pixel_values must be (batch, frames, channels, H, W); got {tuple(pixel_values.shape)}")
        b, f, c, hh, ww = pixel_values.shape
        if c != cfg.num_image_channels or hh != cfg.image_size or ww != cfg.image_size:
            raise InputError(
                f"TVLT expects frames of {cfg.num_image_channels}x{cfg.image_size}x{cfg.image_size}; got {c}x{hh}x{ww}"
            )
        if not 1 <= f <= cfg.num_frames:
            raise InputError(f"TVLT reads 1..{cfg.num_frames} frames; got {f}")
        x = self.video_patch(pixel_values.reshape(b * f, c, hh, ww)).flatten(2).transpose(1, 2)  # (BF, P, D)
        x = x.reshape(b, f, -1, x.shape[-1])
        x = x + self.video_pos.unsqueeze(1) + self.video_time[:, :f].unsqueeze(2) + self.video_type.unsqueeze(1)
        return x.reshape(b, -1, x.shape[-1])

    def embed_audio(self, audio_values: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, M) -> (B, (T // pt) * (M // pf), D), time-major."""
        cfg = self.config
        if audio_values.ndim != 4:
            raise InputError(f"TVLT audio_values must be (batch, 1, time, mel); got {tuple(audio_values.shape)}")
        b, c, t, m = audio_values.shape
        if c != cfg.num_audio_channels or m != cfg.frequency_length:
            raise InputError(f"TVLT expects audio of {cfg.num_audio_channels}x(time)x{cfg.frequency_length}; got {c}x{t}x{m}")
        if t > cfg.spectrogram_length or t < cfg.audio_patch_size[0]:
            raise InputError(
                f"TVLT spectrogram length must be {cfg.audio_patch_size[0]}..{cfg.spectrogram_length} frames; got {t}"
            )
        x = self.audio_patch(audio_values)  # (B, D, T', Q)
        rows = x.shape[2]
        x = x.permute(0, 2, 3, 1)  # (B, T', Q, D)
        x = x + self.audio_freq.unsqueeze(1) + self.audio_time[:, :rows].unsqueeze(2) + self.audio_type.unsqueeze(1)
        return x.reshape(b, -1, x.shape[-1])

    # ---- forward ----------------------------------------------------------------------
    def forward(
        self,
        pixel_values: torch.Tensor,
        audio_values: torch.Tensor,
        pixel_mask: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        block_cross_modal: bool = False,
    ) -> TvltOutput:
        """Run the encoder.

        Parameters
        ----------
        pixel_values : (B, F, 3, S, S) float.
        audio_values : (B, 1, T, M) float, T a multiple of the audio patch height.
        pixel_mask : (B, F * P) 1/0, or None (all real).
        audio_mask : (B, Na) 1/0, or None (all real).
        output_attentions : also return attention probabilities (eager attention).
        block_cross_modal : forbid video<->audio attention (see module docstring).
        """
        video = self.embed_video(pixel_values)
        audio = self.embed_audio(audio_values)
        b, nv, na = video.shape[0], video.shape[1], audio.shape[1]
        if audio.shape[0] != b:
            raise InputError(f"TVLT batch sizes differ: {b} videos, {audio.shape[0]} audio clips")
        vmask = _mask(pixel_mask, b, nv, "pixel_mask", video.device)
        amask = _mask(audio_mask, b, na, "audio_mask", video.device)
        token_mask = torch.cat([vmask[:, :1], vmask, amask], dim=1)
        h = torch.cat([self.cls.expand(b, -1, -1).to(video.dtype), video, audio], dim=1)

        allowed = None if bool(token_mask.all()) else token_mask[:, None, None, :]
        if block_cross_modal:
            group = torch.cat([
                torch.zeros(1, dtype=torch.long), torch.ones(nv, dtype=torch.long), torch.full((na,), 2, dtype=torch.long)
            ]).to(video.device)
            pair = (group[:, None] == group[None, :]) | (group[:, None] == 0)  # (L, L): query row, key column
            pair = pair[None, None]
            allowed = pair if allowed is None else (allowed & pair)

        states = [h]
        probs = [] if output_attentions else None
        for block in self.blocks:
            h, p = block(h, allowed, output_attentions)
            states.append(h)
            if probs is not None:
                probs.append(p)
        last = self.final_norm(h) if self.final_norm is not None else h
        return TvltOutput(
            hidden_states=tuple(states),
            last_hidden_state=last,
            attentions=tuple(probs) if probs is not None else None,
            n_video=nv,
            n_audio=na,
            token_mask=token_mask,
        )


def _mask(m: torch.Tensor | None, b: int, n: int, name: str, device) -> torch.Tensor:
    if m is None:
        return torch.ones(b, n, dtype=torch.bool, device=device)
    m = torch.as_tensor(m, device=device)
    if tuple(m.shape) != (b, n):
        raise InputError(f"TVLT {name} must have shape {(b, n)}; got {tuple(m.shape)}")
    return m != 0


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


# ---- checkpoint layout ----------------------------------------------------------------

#: original (``TvltModel``) parameter name patterns -> ours; ``{i}`` is a block index
CHECKPOINT_NAMES: dict[str, str] = {
    "cls_embedding": "cls",
    "pixel_embeddings.patch_embeddings.projection.weight": "video_patch.weight",
    "pixel_embeddings.patch_embeddings.projection.bias": "video_patch.bias",
    "pixel_embeddings.pos_embed_v": "video_pos",
    "pixel_embeddings.temporal_embed": "video_time",
    "pixel_embeddings.type_embed_v": "video_type",
    "audio_embeddings.patch_embeddings.projection.weight": "audio_patch.weight",
    "audio_embeddings.patch_embeddings.projection.bias": "audio_patch.bias",
    "audio_embeddings.freq_embed": "audio_freq",
    "audio_embeddings.pos_embed_a": "audio_time",
    "audio_embeddings.type_embed_a": "audio_type",
    "layernorm.weight": "final_norm.weight",
    "layernorm.bias": "final_norm.bias",
}
_BLOCK_NAMES: dict[str, str] = {
    "layernorm_before": "norm_attn",
    "attention.attention.query": "q",
    "attention.attention.key": "k",
    "attention.attention.value": "v",
    "attention.output.dense": "attn_out",
    "layernorm_after": "norm_mlp",
    "intermediate.dense": "mlp_in",
    "output.dense": "mlp_out",
}
_BLOCK_RE = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
_OURS_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(\w+)\.(weight|bias)$")


def to_our_name(name: str) -> str | None:
    """Original ``TvltModel`` parameter name -> our name (None if not an encoder parameter)."""
    if name in CHECKPOINT_NAMES:
        return CHECKPOINT_NAMES[name]
    m = _BLOCK_RE.match(name)
    if m and m.group(2) in _BLOCK_NAMES:
        return f"blocks.{m.group(1)}.{_BLOCK_NAMES[m.group(2)]}.{m.group(3)}"
    return None


def to_checkpoint_name(name: str) -> str:
    """Our parameter name -> the original ``TvltModel`` name."""
    inverse = {v: k for k, v in CHECKPOINT_NAMES.items()}
    if name in inverse:
        return inverse[name]
    m = _OURS_BLOCK_RE.match(name)
    if m:
        back = {v: k for k, v in _BLOCK_NAMES.items()}
        return f"encoder.layer.{m.group(1)}.{back[m.group(2)]}.{m.group(3)}"
    raise KeyError(name)


def read_tvlt_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of the checkpoint in ``folder`` under original names, ``tvlt.`` prefix removed.

    Reads ``model.safetensors`` (or its shards via ``model.safetensors.index.json``), else
    ``pytorch_model.bin`` (or shards). When any name starts with ``tvlt.`` (a
    ``TvltForPreTraining`` / classification checkpoint), only those are kept: decoder,
    matching and classifier heads are dropped.
    """
    folder = Path(folder)
    sd: dict[str, torch.Tensor] = {}
    st_files = _shards(folder, "model.safetensors")
    if st_files:
        from safetensors.torch import load_file

        for p in st_files:
            sd.update(load_file(str(p)))
    else:
        bin_files = _shards(folder, "pytorch_model.bin")
        if not bin_files:
            raise WeightsUnavailableError(
                f"TVLT weights folder {folder} has neither model.safetensors nor pytorch_model.bin "
                "(nor their sharded index files)."
            )
        for p in bin_files:
            sd.update(torch.load(str(p), map_location="cpu", weights_only=True))
    if any(k.startswith("tvlt.") for k in sd):
        sd = {k[len("tvlt.") :]: v for k, v in sd.items() if k.startswith("tvlt.")}
    return sd


def _shards(folder: Path, name: str) -> list[Path]:
    if (folder / name).is_file():
        return [folder / name]
    index = folder / f"{name}.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / f for f in files]
    return []


def load_tvlt(folder: str | Path, config: TvltConfig | None = None) -> TvltEncoder:
    """Build a :class:`TvltEncoder` from an original TVLT checkpoint folder (eval mode, CPU).

    Raises :class:`WeightsUnavailableError` when ``config.json`` or the weights are missing,
    and :class:`InputError` when encoder parameters are missing, unexpected or misshapen.
    """
    folder = Path(folder)
    if config is None:
        cfg_path = folder / "config.json"
        if not cfg_path.is_file():
            raise WeightsUnavailableError(f"TVLT weights folder {folder} has no config.json")
        config = TvltConfig.from_dict(json.loads(cfg_path.read_text()))
    model = TvltEncoder(config)
    raw = read_tvlt_state_dict(folder)
    mine, unexpected = {}, []
    for k, v in raw.items():
        ours = to_our_name(k)
        if ours is None:
            unexpected.append(k)
        else:
            mine[ours] = v
    expected = model.state_dict()
    missing = sorted(set(expected) - set(mine))
    if missing or unexpected:
        raise InputError(
            f"TVLT checkpoint in {folder} does not match its config: missing {[to_checkpoint_name(m) for m in missing][:8]}"
            f"{'...' if len(missing) > 8 else ''}, unexpected {sorted(unexpected)[:8]}{'...' if len(unexpected) > 8 else ''}"
        )
    bad = [(to_checkpoint_name(k), tuple(v.shape), tuple(expected[k].shape)) for k, v in mine.items() if v.shape != expected[k].shape]
    if bad:
        raise InputError(f"TVLT checkpoint in {folder} has tensors of the wrong shape (name, got, expected): {bad[:5]}")
    model.load_state_dict({k: v.float() for k, v in mine.items()}, strict=True)
    return model.eval()


def save_tvlt(model: TvltEncoder, folder: str | Path) -> Path:
    """Write ``config.json`` + ``model.safetensors`` in the original ``TvltModel`` layout."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(model.config.to_dict(), indent=2))
    sd = {to_checkpoint_name(k): v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
