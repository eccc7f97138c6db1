"""GPT-2: contextual word vectors from a causal language model.

Word *i* is read after its ``n_context`` preceding words (left context only; the model
is causal so later words could not matter anyway); the word's vector at each layer is
the mean of the hidden states of its own sub-tokens (pooling ``"word-mean"``). Layers:
``"layer-0"`` (token + position embeddings) .. ``"layer-N"`` (``layer-N`` is after the
final layer norm, as ``transformers`` returns it). The driver stamps each vector with the
word's midpoint; the pipeline Lanczos-resamples word vectors to TRs.

The byte-level BPE tokenizer is loaded with ``add_prefix_space=True`` so that
``is_split_into_words`` maps every sub-token to its word. Random weights (no GPT-2
tokenizer offline) use the tokenizer at ``tokenizer_path`` (default: the packaged
MiniLM WordPiece vocabulary) — a stand-in that is labelled with the random weights.
"""

from __future__ import annotations

import copy

from mmneuro.errors import InputError
from mmneuro.models.text import TextAdapter, minilm_folder

GPT2_HUB_ID = "gpt2"


class GPT2Adapter(TextAdapter):
    """Word-in-context adapter around ``transformers.GPT2Model`` (see module docstring)."""

    poolings = ("word-mean", "mean")
    default_pooling = "word-mean"
    version = "gpt2-1"

    @classmethod
    def from_weights(cls, resolved, name: str = "gpt2", config=None, tokenizer_path=None, attentions: bool = False, **kw):
        """Build from resolved weights (random: ``config`` or ``GPT2Config()``, GPT-2 small)."""
        from transformers import AutoTokenizer, GPT2Config, GPT2Model

        from mmneuro.models._hf import build_model

        model = build_model(resolved, GPT2Model, GPT2Config, copy.deepcopy(config) if config else None, attentions)
        if resolved.is_random:
            tok = AutoTokenizer.from_pretrained(str(tokenizer_path or minilm_folder()), local_files_only=True)
            if len(tok) > model.config.vocab_size:
                raise InputError(f"tokenizer has {len(tok)} tokens but the random {name!r} has vocab_size {model.config.vocab_size}")
        else:
            tok = AutoTokenizer.from_pretrained(
                str(tokenizer_path or resolved.path), local_files_only=True, add_prefix_space=True
            )
        tok.model_input_names = ["input_ids", "attention_mask"]  # GPT-2 would embed token_type_ids as tokens
        return cls(model, tok, resolved.info, name=name, **kw)
