"""X-CLIP (video + text two-tower, ``transformers.XCLIPModel``), e.g. microsoft/xclip-base-patch32.

One window = the TR's ``n_frames`` frames (exactly the checkpoint's ``num_frames``: the
cross-frame message tokens of every vision block mix a fixed number of frames) + the words
heard in it. Frames are resized (shortest edge), centre-cropped and normalised with the
checkpoint's preprocessor values (default: the CLIP statistics at ``image_size``).

Layers, in depth order:

- ``vision/layer-0`` .. ``vision/layer-N``: the vision tower run on all frames of a window
  together (cross-frame attention); layer 0 = embeddings after the pre-layernorm. States
  ``(B, F*T, D)`` (``segments = F``; the per-frame message token is not part of them);
  ``"mean"`` = mean over tokens, then frames.
- ``vision/projection``: each frame's projected class token (``visual_projection``), the
  input of the multi-frame integration transformer (MIT); ``(B, F, P)``, mean over frames.
- ``vision/mit``: the MIT output ``(B, F, P)``; its mean over frames is X-CLIP's video
  embedding (``get_video_features``, unnormalised).
- ``text/layer-0`` .. ``text/layer-N``: the text tower (causal), mean over real tokens.
- ``text/projection``: ``get_text_features`` (the pooled token projected), ``(B, 1, P)``:
  the words alone, **independent of the video**.
- ``text/prompted`` (both towers only): X-CLIP's video-specific prompt, the text embedding
  plus the prompt generator's cross-attention output on *the same window's* frames
  (``text_embeds`` of ``XCLIPModel.forward`` before L2-normalisation), ``(B, 1, P)``. It
  mixes the two modalities: it is the only text layer that depends on the video.

The text tower pools the token with the largest id (X-CLIP's legacy end-of-text rule),
which is the end-of-text token with the CLIP tokenizer of real checkpoints; random weights
use the packaged MiniLM WordPiece tokenizer as a stand-in, for which that rule picks
the highest-id word piece. Attentions: ``"vision/layer-i"`` ``(B, F, heads, T+1, T+1)``
(the last token is the frame's message token), ``"text/layer-i"`` ``(B, heads, L, L)``;
the MIT's and prompt generator's attentions are not returned.
"""

from __future__ import annotations

import torch

from mmneuro.errors import InputError
from mmneuro.models._hf import FrameTransform, build_model, ensure_eager, preprocessor_config
from mmneuro.models.base import ModelAdapter, ModelOutput, WeightsInfo
from mmneuro.models.twotower import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, TwoTowerAdapter

XCLIP_HUB_ID = "microsoft/xclip-base-patch32"


