"""Figure of an expert-collapse study: routing per layer and modality, alignment of each expert's
output per ROI, and the change of alignment after a routing intervention (with 95 % CIs)."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # noqa: E402
import matplotlib.pyplot as plt
import numpy as np


def plot_routing(routing: dict[str, dict[str, dict[str, Any]]], ax: plt.Axes, title: str = "") -> plt.Axes:
    """Heat map of expert utilisation: one row per (layer, token group), one column per expert;
    the row label carries the collapse index (CI) and routing entropy (H, nats).

    ``routing``: ``{layer: {group: usage_dict}}`` (see :func:`mmneuro.analyses.experts.usage_dict`).
    """
    rows, labels = [], []
    for layer, groups in routing.items():
        for group, u in groups.items():
            rows.append(u["utilisation"])
            labels.append(f"{layer} {group}  CI={u['collapse_index']:.2f} H={u['routing_entropy']:.2f}")
    grid = np.array(rows, dtype=float)
    im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=max(1e-9, float(np.nanmax(grid))))
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=7)
    ax.set_xticks(np.arange(grid.shape[1]), [str(e) for e in range(grid.shape[1])], fontsize=7)
    ax.set_xlabel("expert", fontsize=8)
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="w" if v < 0.6 * grid.max() else "k")
    plt.colorbar(im, ax=ax, fraction=0.04, pad=0.02).set_label("share of tokens routed to the expert", fontsize=7)
    ax.set_title(title or "expert utilisation", fontsize=9)
    return ax


def plot_expert_alignment(roi_r: np.ndarray, layers: list[str], experts: list[int], rois: list[str],
                          ax: plt.Axes, layer_roi_r: np.ndarray | None = None) -> plt.Axes:
    """Heat map of held-out ROI r: rows (layer, expert) (+ the whole layer), columns ROIs.

    ``roi_r`` (n_layers, n_experts, n_rois); ``layer_roi_r`` (n_layers, n_rois) or None.
    """
    rows, labels = [], []
    for i, layer in enumerate(layers):
        if layer_roi_r is not None:
            rows.append(layer_roi_r[i])
            labels.append(f"{layer} (whole layer)")
        for j, e in enumerate(experts):
            rows.append(roi_r[i, j])
            labels.append(f"{layer} expert {e}")
    grid = np.array(rows, dtype=float)
    vmax = max(1e-6, float(np.nanmax(np.abs(grid))))
    im = ax.imshow(grid, aspect="auto", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=7)
    ax.set_xticks(np.arange(len(rois)), rois, rotation=45, ha="right", fontsize=7)
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
    plt.colorbar(im, ax=ax, fraction=0.04, pad=0.02).set_label("held-out r (ROI mean)", fontsize=7)
    ax.set_title("alignment of each expert's pooled output", fontsize=9)
    return ax


def plot_intervention(effect_roi: dict[str, dict[str, dict[str, float]]], ax: plt.Axes, label: str = "",
                      alpha: float = 0.05) -> plt.Axes:
    """Bars of the change in ROI r (intervened − base) per layer with 95 % CIs; ``*`` where q < alpha.

    ``effect_roi``: ``{layer: {roi: {change, ci_low, ci_high, q, ...}}}``.
    """
    layers = list(effect_roi)
    rois = list(next(iter(effect_roi.values())))
    x = np.arange(len(rois))
    width = 0.8 / max(1, len(layers))
    for i, layer in enumerate(layers):
        d = effect_roi[layer]
        mid = np.array([d[k]["change"] for k in rois])
        lo = mid - np.array([d[k]["ci_low"] for k in rois])
        hi = np.array([d[k]["ci_high"] for k in rois]) - mid
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, mid, width, yerr=[lo, hi], capsize=2, label=layer, color=f"C{i}")
        for p, k in zip(pos, rois):
            if d[k].get("q", 1.0) < alpha:
                top = d[k]["ci_high"] if d[k]["change"] >= 0 else d[k]["ci_low"]
                ax.text(p, top, "*", ha="center", va="bottom" if d[k]["change"] >= 0 else "top", fontsize=10)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(x, rois, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("change of held-out r\n(intervened − base, 95 % CI)", fontsize=8)
    ax.set_title(f"intervention: {label}" if label else "intervention", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    return ax


def expert_figure(results: dict[str, Any], title: str) -> plt.Figure:
    """Three panels from an expert study's ``results.json`` content: routing (base), expert
    alignment, intervention effect."""
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2), gridspec_kw={"width_ratios": [1.1, 1.0, 1.0]})
    plot_routing(results["routing"]["base"], axes[0], "expert utilisation (base model)")
    ea = results["expert_alignment"]
    layer_roi = ea.get("layer_roi_r")
    plot_expert_alignment(np.array(ea["roi_r"], dtype=float), ea["layers"], ea["experts"], ea["rois"], axes[1],
                          None if layer_roi is None else np.array(layer_roi, dtype=float))
    plot_intervention(results["intervention"]["roi"], axes[2], results["intervention"]["label"])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
