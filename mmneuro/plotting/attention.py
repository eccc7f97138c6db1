"""Figure of the attention study: shares and entropy per layer, rollout maps, the blocking drops,
and cross-modal share against ROI alignment across layers."""

from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # noqa: E402
import matplotlib.pyplot as plt
import numpy as np

from mmneuro.analyses.attention import AttentionSummary, BlockingResult

SHARE_KEYS = ("video->audio", "audio->video", "video->video", "audio->audio")


def plot_shares(summary: AttentionSummary, ax: plt.Axes) -> plt.Axes:
    """Head-averaged share per layer for each query->key pair (dots: single heads)."""
    x = np.arange(len(summary.layers))
    for i, key in enumerate(SHARE_KEYS):
        per_head = np.array([summary.shares[layer][key] for layer in summary.layers])  # (layers, heads)
        ax.plot(x, per_head.mean(axis=1), marker="o", color=f"C{i}", label=key)
        ax.scatter(np.repeat(x, per_head.shape[1]), per_head.ravel(), s=6, color=f"C{i}", alpha=0.4)
    ax.set_xticks(x, [k.replace("layer-", "L") for k in summary.layers], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of attention")
    ax.set_title(f"attention shares ({summary.n_windows} windows)", fontsize=9)
    ax.legend(fontsize=6, frameon=False)
    return ax


def plot_entropy(summary: AttentionSummary, ax: plt.Axes) -> plt.Axes:
    """Mean row entropy (nats) of video and audio queries per layer, heads averaged."""
    x = np.arange(len(summary.layers))
    for g in ("video", "audio", "cls"):
        ax.plot(x, [float(np.mean(summary.entropy[layer][g])) for layer in summary.layers], marker="o", label=g)
    ax.set_xticks(x, [k.replace("layer-", "L") for k in summary.layers], fontsize=8)
    ax.set_ylabel("attention entropy (nats)")
    ax.set_title("entropy of query rows", fontsize=9)
    ax.legend(fontsize=6, frameon=False)
    return ax


def plot_video_map(video: np.ndarray, ax: plt.Axes, fig: plt.Figure) -> plt.Axes:
    """Rollout relevance of video patches, frames side by side: ``video`` (frames, rows, cols)."""
    f, h, w = video.shape
    mosaic = np.concatenate([np.pad(video[i], ((0, 0), (0, 1)), constant_values=np.nan) for i in range(f)], axis=1)
    im = ax.imshow(mosaic, cmap="magma", aspect="equal")
    ax.set_xticks([(w + 1) * i + (w - 1) / 2 for i in range(f)], [f"f{i}" for i in range(f)], fontsize=7)
    ax.set_yticks([])
    ax.set_title("rollout relevance: video frames x patches", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return ax


def plot_audio_map(audio: np.ndarray, ax: plt.Axes, fig: plt.Figure) -> plt.Axes:
    """Rollout relevance of spectrogram patches: ``audio`` (time rows, frequency patches)."""
    im = ax.imshow(audio.T, cmap="magma", aspect="auto", origin="lower")
    ax.set_xlabel("time patch", fontsize=8)
    ax.set_ylabel("frequency patch", fontsize=8)
    ax.set_title("rollout relevance: audio time x frequency", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return ax


def plot_drops(blocking: BlockingResult, ax: plt.Axes, rois: Sequence[str] | None = None) -> plt.Axes:
    """Drop of ROI-mean r when cross-modal attention is blocked, per layer (bars) and ROI, 95 % CI; * q < 0.05."""
    rois = list(rois or next(iter(blocking.roi.values())))
    n = len(blocking.layers)
    width = 0.8 / n
    x = np.arange(len(rois))
    for i, layer in enumerate(blocking.layers):
        d = np.array([blocking.roi[layer][k]["drop"] for k in rois])
        lo = np.array([blocking.roi[layer][k]["ci_low"] for k in rois])
        hi = np.array([blocking.roi[layer][k]["ci_high"] for k in rois])
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, d, width, label=layer, yerr=np.abs(np.stack([d - lo, hi - d])), capsize=2,
               error_kw={"lw": 0.7}, color=f"C{i}")
        for p_, k, top in zip(pos, rois, hi):
            if blocking.roi[layer][k].get("q", 1.0) < 0.05:
                ax.text(p_, top, "*", ha="center", va="bottom", fontsize=9)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(x, rois, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("r(full) - r(blocked)")
    ax.set_title("blocking cross-modal attention", fontsize=9)
    ax.legend(fontsize=6, frameon=False, ncol=2)
    return ax


def plot_relation(cross_modal: np.ndarray, roi_r: dict[str, np.ndarray], ax: plt.Axes,
                  relation: dict[str, dict[str, float]] | None = None) -> plt.Axes:
    """Per-layer cross-modal share (x) against per-layer ROI r (y), one line per ROI, rho in the legend."""
    order = np.argsort(cross_modal)
    for i, (roi, r) in enumerate(roi_r.items()):
        label = roi
        if relation and roi in relation and np.isfinite(relation[roi]["spearman_rho"]):
            label = f"{roi} (rho {relation[roi]['spearman_rho']:+.2f}, n={relation[roi]['n_layers']})"
        ax.plot(np.asarray(cross_modal)[order], np.asarray(r)[order], marker="o", color=f"C{i}", label=label)
    ax.set_xlabel("cross-modal share (per layer)", fontsize=8)
    ax.set_ylabel("held-out r (ROI mean)", fontsize=8)
    ax.set_title("attention vs alignment across layers", fontsize=9)
    ax.legend(fontsize=6, frameon=False)
    return ax


def attention_figure(summary: AttentionSummary, blocking: BlockingResult, roi_r: dict[str, np.ndarray],
                     relation: dict[str, dict[str, float]] | None, title: str,
                     rois: Sequence[str] | None = None) -> plt.Figure:
    """Six panels: shares, entropy, video and audio rollout maps, blocking drops, attention vs alignment.

    ``roi_r``: ROI -> (n_layers,) r of the unblocked features for ``summary.layers``.
    """
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    plot_shares(summary, axes[0, 0])
    plot_entropy(summary, axes[0, 1])
    if "video" in summary.maps:
        plot_video_map(summary.maps["video"], axes[0, 2], fig)
    if "audio" in summary.maps:
        plot_audio_map(summary.maps["audio"], axes[1, 0], fig)
    plot_drops(blocking, axes[1, 1], rois)
    plot_relation(summary.cross_modal(), roi_r, axes[1, 2], relation)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
