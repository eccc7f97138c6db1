"""Figure: MiniLM layerwise alignment on the real Alice data (27 listeners) against word rate.

Writes figures/alice_minilm_layers.png and figures/alice_minilm_layers.json (the study's
results.json content: group means and CIs per layer and ROI, normalised alignment, best layer per
ROI, paired comparisons with FDR q). The same function as `mmneuro ablate layers --dataset alice
--model minilm --subject all`. Features come from the feature cache when present ($MMNEURO_CACHE),
else are extracted (about half a minute on a CPU). Skips (exit 0, with a message) when the Alice
folder is absent. Run: python analyses/fig_alice_layers.py [--out figures]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib.pyplot as plt

from mmneuro.ablate.layers import layerwise
from mmneuro.datasets.alice import resolve_alice_root
from mmneuro.errors import InputError
from mmneuro.plotting.layers import plot_layer_study


def main(out: Path) -> None:
    try:
        root = resolve_alice_root()
    except InputError as err:
        print(f"skipping figures/alice_minilm_layers.png: real Alice data absent ({err})")
        return
    result = layerwise(dataset=root, subject="all", model="minilm", out=None, progress=False)
    study = result.study
    fig = plot_layer_study(study, f"Alice (Brennan et al. 2016): MiniLM layers vs word rate, n = {len(study.subjects)}",
                           baseline_label="word rate")
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "alice_minilm_layers.png", dpi=120)
    plt.close(fig)
    (out / "alice_minilm_layers.json").write_text(json.dumps(result.summary, indent=2, allow_nan=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("figures"))
    main(parser.parse_args().out)
