"""Routing interventions on mixture-of-experts blocks, and each expert's share of a block's output.

A sparse block (``transformers`` Qwen3-VL-MoE: ``layer.mlp.gate`` the router,
``layer.mlp.experts`` the experts) routes every token ``t`` as

    logits_t = W_gate x_t                     (n_experts,)
    p_t = softmax(logits_t)
    S_t = top-k experts of p_t;  w_te = p_te / sum_{j in S_t} p_tj  for e in S_t, else 0
    y_t = sum_e w_te E_e(x_t)

Interventions (:class:`RouterIntervention`), applied by a forward hook on the router that
replaces its output before the experts read it:

- **disable expert e at layer L**: ``logits_te = -inf`` for every token, so ``p_te = 0``, e
  is never in ``S_t`` and the top-k (and their renormalised weights) come from the other
  experts. Tokens whose top-k did not include e keep the same experts, and weights equal
  up to rounding (``p_tj / (1 - p_te)`` renormalised is ``p_tj`` renormalised);
- **force top-1 at layer L**: ``k = 1``: each token goes to its most probable expert with
  weight 1 (what a model with ``num_experts_per_tok=1`` and the same weights computes).

The router logits the model reports (``output_router_logits``) are the modified ones, so
routing statistics computed from them see the intervention (a disabled expert has
probability 0).

Expert outputs (``capture=True``): a forward hook on the experts module recomputes, for
every token, each expert's weighted contribution ``w_te E_e(x_t)`` (zero where the token is
not routed to e), exactly as the eager experts forward does; the contributions of a
block's experts sum to the block output (up to summation order).

Layer names are the adapter's (``"layer-3"`` = output of decoder block index 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F

from mmneuro.errors import InputError


@dataclass(frozen=True)
class RouterIntervention:
    """Which experts are disabled and where top-1 routing is forced.

    Attributes
    ----------
    disable : ``((layer, (expert, ...)), ...)`` sorted by layer; experts sorted.
    top1 : layers where each token goes to its single most probable expert.
    """

    disable: tuple[tuple[str, tuple[int, ...]], ...] = ()
    top1: tuple[str, ...] = ()

    @classmethod
    def build(cls, disable: str | Mapping[str, Iterable[int]] | None = None,
              top1: bool | str | Sequence[str] | None = None,
              moe_layers: Sequence[str] | None = None) -> "RouterIntervention":
        """From user options.

        ``disable``: ``{"layer-3": [0, 2]}`` or the string ``"layer-3:0,2;layer-1:1"``.
        ``top1``: True (every MoE layer of ``moe_layers``), a list of layers, or
        ``"layer-1,layer-3"`` / ``"all"``. ``moe_layers``: the model's sparse layers, used to
        check the names and expand ``True``/``"all"``.
        """
        dis = parse_disable(disable)
        if top1 is True or top1 == "all":
            if moe_layers is None:
                raise InputError("force_top1=True needs the model's MoE layers")
            t1 = tuple(moe_layers)
        elif top1 in (None, False, "", "none"):
            t1 = ()
        elif isinstance(top1, str):
            t1 = tuple(s.strip() for s in top1.split(",") if s.strip())
        else:
            t1 = tuple(str(s) for s in top1)
        out = cls(tuple(sorted(dis.items(), key=lambda kv: _layer_order(kv[0]))),
                  tuple(sorted(set(t1), key=_layer_order)))
        if moe_layers is not None:
            bad = [l for l in out.layers if l not in moe_layers]
            if bad:
                raise InputError(f"routing intervention names layers {bad} that are not MoE layers; "
                                 f"MoE layers: {list(moe_layers)}")
        return out

    @property
    def is_empty(self) -> bool:
        return not self.disable and not self.top1

    @property
    def layers(self) -> list[str]:
        """Every layer the intervention touches, in depth order."""
        return sorted({l for l, _ in self.disable} | set(self.top1), key=_layer_order)

    def disabled(self, layer: str) -> tuple[int, ...]:
        return dict(self.disable).get(layer, ())

    def label(self) -> str:
        """Canonical text, e.g. ``"disable[layer-3:0,2]+top1[layer-1]"`` ("" when empty)."""
        parts = []
        if self.disable:
            parts.append("disable[" + ";".join(f"{l}:{','.join(map(str, e))}" for l, e in self.disable) + "]")
        if self.top1:
            parts.append("top1[" + ",".join(self.top1) + "]")
        return "+".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"disable": {l: list(e) for l, e in self.disable}, "force_top1": list(self.top1)}


def parse_disable(spec: str | Mapping[str, Iterable[int]] | None) -> dict[str, tuple[int, ...]]:
    """``"layer-3:0,2;layer-1:1"`` or ``{"layer-3": [0, 2]}`` -> ``{"layer-3": (0, 2), ...}``."""
    if spec is None or spec == "" or spec == {}:
        return {}
    if isinstance(spec, str):
        items: dict[str, list[int]] = {}
        for part in re.split(r"[;\s]+", spec.strip()):
            if not part:
                continue
            m = re.fullmatch(r"([^:]+):(\d+(?:,\d+)*)", part)
            if not m:
                raise InputError(f"cannot read expert ablation {part!r}: write LAYER:EXPERT[,EXPERT...], "
                                 f"e.g. 'layer-3:0,2' (several layers separated by ';')")
            items.setdefault(m.group(1), []).extend(int(e) for e in m.group(2).split(","))
        spec = items
    out = {}
    for layer, experts in spec.items():
        ex = tuple(sorted({int(e) for e in experts}))
        if ex:
            out[str(layer)] = ex
    return out


def _layer_order(name: str) -> tuple[int, str]:
    m = re.search(r"(\d+)$", name)
    return (int(m.group(1)) if m else -1, name)


# --------------------------------------------------------------------------- the maths


def route(logits: torch.Tensor, top_k: int, disabled: Sequence[int] = (),
          dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The router's choice for ``logits`` (n_tokens, n_experts) with experts ``disabled``.

    Returns ``(logits, weights, indices)``: the logits with ``-inf`` at disabled experts,
    (n_tokens, top_k) renormalised weights of the chosen experts (in ``dtype``, default
    the logits' dtype), (n_tokens, top_k) their indices. Same operations as the Qwen3-VL-MoE
    router (softmax in float32, top-k, divide by the sum).
    """
    n_experts = logits.shape[-1]
    disabled = sorted({int(e) for e in disabled})
    if any(not 0 <= e < n_experts for e in disabled):
        raise InputError(f"cannot disable experts {disabled}: the layer has experts 0..{n_experts - 1}")
    if n_experts - len(disabled) < top_k:
        raise InputError(f"disabling {len(disabled)} of {n_experts} experts leaves fewer than the {top_k} "
                         f"each token is routed to; disable fewer or force top-1")
    if disabled:
        mask = torch.zeros(n_experts, dtype=torch.bool, device=logits.device)
        mask[disabled] = True
        logits = logits.masked_fill(mask, float("-inf"))
    probs = F.softmax(logits, dtype=torch.float, dim=-1)
    top, idx = torch.topk(probs, top_k, dim=-1)
    top = top / top.sum(dim=-1, keepdim=True)
    return logits, top.to(dtype or logits.dtype), idx


