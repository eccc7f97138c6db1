"""``mmneuro ablate attention``: where a joint audio-visual model attends, and what cross-modal
attention does for brain alignment.

For one subject and a model with a cross-modal attention mask (TVLT):

1. attention statistics over the stimulus windows of every run: per layer and head the share of
   video->audio, audio->video and within-modality attention, row entropy, and the attention
   rollout mapped back onto frames x patches and spectrogram time x frequency;
2. every layer's features encoded as they are and re-extracted with video<->audio attention
   blocked by the attention mask (``block_cross_modal=True``, part of the feature cache key);
   the drop of held-out r per ROI with block-bootstrap CIs, one-sided p and FDR q, and the
   difference of drops between the multisensory ROI and each unisensory ROI;
3. the per-layer cross-modal share correlated with the per-layer alignment of each ROI
   (n = layers).

The maths is in :mod:`mmneuro.analyses.attention`; this module loads, calls, writes and prints.
Results go to ``<out>/<dataset>/sub-<label>/ablate-attention/<model label>-<digest>/``: ``results.json``,
``arrays.npz``, NIfTI maps (``r_full_<layer>``, ``r_blocked_<layer>``, ``drop_<layer>``),
``provenance.json`` and ``figure.png``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mmneuro import pipeline
from mmneuro.ablate import add_run_arguments
from mmneuro.analyses.attention import (
    AttentionSummary,
    BlockingResult,
    cross_modal_blocking,
    relate_to_alignment,
    run_attention,
)
from mmneuro.analyses.targets import roi_union
from mmneuro.datasets.base import Dataset
from mmneuro.errors import InputError
from mmneuro.models.registry import random_weights_options
from mmneuro.provenance import Timings, provenance
from mmneuro.results import ResultFolder, result_dir, write_json

STUDY = "attention"
UNISENSORY = ("visual", "auditory")
MULTISENSORY = "multisensory"


@dataclass
class AttentionStudy:
    """What :func:`attention_study` found for one subject.

    ``attention``: shares, entropy and rollout maps over the windows; ``blocking``: per layer and
    ROI the drop of r when cross-modal attention is blocked (CIs, p, q) and the multisensory vs
    unisensory contrasts; ``roi_r[roi]``: (n_layers,) r of the unblocked features per layer;
    ``relation[roi]``: Spearman/Pearson of the per-layer cross-modal share with ``roi_r``
    (n = layers; None with fewer than 3 layers).
    """

    dataset: str
    subject: str
    model: str
    weights: dict[str, Any]
    layers: list[str]
    attention: AttentionSummary
    blocking: BlockingResult
    roi_r: dict[str, np.ndarray]
    relation: dict[str, dict[str, float]] | None
    out_dir: Path | None = None

    @property
    def random_weights(self) -> bool:
        return bool(self.weights.get("is_random"))


def attention_study(dataset: str | Path | Dataset = "demo", subject: str | int = 1, model: str = "tvlt",
                    layers: Sequence[str] | None = None, weights: str | None = None,
                    model_options: dict[str, Any] | None = None, out: str | Path | None = "results",
                    seed: int = 0, cache: Path | None = pipeline.DEFAULT_CACHE, device: str | None = None,
                    max_windows: int | None = None, batch_size: int = 4, n_boot: int = 1000, block_len: int = 10,
                    targets: str = "all", multisensory: str = MULTISENSORY,
                    unisensory: Sequence[str] = UNISENSORY, delays: Sequence[int] | None = None,
                    allow_download: bool = False, progress: bool = True, command: list[str] | None = None,
                    echo: Callable[[str], None] | None = print) -> AttentionStudy:
    """Attention shares and maps, the cross-modal blocking test and their relation, for one subject.

    ``layers``: default every layer with attention (``layer-1`` .. ``layer-L``); ``model_options``
    go to the adapter (e.g. ``{"config": tiny_config()}`` with ``weights="random"``);
    ``max_windows``: windows per run for the attention statistics (default all; the encoding
    always uses every TR). ``targets``: ``"all"`` voxels or only those in an ``"rois"`` (faster;
    maps are NaN elsewhere). Writes a result folder unless ``out`` is None.
    """
    from mmneuro.models.registry import get_adapter

    timings = Timings()
    ds = dataset if isinstance(dataset, Dataset) else pipeline.load_dataset(dataset)
    labels = pipeline.resolve_subjects(ds, subject)
    if len(labels) != 1:
        raise InputError(f"the attention study runs one subject at a time; got {labels} (give --subject LABEL)")
    label = labels[0]
    for roi in (multisensory, *unisensory):
        if roi not in ds.rois:
            raise InputError(f"ROI {roi!r} is not in dataset {ds.name!r} (ROIs: {', '.join(ds.rois)}); "
                             "choose --multisensory/--unisensory among them")
    if targets not in ("all", "rois"):
        raise InputError(f"targets must be 'all' or 'rois', got {targets!r}")
    options = dict(model_options or {})
    if "block_cross_modal" in options:
        raise InputError("do not pass block_cross_modal: the study extracts both conditions itself")
    with timings("attention"):
        adapter = get_adapter(model, weights=weights, device=device, allow_download=allow_download, seed=seed,
                              **options)
        if not hasattr(adapter, "block_cross_modal") or not hasattr(adapter, "token_layout"):
            raise InputError(f"model {model!r} cannot block cross-modal attention; the attention study needs a "
                             "joint audio-visual model with that option (tvlt)")
        with_attention = adapter.layer_names[1:]
        chosen = pipeline.select_layers(adapter.layer_names, layers) if layers else list(with_attention)
        summary = run_attention(adapter, ds.runs, max_windows=max_windows, batch_size=batch_size, progress=progress)
        del adapter
    with timings("features"):
        full, weights_info = pipeline.model_features(model, ds, chosen, weights, allow_download, device, cache, seed,
                                                     progress, options)
        blocked, _ = pipeline.model_features(model, ds, chosen, weights, allow_download, device, cache, seed,
                                             progress, dict(options, block_cross_modal=True))
    with timings("ridge"):
        keep = roi_union(ds.rois) if targets == "rois" else None
        blocking = cross_modal_blocking(ds, full, blocked, ds.load_responses(label),
                                        contrasts=[(multisensory, u) for u in unisensory], targets=keep,
                                        delays=delays, n_boot=n_boot, block_len=block_len, seed=seed)
    related = [layer for layer in chosen if layer in summary.layers]
    roi_names = [multisensory, *unisensory]
    roi_r = {k: np.array([blocking.roi[layer][k]["r_full"] for layer in related]) for k in roi_names}
    sub_summary = _restrict(summary, related)
    relation = relate_to_alignment(sub_summary.cross_modal(), roi_r) if len(related) >= 3 else None
    result = AttentionStudy(ds.name, label, model, weights_info, chosen, sub_summary, blocking, roi_r, relation)
    if out is not None:
        config = {"dataset": str(ds.root), "subject": label, "model": model, "layers": chosen, "weights": weights,
                  "model_options": _jsonable(options), "max_windows": max_windows, "n_boot": n_boot,
                  "block_len": block_len, "targets": targets, "multisensory": multisensory,
                  "unisensory": list(unisensory), "delays": list(delays or ds.delays), "seed": seed}
        folder = result_dir(out, (ds.name, f"sub-{label}", f"ablate-{STUDY}"), pipeline.model_label(model, weights_info),
                            config)
        result.out_dir = write_study(result, ds, folder, config, command, seed,
                                     dict(timings.seconds))
    if echo is not None:
        echo(format_study(result))
    return result


def _restrict(summary: AttentionSummary, layers: list[str]) -> AttentionSummary:
    if not layers:
        return summary
    return AttentionSummary(layers, {k: summary.shares[k] for k in layers}, {k: summary.entropy[k] for k in layers},
                            summary.maps, summary.n_windows)


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=lambda o: o.to_dict() if hasattr(o, "to_dict") else str(o)))


def results_json(result: AttentionStudy) -> dict[str, Any]:
    """The ``results.json`` content: shares, entropy, blocking per ROI, contrasts and the relation."""
    s, b = result.attention, result.blocking
    return {
        "dataset": result.dataset, "subject": result.subject, "model": result.model, "weights": result.weights,
        "random_weights": result.random_weights, "layers": result.layers,
        "attention": {
            "n_windows": s.n_windows,
            "layers": s.layers,
            "shares_head_mean": {layer: {k: float(np.mean(v)) for k, v in s.shares[layer].items()} for layer in s.layers},
            "shares_per_head": {layer: {k: v.tolist() for k, v in s.shares[layer].items()} for layer in s.layers},
            "entropy_head_mean": {layer: {g: float(np.mean(v)) for g, v in s.entropy[layer].items()}
                                  for layer in s.layers},
            "cross_modal_share": dict(zip(s.layers, s.cross_modal().tolist())),
            "rollout_map_shapes": {k: list(v.shape) for k, v in s.maps.items()},
        },
        "blocking": {"roi": b.roi, "contrasts": b.contrasts,
                     "test": "paired block bootstrap over held-out TRs: drop = r(full) - r(blocked), one-sided p "
                             "(drop > 0), BH-FDR q over layers x ROIs; contrasts: difference of drops, two-sided p"},
        "relation": {"per_layer_roi_r": {k: v.tolist() for k, v in result.roi_r.items()},
                     "correlations": result.relation,
                     "note": "samples are the layers of one network (n = layers), not independent: descriptive"},
    }


def write_study(result: AttentionStudy, dataset: Dataset, out_dir: Path, config: dict[str, Any],
                command: list[str] | None, seed: int, timings: dict[str, float]) -> Path:
    """results.json, arrays.npz, r / drop maps, figure.png and provenance.json, atomically."""

    from mmneuro.plotting.attention import attention_figure

    s, b = result.attention, result.blocking
    with ResultFolder(out_dir, "ablate-attention", config) as tmp:
        write_json(tmp / "results.json", results_json(result))
        arrays: dict[str, np.ndarray] = {f"map_{k}": v for k, v in s.maps.items()}
        for layer in s.layers:
            for k, v in s.shares[layer].items():
                arrays[f"share_{layer}_{k.replace('->', '_to_')}"] = v
            for g, v in s.entropy[layer].items():
                arrays[f"entropy_{layer}_{g}"] = v
        for layer in b.layers:
            arrays[f"r_full_{layer}"] = b.r_full[layer]
            arrays[f"r_blocked_{layer}"] = b.r_blocked[layer]
            pipeline.write_map(b.r_full[layer], dataset, tmp / f"r_full_{layer}")
            pipeline.write_map(b.r_blocked[layer], dataset, tmp / f"r_blocked_{layer}")
            pipeline.write_map(b.r_full[layer] - b.r_blocked[layer], dataset, tmp / f"drop_{layer}")
        np.savez_compressed(tmp / "arrays.npz", **arrays)
        tag = " [RANDOM WEIGHTS]" if result.random_weights else ""
        fig = attention_figure(s, b, result.roi_r, result.relation,
                               f"{result.dataset} sub-{result.subject} {result.model}{tag}: attention and "
                               "cross-modal blocking")
        pipeline.write_figure_and_provenance(tmp, fig, provenance(command, config, result.weights, seed, timings))
    return out_dir


def format_study(result: AttentionStudy) -> str:
    """Short text tables: attention per layer, drop per layer and ROI, contrasts, relation."""
    s, b = result.attention, result.blocking
    tag = " [RANDOM WEIGHTS]" if result.random_weights else ""
    lines = [f"\n{result.dataset} sub-{result.subject} {result.model}{tag}: attention over {s.n_windows} windows",
             f"{'layer':>9} {'v->a':>6} {'a->v':>6} {'v->v':>6} {'a->a':>6} {'H(v)':>6} {'H(a)':>6}"]
    for layer in s.layers:
        sh = {k: float(np.mean(v)) for k, v in s.shares[layer].items()}
        en = {g: float(np.mean(v)) for g, v in s.entropy[layer].items()}
        lines.append(f"{layer:>9} {sh['video->audio']:6.3f} {sh['audio->video']:6.3f} {sh['video->video']:6.3f} "
                     f"{sh['audio->audio']:6.3f} {en['video']:6.2f} {en['audio']:6.2f}")
    rois = list(next(iter(b.roi.values())))
    lines += ["", "drop of held-out r when cross-modal attention is blocked: drop [95% CI] (q)",
              f"{'layer':>9} " + " ".join(f"{k:>26}" for k in rois)]
    for layer in b.layers:
        cells = [f"{e['drop']:+.3f} [{e['ci_low']:+.3f},{e['ci_high']:+.3f}] ({e['q']:.2g})"
                 for e in (b.roi[layer][k] for k in rois)]
        lines.append(f"{layer:>9} " + " ".join(f"{c:>26}" for c in cells))
    if b.contrasts:
        lines += ["", "multisensory vs unisensory: difference of drops [95% CI] (p)"]
        for layer in b.layers:
            lines.append(f"{layer:>9} " + "  ".join(f"{name}: {c['difference']:+.3f} [{c['ci_low']:+.3f},"
                                                      f"{c['ci_high']:+.3f}] ({c['p']:.2g})"
                                                      for name, c in b.contrasts[layer].items()))
    if result.relation:
        lines += ["", "cross-modal share vs ROI r across layers (Spearman rho, n = layers)"]
        lines.append("  ".join(f"{k}: {v['spearman_rho']:+.2f} (n={v['n_layers']})" for k, v in result.relation.items()))
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mmneuro ablate attention``."""
    parser.add_argument("--dataset", default="demo", help="'demo' (data/demo), 'alice', or a dataset folder")
    parser.add_argument("--subject", default="1", help="subject label or number (one subject)")
    parser.add_argument("--model", default="tvlt", help="a joint audio-visual model that can block cross-modal "
                                                        "attention (default: tvlt)")
    parser.add_argument("--weights", help="HUB_ID, local folder, or 'random' (labelled in every output)")
    parser.add_argument("--model-config", help="architecture for --weights random: 'tiny' (seconds on a CPU), "
                                               "a JSON object or a JSON file")
    parser.add_argument("--layers", nargs="+", help="layer names or indices (default: every layer with attention)")
    parser.add_argument("--max-windows", type=int, help="windows per run for the attention statistics (default: all)")
    add_run_arguments(parser)
    parser.add_argument("--targets", choices=["all", "rois"], default="all",
                        help="fit every voxel (maps) or only ROI voxels (faster)")
    parser.add_argument("--multisensory", default=MULTISENSORY, help="the multisensory ROI (default multisensory)")
    parser.add_argument("--unisensory", nargs="+", default=list(UNISENSORY),
                        help="unisensory ROIs to contrast with (default: visual auditory)")


def run(args: argparse.Namespace) -> Path:
    """Run the study from parsed arguments; prints the tables and returns the result folder."""
    import sys

    options = None if args.model_config is None else \
        random_weights_options(args.model, args.weights, args.model_config)
    result = attention_study(
        dataset=args.dataset, subject=args.subject, model=args.model, layers=args.layers, weights=args.weights,
        model_options=options, out=args.out, seed=args.seed,
        cache=args.cache if args.cache is not None else pipeline.DEFAULT_CACHE, device=args.device,
        max_windows=args.max_windows, n_boot=args.n_boot, block_len=args.block_len, targets=args.targets,
        multisensory=args.multisensory, unisensory=args.unisensory, allow_download=args.download,
        progress=not args.no_progress, command=sys.argv,
    )
    return result.out_dir
