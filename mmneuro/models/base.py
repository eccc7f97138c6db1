"""The adapter protocol: one small interface every model family sits behind.

An adapter turns one *window* of stimulus (a few video frames, a stretch of waveform,
a word with its preceding context) into per-layer activations, and pools them into one
vector per window and layer::

    sample  --preprocess-->  dict of CPU tensors           (one window)
    [dicts] --collate----->  batch (dict of tensors)        (batch of windows)
    batch   --forward----->  ModelOutput                    (per-layer token states)
    output  --pool-------->  {layer: (batch, dim) float32}  (one vector per window)

The extraction driver (:mod:`mmneuro.features.extract`) builds the windows from a
stimulus run according to :attr:`ModelAdapter.input_kind`, batches them, runs
``forward`` under ``torch.inference_mode()`` and stacks the pooled vectors into
:class:`TimedFeatures` (one row per window, stamped with the window's time).

Shapes used throughout
----------------------
- ``hidden[layer]``: ``(batch, tokens, dim)``. Models that run several independent
  segments per window (an image model applied to each of a window's frames) concatenate
  the segments along the token axis, so ``tokens = segments * tokens_per_segment`` and a
  mean over all tokens is the mean over tokens then over segments.
- ``token_groups[name]``: which tokens belong to a group. A ``slice`` or a 1-D integer
  index tensor selects the same token positions for every item; a ``(batch, tokens)``
  boolean tensor selects per item (padding masks, the sub-tokens of a target word).
  ``"all"`` is always present (every real, non-padding token).
- ``attentions[layer]``: ``(batch, heads, tokens, tokens)``; for segmented models
  ``(batch, segments, heads, tokens_per_segment, tokens_per_segment)``.
- ``router_logits[layer]``: ``(batch, tokens, experts)`` for mixture-of-experts models,
  with ``router_token_modality`` ``(tokens,)`` or ``(batch, tokens)`` strings/codes
  naming the modality of each routed token.
"""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Sequence

import numpy as np
import torch

from mmneuro.errors import InputError

Modality = Literal["video", "audio", "text"]
InputKind = Literal["frames", "waveform", "frames+waveform", "words"]
WeightsKind = Literal["package", "path", "hub", "random", "none"]

INPUT_KINDS: tuple[str, ...] = ("frames", "waveform", "frames+waveform", "words")


@dataclass(frozen=True)
class WeightsInfo:
    """Where an adapter's weights came from.

    Attributes
    ----------
    kind : ``"package"`` (shipped inside a Python package), ``"path"`` (a local folder
        saved with ``save_pretrained``), ``"hub"`` (a Hugging Face cache snapshot),
        ``"random"`` (architecture-true, seeded random init) or ``"none"`` (weight-free
        baselines such as the mel spectrogram).
    location : folder, hub id or package name; None for random/none.
    identity : a string that changes whenever the numbers would change:
        ``"sha256:<hex>"`` for folders/packages, ``"hub:<id>@<commit>"``,
        ``"random-seed<seed>"``, or a baseline's parameter tag.
    """

    kind: WeightsKind
    location: str | None
    identity: str

    @property
    def is_random(self) -> bool:
        return self.kind == "random"

    def label(self) -> str:
        """Short human label; random weights are always called out."""
        if self.is_random:
            return f"RANDOM WEIGHTS ({self.identity})"
        return self.identity


@dataclass
class WindowInput:
    """One window of stimulus, the unit an adapter preprocesses.

    Attributes
    ----------
    frames : (n_frames, H, W, 3) uint8 RGB frames sampled inside the window, or None.
    waveform : (n_samples,) float32 mono audio of the window, or None.
    sample_rate : sampling rate of ``waveform`` in Hz.
    text : the words fed to a text model (context words followed by the target word).
    target_word_span : ``(start, stop)`` word indices into ``text`` of the word whose
        vector is wanted (usually the last word: ``(len(text) - 1, len(text))``).
    """

    frames: np.ndarray | None = None
    waveform: np.ndarray | None = None
    sample_rate: int | None = None
    text: Sequence[str] | None = None
    target_word_span: tuple[int, int] | None = None


