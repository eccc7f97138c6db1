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

The study around these statistics (driven by :mod:`mmneuro.ablate.experts`):

- :func:`collect_routing`: a MoE adapter's router logits for every real token of every TR
  window of some runs (the windows feature extraction builds) -> :class:`RoutingRecord`;
- :func:`expert_alignment`: each expert's pooled output (``"layer-L/expert-e"`` features,
  ``{run: (n_trs, p)}``) encoded like any feature space -> held-out r per target and ROI;
- :func:`intervention_effect`: the same layers encoded before and after a routing
  intervention; change of ROI r with a paired block bootstrap (two-sided p, BH-FDR q);
- :func:`feature_changes`: which layers' features an intervention changed (bitwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmneuro.analyses.targets import expand_targets, restrict_targets
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


def usage_dict(u: ExpertUsage) -> dict[str, object]:
    """An :class:`ExpertUsage` as JSON-able numbers."""
    return {
        "n_tokens": int(u.n_tokens),
        "utilisation": [float(v) for v in u.utilisation],
        "mean_probability": [float(v) for v in u.mean_probability],
        "routing_entropy": float(u.routing_entropy),
        "load_imbalance": float(u.load_imbalance),
        "top1_share": float(u.top1_share),
        "collapse_index": float(u.collapse_index),
    }


def dominant_expert(router_logits: np.ndarray) -> int:
    """The expert most often ranked first in ``router_logits`` (n_tokens, n_experts)."""
    logits = np.asarray(router_logits)
    return int(np.argmax(np.bincount(np.argmax(logits, axis=1), minlength=logits.shape[1])))


# --------------------------------------------------------------------------- router logits of a dataset


@dataclass
class RoutingRecord:
    """Router logits of every real (non-padding) token of every window of some runs.

    ``logits[layer]`` (n_tokens, n_experts) float32 per MoE layer (``-inf`` marks a disabled
    expert); ``modality`` (n_tokens,) tags (``"video"``, ``"text"``, ``"special"``); ``run``
    (n_tokens,) index into ``runs``; ``window`` (n_tokens,) window (TR) index within its run;
    ``top_k[layer]``: experts per token the model used there.
    """

    runs: list[str]
    logits: dict[str, np.ndarray]
    modality: np.ndarray
    run: np.ndarray
    window: np.ndarray
    top_k: dict[str, int]

    def statistics(self, ignore: tuple[str, ...] = ("pad",)) -> dict[str, dict[str, ExpertUsage]]:
        """``{layer: {"all" | modality: ExpertUsage}}`` (see :func:`usage_by_modality`)."""
        return {layer: usage_by_modality(lg, self.modality, self.top_k[layer], ignore)
                for layer, lg in self.logits.items()}


