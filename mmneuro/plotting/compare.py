"""Figure of a model comparison: per-ROI held-out r of each feature space with 95 % CIs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # noqa: E402
import matplotlib.pyplot as plt
import numpy as np

from mmneuro.analyses.compare import ModelComparison


def plot_comparison(cmp: ModelComparison, title: str) -> plt.Figure:
    """Grouped bars: one group per ROI, one bar per feature space (block-bootstrap 95 % CI).

    A ``*`` above the reference's bar marks ROIs where it beats every other space (q < 0.05).
    """
    fig, ax = plt.subplots(figsize=(2.0 + 1.6 * len(cmp.rois), 3.8))
    n = len(cmp.spaces)
    width = 0.8 / n
    x = np.arange(len(cmp.rois))
    for i, s in enumerate(cmp.spaces):
        r = np.array([cmp.roi[s][k]["r"] for k in cmp.rois])
        lo = np.array([cmp.roi[s][k]["ci_low"] for k in cmp.rois])
        hi = np.array([cmp.roi[s][k]["ci_high"] for k in cmp.rois])
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, r, width, yerr=np.abs(np.stack([r - lo, hi - r])), capsize=2, error_kw={"lw": 0.7},
               label=s, color=f"C{i}", hatch="//" if s == cmp.reference else None, edgecolor="white")
        if s == cmp.reference and cmp.paired:
            for p_, k, top in zip(pos, cmp.rois, hi):
                if all(cmp.paired[o][k]["q"] < 0.05 for o in cmp.paired):
                    ax.text(p_, top, "*", ha="center", va="bottom")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(x, cmp.rois, rotation=20, ha="right", fontsize=9)
    ax.set_ylabel("held-out r (ROI mean, 95 % CI)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, frameon=False, ncol=2)
    fig.tight_layout()
    return fig
