"""Where a joint model's attention goes: within and across modalities, entropy, and rollout.

Inputs: one layer's attention weights ``(batch, heads, tokens, tokens)`` (rows: queries,
columns: keys, rows summing to 1) and index arrays of the video and audio tokens (e.g. the
``token_groups`` of a TVLT adapter output). All shares are averaged over the batch.
"""

from __future__ import annotations

import numpy as np

from mmneuro.errors import InputError


def _check(att: np.ndarray) -> np.ndarray:
    att = np.asarray(att, dtype=np.float64)
    if att.ndim != 4 or att.shape[-1] != att.shape[-2]:
        raise InputError(f"attention must be (batch, heads, tokens, tokens), got shape {att.shape}")
    return att


def modality_shares(attention: np.ndarray, groups: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Share of each query group's attention that lands on each key group, per head.

    ``groups``: name -> token indices (e.g. ``{"video": ..., "audio": ...}``). Returns
    ``{"<query>-><key>": (heads,)}``: for each head, the mean over batch and query tokens of the
    summed attention weight on the key group's tokens (e.g. ``"video->audio"`` is the cross-modal
    share of video queries).
    """
    att = _check(attention)
    out = {}
    for q_name, q_idx in groups.items():
        rows = att[:, :, np.asarray(q_idx)]
        for k_name, k_idx in groups.items():
            out[f"{q_name}->{k_name}"] = rows[..., np.asarray(k_idx)].sum(axis=-1).mean(axis=(0, 2))
    return out


def attention_entropy(attention: np.ndarray, queries: np.ndarray | None = None) -> np.ndarray:
    """Mean entropy (nats) of the attention rows of ``queries`` (default: all), per head: (heads,)."""
    att = _check(attention)
    rows = att if queries is None else att[:, :, np.asarray(queries)]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.sum(np.where(rows > 0, rows * np.log(rows), 0.0), axis=-1)
    return h.mean(axis=(0, 2))


def attention_rollout(attentions: list[np.ndarray], residual: float = 0.5) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020) through the layers: (batch, tokens, tokens).

    Each layer's head-averaged attention is mixed with the identity for the residual stream,
    ``A' = residual * I + (1 - residual) * A`` (rows renormalised), and the layers are multiplied
    from the first to the last: entry ``[b, i, j]`` is how much token ``j`` at the input flows
    into token ``i`` at the output.
    """
    if not attentions:
        raise InputError("attention rollout needs at least one layer")
    rollout = None
    for att in attentions:
        a = _check(att).mean(axis=1)
        a = residual * np.eye(a.shape[-1]) + (1 - residual) * a
        a = a / a.sum(axis=-1, keepdims=True)
        rollout = a if rollout is None else a @ rollout
    return rollout
