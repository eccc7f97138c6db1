"""Where a joint model's attention goes, and what cross-modal attention does for brain alignment.

Four pieces:

- **Shares and entropy** of one layer's attention weights ``(batch, heads, tokens, tokens)``
  (rows: queries, columns: keys, rows summing to 1) given index arrays of token groups
  (e.g. the ``token_groups`` of a TVLT adapter output): :func:`modality_shares`,
  :func:`attention_entropy`, :func:`attention_rollout`.
- **Maps over the stimulus grid**: :func:`grid_maps` puts per-token scores (e.g. rollout
  relevance) back on a model's token layout (TVLT: frames x patch rows x patch columns,
  spectrogram time rows x frequency patches); :class:`AttentionAccumulator` sums shares,
  entropies and rollout maps over the batches of many windows, and :func:`run_attention`
  streams a stimulus run's windows through an adapter into one.
- **Attention vs alignment** across layers: :func:`relate_to_alignment` (n = layers, stated).
- **The causal test**: :func:`cross_modal_blocking` encodes each layer's features extracted with
  and without cross-modal attention and tests the drop of held-out r per ROI
  (:func:`mmneuro.analyses.removal.paired_drop_test`) and the difference of drops between ROIs
  (:func:`drop_contrast_test`, the same time blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from mmneuro.analyses.targets import expand_targets, roi_union
from mmneuro.encoding.metrics import pearson_r
from mmneuro.errors import InputError


def _check(att: np.ndarray) -> np.ndarray:
    att = np.asarray(att, dtype=np.float64)
    if att.ndim != 4 or att.shape[-1] != att.shape[-2]:
        raise InputError(f"attention must be (batch, heads, tokens, tokens), got shape {att.shape}")
    return att


def _valid(valid: np.ndarray | None, att: np.ndarray) -> np.ndarray:
    b, _, n, _ = att.shape
    if valid is None:
        return np.ones((b, n), dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != (b, n):
        raise InputError(f"valid must be (batch, tokens) = {(b, n)}, got {valid.shape}")
    return valid


def _share_sums(att: np.ndarray, groups: dict[str, np.ndarray],
                valid: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Sums over (batch, valid query) of each query group's attention on each key group, per head."""
    sums, counts = {}, {}
    for q_name, q_idx in groups.items():
        q_idx = np.asarray(q_idx).ravel()
        w = valid[:, q_idx].astype(np.float64)  # (B, nq): 1 for real queries
        counts[q_name] = int(w.sum())
        rows = att[:, :, q_idx]  # (B, H, nq, L)
        for k_name, k_idx in groups.items():
            on_k = rows[..., np.asarray(k_idx).ravel()].sum(axis=-1)  # (B, H, nq)
            sums[f"{q_name}->{k_name}"] = np.einsum("bhq,bq->h", on_k, w)
    return sums, counts


