"""Expert usage in mixture-of-experts layers, from router logits, and a collapse index.

Inputs are one layer's router logits ``(n_tokens, n_experts)`` (tokens of all windows stacked)
and optionally a modality tag per token (``"video"``, ``"text"``...), as returned by MoE adapters
in ``ModelOutput.router_logits`` / ``router_token_modality``. For each token group:

- ``utilisation`` (n_experts,): share of tokens whose top-k choice includes each expert;
- ``mean_probability`` (n_experts,): the router's average softmax probability per expert;
- ``routing_entropy``: mean per-token entropy of the softmax, in nats;
- ``load_imbalance``: max utilisation / mean utilisation (1 = perfectly balanced);
- ``top1_share``: share of tokens routed first to the most used expert;
- ``collapse_index``: 1 − H(mean_probability) / log(n_experts), 0 when the router spreads
  tokens evenly over experts, 1 when every token goes to one expert.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmneuro.errors import InputError


@dataclass
class ExpertUsage:
    """Usage statistics of one MoE layer for one group of tokens (see module docstring)."""

    n_tokens: int
    utilisation: np.ndarray
    mean_probability: np.ndarray
    routing_entropy: float
    load_imbalance: float
    top1_share: float
    collapse_index: float


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def expert_usage(router_logits: np.ndarray, top_k: int = 1) -> ExpertUsage:
    """Statistics of ``router_logits`` (n_tokens, n_experts) for tokens routed to ``top_k`` experts."""
    logits = np.asarray(router_logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        raise InputError(f"router logits must be (n_tokens > 0, n_experts >= 2), got shape {logits.shape}")
    n_tokens, n_experts = logits.shape
    if not 1 <= top_k <= n_experts:
        raise InputError(f"top_k must be in 1..{n_experts}, got {top_k}")
    probs = softmax(logits)
    chosen = np.argsort(-logits, axis=1)[:, :top_k]
    counts = np.bincount(chosen.ravel(), minlength=n_experts)
    utilisation = counts / n_tokens
    mean_prob = probs.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        token_entropy = -np.sum(np.where(probs > 0, probs * np.log(probs), 0.0), axis=1)
        pooled_entropy = -np.sum(np.where(mean_prob > 0, mean_prob * np.log(mean_prob), 0.0))
    top1 = np.bincount(chosen[:, 0], minlength=n_experts)
    return ExpertUsage(
        n_tokens=n_tokens,
        utilisation=utilisation,
        mean_probability=mean_prob,
        routing_entropy=float(token_entropy.mean()),
        load_imbalance=float(utilisation.max() / utilisation.mean()),
        top1_share=float(top1.max() / n_tokens),
        collapse_index=float(1.0 - pooled_entropy / np.log(n_experts)),
    )


def usage_by_modality(router_logits: np.ndarray, modality: np.ndarray | None = None,
                      top_k: int = 1, ignore: tuple[str, ...] = ("pad",)) -> dict[str, ExpertUsage]:
    """:func:`expert_usage` for all tokens (``"all"``) and for each modality tag in ``modality``
    (n_tokens,), leaving out tokens tagged in ``ignore``."""
    logits = np.asarray(router_logits)
    if modality is None:
        return {"all": expert_usage(logits, top_k)}
    modality = np.asarray(modality)
    if modality.shape != (logits.shape[0],):
        raise InputError(f"{modality.shape[0] if modality.ndim else 0} modality tags for {logits.shape[0]} tokens")
    keep = ~np.isin(modality, ignore)
    out = {"all": expert_usage(logits[keep], top_k)}
    for tag in sorted(set(modality[keep].tolist())):
        out[str(tag)] = expert_usage(logits[modality == tag], top_k)
    return out