@dataclass
class ModelOutput:
    """What ``forward`` returns for one batch (shapes in the module docstring).

    Attributes
    ----------
    hidden : layer name -> (batch, tokens, dim) tensor.
    token_groups : group name -> slice, 1-D index tensor or (batch, tokens) bool mask.
    attentions : layer name -> attention probabilities, when asked for.
    router_logits : layer name -> (batch, tokens, experts), for mixture-of-experts models.
    router_token_modality : modality of each routed token, (tokens,) or (batch, tokens).
    segments : number of independent segments concatenated per item (frames for image
        models run frame by frame); 1 otherwise.
    """

    hidden: dict[str, torch.Tensor]
    token_groups: dict[str, Any]
    attentions: dict[str, torch.Tensor] | None = None
    router_logits: dict[str, torch.Tensor] | None = None
    router_token_modality: Any = None
    segments: int = 1

    @property
    def batch_size(self) -> int:
        return int(next(iter(self.hidden.values())).shape[0])


@dataclass
class TimedFeatures:
    """Features of one layer over time.

    Attributes
    ----------
    data : (n_samples, n_features) float32.
    times : (n_samples,) float64 seconds on the stimulus clock (the time each row
        describes: a TR's acquisition time, a word's midpoint).
    pooling : how token states were pooled into one vector (e.g. ``"word-mean"``).
    layer : layer name.
    model : model name the features came from ("" if unknown).
    weights : weights identity (``"random-seed0"`` marks random weights).
    """

    data: np.ndarray
    times: np.ndarray
    pooling: str
    layer: str
    model: str = ""
    weights: str = ""

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=np.float32)
        self.times = np.asarray(self.times, dtype=np.float64)
        if self.data.ndim != 2:
            raise InputError(f"features of layer {self.layer!r} must be 2-D (time, features); got shape {self.data.shape}")
        if self.times.ndim != 1 or len(self.times) != len(self.data):
            raise InputError(
                f"features of layer {self.layer!r}: {len(self.data)} rows but times has shape {self.times.shape}"
            )

    @property
    def is_random(self) -> bool:
        return self.weights.startswith("random")

    def __len__(self) -> int:
        return int(self.data.shape[0])


def masked_mean(x: torch.Tensor, group: Any) -> torch.Tensor:
    """Mean of ``x`` (batch, tokens, dim) over the tokens selected by ``group``.

    Returns (batch, dim) float32. Raises InputError if an item selects no token.
    """
    x = x.float()
    if isinstance(group, slice):
        sel = x[:, group]
        if sel.shape[1] == 0:
            raise InputError(f"token group {group} selects no tokens of {x.shape[1]}")
        return sel.mean(dim=1)
    group = torch.as_tensor(group, device=x.device)
    if group.dtype == torch.bool:
        if group.ndim == 1:
            group = group.unsqueeze(0).expand(x.shape[0], -1)
        if group.shape != x.shape[:2]:
            raise InputError(f"token mask of shape {tuple(group.shape)} does not match states {tuple(x.shape[:2])}")
        w = group.to(x.dtype)
        count = w.sum(dim=1, keepdim=True)
        if bool((count == 0).any()):
            bad = torch.nonzero(count[:, 0] == 0).flatten().tolist()
            raise InputError(f"token mask selects no tokens for batch items {bad}")
        return (x * w.unsqueeze(-1)).sum(dim=1) / count
    idx = group.long()
    if idx.ndim != 1 or idx.numel() == 0:
        raise InputError(f"token index group must be a non-empty 1-D tensor; got shape {tuple(idx.shape)}")
    return x.index_select(1, idx).mean(dim=1)


