"""Figures of feature removal and variance partitioning (from their ``results.json`` summaries)."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # noqa: E402
import matplotlib.pyplot as plt
import numpy as np


def _stars(q: float) -> str:
    return "***" if q < 0.001 else "**" if q < 0.01 else "*" if q < 0.05 else ""


def plot_drops(ax: plt.Axes, drops: dict[str, dict[str, dict[str, float]]], title: str = "") -> plt.Axes:
    """Grouped bars of the drop of ROI r with 95 % CI, one colour per series, ``*`` for q < 0.05.

    ``drops``: {series (e.g. removed model or layer): {roi: {drop, ci_low, ci_high, q}}}.
    """
    series = list(drops)
    rois = list(next(iter(drops.values())))
    x = np.arange(len(rois))
    width = 0.8 / len(series)
    for i, name in enumerate(series):
        d = drops[name]
        h = np.array([d[k]["drop"] for k in rois])
        err = np.array([[d[k]["drop"] - d[k]["ci_low"] for k in rois], [d[k]["ci_high"] - d[k]["drop"] for k in rois]])
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, h, width, yerr=np.clip(err, 0, None), capsize=2, label=name)
        for xx, k in zip(pos, rois):
            ax.text(xx, d[k]["ci_high"], _stars(d[k].get("q", np.nan)), ha="center", va="bottom", fontsize=7)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(x, rois, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("drop of held-out r (full - residual)")
    ax.legend(fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_full_vs_residual(ax: plt.Axes, roi: dict[str, dict[str, float]], title: str = "") -> plt.Axes:
    """Per ROI, r of the full features beside r of the residual features."""
    rois = list(roi)
    x = np.arange(len(rois))
    ax.bar(x - 0.2, [roi[k]["r_full"] for k in rois], 0.4, label="full", color="0.45")
    ax.bar(x + 0.2, [roi[k]["r_residual"] for k in rois], 0.4, label="residual", color="tab:orange")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(x, rois, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("held-out r (ROI mean)")
    ax.legend(fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def removal_figure(summary: dict[str, Any], title: str = "") -> plt.Figure:
    """``mmneuro ablate remove`` result: full vs residual r (last layer) and the drop per layer."""
    layers = list(summary["by_layer"])
    last = layers[-1]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    plot_full_vs_residual(axes[0], summary["by_layer"][last]["roi"], f"{last}: before and after removal")
    plot_drops(axes[1], {layer: summary["by_layer"][layer]["roi"] for layer in layers},
               "drop per layer (95% CI; * q<0.05, ** q<0.01, *** q<0.001)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_partition(ax: plt.Axes, stats_roi: dict[str, dict[str, dict[str, float]]], spaces: list[str],
                   title: str = "") -> plt.Axes:
    """Per ROI, the unique R² of each space (with 95 % CI) and the shared R², side by side.

    ``stats_roi``: ``partition_test(...)["roi"]`` ({roi: {unique_<space> | shared: {value, ci_low, ci_high}}}).
    """
    rois = list(stats_roi)
    parts = [f"unique_{s}" for s in spaces] + ["shared"]
    x = np.arange(len(rois))
    width = 0.8 / len(parts)
    for i, part in enumerate(parts):
        v = np.array([stats_roi[k][part]["value"] for k in rois])
        lo = np.array([stats_roi[k][part]["ci_low"] for k in rois])
        hi = np.array([stats_roi[k][part]["ci_high"] for k in rois])
        ax.bar(x - 0.4 + width * (i + 0.5), v, width, yerr=np.clip([v - lo, hi - v], 0, None), capsize=2,
               label=part.replace("_", " "), color="0.7" if part == "shared" else None)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(x, rois, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("held-out R² (ROI mean)")
    ax.legend(fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def partition_figure(summary: dict[str, Any], title: str = "") -> plt.Figure:
    """``mmneuro ablate partition`` result: unique/shared R² per ROI and, when a joint model was
    given, the removal drops of the same spaces beside them."""
    spaces = list(summary["spaces"])
    with_removal = bool(summary.get("removal"))
    fig, axes = plt.subplots(1, 2 if with_removal else 1, figsize=(11 if with_removal else 6, 3.8), squeeze=False)
    plot_partition(axes[0, 0], summary["stats"]["roi"], spaces, "variance partitioning (95% CI)")
    if with_removal:
        joint = summary["removal"]["joint"]["model"]
        plot_drops(axes[0, 1], {f"{joint} - {s}": summary["removal"]["by_space"][s] for s in spaces},
                   f"feature removal from {joint} (95% CI; * q<0.05)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
