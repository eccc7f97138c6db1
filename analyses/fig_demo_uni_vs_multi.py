"""Figure: per-ROI alignment of unimodal models (tiny ViT, mel spectrum, MiniLM) vs a multimodal one
(tiny TVLT) on the demo, subject 1, with block-bootstrap 95 % CIs and paired tests (TVLT - each).

Writes figures/demo_uni_vs_multi.png and figures/demo_uni_vs_multi.json. The tiny ViT and TVLT
have random weights (labelled); MiniLM is the packaged real model. One layer per model, fixed in
advance: the last layer of each tiny model, MiniLM's middle layer. Features come from the feature
cache when present ($MMNEURO_CACHE), else are extracted (about a minute on a CPU).
Run: python analyses/fig_demo_uni_vs_multi.py [--out figures]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mmneuro import pipeline
from mmneuro.analyses.compare import compare_models
from mmneuro.models.tvlt import tiny_config
from mmneuro.plotting.compare import plot_comparison


def spaces() -> dict[str, tuple[str, str, str | None, dict]]:
    """label -> (model, layer, weights, model_options): the study's feature spaces."""
    from transformers import ViTConfig

    tiny_vit = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         image_size=32, patch_size=8)
    return {
        "ViT tiny (random) L2": ("vit", "layer-2", "random", {"config": tiny_vit}),
        "mel spectrum": ("melspec", "logmel", None, {}),
        "MiniLM L3": ("minilm", "layer-3", None, {}),
        "TVLT tiny (random) L4": ("tvlt", "layer-4", "random", {"config": tiny_config()}),
    }


def main(out: Path, dataset: str = "demo", subject: str = "01") -> None:
    ds = pipeline.load_dataset(dataset)
    features = {}
    for label, (model, layer, weights, options) in spaces().items():
        by_layer, _ = pipeline.model_features(model, ds, [layer], weights, model_options=options, progress=False)
        features[label] = by_layer[layer]
    reference = next(k for k in features if k.startswith("TVLT"))
    rois = np.any(np.stack(list(ds.rois.values())), axis=0)
    cmp = compare_models(ds, ds.load_responses(subject), features, reference=reference, targets=rois)
    fig = plot_comparison(cmp, f"{ds.name} sub-{subject}: unimodal vs multimodal (tiny models: RANDOM WEIGHTS)")
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "demo_uni_vs_multi.png", dpi=120)
    summary = {"dataset": ds.name, "subject": subject, "reference": reference,
               "models": {k: {"model": m, "layer": l, "weights": w or "default"} for k, (m, l, w, _) in spaces().items()},
               **cmp.as_dict(),
               "statistics": "block bootstrap over held-out TRs (block 10, 1000 resamples); paired: one-sided p, "
                             "BH-FDR q over spaces x ROIs"}
    (out / "demo_uni_vs_multi.json").write_text(json.dumps(summary, indent=2))
    print(cmp.table())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("figures"))
    main(parser.parse_args().out)
