"""Cross-modal two-tower models: CLIP (vision + text) and CLAP (audio + text).

Each tower is a separate encoder; its layers are named ``"<tower>/layer-<i>"`` (``i = 0``:
the embeddings the first block reads) and its projected embedding ``"<tower>/projection"``
(the joint-space vector of ``get_image_features`` / ``get_text_features`` /
``get_audio_features``: CLIP's is unnormalised, CLAP's is L2-normalised as the model
defines it).

- ``vision`` (CLIP): the window's ``n_frames`` frames, resized (shortest edge),
  centre-cropped and normalised with the CLIP statistics, each run alone; tokens of the
  frames are concatenated (``segments = n_frames``), so ``"mean"`` is the mean over tokens,
  then frames; the projection is averaged over frames.
- ``audio`` (CLAP): the window's 48 kHz waveform through the HF ``ClapFeatureExtractor``
  (the checkpoint's parameters: 64-band log-mel, repeat-padded to 10 s; a window longer
  than that is refused rather than randomly cropped). HTSAT stage outputs
  ``(B, C, H, W)`` become ``(B, H*W, C)`` tokens.
- ``text``: the window's words (``WindowInput.text``: through
  :func:`~mmneuro.features.extract.extract_run`, the words of the run's words file whose
  midpoints lie in the window) joined by spaces; when they exceed the tower's length limit
  the earliest words are dropped. A window without a ``text`` field runs no text tower, and
  asking for a text layer then raises :class:`InputError`; an empty word list is valid
  (only the special tokens are read). ``wants_words`` is True when the text tower is
  exposed, so the driver then requires a words file.

Random weights use ``config`` or the default checkpoint's architecture and, for the text
tower, the tokenizer at ``tokenizer_path`` (default: the packaged MiniLM WordPiece
vocabulary) as a stand-in; CLIP's text tower then pools that tokenizer's end token
(``text_config.eos_token_id`` is set to it, else the pooled token would be the first one). Attentions: the vision and text towers (``"vision/layer-i"``
``(B, F, heads, T, T)``, ``"text/layer-i"`` ``(B, heads, T, T)``); CLAP's windowed
(Swin) audio attentions are not returned.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from mmneuro.errors import InputError
from mmneuro.models._hf import FrameTransform, build_model, ensure_eager, preprocessor_config, waveform_of
from mmneuro.models.base import ModelAdapter, ModelOutput, WeightsInfo, WindowInput, masked_mean

CLIP_HUB_ID = "openai/clip-vit-base-patch32"
CLAP_HUB_ID = "laion/clap-htsat-unfused"

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class TwoTowerAdapter(ModelAdapter):
    """Adapter around ``transformers.CLIPModel`` or ``ClapModel`` (see module docstring).

    Parameters
    ----------
    model : the two-tower model.
    kind : ``"clip"`` or ``"clap"``.
    tokenizer : the text tower's tokenizer.
    weights : where the weights came from.
    name : registry name.
    towers : towers to expose (default both).
    n_frames : frames per window (CLIP).
    processor : the checkpoint's preprocessor_config.json values ({} for defaults); through
        the registry, ``processor={...}`` overrides single values (e.g. CLAP's
        ``feature_size``/``max_length_s`` for a small config).
    device : torch device (None: CUDA when available).
    """

    poolings = ("mean",)
    default_pooling = "mean"
    batch_size = 8
    version = "twotower-1"

    def __init__(self, model, kind: str, tokenizer, weights: WeightsInfo, name: str | None = None,
                 towers: tuple[str, ...] | None = None, n_frames: int = 4, processor: dict | None = None, device=None):
        if kind not in ("clip", "clap"):
            raise InputError(f"unknown two-tower kind {kind!r}")
        self.model = model.eval()
        self.config = model.config
        self.kind = kind
        self.tokenizer = tokenizer
        self.weights = weights
        self.name = name or kind
        self.sensory = "vision" if kind == "clip" else "audio"
        towers = tuple(towers) if towers is not None else (self.sensory, "text")
        bad = [t for t in towers if t not in (self.sensory, "text")]
        if bad or not towers:
            raise InputError(f"model {self.name!r} has towers {[self.sensory, 'text']}; got {list(towers)}")
        self.towers = towers
        self.wants_words = "text" in towers
        proc = processor or {}
        if kind == "clip":
            self.modalities = ("video", "text")
            self.input_kind = "frames"
            self.n_frames = int(n_frames)
            if self.n_frames < 1:
                raise InputError(f"n_frames must be >= 1; got {n_frames}")
            self.transform = FrameTransform.from_processor(
                proc, int(self.config.vision_config.image_size), OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
            )
            n_sensory = self.config.vision_config.num_hidden_layers + 1
        else:
            from transformers import ClapFeatureExtractor

            self.modalities = ("audio", "text")
            self.input_kind = "waveform"
            proc = {k: v for k, v in proc.items() if k not in ("feature_extractor_type", "processor_class")}
            proc.setdefault("truncation", "rand_trunc")
            proc.setdefault("feature_size", int(self.config.audio_config.num_mel_bins))
            self.extractor = ClapFeatureExtractor(**proc)
            self.sample_rate = int(self.extractor.sampling_rate)
            n_sensory = len(self.config.audio_config.depths) + 1
        self.modalities = tuple(m for m in self.modalities if m != "text" or self.wants_words)
        self.text_max = int(min(self.config.text_config.max_position_embeddings, 512))
        if kind == "clap":
            self.text_max -= 2  # RoBERTa positions start after the padding index
        if kind == "clip" and "text" in towers:
            eos = self.config.text_config.eos_token_id
            if eos != 2 and eos not in tokenizer("a")["input_ids"]:  # 2: CLIP's legacy rule (largest id)
                raise InputError(
                    f"model {self.name!r}: the text tower pools the end-of-text token (id {eos}) but the tokenizer "
                    "never emits it; its text/projection would read the first token only. Use the checkpoint's "
                    "tokenizer, or set text_config.eos_token_id to the tokenizer's end token"
                )
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        names = []
        if self.sensory in towers:
            names += [f"{self.sensory}/layer-{i}" for i in range(n_sensory)] + [f"{self.sensory}/projection"]
        if "text" in towers:
            names += [f"text/layer-{i}" for i in range(self.config.text_config.num_hidden_layers + 1)] + ["text/projection"]
        self.layer_names = names
        self.to(device)

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_weights(cls, resolved, kind: str, name: str | None = None, config=None, tokenizer_path=None,
                     attentions: bool = False, **kw):
        import transformers as tf

        from mmneuro.models.text import minilm_folder

        if kind not in ("clip", "clap"):
            raise InputError(f"unknown two-tower kind {kind!r}")
        path = tokenizer_path or (minilm_folder() if resolved.is_random else resolved.path)
        tok = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        if kind == "clip":
            if resolved.is_random:
                config = _clip_config_for_tokenizer(copy.deepcopy(config) if config is not None else tf.CLIPConfig(), tok)
            model = build_model(resolved, tf.CLIPModel, tf.CLIPConfig, config, attentions)
        else:
            model = build_model(resolved, tf.ClapModel, _clap_unfused_config, config, attentions)
        if len(tok) > model.config.text_config.vocab_size:
            raise InputError(f"tokenizer has {len(tok)} tokens; the text tower's vocab_size is {model.config.text_config.vocab_size}")
        proc = {**preprocessor_config(resolved), **(kw.pop("processor", None) or {})}
        return cls(model, kind, tok, resolved.info, name=name, processor=proc, **kw)

    def window_params(self):
        p = dict(super().window_params())
        p["towers"] = list(self.towers)
        if "text" in self.towers:
            p["words"] = "window-text"
        return p

    # ---- protocol -------------------------------------------------------------------
    def preprocess(self, sample: WindowInput) -> dict[str, torch.Tensor]:
        """-> pixel_values (F, 3, S, S) | input_features (1, T, M); input_ids (L,) when text."""
        item: dict[str, torch.Tensor] = {}
        if self.sensory in self.towers:
            if self.sensory == "vision":
                x = self.transform(sample.frames, self.name)
                if len(x) != self.n_frames:
                    raise InputError(f"model {self.name!r} reads {self.n_frames} frames per window; got {len(x)}")
                item["pixel_values"] = x
            else:
                w = waveform_of(sample, self.sample_rate, self.name)
                if len(w) > self.extractor.nb_max_samples:
                    raise InputError(
                        f"the audio window ({len(w) / self.sample_rate:g} s) is longer than CLAP's "
                        f"{self.extractor.nb_max_samples / self.sample_rate:g} s input (it would be cropped at random)"
                    )
                feats = self.extractor(w, sampling_rate=self.sample_rate, return_tensors="pt")
                item["input_features"] = feats["input_features"][0]
        if "text" in self.towers and sample.text is not None:
            item["input_ids"] = self._text_ids(sample.text)
        return item

    def _text_ids(self, text) -> torch.Tensor:
        """Words -> (L,) token ids with special tokens, earliest words dropped to fit ``text_max``."""
        words = [str(w) for w in text]
        while True:
            ids = self.tokenizer(" ".join(words), add_special_tokens=True)["input_ids"]
            if len(ids) <= self.text_max or not words:
                break
            words = words[1:]
        if len(ids) > self.text_max:
            raise InputError(f"the text tower reads at most {self.text_max} tokens; got {len(ids)}")
        return torch.tensor(ids, dtype=torch.long)

    def collate(self, items):
        out = {}
        for key in ("pixel_values", "input_features"):
            if key in items[0]:
                out[key] = torch.stack([it[key] for it in items])
        has_text = ["input_ids" in it for it in items]
        if any(has_text):
            if not all(has_text):
                raise InputError(f"model {self.name!r}: some windows of the batch carry words and some do not")
            n = max(len(it["input_ids"]) for it in items)
            ids = torch.full((len(items), n), self.pad_id, dtype=torch.long)
            att = torch.zeros((len(items), n), dtype=torch.long)
            for i, it in enumerate(items):
                ids[i, : len(it["input_ids"])] = it["input_ids"]
                att[i, : len(it["input_ids"])] = 1
            out["input_ids"], out["attention_mask"] = ids, att
        return out

    def forward(self, batch, want_attentions: bool = False) -> ModelOutput:
        if want_attentions:
            ensure_eager(self.model)
        hidden: dict[str, torch.Tensor] = {}
        groups: dict[str, object] = {"all": slice(None)}
        atts: dict[str, torch.Tensor] = {}
        segments = 1
        dev = self.device
        if "pixel_values" in batch:
            pv = batch["pixel_values"].to(dev)
            b, f = pv.shape[:2]
            segments = f
            out = self.model.vision_model(
                pixel_values=pv.reshape(b * f, *pv.shape[2:]), output_hidden_states=True, output_attentions=want_attentions
            )
            for i, h in enumerate(out.hidden_states):
                hidden[f"vision/layer-{i}"] = h.reshape(b, f * h.shape[1], h.shape[2])
            proj = self.model.visual_projection(out.pooler_output)
            hidden["vision/projection"] = proj.reshape(b, f, -1)
            if want_attentions:
                for i, a in enumerate(out.attentions, start=1):
                    atts[f"vision/layer-{i}"] = a.reshape(b, f, *a.shape[1:])
        if "input_features" in batch:
            out = self.model.audio_model(input_features=batch["input_features"].to(dev), output_hidden_states=True)
            for i, h in enumerate(out.hidden_states):
                hidden[f"audio/layer-{i}"] = h.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, H*W, C)
            hidden["audio/projection"] = F.normalize(self.model.audio_projection(out.pooler_output), dim=-1)[:, None]
        if "input_ids" in batch:
            ids, att = batch["input_ids"].to(dev), batch["attention_mask"].to(dev)
            out = self.model.text_model(
                input_ids=ids, attention_mask=att, output_hidden_states=True, output_attentions=want_attentions
            )
            for i, h in enumerate(out.hidden_states):
                hidden[f"text/layer-{i}"] = h
            proj = self.model.text_projection(out.pooler_output)
            if self.kind == "clap":
                proj = F.normalize(proj, dim=-1)
            hidden["text/projection"] = proj[:, None]
            groups["text"] = att.bool()
            if want_attentions:
                for i, a in enumerate(out.attentions, start=1):
                    atts[f"text/layer-{i}"] = a
        return ModelOutput(hidden=hidden, token_groups=groups, attentions=atts or None, segments=segments)

    def pool(self, output: ModelOutput, how=None, layers=None) -> dict[str, np.ndarray]:
        """Mean over each tower's real tokens (vision: tokens then frames; projections: frames).

        ``layers`` defaults to every layer of the exposed towers; a tower without input raises.
        """
        how = how or self.default_pooling
        if how not in self.poolings:
            raise InputError(f"model {self.name!r} does not support pooling {how!r}; choose one of {list(self.poolings)}")
        names = list(layers) if layers is not None else list(self.layer_names)
        missing = [l for l in names if l not in output.hidden]
        if missing:
            raise InputError(
                f"model {self.name!r} has no output for {missing}: the text tower needs the words of each window "
                "(WindowInput.text); build with towers=(...) to leave a tower out"
            )
        out = {}
        for layer in names:
            is_text_tokens = layer.startswith("text/layer-")
            group = output.token_groups["text"] if is_text_tokens else slice(None)
            out[layer] = masked_mean(output.hidden[layer], group).cpu().numpy().astype(np.float32, copy=False)
        return out

    def pooling_label(self, how=None):
        return "mean-tokens,mean-frames" if self.kind == "clip" else "mean-tokens"


def _clip_config_for_tokenizer(config, tokenizer):
    """Random CLIP with a stand-in tokenizer: pool the tokenizer's end token (``[SEP]`` for
    the MiniLM WordPiece vocabulary) rather than CLIP's id 49407, which it never emits."""
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    tc = config.text_config
    if end is not None and tc.eos_token_id != 2 and tc.eos_token_id not in tokenizer("a")["input_ids"]:
        tc.eos_token_id = int(end)
        if tokenizer.cls_token_id is not None:
            tc.bos_token_id = int(tokenizer.cls_token_id)
    return config


def _clap_unfused_config():
    from transformers import ClapConfig

    return ClapConfig(audio_config={"enable_fusion": False})
