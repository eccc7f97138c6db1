"""Figure of a layer study: group mean held-out r per layer and ROI with 95 % CIs, and a baseline."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # noqa: E402
import matplotlib.pyplot as plt
import numpy as np

from mmneuro.analyses.layers import LayerStudy


def plot_layer_study(study: LayerStudy, title: str, rois: list[str] | None = None,
                     baseline_label: str = "baseline") -> plt.Figure:
    """One panel per ROI: group mean r per layer (bootstrap 95 % CI band), best layer starred,
    the baseline's group mean as a dashed line."""
    rois = rois or study.rois
    fig, axes = plt.subplots(1, len(rois), figsize=(2.6 * len(rois) + 0.6, 3.2), sharey=True, squeeze=False)
    x = np.arange(len(study.layers))
    for ax, roi in zip(axes[0], rois):
        r = study.rois.index(roi)
        mean = np.array([study.group[k].mean[r] for k in study.layers])
        low = np.array([study.group[k].ci_low[r] for k in study.layers])
        high = np.array([study.group[k].ci_high[r] for k in study.layers])
        ax.fill_between(x, low, high, alpha=0.2)
        ax.plot(x, mean, marker="o", ms=3)
        best = study.layers.index(study.best_layer[roi])
        ax.plot(best, mean[best], marker="*", ms=12, color="C3")
        if study.baseline_r is not None:
            ax.axhline(np.nanmean(study.baseline_r[:, r]), ls="--", color="0.4", lw=1, label=baseline_label)
        ax.axhline(0, color="0.85", lw=0.8)
        ax.set_title(roi, fontsize=9)
        ax.set_xticks(x, [k.replace("layer-", "") for k in study.layers], fontsize=7)
        ax.set_xlabel("layer", fontsize=8)
    axes[0][0].set_ylabel(f"held-out r (mean of {len(study.subjects)}, 95 % CI)", fontsize=8)
    if study.baseline_r is not None:
        axes[0][0].legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
