"""TVLT adapter: the frames and audio of a TR window -> joint audio-visual layer states.

TVLT (Tang et al., 2022; ``ZinengTang/tvlt-base``) reads video frames and a log-mel
spectrogram together in one transformer. transformers 5 dropped it, so the encoder
(:mod:`mmneuro.models.tvlt_model`) and its input processing
(:mod:`mmneuro.models.tvlt_processing`) are ours, matched to transformers 4.57.6 by the
parity fixture in ``tests/fixtures/tvlt_parity``.

Each window gives ``n_frames`` frames (default: the model's ``num_frames``, 8) and the
window's waveform at 44.1 kHz. Tokens per window: ``[CLS]``, ``n_frames * 196`` video
patches, ``ceil(frames / 16) * 8`` audio patches (86 spectrogram frames per second; at most
2048 frames, i.e. 23.8 s). Layers: ``"embeddings"`` and ``"layer-1"`` .. ``"layer-12"``
(block outputs before the final LayerNorm). Poolings: ``"mean"`` (CLS + every real video
and audio token), ``"mean:video"``, ``"mean:audio"`` (padding excluded). Attentions,
when asked for, are ``(batch, heads, tokens, tokens)`` per layer.

``block_cross_modal=True`` removes video<->audio attention in every layer (video tokens
attend only to video tokens, audio tokens only to audio tokens, CLS to everything but
nobody to CLS), so each modality's states are computed without the other: the control for
asking how much of a layer's brain prediction comes from cross-modal interaction.

:meth:`TVLTAdapter.token_layout` says where each token of a window sits on the stimulus grid
(frames x patch rows x patch columns, spectrogram time rows x frequency patches), for maps of
attention or rollout; :func:`tiny_config` is a small random-weights architecture for demos
and tests. With random weights the architecture (a digest of the config) is part of the
feature cache key, so two random configs never share cached features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmneuro.errors import InputError
from mmneuro.models.base import ModelAdapter, ModelOutput, WeightsInfo, WindowInput, seeded_init
from mmneuro.models.tvlt_model import TvltConfig, TvltEncoder, load_tvlt
from mmneuro.models.tvlt_processing import TvltProcessorConfig, pad_audio, preprocess_frames, preprocess_waveform

DEFAULT_HUB_ID = "ZinengTang/tvlt-base"

__all__ = ["DEFAULT_HUB_ID", "TVLTAdapter", "tiny_config"]


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """A tiny TVLT architecture (random weights only) that extracts the whole demo in seconds on a CPU.

    32 x 32 frames (2 x 2 patches of 16 px), 4 frames, 32 mel bands (2 frequency patches), up to
    256 spectrogram frames (2.97 s of audio, 16 time rows), 4 layers of width 32 with 4 heads.
    ``initializer_range`` 0.2 (not 0.02) so that random query/key products are large enough for
    attention to be far from uniform. Keyword arguments override fields.
    """
    cfg = dict(image_size=32, num_frames=4, frequency_length=32, spectrogram_length=256, hidden_size=32,
               num_hidden_layers=4, num_attention_heads=4, intermediate_size=64, initializer_range=0.2)
    cfg.update(overrides)
    return cfg


class TVLTAdapter(ModelAdapter):
    """Adapter around :class:`~mmneuro.models.tvlt_model.TvltEncoder`.

    Parameters
    ----------
    model : the encoder.
    weights : where the weights came from.
    processor : input-processing settings (default: implied by the model config).
    name : registry name.
    n_frames : frames per window, 1..``config.num_frames`` (default ``config.num_frames``).
    block_cross_modal : forbid attention between video and audio tokens (see module doc).
    truncate_audio : keep only the first ``spectrogram_length`` frames of longer windows,
        as the original processor does (default: such a window is an error).
    device : torch device (None: CUDA when available).
    """

    modalities = ("video", "audio")
    input_kind = "frames+waveform"
    poolings = ("mean", "mean:video", "mean:audio")
    default_pooling = "mean"
    batch_size = 8
    version = "tvlt-1"

    def __init__(
        self,
        model: TvltEncoder,
        weights: WeightsInfo,
        processor: TvltProcessorConfig | None = None,
        name: str = "tvlt",
        n_frames: int | None = None,
        block_cross_modal: bool = False,
        truncate_audio: bool = False,
        device: str | torch.device | None = None,
    ):
        self.model = model.eval()
        self.config: TvltConfig = model.config
        self.processor = processor or TvltProcessorConfig.from_model_config(self.config)
        if self.processor.crop_size != (self.config.image_size, self.config.image_size):
            raise InputError(
                f"TVLT processor crops to {self.processor.crop_size} but the model reads "
                f"{self.config.image_size}x{self.config.image_size} frames"
            )
        if self.processor.feature_size != self.config.frequency_length:
            raise InputError(
                f"TVLT processor makes {self.processor.feature_size} mel bands but the model reads "
                f"{self.config.frequency_length}"
            )
        n_frames = self.config.num_frames if n_frames is None else int(n_frames)
        if not 1 <= n_frames <= min(self.config.num_frames, self.processor.num_frames):
            raise InputError(f"TVLT n_frames must be 1..{self.config.num_frames}; got {n_frames}")
        self.n_frames = n_frames
        self.sample_rate = int(self.processor.sampling_rate)
        self.block_cross_modal = bool(block_cross_modal)
        self.truncate_audio = bool(truncate_audio)
        self.weights = weights
        self.name = name
        self.layer_names = ["embeddings"] + [f"layer-{i}" for i in range(1, self.config.num_hidden_layers + 1)]
        self.to(device)

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_weights(
        cls,
        resolved,
        name: str = "tvlt",
        config: TvltConfig | dict | None = None,
        attentions: bool = False,
        **kw,
    ) -> "TVLTAdapter":
        """Build from :class:`~mmneuro.models.weights.ResolvedWeights`.

        Random weights use ``config`` (a :class:`TvltConfig` or a dict of its fields;
        default ``TvltConfig()``, the architecture of tvlt-base) with a seeded init.
        Folders are read with :func:`~mmneuro.models.tvlt_model.load_tvlt` and their
        ``preprocessor_config.json``. ``attentions`` is accepted for symmetry with other
        adapters: attentions are always available on request (eager attention is used
        only for batches that ask for them).
        """
        del attentions
        if isinstance(config, dict):
            config = TvltConfig.from_dict(config)
        if resolved.is_random:
            cfg = config if config is not None else TvltConfig()

            def build():
                m = TvltEncoder(cfg)
                m.reset_parameters()
                return m

            model = seeded_init(build, resolved.seed or 0)
            return cls(model, resolved.info, name=name, **kw)
        if config is not None:
            raise InputError("config= is only used with weights='random'; a weights folder carries its own config.json")
        model = load_tvlt(resolved.path)
        processor = TvltProcessorConfig.from_folder(resolved.path, model.config)
        return cls(model, resolved.info, processor=processor, name=name, **kw)

    # ---- protocol -------------------------------------------------------------------
    def preprocess(self, sample: WindowInput) -> dict[str, torch.Tensor]:
        """Frames (n, H, W, 3) uint8 + waveform (samples,) -> pixel/audio values and masks.

        Returns ``pixel_values`` (n, 3, S, S), ``pixel_mask`` (n * P,), ``audio_values``
        (1, T, M) and ``audio_mask`` (T // 16 * M // 16,), all float32. A window longer than
        ``spectrogram_length`` frames (23.8 s for tvlt-base) is an error, not truncated.
        """
        if sample.frames is None:
            raise InputError(f"model {self.name!r} reads video frames but the window has none")
        if sample.waveform is None:
            raise InputError(f"model {self.name!r} reads audio but the window has none")
        if sample.sample_rate is not None and int(sample.sample_rate) != self.sample_rate:
            raise InputError(
                f"model {self.name!r} reads audio at {self.sample_rate} Hz; the window's is {sample.sample_rate} Hz"
            )
        wave = np.asarray(sample.waveform)
        proc = self.processor
        if not self.truncate_audio and wave.ndim == 1 and wave.shape[0] // proc.hop_length > proc.spectrogram_length:
            limit = proc.spectrogram_length * proc.hop_length / proc.sampling_rate
            raise InputError(
                f"model {self.name!r} reads at most {limit:.2f} s of audio per window ({proc.spectrogram_length} "
                f"spectrogram frames); this window has {wave.shape[0] / proc.sampling_rate:.2f} s. Use shorter windows "
                "(or truncate_audio=True to keep only the first part, as the original processor does)."
            )
        pv, pm = preprocess_frames(np.asarray(sample.frames), self.processor)
        av, am = preprocess_waveform(wave, self.processor)
        return {
            "pixel_values": torch.from_numpy(pv),
            "pixel_mask": torch.from_numpy(pm),
            "audio_values": torch.from_numpy(av),
            "audio_mask": torch.from_numpy(am),
        }

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Stack frames; pad audio to the longest window (padding masked out)."""
        shapes = {tuple(it["pixel_values"].shape) for it in items}
        if len(shapes) != 1:
            raise InputError(f"windows in one batch have different frame counts/sizes: {sorted(shapes)}")
        av, am = pad_audio(
            [it["audio_values"].numpy() for it in items],
            [it["audio_mask"].numpy() for it in items],
            self.processor.padding_value,
        )
        return {
            "pixel_values": torch.stack([it["pixel_values"] for it in items]),
            "pixel_mask": torch.stack([it["pixel_mask"] for it in items]),
            "audio_values": torch.from_numpy(av),
            "audio_mask": torch.from_numpy(am),
        }

    def forward(self, batch: dict[str, torch.Tensor], want_attentions: bool = False) -> ModelOutput:
        """Batch -> hidden (B, L, D) per layer; groups "all", "video", "audio", "cls"."""
        dev = self.device
        out = self.model(
            pixel_values=batch["pixel_values"].to(dev),
            audio_values=batch["audio_values"].to(dev),
            pixel_mask=batch.get("pixel_mask").to(dev) if batch.get("pixel_mask") is not None else None,
            audio_mask=batch.get("audio_mask").to(dev) if batch.get("audio_mask") is not None else None,
            output_attentions=want_attentions,
            block_cross_modal=self.block_cross_modal,
        )
        hidden = dict(zip(self.layer_names, out.hidden_states))
        real = out.token_mask
        position = torch.arange(real.shape[1], device=real.device)
        groups: dict[str, Any] = {"cls": torch.tensor([0], device=real.device)}
        for group, sl in (("all", slice(0, real.shape[1])), ("video", out.video_slice), ("audio", out.audio_slice)):
            in_group = (position >= sl.start) & (position < sl.stop)
            sel = real & in_group[None, :]
            groups[group] = sl if bool((sel == in_group[None, :]).all()) else sel
        attentions = None
        if want_attentions:
            attentions = dict(zip(self.layer_names[1:], out.attentions))
        return ModelOutput(hidden=hidden, token_groups=groups, attentions=attentions)

    def token_layout(self, n_audio: int) -> dict[str, np.ndarray]:
        """Token index of every position of a window's stimulus grid (token order of the encoder).

        ``n_audio``: audio tokens of the window (or of the padded batch), a multiple of the
        frequency patches. Returns ``{"cls": (1,), "video": (n_frames, grid_h, grid_w),
        "audio": (n_audio // freq_patches, freq_patches)}`` int64 arrays: video tokens are
        frame-major then row-major over the patch grid, audio tokens time-major then frequency
        (see :mod:`mmneuro.models.tvlt_model`).
        """
        cfg = self.config
        q = cfg.freq_patches
        if n_audio % q:
            raise InputError(f"TVLT window has {n_audio} audio tokens, not a multiple of {q} frequency patches")
        gh, gw = cfg.image_size // cfg.image_patch_size[0], cfg.image_size // cfg.image_patch_size[1]
        nv = self.n_frames * gh * gw
        return {
            "cls": np.array([0], dtype=np.int64),
            "video": 1 + np.arange(nv, dtype=np.int64).reshape(self.n_frames, gh, gw),
            "audio": 1 + nv + np.arange(n_audio, dtype=np.int64).reshape(n_audio // q, q),
        }

    def window_params(self) -> dict[str, Any]:
        params = super().window_params()
        if self.block_cross_modal:
            params["block_cross_modal"] = True  # different numbers, different cache key
        if self.truncate_audio:
            params["truncate_audio"] = True
        return params

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["block_cross_modal"] = self.block_cross_modal
        d["truncate_audio"] = self.truncate_audio
        d["processor"] = {
            "image_size": self.processor.crop_size[0],
            "sample_rate": self.sample_rate,
            "hop_length": self.processor.hop_length,
            "n_mels": self.processor.feature_size,
            "max_spectrogram_frames": self.processor.spectrogram_length,
        }
        return d
