"""Figure: MiniLM layerwise alignment on the real Alice data (27 listeners) against word rate.

Writes figures/alice_minilm_layers.png and figures/alice_minilm_layers.json (group means, CIs,
best layer per ROI and the paired comparisons). Features come from the feature cache when present.
Run: python analyses/fig_alice_layers.py [--out figures]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mmneuro import pipeline
from mmneuro.analyses.layers import layer_study
from mmneuro.plotting.layers import plot_layer_study
from mmneuro.stimuli.words import read_words


def word_rate(dataset) -> dict[str, np.ndarray]:
    """A constant 1 per word, through the same Lanczos resampling as the model features."""
    out = {}
    for run in dataset.runs:
        words = read_words(run.words)
        out[run.name] = pipeline.to_tr_grid(np.ones((len(words), 1), np.float32), words.midpoints, run, dataset.tr)
    return out


def main(out: Path) -> None:
    dataset = pipeline.load_dataset("alice")
    features, _ = pipeline.model_features("minilm", dataset)
    study = layer_study(dataset, features, baseline=word_rate(dataset))
    fig = plot_layer_study(study, f"Alice (Brennan et al. 2016): MiniLM layers vs word rate, n = {len(study.subjects)}",
                           baseline_label="word rate")
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "alice_minilm_layers.png", dpi=120)
    summary = {
        "subjects": study.subjects,
        "best_layer": study.best_layer,
        "group_mean_r": {layer: dict(zip(study.rois, study.group[layer].mean.round(4).tolist())) for layer in study.layers},
        "group_ci95": {layer: dict(zip(study.rois, zip(study.group[layer].ci_low.round(4).tolist(),
                                                      study.group[layer].ci_high.round(4).tolist())))
                       for layer in study.layers},
        "word_rate_mean_r": dict(zip(study.rois, np.nanmean(study.baseline_r, axis=0).round(4).tolist())),
        "comparisons": study.comparisons,
    }
    (out / "alice_minilm_layers.json").write_text(json.dumps(summary, indent=2))
    for roi in study.rois:
        best = study.best_layer[roi]
        r = study.rois.index(roi)
        print(f"{roi:6s} best {best}: r = {study.group[best].mean[r]:.3f} "
              f"[{study.group[best].ci_low[r]:.3f}, {study.group[best].ci_high[r]:.3f}], "
              f"word rate {np.nanmean(study.baseline_r[:, r]):.3f}, "
              f"vs first q = {study.comparisons[roi]['first'].get('q', float('nan')):.3g}, "
              f"vs last q = {study.comparisons[roi]['last'].get('q', float('nan')):.3g}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("figures"))
    main(parser.parse_args().out)