def expert_contributions(experts: torch.nn.Module, x: torch.Tensor, indices: torch.Tensor,
                         weights: torch.Tensor) -> torch.Tensor:
    """``w_te E_e(x_t)`` for every token and expert: (n_tokens, n_experts, dim).

    ``experts``: the block's experts module (``gate_up_proj`` (E, 2I, D), ``down_proj`` (E, D, I),
    ``act_fn``); ``x`` (n_tokens, dim) its input; ``indices``/``weights`` (n_tokens, k) the routing.
    Rows of tokens not routed to an expert are zero.
    """
    n, d = x.shape
    n_experts = int(experts.gate_up_proj.shape[0])
    out = torch.zeros((n, n_experts, d), dtype=x.dtype, device=x.device)
    for e in range(n_experts):
        hit = indices == e  # (n, k)
        tok = torch.nonzero(hit.any(dim=-1)).flatten()
        if tok.numel() == 0:
            continue
        w = (weights * hit.to(weights.dtype)).sum(dim=-1)[tok]
        gate, up = F.linear(x[tok], experts.gate_up_proj[e]).chunk(2, dim=-1)
        h = F.linear(experts.act_fn(gate) * up, experts.down_proj[e])
        out[tok, e] = (h * w[:, None]).to(x.dtype)
    return out