def modality_shares(attention: np.ndarray, groups: dict[str, np.ndarray],
                    valid: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Share of each query group's attention that lands on each key group, per head.

    ``groups``: name -> token indices (e.g. ``{"video": ..., "audio": ...}``). ``valid``:
    optional (batch, tokens) bool, False for padding tokens, whose rows are left out. Returns
    ``{"<query>-><key>": (heads,)}``: for each head, the mean over batch and (valid) query
    tokens of the summed attention weight on the key group's tokens (e.g. ``"video->audio"`` is
    the cross-modal share of video queries).
    """
    att = _check(attention)
    sums, counts = _share_sums(att, groups, _valid(valid, att))
    return {k: v / max(counts[k.split("->")[0]], 1) for k, v in sums.items()}


def _entropy_rows(att: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(np.where(att > 0, att * np.log(np.where(att > 0, att, 1.0)), 0.0), axis=-1)  # (B, H, L)


def attention_entropy(attention: np.ndarray, queries: np.ndarray | None = None,
                      valid: np.ndarray | None = None) -> np.ndarray:
    """Mean entropy (nats) of the attention rows of ``queries`` (default: all), per head: (heads,).

    ``valid``: optional (batch, tokens) bool; rows of invalid (padding) queries are left out.
    """
    att = _check(attention)
    ok = _valid(valid, att)
    q = np.arange(att.shape[-1]) if queries is None else np.asarray(queries).ravel()
    h = _entropy_rows(att[:, :, q])  # (B, H, nq)
    w = ok[:, q].astype(np.float64)
    return np.einsum("bhq,bq->h", h, w) / max(w.sum(), 1.0)


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


def input_relevance(rollout: np.ndarray, valid: np.ndarray | None = None, query: str = "mean") -> np.ndarray:
    """How much each input token flows into the output: (batch, tokens) from a rollout (batch, L, L).

    ``query="mean"``: the mean of the rollout rows of the valid output tokens (what a mean-pooled
    feature reads); ``"cls"``: the row of token 0. Invalid (padding) input tokens get NaN.
    """
    r = np.asarray(rollout, dtype=np.float64)
    if r.ndim != 3 or r.shape[1] != r.shape[2]:
        raise InputError(f"rollout must be (batch, tokens, tokens), got shape {r.shape}")
    ok = np.ones(r.shape[:2], bool) if valid is None else np.asarray(valid, dtype=bool)
    if query == "mean":
        w = ok / ok.sum(axis=1, keepdims=True)
        rel = np.einsum("bi,bij->bj", w, r)
    elif query == "cls":
        rel = r[:, 0].copy()
    else:
        raise InputError(f"query must be 'mean' or 'cls', got {query!r}")
    return np.where(ok, rel, np.nan)


def grid_maps(scores: np.ndarray, layout: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-token scores (batch, tokens) -> ``{name: (batch, *layout[name].shape)}`` on the stimulus grid.

    ``layout``: name -> array of token indices shaped like the grid (e.g. TVLT's
    ``{"video": (frames, rows, cols), "audio": (time_rows, freq_patches)}``, see
    ``TVLTAdapter.token_layout``). Entry ``[b, *pos]`` of map ``name`` is ``scores[b, layout[name][pos]]``.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise InputError(f"scores must be (batch, tokens), got shape {s.shape}")
    out = {}
    for name, idx in layout.items():
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= s.shape[1]):
            raise InputError(f"layout {name!r} indexes tokens {idx.min()}..{idx.max()}; scores have {s.shape[1]}")
        out[name] = s[:, idx]
    return out


# --------------------------------------------------------------------------- many windows


@dataclass
class AttentionSummary:
    """Attention statistics averaged over windows.

    Attributes
    ----------
    layers : layer names with attention (in order).
    shares : layer -> ``{"<query>-><key>": (heads,)}`` mean share over all valid queries of all
        windows (groups ``cls``, ``video``, ``audio``).
    entropy : layer -> ``{group: (heads,)}`` mean row entropy (nats) of the group's queries.
    maps : grid name -> relevance map averaged over windows (NaN-aware, e.g. ``"video"``
        (frames, rows, cols), ``"audio"`` (time_rows, freq_patches)); the rollout's input
        relevance (see :func:`input_relevance`) through all ``layers``.
    n_windows : windows summed.
    """

    layers: list[str]
    shares: dict[str, dict[str, np.ndarray]]
    entropy: dict[str, dict[str, np.ndarray]]
    maps: dict[str, np.ndarray]
    n_windows: int

    def per_layer(self, key: str) -> np.ndarray:
        """Head-averaged share ``key`` (e.g. ``"video->audio"``) per layer: (n_layers,)."""
        return np.array([float(np.mean(self.shares[layer][key])) for layer in self.layers])

    def cross_modal(self) -> np.ndarray:
        """Per layer, the mean of the video->audio and audio->video shares (head-averaged): (n_layers,)."""
        return 0.5 * (self.per_layer("video->audio") + self.per_layer("audio->video"))


@dataclass
class AttentionAccumulator:
    """Running sums of shares, entropies and rollout maps over batches of windows.

    ``update`` takes one batch: ``attentions`` {layer: (B, H, L, L)}, ``valid`` (B, L) bool,
    ``groups`` {name: token indices} and ``layout`` {grid name: token-index array}. Grids may
    grow between batches (e.g. more audio rows); smaller maps are NaN-padded at the end.
    """

    residual: float = 0.5
    query: str = "mean"
    _share: dict = field(default_factory=dict)
    _share_n: dict = field(default_factory=dict)
    _ent: dict = field(default_factory=dict)
    _ent_n: dict = field(default_factory=dict)
    _map_sum: dict = field(default_factory=dict)
    _map_n: dict = field(default_factory=dict)
    layers: list[str] = field(default_factory=list)
    n_windows: int = 0

    def update(self, attentions: dict[str, np.ndarray], valid: np.ndarray, groups: dict[str, np.ndarray],
               layout: dict[str, np.ndarray]) -> None:
        if not attentions:
            raise InputError("no attention layers in this batch (did the forward pass return attentions?)")
        if not self.layers:
            self.layers = list(attentions)
        elif list(attentions) != self.layers:
            raise InputError(f"batches disagree on attention layers: {list(attentions)} vs {self.layers}")
        atts = [_check(attentions[layer]) for layer in self.layers]
        ok = _valid(valid, atts[0])
        for layer, att in zip(self.layers, atts):
            sums, counts = _share_sums(att, groups, ok)
            acc, n = self._share.setdefault(layer, {}), self._share_n.setdefault(layer, {})
            for k, v in sums.items():
                acc[k] = acc.get(k, 0.0) + v
            for k, c in counts.items():
                n[k] = n.get(k, 0) + c
            rows = _entropy_rows(att)  # (B, H, L)
            ent, en = self._ent.setdefault(layer, {}), self._ent_n.setdefault(layer, {})
            for g, idx in groups.items():
                w = ok[:, np.asarray(idx).ravel()].astype(np.float64)
                ent[g] = ent.get(g, 0.0) + np.einsum("bhq,bq->h", rows[:, :, np.asarray(idx).ravel()], w)
                en[g] = en.get(g, 0.0) + w.sum()
        rel = input_relevance(attention_rollout(atts, self.residual), ok, self.query)
        for name, m in grid_maps(rel, layout).items():
            s = np.nansum(m, axis=0)
            c = np.sum(np.isfinite(m), axis=0)
            self._map_sum[name], self._map_n[name] = _grow_add(self._map_sum.get(name), s), _grow_add(
                self._map_n.get(name), c)
        self.n_windows += atts[0].shape[0]

    def result(self) -> AttentionSummary:
        if not self.n_windows:
            raise InputError("no windows were accumulated")
        shares = {layer: {k: v / max(self._share_n[layer][k.split("->")[0]], 1) for k, v in self._share[layer].items()}
                  for layer in self.layers}
        entropy = {layer: {g: v / max(self._ent_n[layer][g], 1.0) for g, v in self._ent[layer].items()}
                   for layer in self.layers}
        with np.errstate(invalid="ignore", divide="ignore"):
            maps = {k: np.where(self._map_n[k] > 0, self._map_sum[k] / self._map_n[k], np.nan) for k in self._map_sum}
        return AttentionSummary(list(self.layers), shares, entropy, maps, self.n_windows)


def _grow_add(a: np.ndarray | None, b: np.ndarray) -> np.ndarray:
    """``a + b`` with both zero-padded at the end of every axis to the larger shape."""
    b = np.asarray(b, dtype=np.float64)
    if a is None:
        return b.copy()
    shape = tuple(max(x, y) for x, y in zip(a.shape, b.shape))
    out = np.zeros(shape)
    out[tuple(slice(0, s) for s in a.shape)] += a
    out[tuple(slice(0, s) for s in b.shape)] += b
    return out


def run_attention(adapter: Any, runs: Iterable[Any], max_windows: int | None = None, batch_size: int = 4,
                  residual: float = 0.5, query: str = "mean", progress: bool = False) -> AttentionSummary:
    """Stream the windows of ``runs`` through ``adapter`` with attentions; shares, entropy and maps.

    ``adapter`` must return attentions and token groups ``video``/``audio``/``cls`` and offer
    ``token_layout(n_audio)`` (the TVLT adapter does). ``max_windows``: per run, that many
    windows evenly spaced over the run (default: all). Memory: one batch's attentions of every
    layer, ``layers * batch * heads * tokens**2`` floats (use ``batch_size=1`` for tvlt-base).
    """
    import torch
    from tqdm.auto import tqdm

    from mmneuro.features.extract import plan_windows

    if not hasattr(adapter, "token_layout"):
        raise InputError(f"model {adapter.name!r} has no token layout (run_attention needs a joint audio-visual "
                         "model such as tvlt)")
    acc = AttentionAccumulator(residual=residual, query=query)
    for run in runs:
        plan = plan_windows(adapter, run)
        n = len(plan)
        idx = np.arange(n) if not max_windows or max_windows >= n else \
            np.unique(np.linspace(0, n - 1, int(max_windows)).round().astype(int))
        for start in tqdm(range(0, len(idx), batch_size), desc=f"attention {run.name}", disable=not progress,
                          leave=False):
            windows = plan.make(idx[start:start + batch_size])
            batch = adapter.collate([adapter.preprocess(w) for w in windows])
            with torch.inference_mode():
                out = adapter.forward({k: v.to(adapter.device) for k, v in batch.items()}, want_attentions=True)
            atts = {k: v.float().cpu().numpy() for k, v in out.attentions.items()}
            n_tok = next(iter(atts.values())).shape[-1]
            groups = {g: _indices(out.token_groups[g], n_tok) for g in ("cls", "video", "audio")}
            valid = _token_mask(out, n_tok, len(windows))
            layout = adapter.token_layout(len(groups["audio"]))
            acc.update(atts, valid, groups, {k: v for k, v in layout.items() if k != "cls"})
    return acc.result()


def _indices(group: Any, n_tok: int) -> np.ndarray:
    """A token group (slice, index tensor or (B, L) mask) -> the token positions it can cover."""
    if isinstance(group, slice):
        return np.arange(n_tok)[group]
    g = group.cpu().numpy() if hasattr(group, "cpu") else np.asarray(group)
    if g.dtype == bool:
        return np.flatnonzero(g.any(axis=0)) if g.ndim == 2 else np.flatnonzero(g)
    return g.astype(np.int64).ravel()


def _token_mask(out: Any, n_tok: int, b: int) -> np.ndarray:
    """(B, L) real-token mask of a model output: the union of its ``all`` group (a mask under padding)."""
    g = out.token_groups.get("all")
    if g is not None and hasattr(g, "dtype") and str(g.dtype) in ("torch.bool", "bool"):
        return (g.cpu().numpy() if hasattr(g, "cpu") else np.asarray(g)).astype(bool)
    return np.ones((b, n_tok), dtype=bool)


# --------------------------------------------------------------------------- attention vs alignment


def relate_to_alignment(per_layer: np.ndarray, roi_r: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Correlate a per-layer attention statistic with per-layer ROI alignment, across layers.

    ``per_layer`` (n_layers,) e.g. :meth:`AttentionSummary.cross_modal`; ``roi_r`` ROI ->
    (n_layers,) held-out r of the same layers. Returns per ROI Spearman rho and Pearson r with
    their p-values and ``n_layers``. The samples are layers of one network (n is small and they
    are not independent): read the p-values as descriptive.
    """
    from scipy import stats

    x = np.asarray(per_layer, dtype=np.float64)
    if x.ndim != 1 or x.size < 3:
        raise InputError(f"relating attention to alignment needs >= 3 layers, got {x.size}")
    out = {}
    for roi, y in roi_r.items():
        y = np.asarray(y, dtype=np.float64)
        if y.shape != x.shape:
            raise InputError(f"ROI {roi!r}: {y.size} layer values for {x.size} attention values")
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            out[roi] = {"spearman_rho": float("nan"), "spearman_p": float("nan"), "pearson_r": float("nan"),
                        "pearson_p": float("nan"), "n_layers": int(x.size)}
            continue
        rho, p_rho = stats.spearmanr(x, y)
        r, p_r = stats.pearsonr(x, y)
        out[roi] = {"spearman_rho": float(rho), "spearman_p": float(p_rho), "pearson_r": float(r),
                    "pearson_p": float(p_r), "n_layers": int(x.size)}
    return out


