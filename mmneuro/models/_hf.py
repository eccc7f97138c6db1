"""Helpers shared by the Hugging Face adapters of the model zoo.

- :func:`build_model`: one model class + :class:`~mmneuro.models.weights.ResolvedWeights`
  -> an eval-mode module (random: seeded init of ``config`` or the class's default
  config, i.e. the architecture of the default checkpoint; otherwise ``from_pretrained``
  with ``local_files_only``).
- :func:`ensure_eager`: switch a model (and its sub-models) to eager attention so that
  ``output_attentions=True`` returns probabilities (sdpa silently returns none).
- :class:`FrameTransform`: video frames -> normalised pixel tensors, matching the
  HF image processors' resize-shortest-edge / centre-crop / rescale / normalise chain
  (torch bilinear with antialiasing instead of PIL).
- :func:`current_frame_mask`: which model frames of a causal context window belong to
  the current TR.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from mmneuro.errors import InputError
from mmneuro.models.base import WindowInput, seeded_init


def build_model(resolved, model_cls, default_config: Callable[[], Any], config=None, attentions: bool = False, **load_kw):
    """Instantiate ``model_cls`` from resolved weights.

    Random weights: ``config`` (deep-copied) or ``default_config()`` with a seeded init.
    Folder/hub weights: ``model_cls.from_pretrained(path, local_files_only=True)``.
    ``attentions=True`` builds eager attention.
    """
    if resolved.is_random:
        cfg = copy.deepcopy(config) if config is not None else default_config()
        model = seeded_init(lambda: model_cls(cfg, **load_kw), resolved.seed or 0)
    else:
        kw = dict(load_kw)
        if attentions:
            kw["attn_implementation"] = "eager"
        model = model_cls.from_pretrained(str(resolved.path), local_files_only=True, **kw)
    if attentions:
        ensure_eager(model)
    return model.eval()


def ensure_eager(model) -> None:
    """Switch ``model`` to eager attention if it is not already (no-op otherwise)."""
    impl = getattr(model.config, "_attn_implementation", None)
    if impl not in (None, "eager") and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")


def preprocessor_config(resolved) -> dict:
    """The folder's ``preprocessor_config.json`` as a dict ({} for random weights or none)."""
    if resolved is None or resolved.path is None:
        return {}
    p = Path(resolved.path) / "preprocessor_config.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def _size_of(v: Any, default: int) -> tuple[int, int]:
    if v is None:
        return default, default
    if isinstance(v, dict):
        if "height" in v:
            return int(v["height"]), int(v["width"])
        if "shortest_edge" in v:
            return int(v["shortest_edge"]), int(v["shortest_edge"])
    if isinstance(v, (list, tuple)):
        return int(v[0]), int(v[-1])
    return int(v), int(v)


@dataclass
class FrameTransform:
    """(n, H, W, 3) uint8 frames -> (n, 3, h, w) float32 pixels.

    Steps: resize so the shortest edge is ``shortest_edge`` (keeping aspect), centre crop
    to ``crop`` (h, w), ``x * rescale - offset``, then ``(x - mean) / std``.
    """

    shortest_edge: int
    crop: tuple[int, int]
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    rescale: float = 1 / 255.0
    offset: float = 0.0

    @classmethod
    def from_processor(cls, proc: dict, image_size: int, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), offset=0.0,
                       rescale=1 / 255.0) -> "FrameTransform":
        """From a preprocessor_config dict; defaults (the class defaults of the HF processor) otherwise."""
        crop = _size_of(proc.get("crop_size"), image_size)
        size = proc.get("size")
        short = _size_of(size, crop[0])[0] if not (isinstance(size, dict) and "height" in size) else min(_size_of(size, crop[0]))
        rescale = float(proc.get("rescale_factor", rescale))
        off = proc.get("offset", offset)
        off = (1.0 if off is True else 0.0) if isinstance(off, bool) else float(off)
        return cls(
            shortest_edge=int(short),
            crop=crop,
            mean=tuple(float(v) for v in proc.get("image_mean", mean)),
            std=tuple(float(v) for v in proc.get("image_std", std)),
            rescale=rescale,
            offset=off,
        )

    def __call__(self, frames: np.ndarray, name: str = "model") -> torch.Tensor:
        if frames is None:
            raise InputError(f"model {name!r} reads video frames but the window has none")
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError(f"frames must be (n, H, W, 3) RGB; got shape {frames.shape}")
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        h, w = x.shape[-2:]
        ch, cw = self.crop
        s = self.shortest_edge / min(h, w)
        nh, nw = max(ch, int(round(h * s))), max(cw, int(round(w * s)))
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        top, left = (nh - ch) // 2, (nw - cw) // 2
        x = x[..., top : top + ch, left : left + cw]
        x = x * self.rescale - self.offset
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        return ((x - mean) / std).contiguous()


def check_frame_count(frames: np.ndarray | None, expected: int, name: str) -> None:
    if frames is not None and len(frames) != expected:
        raise InputError(
            f"model {name!r} reads clips of exactly {expected} frames; the window has {len(frames)} "
            f"(set the adapter's n_frames to {expected})"
        )


def waveform_of(sample: WindowInput, sample_rate: int, name: str) -> np.ndarray:
    """The window's mono waveform as float32, checked against the adapter's rate."""
    if sample.waveform is None:
        raise InputError(f"model {name!r} reads audio but the window has none")
    if sample.sample_rate is not None and int(sample.sample_rate) != int(sample_rate):
        raise InputError(f"model {name!r} expects {sample_rate} Hz audio; the window is {sample.sample_rate} Hz")
    w = np.asarray(sample.waveform, dtype=np.float32)
    if w.ndim != 1:
        raise InputError(f"waveform must be 1-D mono; got shape {w.shape}")
    if w.size == 0:
        raise InputError("the audio window is empty")
    return np.ascontiguousarray(w)


def current_frame_mask(n_frames: int, n_samples: int, current_samples: int | None, stride: int, field: int) -> torch.Tensor:
    """(n_frames,) bool: model frames whose centre lies in the last ``current_samples`` samples.

    Frame ``i`` of a model with hop ``stride`` and receptive field ``field`` (samples)
    covers ``[i*stride, i*stride + field)``; its centre is ``i*stride + field/2``. With
    ``current_samples=None`` every frame whose centre lies inside the real audio counts.
    """
    centres = torch.arange(n_frames, dtype=torch.float64) * stride + field / 2.0
    lo = 0 if current_samples is None else n_samples - int(current_samples)
    mask = (centres >= lo) & (centres < n_samples)
    if not bool(mask.any()):
        # a window shorter than one hop: keep the frame nearest the window's centre
        mid = (lo + n_samples) / 2.0
        j = int(torch.argmin((centres - mid).abs()))
        mask[j] = True
    return mask
