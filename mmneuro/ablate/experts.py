"""``mmneuro ablate experts``: routing statistics, alignment of each expert, and an expert ablation.

For a mixture-of-experts model (``qwen3-vl-moe``) on a dataset and subject:

1. **routing** per MoE layer and token group (all / video / text / special): utilisation,
   routing entropy, load imbalance, top-1 share, collapse index
   (:func:`mmneuro.analyses.experts.usage_by_modality`);
2. **expert alignment**: each expert's routing-weighted contribution to its block's output,
   averaged over a TR window's tokens, encoded like any feature space -> held-out r per ROI
   (:func:`mmneuro.analyses.experts.expert_alignment`);
3. **intervention**: disable experts (default ``"auto"``: the expert most often ranked first
   in each studied layer) and/or force top-1 routing, re-extract (the intervention is part of
   the feature cache key), re-encode every studied layer, and test the change of ROI r with a
   paired block bootstrap (:func:`mmneuro.analyses.experts.intervention_effect`); the routing
   after the intervention and which layers' features changed are recorded too.

Writes ``results/<dataset>/sub-<label>/ablate-experts/<model label>-<digest>/``: ``results.json``,
``arrays.npz`` (per-expert r, utilisation), NIfTI maps of the change of r per studied layer
(``change_r_<layer>.nii.gz``; ``.npy`` for ROI datasets), ``provenance.json`` and ``figure.png``.

Random weights default to the laptop-sized :func:`mmneuro.models.moe.tiny_config`
(``config="tiny"``), 32-pixel frames, 4 frames per TR.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mmneuro import pipeline
from mmneuro.ablate import add_run_arguments
from mmneuro.analyses.experts import (
    ExpertAlignment,
    InterventionEffect,
    collect_routing,
    dominant_expert,
    expert_alignment,
    feature_changes,
    intervention_effect,
    usage_dict,
)
from mmneuro.analyses.targets import roi_union
from mmneuro.datasets.base import Dataset
from mmneuro.errors import InputError
from mmneuro.models.registry import random_weights_options
from mmneuro.provenance import Timings, provenance
from mmneuro.results import ResultFolder, result_dir, write_json

STUDY = "experts"
@dataclass
class ExpertStudy:
    """What :func:`expert_study` found for one subject.

    ``routing["base" | "intervened"][layer][group]``: usage dicts (see ``usage_dict``);
    ``alignment``: :class:`ExpertAlignment`; ``intervention``: the disabled experts / top-1
    layers; ``effect``: :class:`InterventionEffect`; ``changes[layer]``: whether the layer's
    features changed (``identical``, ``max_abs_diff``); ``out_dir``: the result folder.
    """

    dataset: str
    subject: str
    model: str
    layers: list[str]
    routing: dict[str, dict[str, dict[str, dict[str, Any]]]]
    alignment: ExpertAlignment
    intervention: dict[str, Any]
    effect: InterventionEffect
    changes: dict[str, dict[str, Any]]
    weights: dict[str, Any]
    runs: list[str]
    out_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def results(self) -> dict[str, Any]:
        """The ``results.json`` content."""
        a = self.alignment
        return {
            "study": STUDY, "dataset": self.dataset, "subject": self.subject, "model": self.model,
            "weights": self.weights, "random_weights": bool(self.weights.get("is_random")),
            "runs": self.runs, "layers": self.layers,
            "routing": self.routing,
            "expert_alignment": {
                "layers": a.layers, "experts": a.experts, "rois": a.rois,
                "roi_r": _nan_list(a.roi_r),
                "layer_roi_r": None if a.layer_roi_r is None else _nan_list(a.layer_roi_r),
                "best_expert": a.best_expert(),
            },
            "intervention": dict(self.intervention, roi=self.effect.roi, feature_changes=self.changes),
        }


def _nan_list(a: np.ndarray) -> list:
    return np.where(np.isfinite(a), a, np.nan).tolist()


def select_runs(dataset: Dataset, runs: Sequence[str] | None) -> Dataset:
    """``dataset`` restricted to the named runs (None: all). The held-out scheme must still work."""
    import dataclasses

    if not runs:
        return dataset
    chosen = [dataset.run(name) for name in runs]
    return dataclasses.replace(dataset, runs=chosen)


def expert_study(dataset: str | Path | Dataset = "demo", subject: str | int = 1, model: str = "qwen3-vl-moe",
                 weights: str | None = "random", layers: Sequence[str] | None = None,
                 disable: str | dict[str, Sequence[int]] | None = "auto", force_top1: bool | str | Sequence[str] | None = None,
                 config: Any = "tiny", model_options: dict[str, Any] | None = None, runs: Sequence[str] | None = None,
                 targets: str = "rois", out: str | Path | None = "results", cache: Path | None = pipeline.DEFAULT_CACHE,
                 device: str | None = None, delays: Sequence[int] | None = None, n_boot: int = 1000,
                 block_len: int = 10, seed: int = 0, allow_download: bool = False, progress: bool = True,
                 command: list[str] | None = None, echo: Callable[[str], None] | None = print) -> ExpertStudy:
    """Routing statistics, per-expert alignment and an expert intervention for one subject.

    Parameters
    ----------
    dataset, subject : as for :func:`mmneuro.pipeline.encode` (one subject).
    model, weights : a mixture-of-experts model (``qwen3-vl-moe``) and its weights
        (``"random"``: labelled in every output).
    layers : MoE layers to study (names or indices into the MoE layers; default all).
    disable : ``"auto"`` (the dominant expert of each studied layer), ``"none"``,
        ``"layer-3:0,2;layer-1:1"`` or ``{"layer-3": [0, 2]}``.
    force_top1 : True / ``"all"`` / a list of MoE layers routed top-1 in the intervention.
    config : ``"tiny"``, a JSON file or a config object, for random weights.
    model_options : more adapter options (``image_size``, ``n_frames``...).
    runs : restrict to these runs (e.g. one train and the test run, for speed; recorded).
    targets : ``"rois"`` (encode the voxels inside the dataset's ROIs; maps NaN elsewhere) or ``"all"``.
    out : results root (None: write nothing).
    cache : feature cache folder (None: no caching).
    n_boot, block_len, seed : the paired block bootstrap of the intervention test.

    Returns an :class:`ExpertStudy`; writes ``out/<dataset>/sub-<label>/ablate-experts/<model label>-<digest>/``.
    """
    from mmneuro.models.registry import get_adapter

    timings = Timings()
    ds = dataset if isinstance(dataset, Dataset) else pipeline.load_dataset(dataset)
    ds = select_runs(ds, runs)
    subjects = pipeline.resolve_subjects(ds, subject)
    if len(subjects) != 1:
        raise InputError(f"the expert study runs one subject at a time; got {subject!r} ({len(subjects)} subjects)")
    label = subjects[0]
    if targets not in ("rois", "all"):
        raise InputError(f"targets must be 'rois' or 'all'; got {targets!r}")
    opts = random_weights_options(model, weights, config, model_options)
    kw = dict(weights=weights, device=device, allow_download=allow_download, seed=seed)

    # 1. routing of the base model
    with timings("routing"):
        base = get_adapter(model, **kw, **opts)
        if not getattr(base, "moe_layers", None):
            raise InputError(f"model {model!r} has no mixture-of-experts layers; the expert study needs one "
                             f"(e.g. qwen3-vl-moe)")
        chosen = pipeline.select_layers(base.moe_layers, layers)
        base_routing = collect_routing(base, ds.runs, progress=progress)
    intervention = _resolve_intervention(disable, force_top1, chosen, base_routing.logits)
    inter_opts = dict(opts, disable_experts=intervention["disable"] or None,
                      force_top1=intervention["force_top1"] or None)
    with timings("routing"):
        inter = get_adapter(model, **kw, **inter_opts)
        inter_routing = collect_routing(inter, ds.runs, progress=progress)
    routing = {"base": _stats(base_routing, chosen), "intervened": _stats(inter_routing, chosen)}

    # 2. features: hidden states + expert outputs (base), hidden states (intervened)
    hidden = list(base.layer_names)
    with timings("features"):
        expert_names = base.expert_layer_names(chosen)
        feats, weights_info = pipeline.model_features(
            model, ds, hidden + expert_names, weights, allow_download, device, cache, seed, progress,
            dict(opts, expert_outputs=True))
        inter_feats, _ = pipeline.model_features(model, ds, hidden, weights, allow_download, device, cache, seed,
                                                 progress, inter_opts)
    changes = feature_changes({l: feats[l] for l in hidden}, inter_feats)
    first = inter.intervention.layers[0] if inter.intervention.layers else None
    before = [l for l in hidden if first is not None and hidden.index(l) < hidden.index(first)]
    if any(not changes[l]["identical"] for l in before):
        raise InputError(f"features of layers before {first} changed under the intervention: the hooks are wrong")

    # 3. encoding
    resp = ds.load_responses(label)
    mask = roi_union(ds.rois) if targets == "rois" else None
    with timings("ridge"):
        per_expert = {l: {e: feats[f"{l}/expert-{e}"] for e in range(base.n_experts)} for l in chosen}
        alignment = expert_alignment(ds, per_expert, resp, {l: feats[l] for l in chosen}, mask, delays, progress)
        effect = intervention_effect(ds, {l: feats[l] for l in chosen}, {l: inter_feats[l] for l in chosen}, resp,
                                     mask, delays, n_boot, block_len, seed)
    intervention_record = dict(intervention, label=inter.intervention.label() or "none",
                               unchanged_layers=before, first_layer=first)
    study = ExpertStudy(ds.name, label, model, chosen, routing, alignment, intervention_record, effect, changes,
                        weights_info, [r.name for r in ds.runs], timings=dict(timings.seconds))
    if out is not None:
        config_rec = {"dataset": str(ds.root), "subject": label, "model": model, "weights": weights,
                      "layers": chosen, "runs": study.runs, "targets": targets,
                      "model_options": {k: (v if k != "config" else v.to_dict()) for k, v in opts.items()},
                      "intervention": intervention_record, "delays": list(delays or ds.delays),
                      "n_boot": n_boot, "block_len": block_len}
        folder = result_dir(out, (ds.name, f"sub-{label}", f"ablate-{STUDY}"), pipeline.model_label(model, weights_info),
                            config_rec)
        study.out_dir = write_study(study, ds, folder, config_rec, command, seed)
    if echo is not None:
        echo(format_study(study))
    return study


def _resolve_intervention(disable, force_top1, layers: list[str], logits: dict[str, np.ndarray]) -> dict[str, Any]:
    from mmneuro.models.moe_intervention import parse_disable

    if isinstance(disable, str) and disable == "auto":
        dis = {l: [dominant_expert(logits[l])] for l in layers}
    elif disable is None or (isinstance(disable, str) and disable in ("", "none")):
        dis = {}
    else:
        dis = {l: list(e) for l, e in parse_disable(disable).items()}
    if force_top1 is True or force_top1 == "all":
        top1 = list(layers)
    elif force_top1 in (None, False, "", "none"):
        top1 = []
    else:
        top1 = [s.strip() for s in force_top1.split(",")] if isinstance(force_top1, str) else list(force_top1)
    if not dis and not top1:
        raise InputError("no intervention: give --disable (auto, or LAYER:EXPERT[,EXPERT]) and/or --force-top1")
    return {"disable": dis, "force_top1": top1}


def _stats(record, layers: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    stats = record.statistics()
    return {l: {g: usage_dict(u) for g, u in stats[l].items()} for l in layers}


def write_study(study: ExpertStudy, dataset: Dataset, out_dir: Path, config: dict[str, Any],
                command: list[str] | None, seed: int) -> Path:
    """results.json, arrays.npz, change-of-r maps, figure.png and provenance.json, atomically."""

    from mmneuro.plotting.experts import expert_figure

    results = study.results()
    with ResultFolder(out_dir, "ablate-experts", config) as tmp:
        write_json(tmp / "results.json", results)
        a = study.alignment
        np.savez_compressed(
            tmp / "arrays.npz", expert_r=a.r.astype(np.float32), expert_roi_r=a.roi_r,
            layers=np.array(a.layers), experts=np.array(a.experts), rois=np.array(a.rois),
            **{f"r_base_{l}": study.effect.r_base[l].astype(np.float32) for l in study.effect.layers},
            **{f"r_intervened_{l}": study.effect.r_intervened[l].astype(np.float32) for l in study.effect.layers},
            **{f"utilisation_{k}_{l}_{g}": np.array(u["utilisation"]) for k, per in study.routing.items()
               for l, groups in per.items() for g, u in groups.items()})
        for l in study.effect.layers:
            pipeline.write_map(study.effect.r_intervened[l] - study.effect.r_base[l], dataset, tmp / f"change_r_{l}")
        fig = expert_figure(results, f"{study.dataset} sub-{study.subject} "
                                     f"{pipeline.model_label(study.model, study.weights)}: expert collapse and ablation")
        pipeline.write_figure_and_provenance(tmp, fig, provenance(command, config, study.weights, seed, study.timings))
    return out_dir


def format_study(study: ExpertStudy) -> str:
    """A short text table: routing per layer and group, best expert per ROI, the intervention's change of r."""
    tag = " [RANDOM WEIGHTS]" if study.weights.get("is_random") else ""
    lines = [f"\n{study.dataset} sub-{study.subject} {study.model}{tag}: experts (runs {', '.join(study.runs)})",
             f"{'layer':>8s} {'group':>8s} {'tokens':>7s} {'entropy':>7s} {'imbal.':>6s} {'top1':>5s} {'collapse':>8s}"]
    for l, groups in study.routing["base"].items():
        for g, u in groups.items():
            lines.append(f"{l:>8s} {g:>8s} {u['n_tokens']:7d} {u['routing_entropy']:7.3f} {u['load_imbalance']:6.2f} "
                         f"{u['top1_share']:5.2f} {u['collapse_index']:8.3f}")
    rois = study.alignment.rois
    lines.append("best expert per ROI (held-out r): " + "; ".join(
        f"{l}: " + ", ".join(f"{k}={e}" for k, e in best.items()) for l, best in study.alignment.best_expert().items()))
    lines.append(f"intervention {study.intervention['label']}: change of ROI r (intervened - base) [95% CI] q")
    lines.append(f"{'layer':>8s} " + " ".join(f"{k:>24s}" for k in rois))
    for l, per in study.effect.roi.items():
        lines.append(f"{l:>8s} " + " ".join(
            f"{per[k]['change']:+.3f} [{per[k]['ci_low']:+.3f},{per[k]['ci_high']:+.3f}] {per[k]['q']:.2g}".rjust(24)
            for k in rois))
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mmneuro ablate experts``."""
    parser.add_argument("--dataset", default="demo", help="'demo', 'alice' or a dataset folder (default demo)")
    parser.add_argument("--subject", default="1", help="one subject label or number (default 1)")
    parser.add_argument("--model", default="qwen3-vl-moe", help="a mixture-of-experts model (default qwen3-vl-moe)")
    parser.add_argument("--weights", default=None,
                        help="'random' (labelled in every output), a folder or a hub id (default: the model's own)")
    parser.add_argument("--config", default="tiny",
                        help="architecture for --weights random: 'tiny' (default) or a JSON file of a Qwen3VLMoeConfig")
    parser.add_argument("--layers", nargs="+", default=None, help="MoE layers to study (names or indices; default all)")
    parser.add_argument("--disable", default="auto",
                        help="experts to disable: 'auto' (the dominant expert of each studied layer), 'none', or "
                             "'LAYER:E[,E...][;LAYER:E...]' (default auto)")
    parser.add_argument("--force-top1", nargs="*", default=None, metavar="LAYER",
                        help="route each token to its single best expert (no LAYER: every studied layer)")
    parser.add_argument("--image-size", type=int, default=None, help="frame side in pixels (tiny default 32)")
    parser.add_argument("--n-frames", type=int, default=None, help="frames per TR window (tiny default 4)")
    parser.add_argument("--runs", nargs="+", default=None, help="only these runs (e.g. train-01 test-01, for speed)")
    parser.add_argument("--targets", choices=("rois", "all"), default="rois",
                        help="encode the voxels inside the ROIs (default) or all targets")
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> Path:
    """``mmneuro ablate experts``: run :func:`expert_study`, print its table, return the result folder."""
    import sys

    options = {k: v for k, v in (("image_size", args.image_size), ("n_frames", args.n_frames)) if v is not None}
    force = None if args.force_top1 is None else (True if len(args.force_top1) == 0 else args.force_top1)
    study = expert_study(
        dataset=args.dataset, subject=args.subject, model=args.model, weights=args.weights, layers=args.layers,
        disable=args.disable, force_top1=force, config=args.config, model_options=options or None, runs=args.runs,
        targets=args.targets, out=args.out, cache=args.cache if args.cache is not None else pipeline.DEFAULT_CACHE,
        device=args.device, n_boot=args.n_boot, block_len=args.block_len, seed=args.seed,
        allow_download=args.download, progress=not args.no_progress, command=sys.argv)
    return study.out_dir
