"""Figure: expert collapse and expert ablation of a tiny random-weight Qwen3-VL-MoE on the demo (subject 1).

Writes figures/demo_experts.png (utilisation per layer and token group with the collapse index,
each expert's held-out alignment per ROI, the change of alignment after disabling each studied
layer's dominant expert) and figures/demo_experts.json (the numbers). Reuses the result folder
``<results>/demo/sub-01/ablate-experts/qwen3-vl-moe_random-weights-<digest>/`` when it holds this
configuration (all demo runs, ROI voxels, auto intervention), else runs the study (features come
from the feature cache when present).
Run: python analyses/fig_demo_experts.py [--out figures] [--results results]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt

from mmneuro import pipeline
from mmneuro.ablate.experts import expert_study
from mmneuro.datasets.catalog import demo_folder
from mmneuro.plotting.experts import expert_figure
from mmneuro.results import results_named

TITLE = "demo sub-01, Qwen3-VL-MoE tiny config, RANDOM WEIGHTS: expert routing, alignment and ablation"


def demo_dataset():
    return pipeline.load_dataset(demo_folder(ensure=True))


def cached_results(folder: Path, dataset) -> dict | None:
    """The stored results when they were made with this script's configuration, else None."""
    res_file, prov_file = folder / "results.json", folder / "provenance.json"
    if not (res_file.is_file() and prov_file.is_file()):
        return None
    res = json.loads(res_file.read_text())
    cfg = json.loads(prov_file.read_text()).get("config", {})
    same = (res.get("runs") == [r.name for r in dataset.runs] and cfg.get("targets") == "rois"
            and res.get("random_weights") and cfg.get("intervention", {}).get("force_top1") == []
            and sorted(res["intervention"]["disable"]) == sorted(res["layers"]))
    return res if same else None


def main(out: Path, results_root: Path) -> None:
    dataset = demo_dataset()
    stored = results_named(results_root / dataset.name / "sub-01" / "ablate-experts", "qwen3-vl-moe_random-weights")
    found = [(folder, res) for folder in stored if (res := cached_results(folder, dataset)) is not None]
    if found:
        folder, res = found[0]
    else:
        study = expert_study(dataset=dataset, subject=1, weights="random", disable="auto", targets="rois",
                             out=results_root, progress=False, echo=print)
        folder, res = study.out_dir, study.results()
    fig = expert_figure(res, TITLE)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "demo_experts.png", dpi=120)
    plt.close(fig)
    summary = {
        "source": "<results>/" + folder.relative_to(results_root).as_posix(),
        "runs": res["runs"],
        "layers": res["layers"],
        "collapse_index": {l: {g: round(u["collapse_index"], 4) for g, u in groups.items()}
                           for l, groups in res["routing"]["base"].items()},
        "routing_entropy": {l: {g: round(u["routing_entropy"], 4) for g, u in groups.items()}
                            for l, groups in res["routing"]["base"].items()},
        "best_expert": res["expert_alignment"]["best_expert"],
        "intervention": res["intervention"]["label"],
        "change_of_r": {l: {k: {m: round(v[m], 5) for m in ("change", "ci_low", "ci_high", "p", "q")}
                            for k, v in per.items()} for l, per in res["intervention"]["roi"].items()},
    }
    (out / "demo_experts.json").write_text(json.dumps(summary, indent=2))
    for l, per in summary["change_of_r"].items():
        print(f"{l}: collapse index (all tokens) {summary['collapse_index'][l]['all']:.3f}; change of r after "
              f"{summary['intervention']}: " + ", ".join(f"{k} {v['change']:+.4f} (q {v['q']:.2g})" for k, v in per.items()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("figures"))
    parser.add_argument("--results", type=Path, default=Path(os.environ.get("MMNEURO_RESULTS", "results")))
    args = parser.parse_args()
    main(args.out, args.results)
