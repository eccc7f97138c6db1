"""Qwen3-VL-MoE: a multimodal mixture-of-experts model, hidden states and router logits.

One window = the TR's video frames + the words heard in it (``WindowInput.text``: through
:func:`~mmneuro.features.extract.extract_run`, the words of the run's words file whose
midpoints lie in the window, so a run needs a words file; ``words=False`` reads frames
only and ignores any ``text``). The frames are resized/centre-cropped to ``image_size`` (a multiple of
``patch_size * spatial_merge_size``), normalised with mean/std 0.5, grouped in pairs
(``temporal_patch_size``; an odd count repeats the last frame) and cut into patches in
the vision tower's order. The prompt is built as the Qwen3-VL processor does for video,
one block per temporal step::

    <{t:.1f} seconds><|vision_start|><|video_pad|> * (grid_h * grid_w / merge^2) <|vision_end|>

followed by the window's words. ``t`` is the step's time from the window start with
frames ``frame_interval`` seconds apart.

Outputs (``ModelOutput``):

- ``hidden["layer-0"]`` (the input embeddings, video features scattered in) ..
  ``hidden["layer-N"]`` (decoder blocks; the last after the final norm): (B, T, D).
- ``router_logits["layer-i"]``: (B, T, n_experts) pre-softmax gate logits of every token
  at each sparse (MoE) decoder block (``moe_layers`` lists them).
- ``router_token_modality``: (B, T) numpy array of ``"video"`` (video patch tokens),
  ``"text"`` (the words), ``"special"`` (timestamps and vision markers), ``"pad"``.
- token groups ``"all"`` (real tokens), ``"video"``, ``"text"``; poolings ``"mean"``,
  ``"mean:video"``, ``"mean:text"``.

Random weights (``config=`` or the default ``Qwen3VLMoeConfig()``, the 30B-A3B
architecture: far too large for a laptop, so pass a small config) use the tokenizer at
``tokenizer_path`` (default: the packaged MiniLM WordPiece vocabulary) as a stand-in.
"""

from __future__ import annotations

import numpy as np
import torch

from mmneuro.errors import InputError
from mmneuro.models._hf import FrameTransform, build_model, ensure_eager
from mmneuro.models.base import ModelAdapter, ModelOutput, WeightsInfo, WindowInput

QWEN3_VL_MOE_HUB_ID = "Qwen/Qwen3-VL-30B-A3B-Instruct"

MODALITY_NAMES = ("text", "special", "video", "pad")


