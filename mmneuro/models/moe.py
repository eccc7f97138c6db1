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
architecture: far too large for a laptop, so pass a small config, e.g. :func:`tiny_config`)
use the tokenizer at ``tokenizer_path`` (default: the packaged MiniLM WordPiece vocabulary)
as a stand-in. The config's digest joins the feature cache key of random weights.

Routing interventions and expert outputs (see :mod:`mmneuro.models.moe_intervention`):

- ``disable_experts={"layer-3": [0]}`` (or ``"layer-3:0;layer-1:2"``): those experts get a
  router logit of ``-inf`` in those layers (never chosen; the reported router logits show it);
- ``force_top1=True`` (every MoE layer) or a list of layers: each token goes to its most
  probable expert only, with weight 1;
- ``expert_outputs=True``: extra layers ``"layer-L/expert-e"`` (B, T, D) hold expert e's
  routing-weighted contribution ``w_te E_e(x_t)`` to block L's MoE output (zero for tokens
  not routed to e); pooled like any layer, ``"mean"`` gives the expert's share of the
  window's mean MoE output (the shares of a block's experts sum to it).

An intervention changes the numbers, so its canonical label (``window_params()["routing"]``)
joins the feature cache key; expert outputs only add layers and leave the key alone.
"""

from __future__ import annotations

import numpy as np
import torch

from mmneuro.errors import InputError
from mmneuro.models._hf import FrameTransform, build_model, ensure_eager
from mmneuro.models.base import ModelAdapter, ModelOutput, WeightsInfo, WindowInput
from mmneuro.models.moe_intervention import RouterIntervention, RoutingHooks

QWEN3_VL_MOE_HUB_ID = "Qwen/Qwen3-VL-30B-A3B-Instruct"

MODALITY_NAMES = ("text", "special", "video", "pad")


def tiny_config(n_experts: int = 4, top_k: int = 2, n_layers: int = 3, hidden: int = 32, dense_layers=(1,),
                patch_size: int = 8):
    """A laptop-sized ``Qwen3VLMoeConfig`` for random weights (tests, the demo, notebooks).

    ``n_layers`` decoder blocks of width ``hidden``, sparse except ``dense_layers`` (block
    indices), ``n_experts`` experts of which ``top_k`` per token; a 2-block vision tower with
    ``patch_size`` patches (use ``image_size`` a multiple of ``2 * patch_size``). The text
    vocabulary covers the MiniLM stand-in tokenizer; video/vision ids sit above it.
    """
    from transformers import Qwen3VLMoeConfig

    heads = 2
    head_dim = hidden // heads
    # mrope sections (t, h, w) over head_dim // 2 rotary frequencies
    half = head_dim // 2
    hw = half * 3 // 8
    sec = [half - 2 * hw, hw, hw]
    return Qwen3VLMoeConfig(
        text_config=dict(
            vocab_size=30600, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=n_layers,
            num_attention_heads=heads, num_key_value_heads=heads, head_dim=head_dim, moe_intermediate_size=hidden // 2,
            num_experts=n_experts, num_experts_per_tok=top_k, mlp_only_layers=list(dense_layers),
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": sec,
                             "mrope_interleaved": True},
        ),
        vision_config=dict(depth=2, hidden_size=hidden, intermediate_size=2 * hidden, num_heads=heads,
                           patch_size=patch_size, out_hidden_size=hidden, num_position_embeddings=16,
                           deepstack_visual_indexes=[0]),
        video_token_id=30590, vision_start_token_id=30591, vision_end_token_id=30592, image_token_id=30593,
    )


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
    disable_experts : ``{layer: [expert, ...]}`` or ``"layer-3:0,2;layer-1:1"``: experts never
        routed to in those MoE layers (router logit -inf).
    force_top1 : True (all MoE layers), a list of MoE layers or ``"layer-1,layer-3"``: one
        expert per token, weight 1.
    expert_outputs : add the layers ``"<moe layer>/expert-<e>"`` (each expert's weighted
        contribution to its block's output).
    device : torch device (None: CUDA when available).
    """

    modalities = ("video", "text")
    input_kind = "frames"
    poolings = ("mean", "mean:video", "mean:text")
    default_pooling = "mean"
    batch_size = 4
    version = "moe-1"

    def __init__(self, model, tokenizer, weights: WeightsInfo, name: str = "qwen3-vl-moe", n_frames: int = 4,
                 image_size: int | None = None, frame_interval: float = 0.5, words: bool = True,
                 disable_experts=None, force_top1=None, expert_outputs: bool = False, device=None):
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
        self.top_k = int(self.config.text_config.num_experts_per_tok)
        self.intervention = RouterIntervention.build(disable_experts, force_top1, self.moe_layers)
        self.expert_outputs = bool(expert_outputs)
        blocks = {f"layer-{i + 1}": layer.mlp for i, layer in enumerate(lm.layers) if hasattr(layer.mlp, "gate")}
        self.hooks = RoutingHooks(blocks, self.intervention, capture=self.expert_outputs)
        if self.expert_outputs:
            self.layer_names = self.layer_names + self.expert_layer_names()
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

    def expert_layer_names(self, layers=None) -> list[str]:
        """``"<layer>/expert-<e>"`` for each MoE layer of ``layers`` (default: all) and expert."""
        chosen = self.moe_layers if layers is None else [l for l in self.moe_layers if l in layers]
        return [f"{l}/expert-{e}" for l in chosen for e in range(self.n_experts)]

    def top_k_of(self, layer: str) -> int:
        """Experts per token at ``layer`` under this adapter's intervention."""
        return 1 if layer in self.intervention.top1 else self.top_k

    def window_params(self):
        params = {"n_frames": self.n_frames, "image_size": self.image_size,
                  "words": "window" if self.wants_words else "none"}
        if (digest := self.random_config_digest()) is not None:
            params["random_config"] = digest
        if not self.intervention.is_empty:
            params["routing"] = self.intervention.label()  # different numbers, different cache key
        return params

    def describe(self):
        d = super().describe()
        d["routing_intervention"] = self.intervention.as_dict()
        d["experts"] = {"n_experts": self.n_experts, "top_k": self.top_k, "moe_layers": list(self.moe_layers)}
        return d

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
        self.hooks.clear()
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
        n_layers = len(self.layer_names) - (len(self.expert_layer_names()) if self.expert_outputs else 0)
        if len(out.hidden_states) != n_layers:
            raise InputError(f"{self.name!r} returned {len(out.hidden_states)} hidden states; expected {n_layers}")
        router = out.router_logits or ()
        if len(router) != len(self.moe_layers):
            raise InputError(f"{self.name!r} returned router logits of {len(router)} layers; expected {len(self.moe_layers)}")
        kind = batch["token_type"].to(dev)
        hidden = dict(zip(self.layer_names, out.hidden_states))
        if self.expert_outputs:
            for layer in self.moe_layers:
                contrib = self.hooks.captured[layer].reshape(b, t, self.n_experts, -1)
                for e in range(self.n_experts):
                    hidden[f"{layer}/expert-{e}"] = contrib[:, :, e]
            self.hooks.clear()
        return ModelOutput(
            hidden=hidden,
            token_groups={"all": att.bool(), "video": kind == 2, "text": kind == 0},
            attentions=dict(zip(self.layer_names[1:], out.attentions)) if want_attentions else None,
            router_logits={l: r.reshape(b, t, -1) for l, r in zip(self.moe_layers, router)},
            router_token_modality=np.asarray(MODALITY_NAMES, dtype=object)[batch["token_type"].cpu().numpy()],
        )