class ModelAdapter(abc.ABC):
    """Base class of every model adapter.

    Subclasses set the class/instance attributes below and implement
    :meth:`preprocess`, :meth:`collate` and :meth:`forward`. :meth:`pool` works for any
    adapter whose ``forward`` fills ``token_groups`` as documented.

    Attributes
    ----------
    name : registry name (``"vit"``, ``"minilm"``...).
    modalities : subset of {"video", "audio", "text"} the model reads.
    input_kind : ``"frames"``, ``"waveform"``, ``"frames+waveform"`` or ``"words"``;
        tells the driver which windows to build.
    layer_names : layer names in depth order.
    weights : :class:`WeightsInfo`.
    poolings : pooling names this adapter supports; ``default_pooling`` is the first used.
    n_frames : frames sampled uniformly in each window (frame inputs).
    sample_rate : waveform rate the adapter expects, Hz (waveform inputs).
    n_context : preceding words given with each target word (word inputs).
    batch_size : windows per forward pass the driver uses unless told otherwise.
    version : bumped when an adapter's numbers change; part of every cache key.
    """

    name: str = ""
    modalities: tuple[str, ...] = ()
    input_kind: str = ""
    layer_names: list[str]
    weights: WeightsInfo
    poolings: tuple[str, ...] = ("mean",)
    default_pooling: str = "mean"
    n_frames: int = 4
    sample_rate: int = 16000
    n_context: int = 20
    batch_size: int = 16
    version: ClassVar[str] = "1"

    device: torch.device = torch.device("cpu")

    # ---- the protocol -----------------------------------------------------------
    @abc.abstractmethod
    def preprocess(self, sample: WindowInput) -> dict[str, torch.Tensor]:
        """One window -> dict of CPU tensors (no batch axis). Runs in a worker thread."""

    @abc.abstractmethod
    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Stack/pad preprocessed windows into a batch (CPU tensors)."""

    @abc.abstractmethod
    def forward(self, batch: dict[str, torch.Tensor], want_attentions: bool = False) -> ModelOutput:
        """Run the model on a batch already on :attr:`device`."""

    # ---- shared behaviour -------------------------------------------------------
    def pool(self, output: ModelOutput, how: str | None = None, layers: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Pool token states into one vector per item.

        ``how``: ``"mean"`` (all real tokens), ``"mean:<group>"`` (tokens of one group,
        e.g. ``"mean:video"``), ``"cls"`` (the ``"cls"`` group; averaged over segments),
        ``"word-mean"`` (the ``"word"`` group: the target word's sub-tokens).
        Returns layer -> (batch, dim) float32 numpy array.
        """
        how = how or self.default_pooling
        if how not in self.poolings:
            raise InputError(f"model {self.name!r} does not support pooling {how!r}; choose one of {list(self.poolings)}")
        group_name = _group_for(how)
        if group_name not in output.token_groups:
            raise InputError(f"model {self.name!r} output has no token group {group_name!r} (pooling {how!r})")
        group = output.token_groups[group_name]
        names = list(layers) if layers is not None else list(output.hidden)
        out = {}
        for layer in names:
            out[layer] = masked_mean(output.hidden[layer], group).cpu().numpy().astype(np.float32, copy=False)
        return out

    def pooling_label(self, how: str | None = None) -> str:
        """The pooling name recorded with features (adapters may spell out frame averaging)."""
        return how or self.default_pooling

    def window_params(self) -> dict[str, Any]:
        """Parameters of the windows this adapter reads (part of the feature cache key).

        With random weights the identity ``random-seed<k>`` does not say which architecture
        made the numbers, so a digest of the model's config joins the key: two random
        configs of one model never share cached features.
        """
        params: dict[str, Any] = {}
        if self.input_kind in ("frames", "frames+waveform"):
            params["n_frames"] = int(self.n_frames)
        if self.input_kind in ("waveform", "frames+waveform"):
            params["sample_rate"] = int(self.sample_rate)
        if self.input_kind == "words":
            params["n_context"] = int(self.n_context)
        digest = self.random_config_digest()
        if digest is not None:
            params["random_config"] = digest
        return params

    def random_config_digest(self) -> str | None:
        """sha256 (16 hex) of the model config's JSON when the weights are random, else None."""
        if not self.weights.is_random:
            return None
        config = getattr(getattr(self, "model", None), "config", None)
        if config is None or not hasattr(config, "to_dict"):
            return None
        text = json.dumps(config.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to(self, device: str | torch.device | None) -> "ModelAdapter":
        """Move the model to ``device`` (None: CUDA if available, else CPU)."""
        self.device = pick_device(device)
        module = getattr(self, "model", None)
        if isinstance(module, torch.nn.Module):
            module.to(self.device)
        return self

    def describe(self) -> dict[str, Any]:
        """A json-able summary used in provenance records."""
        return {
            "model": self.name,
            "input_kind": self.input_kind,
            "modalities": list(self.modalities),
            "layers": list(self.layer_names),
            "weights": {"kind": self.weights.kind, "location": self.weights.location, "identity": self.weights.identity},
            "window": self.window_params(),
            "version": self.version,
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} weights={self.weights.label()} layers={len(self.layer_names)}>"


def _group_for(how: str) -> str:
    if how == "mean":
        return "all"
    if how.startswith("mean:"):
        return how.split(":", 1)[1]
    if how == "word-mean":
        return "word"
    return how


def pick_device(device: str | torch.device | None) -> torch.device:
    """None/"auto" -> CUDA when available, else CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seeded_init(build, seed: int):
    """Call ``build()`` with torch's RNG seeded, without disturbing the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()