class MoEAdapter(ModelAdapter):
    """Adapter around ``transformers.Qwen3VLMoeModel`` (see module docstring).

    Parameters
    ----------
    model : a ``Qwen3VLMoeModel``.
    tokenizer : a tokenizer for timestamps and words (ids below the text vocab size).
    weights : where the weights came from.
    name : registry name.
    n_frames : frames per window (rounded up to a multiple of ``temporal_patch_size`` by
        repeating the last frame).
    image_size : frame side after resize/crop (a multiple of patch_size * merge size).
    frame_interval : seconds between frames, for the timestamp tokens.
    words : read the words heard in each window after the video tokens (default True).
    device : torch device (None: CUDA when available).
    """

    modalities = ("video", "text")
    input_kind = "frames"
    poolings = ("mean", "mean:video", "mean:text")
    default_pooling = "mean"
    batch_size = 4
    version = "moe-1"

    def __init__(self, model, tokenizer, weights: WeightsInfo, name: str = "qwen3-vl-moe", n_frames: int = 4,
                 image_size: int | None = None, frame_interval: float = 0.5, words: bool = True, device=None):
        self.model = model.eval()
        self.wants_words = bool(words)
        self.modalities = ("video", "text") if self.wants_words else ("video",)
        self.config = model.config
        self.tokenizer = tokenizer
        self.weights = weights
        self.name = name
        vc = self.config.vision_config
        self.patch = int(vc.patch_size)
        self.merge = int(vc.spatial_merge_size)
        self.tpatch = int(vc.temporal_patch_size)
        factor = self.patch * self.merge
        if image_size is None:
            image_size = max(factor, (224 // factor) * factor)
        if int(image_size) % factor:
            raise InputError(f"image_size must be a multiple of patch_size * spatial_merge_size = {factor}; got {image_size}")
        if int(n_frames) < 1:
            raise InputError(f"n_frames must be >= 1; got {n_frames}")
        self.image_size = int(image_size)
        self.n_frames = int(n_frames)
        self.frame_interval = float(frame_interval)
        self.transform = FrameTransform(shortest_edge=self.image_size, crop=(self.image_size, self.image_size))
        lm = model.language_model
        self.layer_names = [f"layer-{i}" for i in range(len(lm.layers) + 1)]
        self.moe_layers = [f"layer-{i + 1}" for i, layer in enumerate(lm.layers) if hasattr(layer.mlp, "gate")]
        self.n_experts = int(self.config.text_config.num_experts)
        vocab = int(self.config.text_config.vocab_size)
        if len(tokenizer) > vocab:
            raise InputError(f"tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {vocab}")
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self.to(device)

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_weights(cls, resolved, name: str = "qwen3-vl-moe", config=None, tokenizer_path=None,
                     attentions: bool = False, **kw) -> "MoEAdapter":
        from transformers import AutoTokenizer, Qwen3VLMoeConfig, Qwen3VLMoeModel

        from mmneuro.models.text import minilm_folder

        model = build_model(resolved, Qwen3VLMoeModel, Qwen3VLMoeConfig, config, attentions)
        if resolved.is_random:
            path = tokenizer_path or minilm_folder()
        else:
            path = tokenizer_path or resolved.path
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        return cls(model, tok, resolved.info, name=name, **kw)

    def window_params(self):
        return {"n_frames": self.n_frames, "image_size": self.image_size, "words": "window" if self.wants_words else "none"}

    # ---- protocol -------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def preprocess(self, sample: WindowInput) -> dict[str, torch.Tensor]:
        """Frames (+ words) -> input_ids (T,), token_type (T,) codes of MODALITY_NAMES,
        mm_token_type_ids (T,), pixel_values_videos (patches, C*tp*p*p), video_grid_thw (3,)."""
        x = self.transform(sample.frames, self.name)  # (F, 3, S, S)
        if len(x) != self.n_frames:
            raise InputError(f"model {self.name!r} reads {self.n_frames} frames per window; got {len(x)}")
        if pad := -len(x) % self.tpatch:
            x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)])
        f = len(x)
        gt, gh, gw = f // self.tpatch, self.image_size // self.patch, self.image_size // self.patch
        m, p, tp = self.merge, self.patch, self.tpatch
        patches = x.reshape(gt, tp, 3, gh // m, m, p, gw // m, m, p)
        patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8).reshape(gt * gh * gw, 3 * tp * p * p)
        cfg = self.config
        per_step = gh * gw // (m * m)
        ids: list[int] = []
        kind: list[int] = []
        for k in range(gt):
            t = (k * tp + (tp - 1) / 2) * self.frame_interval
            stamp = self._ids(f"<{t:.1f} seconds>")
            ids += stamp + [cfg.vision_start_token_id] + [cfg.video_token_id] * per_step + [cfg.vision_end_token_id]
            kind += [1] * (len(stamp) + 1) + [2] * per_step + [1]
        if self.wants_words and sample.text is not None and len(sample.text):
            words = self._ids(" " + " ".join(str(w) for w in sample.text))
            ids += words
            kind += [0] * len(words)
        ids_t = torch.tensor(ids, dtype=torch.long)
        kind_t = torch.tensor(kind, dtype=torch.long)
        return {
            "input_ids": ids_t,
            "token_type": kind_t,
            "mm_token_type_ids": (kind_t == 2).long() * 2,
            "pixel_values_videos": patches.contiguous(),
            "video_grid_thw": torch.tensor([gt, gh, gw], dtype=torch.long),
        }

    def collate(self, items):
        """Right-pad token rows to the longest item; concatenate the patches of all items."""
        n = max(int(it["input_ids"].shape[0]) for it in items)
        b = len(items)
        ids = torch.full((b, n), self.pad_id, dtype=torch.long)
        att = torch.zeros((b, n), dtype=torch.long)
        kind = torch.full((b, n), MODALITY_NAMES.index("pad"), dtype=torch.long)
        mm = torch.zeros((b, n), dtype=torch.long)
        for i, it in enumerate(items):
            t = int(it["input_ids"].shape[0])
            ids[i, :t], att[i, :t], kind[i, :t], mm[i, :t] = it["input_ids"], 1, it["token_type"], it["mm_token_type_ids"]
        return {
            "input_ids": ids,
            "attention_mask": att,
            "token_type": kind,
            "mm_token_type_ids": mm,
            "pixel_values_videos": torch.cat([it["pixel_values_videos"] for it in items]),
            "video_grid_thw": torch.stack([it["video_grid_thw"] for it in items]),
        }

    def forward(self, batch, want_attentions: bool = False) -> ModelOutput:
        if want_attentions:
            ensure_eager(self.model)
        dev = self.device
        ids = batch["input_ids"].to(dev)
        att = batch["attention_mask"].to(dev)
        out = self.model(
            input_ids=ids,
            attention_mask=att,
            mm_token_type_ids=batch["mm_token_type_ids"].to(dev),
            pixel_values_videos=batch["pixel_values_videos"].to(dev),
            video_grid_thw=batch["video_grid_thw"].to(dev),
            output_hidden_states=True,
            output_router_logits=True,
            output_attentions=want_attentions,
            use_cache=False,
        )
        b, t = ids.shape
        if len(out.hidden_states) != len(self.layer_names):
            raise InputError(f"{self.name!r} returned {len(out.hidden_states)} hidden states; expected {len(self.layer_names)}")
        router = out.router_logits or ()
        if len(router) != len(self.moe_layers):
            raise InputError(f"{self.name!r} returned router logits of {len(router)} layers; expected {len(self.moe_layers)}")
        kind = batch["token_type"].to(dev)
        return ModelOutput(
            hidden=dict(zip(self.layer_names, out.hidden_states)),
            token_groups={"all": att.bool(), "video": kind == 2, "text": kind == 0},
            attentions=dict(zip(self.layer_names[1:], out.attentions)) if want_attentions else None,
            router_logits={l: r.reshape(b, t, -1) for l, r in zip(self.moe_layers, router)},
            router_token_modality=np.asarray(MODALITY_NAMES, dtype=object)[batch["token_type"].cpu().numpy()],
        )
