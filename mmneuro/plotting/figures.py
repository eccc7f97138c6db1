"""Figures of an encode result: the layer curve per ROI and, for volumetric data, a glass brain."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (files, not windows; notebooks still show the returned figure)
import matplotlib.pyplot as plt
import numpy as np


def plot_layer_curve(summary: dict[str, Any], ax: plt.Axes) -> plt.Axes:
    """Held-out r per layer, one line per ROI (from a ``scores.json`` summary); best layer marked."""
    layers = list(summary["layers"])
    rois = list(summary["layers"][layers[0]]["roi_r"])
    x = np.arange(len(layers))
    for roi in rois:
        ax.plot(x, [summary["layers"][k]["roi_r"][roi] for k in layers], marker="o", label=roi)
    ax.axvline(layers.index(summary["best_layer"]), color="0.6", ls="--", lw=1)
    ax.axhline(0, color="0.8", lw=0.8)
    ax.set_xticks(x, layers, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("held-out Pearson r (ROI mean)")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    return ax


def plot_ceiling_bars(summary: dict[str, Any], ax: plt.Axes) -> plt.Axes:
    """Best layer's ROI r beside each ROI's noise ceiling."""
    best = summary["layers"][summary["best_layer"]]["roi_r"]
    ceiling = summary["ceiling"]["roi_mean"]
    rois = list(best)
    x = np.arange(len(rois))
    ax.bar(x - 0.2, [best[k] for k in rois], 0.4, label=f"r ({summary['best_layer']})")
    ax.bar(x + 0.2, [ceiling[k] for k in rois], 0.4, color="0.75", label=f"ceiling ({summary['ceiling']['method']})")
    ax.set_xticks(x, rois, rotation=45, ha="right", fontsize=8)
    ax.legend(fontsize=7, frameon=False)
    return ax


def noise_threshold(r: np.ndarray, n_sd: float = 3.0) -> float:
    """``n_sd`` times the noise s.d. of r, estimated from the negative values (r of targets
    without signal is symmetric about 0, while signal only adds positive values)."""
    negative = r[np.isfinite(r) & (r < 0)]
    return float(n_sd * np.sqrt(np.mean(negative ** 2))) if negative.size else 0.0


def encode_figure(summary: dict[str, Any], best_map: Any | None, title: str) -> plt.Figure:
    """Layer curve + glass brain of the best layer's r map (or ROI bars with ceilings for ROI data)."""
    fig = plt.figure(figsize=(12, 4.2))
    plot_layer_curve(summary, fig.add_axes((0.08, 0.25, 0.3, 0.62)))
    if best_map is not None:
        from nilearn.plotting import plot_glass_brain

        ax = fig.add_axes((0.42, 0.05, 0.56, 0.85))
        values = best_map.get_fdata()
        threshold = noise_threshold(values[values != 0])
        vmax = max(float(np.nanpercentile(np.abs(values), 99.9)), threshold * 1.01)
        plot_glass_brain(best_map, axes=ax, figure=fig, colorbar=True, plot_abs=False, cmap="RdBu_r",
                         vmin=-vmax, vmax=vmax, threshold=threshold,
                         title=f"r, {summary['best_layer']} (|r| > {threshold:.2f} = 3 noise s.d.)")
    else:
        plot_ceiling_bars(summary, fig.add_axes((0.45, 0.25, 0.5, 0.62)))
    fig.suptitle(title)
    return fig


def group_figure(group: dict[str, Any], title: str) -> plt.Figure:
    """Across-subject mean held-out r per layer and ROI, with standard-error bands."""
    layers = list(group["layers"])
    rois = list(group["layers"][layers[0]]["roi_r_mean"])
    x = np.arange(len(layers))
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for roi in rois:
        mean = np.array([group["layers"][k]["roi_r_mean"][roi] for k in layers])
        sem = np.array([group["layers"][k]["roi_r_sem"][roi] for k in layers])
        ax.plot(x, mean, marker="o", label=roi)
        ax.fill_between(x, mean - sem, mean + sem, alpha=0.15)
    ax.axhline(0, color="0.8", lw=0.8)
    ax.set_xticks(x, layers, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("held-out Pearson r (mean ± s.e.m.)")
    ax.set_title(f"{title} (n = {len(group['subjects'])})", fontsize=10)
    ax.legend(fontsize=7, frameon=False, ncol=2)
    fig.tight_layout()
    return fig