# --------------------------------------------------------------------------- the causal test


def drop_contrast_test(Y: np.ndarray, P_full: np.ndarray, P_reduced: np.ndarray, rois: dict[str, np.ndarray],
                       contrasts: Sequence[tuple[str, str]], n_boot: int = 1000, block_len: int = 10,
                       seed: int = 0) -> dict[str, dict[str, float]]:
    """Is the drop ``r(Y, P_full) - r(Y, P_reduced)`` larger in ROI A than in ROI B?

    Y, P_full, P_reduced: (n_samples, n_targets). For each contrast ``(A, B)`` the statistic is
    ``drop_A - drop_B`` (ROI-mean drops); its block-bootstrap distribution uses the same time
    blocks, drawn in the same order from ``seed``, as
    :func:`mmneuro.analyses.removal.paired_drop_test`. Returns ``{"A-B": {difference, ci_low,
    ci_high, p}}`` with a two-sided p-value ``min(1, 2 * (1 + #{boot on the other side of 0}) /
    (1 + n_boot))``.
    """
    from mmneuro.analyses.stats import block_resample

    n = Y.shape[0]
    if not (Y.shape == P_full.shape == P_reduced.shape):
        raise InputError(f"shapes differ: responses {Y.shape}, predictions {P_full.shape} and {P_reduced.shape}")
    if not 1 <= block_len <= n // 2:
        raise InputError(f"block_len must be in 1..{n // 2} for {n} samples, got {block_len}")
    for a, b in contrasts:
        for k in (a, b):
            if k not in rois:
                raise InputError(f"contrast ROI {k!r} is not one of {list(rois)}")
    used = sorted({k for pair in contrasts for k in pair})
    cols = np.flatnonzero(np.any(np.stack([rois[k] for k in used]), axis=0))
    Yc, Fc, Rc = Y[:, cols], P_full[:, cols], P_reduced[:, cols]
    masks = {k: rois[k][cols] for k in used}

    def drops(idx: np.ndarray | slice) -> dict[str, float]:
        d = pearson_r(Yc[idx], Fc[idx]) - pearson_r(Yc[idx], Rc[idx])
        return {k: float(np.nanmean(d[m])) for k, m in masks.items()}

    observed = drops(slice(None))
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, len(contrasts)))
    for i in range(n_boot):
        d = drops(block_resample(rng, n, block_len))
        boot[i] = [d[a] - d[b] for a, b in contrasts]
    out = {}
    for j, (a, b) in enumerate(contrasts):
        tail = min(np.sum(boot[:, j] <= 0), np.sum(boot[:, j] >= 0))
        out[f"{a}-{b}"] = {"difference": observed[a] - observed[b],
                           "ci_low": float(np.quantile(boot[:, j], 0.025)),
                           "ci_high": float(np.quantile(boot[:, j], 0.975)),
                           "p": float(min(1.0, 2 * (1 + tail) / (1 + n_boot)))}
    return out


