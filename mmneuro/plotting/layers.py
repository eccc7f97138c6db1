"""Figure of a layer study: mean held-out r (and normalised alignment) per layer and ROI with 95 % CIs,
the best layer starred, and a baseline."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # noqa: E402
import matplotlib.pyplot as plt
import numpy as np

from mmneuro.analyses.layers import LayerStudy


def plot_layer_study(study: LayerStudy, title: str, rois: list[str] | None = None,
                     baseline_label: str = "baseline", normalized: bool = True) -> plt.Figure:
    """One column per ROI. Top row: mean r per layer with its 95 % CI band (across subjects or
    time blocks, see ``study.ci_method``), best layer starred, the baseline's mean as a dashed line
    with its CI as a grey band. Bottom row (``normalized``): r / noise ceiling with its CI (panels
    stay empty where the ceiling is below ``study.min_ceiling``)."""
    rois = rois or study.rois
    n_rows = 2 if normalized else 1
    fig, axes = plt.subplots(n_rows, len(rois), figsize=(2.6 * len(rois) + 0.6, 2.9 * n_rows + 0.4),
                             sharey="row", squeeze=False)
    x = np.arange(len(study.layers))
    rows = [("r", study.group)] + ([("normalized", study.normalized_group)] if normalized else [])
    for row, (kind, groups) in enumerate(rows):
        for ax, roi in zip(axes[row], rois):
            r = study.rois.index(roi)
            mean = np.array([groups[k].mean[r] for k in study.layers])
            low = np.array([groups[k].ci_low[r] for k in study.layers])
            high = np.array([groups[k].ci_high[r] for k in study.layers])
            ax.fill_between(x, low, high, alpha=0.2)
            ax.plot(x, mean, marker="o", ms=3)
            best = study.layers.index(study.best_layer[roi])
            if np.isfinite(mean[best]):
                ax.plot(best, mean[best], marker="*", ms=12, color="C3")
            if kind == "r" and study.baseline_group is not None:
                g = study.baseline_group
                ax.axhspan(g.ci_low[r], g.ci_high[r], color="0.5", alpha=0.12, lw=0)
                ax.axhline(g.mean[r], ls="--", color="0.4", lw=1, label=baseline_label)
            ax.axhline(0, color="0.85", lw=0.8)
            if row == 0:
                ax.set_title(roi, fontsize=9)
            ax.set_xticks(x, [k.replace("layer-", "") for k in study.layers], fontsize=7)
            if row == n_rows - 1:
                ax.set_xlabel("layer", fontsize=8)
    who = f"mean of {len(study.subjects)}" if len(study.subjects) > 1 else f"sub-{study.subjects[0]}"
    axes[0][0].set_ylabel(f"held-out r ({who}, 95 % CI)", fontsize=8)
    if normalized:
        axes[1][0].set_ylabel(f"r / ceiling ({study.ceiling_method or 'ceiling'})", fontsize=8)
    if study.baseline_group is not None:
        axes[0][0].legend(fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
