"""ViT-family image adapter: frames of a TR window -> per-layer patch-token states.

Each window gives ``n_frames`` RGB frames sampled uniformly inside it. Every frame is
resized (torch bilinear with antialiasing, no PIL) to the model's image size, scaled to
[0, 1] and normalised with the image processor's mean/std, then run through
``transformers.ViTModel`` on its own. Layers: ``"embeddings"`` (patch + position
embeddings) and ``"layer-1"`` .. ``"layer-N"`` (each encoder block's output,
``hidden_states``). The frames of a window are concatenated along the token axis
(``segments = n_frames``), so pooling ``"mean"`` is the mean over tokens, then frames
(recorded as ``"mean-tokens,mean-frames"``) and ``"cls"`` is the per-frame [CLS] state
averaged over frames (``"cls,mean-frames"``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmneuro.errors import InputError
from mmneuro.models.base import ModelAdapter, ModelOutput, WeightsInfo, WindowInput, seeded_init

DEFAULT_HUB_ID = "google/vit-base-patch16-224-in21k"


class ViTAdapter(ModelAdapter):
    """Adapter around a ``transformers.ViTModel``.

    Parameters
    ----------
    model : a ``ViTModel`` (built without the pooling head is fine).
    weights : where the weights came from.
    name : registry name.
    n_frames : frames sampled uniformly in each window.
    image_mean, image_std : per-channel normalisation (the image processor's values).
    device : torch device (None: CUDA when available).
    """

    modalities = ("video",)
    input_kind = "frames"
    poolings = ("mean", "cls", "mean:patches")
    default_pooling = "mean"
    version = "vit-1"

    def __init__(
        self,
        model,
        weights: WeightsInfo,
        name: str = "vit",
        n_frames: int = 4,
        image_mean: tuple[float, ...] = (0.5, 0.5, 0.5),
        image_std: tuple[float, ...] = (0.5, 0.5, 0.5),
        device: str | torch.device | None = None,
    ):
        if int(n_frames) < 1:
            raise InputError(f"n_frames must be >= 1; got {n_frames}")
        self.model = model.eval()
        self.config = model.config
        self.weights = weights
        self.name = name
        self.n_frames = int(n_frames)
        self.image_size = _pair(self.config.image_size)
        self.patch_size = _pair(self.config.patch_size)
        self.n_tokens = 1 + (self.image_size[0] // self.patch_size[0]) * (self.image_size[1] // self.patch_size[1])
        self.mean = torch.tensor(image_mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(image_std, dtype=torch.float32).view(3, 1, 1)
        self.layer_names = ["embeddings"] + [f"layer-{i}" for i in range(1, self.config.num_hidden_layers + 1)]
        self.to(device)

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_weights(cls, resolved, name: str = "vit", config=None, attentions: bool = False, **kw) -> "ViTAdapter":
        """Build from :class:`~mmneuro.models.weights.ResolvedWeights`.

        Random weights use ``config`` (default: ``ViTConfig()``, the architecture of
        ViT-B/16) with a seeded init.
        """
        from transformers import ViTConfig, ViTModel

        attn = "eager" if attentions else "sdpa"
        if resolved.is_random:
            cfg = copy.deepcopy(config) if config is not None else ViTConfig()
            cfg._attn_implementation = attn
            model = seeded_init(lambda: ViTModel(cfg, add_pooling_layer=False), resolved.seed or 0)
            return cls(model, resolved.info, name=name, **kw)
        model = ViTModel.from_pretrained(
            str(resolved.path), add_pooling_layer=False, attn_implementation=attn, local_files_only=True
        )
        mean, std = _processor_stats(Path(resolved.path))
        kw.setdefault("image_mean", mean)
        kw.setdefault("image_std", std)
        return cls(model, resolved.info, name=name, **kw)

    # ---- protocol -------------------------------------------------------------------
    def preprocess(self, sample: WindowInput) -> dict[str, torch.Tensor]:
        """(n, H, W, 3) uint8 frames -> {"pixel_values": (n, 3, S, S) float32}."""
        frames = sample.frames
        if frames is None:
            raise InputError(f"model {self.name!r} reads video frames but the window has none")
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError(f"frames must be (n, H, W, 3) RGB; got shape {frames.shape}")
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
        if tuple(x.shape[-2:]) != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.mean) / self.std
        return {"pixel_values": x.contiguous()}

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        shapes = {tuple(it["pixel_values"].shape) for it in items}
        if len(shapes) != 1:
            raise InputError(f"windows in one batch have different frame counts/sizes: {sorted(shapes)}")
        return {"pixel_values": torch.stack([it["pixel_values"] for it in items])}

    def forward(self, batch: dict[str, torch.Tensor], want_attentions: bool = False) -> ModelOutput:
        """pixel_values (B, F, 3, S, S) -> hidden (B, F*T, D) per layer, segments = F."""
        pv = batch["pixel_values"]
        b, f = pv.shape[:2]
        if want_attentions and getattr(self.model.config, "_attn_implementation", "eager") != "eager":
            self.model.set_attn_implementation("eager")
        out = self.model(
            pixel_values=pv.reshape(b * f, *pv.shape[2:]).to(self.device),
            output_hidden_states=True,
            output_attentions=want_attentions,
        )
        hidden = {}
        for name, h in zip(self.layer_names, out.hidden_states):
            t, d = h.shape[1:]
            hidden[name] = h.reshape(b, f * t, d)
        t = out.hidden_states[0].shape[1]
        starts = torch.arange(f, device=pv.device) * t
        cls_idx = starts
        patch_idx = (starts[:, None] + torch.arange(1, t, device=pv.device)[None, :]).reshape(-1)
        attentions = None
        if want_attentions:
            attentions = {
                name: a.reshape(b, f, *a.shape[1:]) for name, a in zip(self.layer_names[1:], out.attentions)
            }
        return ModelOutput(
            hidden=hidden,
            token_groups={"all": slice(None), "cls": cls_idx, "patches": patch_idx},
            attentions=attentions,
            segments=f,
        )

    def pooling_label(self, how: str | None = None) -> str:
        how = how or self.default_pooling
        return {"mean": "mean-tokens,mean-frames", "cls": "cls,mean-frames"}.get(how, how + ",mean-frames")


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _processor_stats(folder: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Image mean/std from the folder's preprocessor_config.json, else ViT's (0.5, 0.5, 0.5)."""
    p = folder / "preprocessor_config.json"
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    if p.is_file():
        cfg = json.loads(p.read_text())
        mean = tuple(float(v) for v in cfg.get("image_mean", mean))
        std = tuple(float(v) for v in cfg.get("image_std", std))
    return mean, std