@dataclass
class BlockingResult:
    """Alignment of each layer with and without cross-modal attention, for one subject.

    ``r_full[layer]``, ``r_blocked[layer]``: (n_targets,) held-out r (NaN for targets not
    fitted); ``roi[layer][roi]``: ``r_full``, ``r_residual`` (= blocked), ``drop``, ``ci_low``,
    ``ci_high``, ``p`` (one-sided, drop > 0) and ``q`` (BH-FDR over all layers x ROIs);
    ``contrasts[layer]["A-B"]``: difference of drops with CI and two-sided p (:func:`drop_contrast_test`).
    """

    layers: list[str]
    r_full: dict[str, np.ndarray]
    r_blocked: dict[str, np.ndarray]
    roi: dict[str, dict[str, dict[str, float]]]
    contrasts: dict[str, dict[str, dict[str, float]]]


def cross_modal_blocking(dataset: Any, full: dict[str, dict[str, np.ndarray]], blocked: dict[str, dict[str, np.ndarray]],
                         responses: Any, contrasts: Sequence[tuple[str, str]] = (),
                         targets: np.ndarray | None = None, delays: Sequence[int] | None = None,
                         n_boot: int = 1000, block_len: int = 10, seed: int = 0) -> BlockingResult:
    """Encode each layer's features with and without cross-modal attention; test the drop per ROI.

    ``full``/``blocked``: {layer: {run: (n_trs, p)}} of the same model and layers, extracted
    without / with the attention mask that blocks video<->audio attention. ``targets``: optional
    (n_targets,) bool, the response columns to fit (e.g. the union of the ROIs, for speed); others
    get NaN. The per-ROI test is :func:`~mmneuro.analyses.removal.paired_drop_test` on held-out
    predictions; q-values are BH-FDR over every layer x ROI test.
    """
    from mmneuro.analyses.heldout import fit_evaluate, heldout_responses
    from mmneuro.analyses.removal import paired_drop_test
    from mmneuro.analyses.stats import fdr_correct
    from mmneuro.datasets.base import Responses

    layers = [layer for layer in full if layer in blocked]
    if not layers:
        raise InputError(f"no layer in both feature sets: full {list(full)}, blocked {list(blocked)}")
    n_targets = responses.n_targets
    keep = np.ones(n_targets, bool) if targets is None else np.asarray(targets, bool)
    if keep.shape != (n_targets,):
        raise InputError(f"targets must be a (n_targets,) = ({n_targets},) mask, got {keep.shape}")
    sub = Responses(responses.subject, {k: v[..., keep] for k, v in responses.runs.items()},
                    None if responses.valid is None else responses.valid[keep])
    rois = {k: m[keep] for k, m in dataset.rois.items() if m[keep].any()}
    Y = heldout_responses(dataset, sub)
    in_roi = np.flatnonzero(roi_union(rois))  # the tests only need ROI columns
    rois_c = {k: m[in_roi] for k, m in rois.items()}
    r_full, r_blocked, roi, con = {}, {}, {}, {}
    for layer in layers:
        a = fit_evaluate(dataset, full[layer], sub, delays, keep_predictions=True)
        b = fit_evaluate(dataset, blocked[layer], sub, delays, keep_predictions=True)
        r_full[layer], r_blocked[layer] = expand_targets(a.r, keep), expand_targets(b.r, keep)
        Yc, Pa, Pb = Y[:, in_roi], a.prediction[:, in_roi], b.prediction[:, in_roi]
        roi[layer] = paired_drop_test(Yc, Pa, Pb, rois_c, n_boot, block_len, seed)["roi"]
        if contrasts:
            con[layer] = drop_contrast_test(Yc, Pa, Pb, rois_c, contrasts, n_boot, block_len, seed)
    keys = [(layer, k) for layer in layers for k in roi[layer]]
    _, q = fdr_correct(np.array([roi[layer][k]["p"] for layer, k in keys]))
    for (layer, k), qv in zip(keys, q):
        roi[layer][k]["q"] = float(qv)
    return BlockingResult(layers, r_full, r_blocked, roi, con)


