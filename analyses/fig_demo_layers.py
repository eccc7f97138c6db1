"""Figure: MiniLM layerwise alignment on the demo (3 subjects) against word rate, per ROI.

Writes figures/demo_layers.png and figures/demo_layers.json (the study's results.json content).
The same function as `mmneuro ablate layers --dataset demo --model minilm --subject all`. The demo
is generated into data/demo (or $MMNEURO_DEMO) when absent (seed 0, about a minute); features come
from the feature cache when present ($MMNEURO_CACHE), else are extracted.
Run: python analyses/fig_demo_layers.py [--out figures]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib.pyplot as plt

from mmneuro.ablate.layers import layerwise
from mmneuro.datasets.catalog import demo_folder
from mmneuro.plotting.layers import plot_layer_study


def main(out: Path) -> None:
    result = layerwise(dataset=demo_folder(ensure=True), subject="all", model="minilm", out=None, progress=False)
    study = result.study
    fig = plot_layer_study(study, f"Demo: MiniLM layers vs word rate, n = {len(study.subjects)} "
                                  "(language ROI driven by word rate by construction)", baseline_label="word rate")
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "demo_layers.png", dpi=120)
    plt.close(fig)
    (out / "demo_layers.json").write_text(json.dumps(result.summary, indent=2, allow_nan=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("figures"))
    main(parser.parse_args().out)
