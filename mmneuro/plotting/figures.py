"""Figures of an encode result: the layer curve per ROI and the best layer's map in the dataset's target space.

With many ROIs (one per parcel) the curves show the best :data:`~mmneuro.plotting.tables.MAX_ROIS_SHOWN`
and say how many are left out; no figure draws one legend entry per target.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (files, not windows; notebooks still show the returned figure)
import matplotlib.pyplot as plt
import numpy as np


def plot_layer_curve(summary: dict[str, Any], ax: plt.Axes) -> plt.Axes:
    """Held-out r per layer, one line per ROI (from a ``scores.json`` summary); best layer marked."""
    from mmneuro.plotting.tables import shown_rois

    layers = list(summary["layers"])
    every = list(summary["layers"][layers[0]]["roi_r"])
    rois = shown_rois({k: summary["layers"][k]["roi_r"] for k in layers})
    x = np.arange(len(layers))
    for roi in rois:
        ax.plot(x, [summary["layers"][k]["roi_r"][roi] for k in layers], marker="o", label=roi)
    ax.axvline(layers.index(summary["best_layer"]), color="0.6", ls="--", lw=1)
    ax.axhline(0, color="0.8", lw=0.8)
    ax.set_xticks(x, layers, rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("layer")
    ax.set_ylabel("held-out Pearson r (ROI mean)")
    if len(rois) < len(every):
        ax.set_title(f"best {len(rois)} of {len(every)} ROIs", fontsize=8)
    ax.legend(fontsize=7, frameon=False, ncol=2)
    return ax


def plot_ceiling_bars(summary: dict[str, Any], ax: plt.Axes) -> plt.Axes:
    """Best layer's ROI r beside each ROI's noise ceiling (the best ROIs when there are many)."""
    from mmneuro.plotting.tables import shown_rois

    best = summary["layers"][summary["best_layer"]]["roi_r"]
    ceiling = summary["ceiling"]["roi_mean"]
    rois = shown_rois({summary["best_layer"]: best})
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


#: Up to this many targets without a brain image (ROI series), the figure shows r beside the ceiling per ROI.
FEW_TARGETS = 20


def encode_figure(summary: dict[str, Any], space: Any, best_r: np.ndarray, title: str) -> plt.Figure:
    """Layer curve + the best layer's r in the target space: a glass brain (volumes, parcels with an
    atlas), both hemispheres (surfaces), the top parcels (many parcels without an atlas), or ROI bars
    with ceilings (few targets). A surface whose mesh is not available offline gets a note saying how
    to provide one instead of a map."""
    from mmneuro.errors import InputError
    from mmneuro.plotting.maps import plot_map

    fig = plt.figure(figsize=(12, 4.2))
    plot_layer_curve(summary, fig.add_axes((0.08, 0.25, 0.3, 0.62)))
    best = summary["best_layer"]
    if space is None or (space.kind == "parcels" and not space.has_image and space.n_targets <= FEW_TARGETS):
        plot_ceiling_bars(summary, fig.add_axes((0.45, 0.25, 0.5, 0.62)))
    else:
        ax = fig.add_axes((0.42, 0.05, 0.56, 0.85))
        r = np.asarray(best_r, dtype=np.float64)
        threshold = noise_threshold(r[np.isfinite(r) & (r != 0)])
        try:
            plot_map(space, r, f"r, {best} (|r| > {threshold:.2f} = 3 noise s.d.)", ax, threshold=threshold)
        except InputError as exc:  # a surface mesh that is not on this machine: say so in the figure
            ax.axis("off")
            ax.text(0.02, 0.5, f"no map drawn: {exc}", wrap=True, fontsize=8, va="center")
    fig.suptitle(title)
    return fig


def group_figure(group: dict[str, Any], title: str) -> plt.Figure:
    """Across-subject mean held-out r per layer and ROI, with standard-error bands."""
    from mmneuro.plotting.tables import shown_rois

    layers = list(group["layers"])
    every = list(group["layers"][layers[0]]["roi_r_mean"])
    rois = shown_rois({k: group["layers"][k]["roi_r_mean"] for k in layers})
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
    more = f", best {len(rois)} of {len(every)} ROIs" if len(rois) < len(every) else ""
    ax.set_xlabel("layer")
    ax.set_title(f"{title} (n = {len(group['subjects'])}{more})", fontsize=10)
    ax.legend(fontsize=7, frameon=False, ncol=2)
    fig.tight_layout()
    return fig