def collect_routing(adapter, runs, batch_size: int | None = None, window: str | None = None,
                    progress: bool = True) -> RoutingRecord:
    """Run a mixture-of-experts ``adapter`` over every window of ``runs`` and keep its router logits.

    The windows are the ones feature extraction builds (:func:`~mmneuro.features.extract.plan_windows`,
    same ``window`` kind), so routing statistics describe exactly the tokens behind the features.
    ``adapter`` must return ``router_logits`` and ``router_token_modality`` (e.g. ``qwen3-vl-moe``);
    ``adapter.top_k_of(layer)`` (if present) gives the experts per token (default 1). On CUDA the
    model runs under bf16 autocast, as in feature extraction.
    """
    import contextlib

    import torch
    from tqdm.auto import tqdm

    from mmneuro.features.extract import plan_windows

    batch_size = int(batch_size or getattr(adapter, "batch_size", 4))
    logits: dict[str, list[np.ndarray]] = {}
    modality, run_idx, win_idx = [], [], []
    names = []
    for r, run in enumerate(runs):
        names.append(str(run.name))
        plan = plan_windows(adapter, run, window=window)
        stream = plan.stream()
        bar = tqdm(total=len(plan), unit="win", desc=f"routing {run.name}", disable=not progress, leave=False)
        try:
            for start in range(0, len(plan), batch_size):
                windows = [next(stream) for _ in range(min(batch_size, len(plan) - start))]
                batch = adapter.collate([adapter.preprocess(w) for w in windows])
                batch = {k: (v.to(adapter.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
                autocast = (torch.autocast(device_type="cuda", dtype=torch.bfloat16) if adapter.device.type == "cuda"
                            else contextlib.nullcontext())
                with torch.inference_mode(), autocast:
                    out = adapter.forward(batch)
                if not out.router_logits:
                    raise InputError(f"model {adapter.name!r} returns no router logits: not a mixture-of-experts model")
                tags = np.asarray(out.router_token_modality)
                real = tags != "pad"
                for layer, lg in out.router_logits.items():
                    logits.setdefault(layer, []).append(lg.float().cpu().numpy()[real])
                modality.append(tags[real])
                run_idx.append(np.full(int(real.sum()), r))
                win_idx.append(np.broadcast_to(start + np.arange(len(windows))[:, None], real.shape)[real])
                bar.update(len(windows))
        finally:
            stream.close()
            bar.close()
    top_k = {layer: int(adapter.top_k_of(layer)) if hasattr(adapter, "top_k_of") else 1 for layer in logits}
    return RoutingRecord(names, {k: np.concatenate(v).astype(np.float32) for k, v in logits.items()},
                         np.concatenate(modality).astype(str), np.concatenate(run_idx), np.concatenate(win_idx), top_k)


# --------------------------------------------------------------------------- alignment of expert outputs


@dataclass
class ExpertAlignment:
    """Held-out alignment of each expert's pooled output, per MoE layer.

    ``r`` (n_layers, n_experts, n_targets) held-out Pearson r (NaN outside the encoded targets);
    ``roi_r`` (n_layers, n_experts, n_rois) ROI means; ``layer_roi_r`` (n_layers, n_rois) the
    ROI means of the whole layer's output (hidden state), for reference.
    """

    layers: list[str]
    experts: list[int]
    rois: list[str]
    r: np.ndarray
    roi_r: np.ndarray
    layer_roi_r: np.ndarray | None = None

    def best_expert(self) -> dict[str, dict[str, int]]:
        """``{layer: {roi: expert with the highest ROI r}}``."""
        return {l: {k: self.experts[int(np.nanargmax(self.roi_r[i, :, j]))] if np.isfinite(self.roi_r[i, :, j]).any()
                    else -1 for j, k in enumerate(self.rois)} for i, l in enumerate(self.layers)}


def expert_alignment(dataset, expert_features: dict[str, dict[int, dict[str, np.ndarray]]], responses,
                     layer_features: dict[str, dict[str, np.ndarray]] | None = None,
                     targets: np.ndarray | None = None, delays=None, progress: bool = True) -> ExpertAlignment:
    """Encode each expert's pooled output like any feature space and score it per ROI.

    ``expert_features``: ``{layer: {expert: {run: (n_trs, p)}}}`` (e.g. the ``"layer-L/expert-e"``
    layers of ``qwen3-vl-moe`` with ``expert_outputs=True``, aligned to the TR grid);
    ``layer_features``: optional ``{layer: {run: (n_trs, p)}}`` whole-layer features for reference;
    ``targets``: optional (n_targets,) bool mask of the targets to encode (others NaN).
    Each space goes through :func:`~mmneuro.analyses.heldout.fit_evaluate`.
    """
    from tqdm.auto import tqdm

    from mmneuro.analyses.heldout import fit_evaluate
    from mmneuro.analyses.summary import roi_means

    ds, resp = restrict_targets(dataset, responses, targets)
    layers = list(expert_features)
    experts = sorted({e for per in expert_features.values() for e in per})
    rois = list(dataset.rois)
    n = responses.n_targets
    r = np.full((len(layers), len(experts), n), np.nan)
    todo = [(i, j) for i, l in enumerate(layers) for j, e in enumerate(experts) if e in expert_features[l]]
    for i, j in tqdm(todo, desc="expert alignment", unit="space", disable=not progress, leave=False):
        r[i, j] = expand_targets(fit_evaluate(ds, expert_features[layers[i]][experts[j]], resp, delays).r, targets)
    roi_r = np.array([[[roi_means(r[i, j], dataset.rois)[k] for k in rois] for j in range(len(experts))]
                      for i in range(len(layers))])
    layer_roi = None
    if layer_features is not None:
        layer_roi = np.array([[roi_means(expand_targets(fit_evaluate(ds, layer_features[l], resp, delays).r, targets),
                                         dataset.rois)[k] for k in rois] for l in layers])
    return ExpertAlignment(layers, experts, rois, r, roi_r, layer_roi)


# --------------------------------------------------------------------------- interventions


def feature_changes(base: dict[str, dict[str, np.ndarray]], other: dict[str, dict[str, np.ndarray]]) -> dict[str, dict]:
    """Per layer: ``{"identical": bool (bitwise, every run), "max_abs_diff": float}`` between two
    feature sets ``{layer: {run: (n_trs, p)}}`` over the layers both hold."""
    out = {}
    for layer in base:
        if layer not in other:
            continue
        same = all(np.array_equal(base[layer][run], other[layer][run]) for run in base[layer])
        diff = max(float(np.max(np.abs(base[layer][run].astype(np.float64) - other[layer][run]))) for run in base[layer])
        out[layer] = {"identical": bool(same), "max_abs_diff": diff}
    return out


@dataclass
class InterventionEffect:
    """How an intervention changed held-out alignment, per layer.

    ``r_base[layer]``, ``r_intervened[layer]`` (n_targets,) held-out r (NaN outside the encoded
    targets); ``roi[layer][roi]``: ``r_base``, ``r_intervened``, ``change`` (intervened − base,
    ROI mean), ``ci_low``/``ci_high`` (95 % paired block-bootstrap interval of the change),
    ``p`` (two-sided: twice the smaller one-sided bootstrap p), ``q`` (BH-FDR over all layers
    and ROIs).
    """

    layers: list[str]
    rois: list[str]
    r_base: dict[str, np.ndarray]
    r_intervened: dict[str, np.ndarray]
    roi: dict[str, dict[str, dict[str, float]]]


def intervention_effect(dataset, base: dict[str, dict[str, np.ndarray]], intervened: dict[str, dict[str, np.ndarray]],
                        responses, targets: np.ndarray | None = None, delays=None, n_boot: int = 1000,
                        block_len: int = 10, seed: int = 0, alpha: float = 0.05) -> InterventionEffect:
    """Encode each layer's features before and after an intervention; test the change per ROI.

    ``base``/``intervened``: ``{layer: {run: (n_trs, p)}}``. Both are encoded with
    :func:`~mmneuro.analyses.heldout.fit_evaluate`; the change of ROI-mean r is tested with
    :func:`~mmneuro.analyses.removal.paired_drop_test` in both directions (the same time blocks),
    two-sided p = min(1, 2 min(p_drop, p_rise)), FDR over all layers x ROIs.
    """
    from mmneuro.analyses.heldout import fit_evaluate, heldout_responses
    from mmneuro.analyses.removal import paired_drop_test
    from mmneuro.analyses.stats import fdr_correct

    ds, resp = restrict_targets(dataset, responses, targets)
    layers = [l for l in base if l in intervened]
    if not layers:
        raise InputError("no layer is present both before and after the intervention")
    Y = heldout_responses(ds, resp)
    rois = list(dataset.rois)
    r_base, r_int, roi = {}, {}, {}
    for layer in layers:
        fb = fit_evaluate(ds, base[layer], resp, delays, keep_predictions=True)
        fi = fit_evaluate(ds, intervened[layer], resp, delays, keep_predictions=True)
        drop = paired_drop_test(Y, fb.prediction, fi.prediction, ds.rois, n_boot, block_len, seed)["roi"]
        rise = paired_drop_test(Y, fi.prediction, fb.prediction, ds.rois, n_boot, block_len, seed)["roi"]
        r_base[layer], r_int[layer] = expand_targets(fb.r, targets), expand_targets(fi.r, targets)
        roi[layer] = {}
        for k in rois:
            d = drop[k]
            roi[layer][k] = {"r_base": d["r_full"], "r_intervened": d["r_residual"], "change": -d["drop"],
                             "ci_low": -d["ci_high"], "ci_high": -d["ci_low"],
                             "p_drop": d["p"], "p_rise": rise[k]["p"],
                             "p": float(min(1.0, 2 * min(d["p"], rise[k]["p"])))}
    _, q = fdr_correct(np.array([roi[l][k]["p"] for l in layers for k in rois]), alpha)
    for (l, k), qv in zip([(l, k) for l in layers for k in rois], q):
        roi[l][k]["q"] = float(qv)
    return InterventionEffect(layers, rois, r_base, r_int, roi)