class XCLIPAdapter(TwoTowerAdapter):
    """Adapter around ``transformers.XCLIPModel`` (see module docstring).

    Parameters
    ----------
    model : an ``XCLIPModel``.
    tokenizer : the text tower's tokenizer.
    weights : where the weights came from.
    name : registry name.
    towers : ``("vision", "text")`` (default), ``("vision",)`` or ``("text",)``.
    n_frames : frames per window; must equal ``config.vision_config.num_frames`` (default).
    processor : the checkpoint's preprocessor_config.json values ({} for defaults).
    device : torch device (None: CUDA when available).
    """

    version = "xclip-1"

    def __init__(self, model, tokenizer, weights: WeightsInfo, name: str = "xclip", towers: tuple[str, ...] | None = None,
                 n_frames: int | None = None, processor: dict | None = None, device=None):
        self.model = model.eval()
        self.config = model.config
        self.kind = "xclip"
        self.tokenizer = tokenizer
        self.weights = weights
        self.name = name
        self.sensory = "vision"
        towers = tuple(towers) if towers is not None else ("vision", "text")
        bad = [t for t in towers if t not in ("vision", "text")]
        if bad or not towers:
            raise InputError(f"model {self.name!r} has towers ['vision', 'text']; got {list(towers)}")
        self.towers = towers
        self.wants_words = "text" in towers
        vc = self.config.vision_config
        self.n_frames = int(vc.num_frames if n_frames is None else n_frames)
        if self.n_frames != int(vc.num_frames):
            raise InputError(
                f"model {self.name!r} reads exactly {vc.num_frames} frames per window (its cross-frame attention is "
                f"built for that many); got n_frames={n_frames}"
            )
        self.modalities = tuple(m for t, m in (("vision", "video"), ("text", "text")) if t in towers)
        self.input_kind = "frames"
        self.transform = FrameTransform.from_processor(processor or {}, int(vc.image_size), OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
        self.text_max = int(self.config.text_config.max_position_embeddings)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        names = []
        if "vision" in towers:
            names += [f"vision/layer-{i}" for i in range(vc.num_hidden_layers + 1)] + ["vision/projection", "vision/mit"]
        if "text" in towers:
            names += [f"text/layer-{i}" for i in range(self.config.text_config.num_hidden_layers + 1)]
            names += ["text/projection"] + (["text/prompted"] if "vision" in towers else [])
        self.layer_names = names
        self.to(device)

    @classmethod
    def from_weights(cls, resolved, name: str = "xclip", config=None, tokenizer_path=None, attentions: bool = False,
                     **kw) -> "XCLIPAdapter":
        import transformers as tf

        from mmneuro.models.text import minilm_folder

        model = build_model(resolved, tf.XCLIPModel, tf.XCLIPConfig, config, attentions)
        path = tokenizer_path or (minilm_folder() if resolved.is_random else resolved.path)
        tok = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        if len(tok) > model.config.text_config.vocab_size:
            raise InputError(f"tokenizer has {len(tok)} tokens; the text tower's vocab_size is {model.config.text_config.vocab_size}")
        proc = {**preprocessor_config(resolved), **(kw.pop("processor", None) or {})}
        return cls(model, tok, resolved.info, name=name, processor=proc, **kw)

    def window_params(self):
        p = ModelAdapter.window_params(self)
        p["towers"] = list(self.towers)
        if "text" in self.towers:
            p["words"] = "window-text"
        return p

    def forward(self, batch, want_attentions: bool = False) -> ModelOutput:
        if want_attentions:
            ensure_eager(self.model)
        m = self.model
        dev = self.device
        hidden: dict[str, torch.Tensor] = {}
        groups: dict[str, object] = {"all": slice(None)}
        atts: dict[str, torch.Tensor] = {}
        segments = 1
        patches = None
        if "pixel_values" in batch:
            pv = batch["pixel_values"].to(dev)
            b, f = pv.shape[:2]
            segments = f
            out = m.vision_model(pixel_values=pv.reshape(b * f, *pv.shape[2:]), output_hidden_states=True,
                                 output_attentions=want_attentions)
            for i, h in enumerate(out.hidden_states):
                hidden[f"vision/layer-{i}"] = h.reshape(b, f * h.shape[1], h.shape[2])
            frame_proj = m.visual_projection(out.pooler_output).reshape(b, f, -1)  # (B, F, P)
            hidden["vision/projection"] = frame_proj
            hidden["vision/mit"] = m.mit(frame_proj).last_hidden_state  # (B, F, P)
            # patch tokens of the last block, projected for the prompt generator: (B, T-1, P)
            patches = m.prompts_visual_layernorm(out.last_hidden_state[:, 1:]) @ m.prompts_visual_projection
            patches = patches.reshape(b, f, -1, patches.shape[-1]).mean(1)
            if want_attentions:
                for i, a in enumerate(out.attentions, start=1):
                    atts[f"vision/layer-{i}"] = a.reshape(b, f, *a.shape[1:])
        if "input_ids" in batch:
            ids, att = batch["input_ids"].to(dev), batch["attention_mask"].to(dev)
            out = m.text_model(input_ids=ids, attention_mask=att, output_hidden_states=True,
                               output_attentions=want_attentions)
            for i, h in enumerate(out.hidden_states):
                hidden[f"text/layer-{i}"] = h
            text = m.text_projection(out.pooler_output)[:, None]  # (B, 1, P)
            hidden["text/projection"] = text
            if patches is not None:
                hidden["text/prompted"] = text + m.prompts_generator(text, patches)
            groups["text"] = att.bool()
            if want_attentions:
                for i, a in enumerate(out.attentions, start=1):
                    atts[f"text/layer-{i}"] = a
        return ModelOutput(hidden=hidden, token_groups=groups, attentions=atts or None, segments=segments)

    def pooling_label(self, how=None):
        return "mean-tokens,mean-frames"


__all__ = ["XCLIPAdapter", "XCLIP_HUB_ID"]
