"""Video transformers: VideoMAE and ViViT, one clip per TR window, every layer.

Each window gives exactly the number of frames the model was trained on
(``config.num_frames``: 16 for VideoMAE-base, 32 for ViViT-B 16x2), sampled uniformly
inside the TR window by the driver. Frames are resized (shortest edge), centre-cropped,
rescaled and normalised as the checkpoint's image processor does
(:class:`~mmneuro.models._hf.FrameTransform`) and the clip is run through
``VideoMAEModel`` / ``VivitModel`` as one ``(frames, 3, H, W)`` tensor: the tokens are
spatio-temporal tubelets (ViViT adds a [CLS] token).

Layers: ``"embeddings"`` (tubelet + position embeddings) and ``"layer-1"`` ..
``"layer-N"``. Pooling ``"mean"`` averages all tokens of the clip; ViViT also offers
``"cls"``.
"""

from __future__ import annotations

import torch

from mmneuro.errors import InputError
from mmneuro.models._hf import FrameTransform, build_model, check_frame_count, ensure_eager, preprocessor_config
from mmneuro.models.base import ModelAdapter, ModelOutput, WeightsInfo, WindowInput

VIDEOMAE_HUB_ID = "MCG-NJU/videomae-base"
VIVIT_HUB_ID = "google/vivit-b-16x2-kinetics400"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VideoAdapter(ModelAdapter):
    """Adapter around ``transformers.VideoMAEModel`` or ``VivitModel``.

    Parameters
    ----------
    model : the video model.
    kind : ``"videomae"`` or ``"vivit"``.
    weights : where the weights came from.
    transform : frames -> pixels (the image processor's steps).
    name : registry name.
    device : torch device (None: CUDA when available).
    """

    modalities = ("video",)
    input_kind = "frames"
    batch_size = 2
    version = "video-1"

    def __init__(self, model, kind: str, weights: WeightsInfo, transform: FrameTransform, name: str | None = None,
                 device=None):
        if kind not in ("videomae", "vivit"):
            raise InputError(f"unknown video model kind {kind!r}")
        self.model = model.eval()
        self.config = model.config
        self.kind = kind
        self.weights = weights
        self.name = name or kind
        self.transform = transform
        self.n_frames = int(self.config.num_frames)
        self.poolings = ("mean", "cls") if kind == "vivit" else ("mean",)
        self.default_pooling = "mean"
        self.layer_names = ["embeddings"] + [f"layer-{i}" for i in range(1, self.config.num_hidden_layers + 1)]
        self.to(device)

    @classmethod
    def from_weights(cls, resolved, kind: str, name: str | None = None, config=None, attentions: bool = False, **kw):
        """Build from resolved weights; random weights use ``config`` or the default
        checkpoint's architecture (``VideoMAEConfig()`` / ``VivitConfig()``)."""
        import transformers as tf

        proc = preprocessor_config(resolved)
        if kind == "videomae":
            model = build_model(resolved, tf.VideoMAEModel, tf.VideoMAEConfig, config, attentions)
            tr = FrameTransform.from_processor(proc, _int(model.config.image_size), IMAGENET_MEAN, IMAGENET_STD)
        elif kind == "vivit":
            model = build_model(resolved, tf.VivitModel, tf.VivitConfig, config, attentions, add_pooling_layer=False)
            size = _int(model.config.image_size)
            proc = dict(proc)
            if not proc:  # VivitImageProcessor defaults: shortest edge 256 -> crop, scale to [-1, 1]
                proc = {"size": {"shortest_edge": round(size * 256 / 224)}}
            tr = FrameTransform.from_processor(proc, size, rescale=1 / 127.5, offset=1.0)
        else:
            raise InputError(f"unknown video model kind {kind!r}")
        return cls(model, kind, resolved.info, tr, name=name, **kw)

    def preprocess(self, sample: WindowInput) -> dict[str, torch.Tensor]:
        """(n_frames, H, W, 3) uint8 -> {"pixel_values": (n_frames, 3, S, S)}."""
        check_frame_count(sample.frames, self.n_frames, self.name)
        return {"pixel_values": self.transform(sample.frames, self.name)}

    def collate(self, items):
        return {"pixel_values": torch.stack([it["pixel_values"] for it in items])}

    def forward(self, batch, want_attentions: bool = False) -> ModelOutput:
        """pixel_values (B, F, 3, S, S) -> hidden (B, tokens, D) per layer."""
        if want_attentions:
            ensure_eager(self.model)
        out = self.model(
            pixel_values=batch["pixel_values"].to(self.device), output_hidden_states=True, output_attentions=want_attentions
        )
        hidden = dict(zip(self.layer_names, out.hidden_states))
        groups = {"all": slice(None)}
        if self.kind == "vivit":
            groups["cls"] = slice(0, 1)
        att = dict(zip(self.layer_names[1:], out.attentions)) if want_attentions else None
        return ModelOutput(hidden=hidden, token_groups=groups, attentions=att)

    def pooling_label(self, how=None):
        how = how or self.default_pooling
        return {"mean": "mean-tubelets"}.get(how, how)


def _int(v) -> int:
    return int(v[0]) if isinstance(v, (list, tuple)) else int(v)
