"""Model adapters behind one protocol, the registry of names, and weight resolution.

>>> from mmneuro.models import get_adapter, available_models
>>> adapter = get_adapter("minilm")          # packaged weights, offline
>>> adapter.layer_names[:2]
['layer-0', 'layer-1']
"""

from mmneuro.models.base import (
    ModelAdapter,
    ModelOutput,
    TimedFeatures,
    WeightsInfo,
    WindowInput,
)
from mmneuro.models.precomputed import load_precomputed
from mmneuro.models.registry import MODELS, available_models, get_adapter, register
from mmneuro.models.weights import ResolvedWeights, resolve_weights

__all__ = [
    "MODELS",
    "ModelAdapter",
    "ModelOutput",
    "ResolvedWeights",
    "TimedFeatures",
    "WeightsInfo",
    "WindowInput",
    "available_models",
    "get_adapter",
    "load_precomputed",
    "register",
    "resolve_weights",
]