# --------------------------------------------------------------------------- the hooks


@dataclass
class RoutingHooks:
    """Forward hooks that apply ``intervention`` to the sparse blocks of a model and
    (``capture``) record each expert's contribution per token.

    ``blocks``: layer name -> sparse block (a module with ``gate`` and ``experts``).
    After a forward pass, ``captured[layer]`` holds (n_tokens_flat, n_experts, dim) for every
    block (tokens flattened over batch and sequence, as the block sees them). Call
    :meth:`clear` before each pass and :meth:`remove` to detach.
    """

    blocks: dict[str, torch.nn.Module]
    intervention: RouterIntervention = field(default_factory=RouterIntervention)
    capture: bool = False
    captured: dict[str, torch.Tensor] = field(default_factory=dict)
    _handles: list = field(default_factory=list)

    def __post_init__(self) -> None:
        for layer, block in self.blocks.items():
            disabled = self.intervention.disabled(layer)
            top1 = layer in self.intervention.top1
            if disabled or top1:
                n = int(block.gate.weight.shape[0])
                k = 1 if top1 else int(block.gate.top_k)
                route(torch.zeros(1, n), k, disabled)  # validates before any forward pass
                # prepend: runs before transformers' output-recording hook, which then sees our logits
                self._handles.append(block.gate.register_forward_hook(
                    self._router_hook(disabled, k), prepend=True))
            if self.capture:
                self._handles.append(block.experts.register_forward_hook(self._experts_hook(layer)))

    @staticmethod
    def _router_hook(disabled: tuple[int, ...], k: int):
        def hook(module, args, output):
            logits = output[0]
            new_logits, weights, idx = route(logits, k, disabled)
            return (new_logits, weights, idx) + tuple(output[3:])

        return hook

    def _experts_hook(self, layer: str):
        def hook(module, args, output):
            x, indices, weights = args[:3]
            self.captured[layer] = expert_contributions(module, x, indices, weights)

        return hook

    def clear(self) -> None:
        self.captured.clear()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


# --------------------------------------------------------------------------- validation aid


def plant_collapsed_router(adapter, layer: str, expert: int, strength: float = 3.0) -> None:
    """Make ``adapter``'s router at ``layer`` send (almost) every token to ``expert``: a known answer
    for the collapse index. In place; the adapter's weights identity gets a ``+planted-...`` tag.

    How: every token's residual stream gets a constant +1 in dimension 0 (added to the token
    embeddings and to the vision merger's output bias), and the router row of ``expert`` gets
    ``strength`` in that dimension, so its logit exceeds the others' by about
    ``strength * sqrt(hidden)`` for every token (RMS-normalised inputs) while the rest of
    the router is untouched. For random-weight (small-norm) models only.
    """
    from dataclasses import replace

    model = adapter.model
    lm = model.language_model
    idx = int(layer.split("-")[-1]) - 1
    if layer not in getattr(adapter, "moe_layers", ()):
        raise InputError(f"{layer!r} is not a MoE layer of {adapter.name!r}: {list(adapter.moe_layers)}")
    gate = lm.layers[idx].mlp.gate
    if not 0 <= expert < gate.weight.shape[0]:
        raise InputError(f"expert {expert} out of range 0..{gate.weight.shape[0] - 1}")
    with torch.no_grad():
        lm.embed_tokens.weight[:, 0] += 1.0
        model.visual.merger.linear_fc2.bias[0] += 1.0
        gate.weight[expert, 0] += float(strength)
    adapter.weights = replace(adapter.weights, identity=f"{adapter.weights.identity}+planted-collapse-{layer}-e{expert}")
