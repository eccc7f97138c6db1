"""Figure: the attention study on the demo (subject 1) with a tiny random-weights TVLT.

Attention shares and entropy per layer, rollout relevance over frames x patches and spectrogram
time x frequency, the drop of held-out r per ROI when video<->audio attention is blocked by the
attention mask (block bootstrap CIs, FDR), and the per-layer cross-modal share against ROI r.
RANDOM WEIGHTS: this shows the machinery, not what a trained TVLT does.

Writes figures/demo_attention.png and figures/demo_attention.json. Features (with and without
blocking) come from the feature cache when present ($MMNEURO_CACHE), else are extracted.
Run: python analyses/fig_demo_attention.py [--out figures]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib.pyplot as plt

from mmneuro.ablate.attention import attention_study, results_json
from mmneuro.models.tvlt import tiny_config
from mmneuro.plotting.attention import attention_figure


def main(out: Path) -> None:
    study = attention_study(dataset="demo", subject=1, model="tvlt", weights="random",
                            model_options={"config": tiny_config()}, out=None, max_windows=40, targets="rois",
                            progress=False)
    out.mkdir(parents=True, exist_ok=True)
    fig = attention_figure(study.attention, study.blocking, study.roi_r, study.relation,
                           "demo sub-01, TVLT tiny [RANDOM WEIGHTS]: attention and cross-modal blocking")
    fig.savefig(out / "demo_attention.png", dpi=110)
    plt.close(fig)
    (out / "demo_attention.json").write_text(json.dumps(results_json(study), indent=2, allow_nan=True))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("figures"))
    main(parser.parse_args().out)
