"""``mmneuro ablate layers``: every layer of a model -> per-ROI alignment with CIs, best layer per
ROI, intermediate layers against the first and the last, and a word-rate baseline.

The statistics live in :mod:`mmneuro.analyses.layers`; this face loads the dataset and the
model's features (through the feature cache), calls :func:`~mmneuro.analyses.layers.layer_study`,
writes the result folder and prints a table::

    mmneuro ablate layers --dataset alice --model minilm --subject all
    mmneuro ablate layers --dataset demo --model minilm --subject 1 --layers 0 3 6

Result folder (default ``results/<dataset>/sub-<label>/ablate-layers/<model>-<digest>/``, ``<label>`` =
the subject, or ``all`` for several): ``results.json`` (per layer and ROI: mean r, CI, p, q,
normalised alignment and its CI; best layer per ROI; comparisons with CIs, p and FDR q; the
baseline; ceilings), ``arrays.npz`` (per-subject ROI r, ceilings, bootstrap draws, voxel r),
``r_<layer>.nii.gz`` and ``best_layer.nii.gz`` for volumetric data (0 outside the encoded
targets: the ROIs' voxels by default, the whole brain with ``--targets all``), ``figure.png`` and
``provenance.json``.
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mmneuro import pipeline
from mmneuro.ablate import add_run_arguments
from mmneuro.analyses.layers import COMPARISONS, LayerStudy, layer_study
from mmneuro.analyses.noise_ceiling import ceiling_cache_dir
from mmneuro.datasets.base import Dataset
from mmneuro.errors import InputError
from mmneuro.provenance import Timings, provenance
from mmneuro.results import ResultFolder, result_dir, write_json

BASELINES = ("auto", "word-rate", "none")
TARGETS = ("rois", "all")


@dataclass
class LayersResult:
    """What :func:`layerwise` produced: the study, its ``results.json`` content and the folder."""

    study: LayerStudy
    summary: dict[str, Any]
    dataset: str
    model: str
    weights: dict[str, Any]
    out_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def word_rate(dataset: Dataset) -> dict[str, np.ndarray]:
    """A constant 1 per word, through the same Lanczos resampling as word-timed model features.

    Returns {run: (n_trs, 1) float32}. Raises when a run has no words file.
    """
    from mmneuro.stimuli.words import read_words

    out = {}
    for run in dataset.runs:
        if run.words is None:
            raise InputError(f"run {run.name} of dataset {dataset.name!r} has no words: use baseline='none'")
        words = read_words(run.words)
        out[run.name] = pipeline.to_tr_grid(np.ones((len(words), 1), np.float32), words.midpoints, run, dataset.tr)
    return out


def layerwise(dataset: str | Path | Dataset = "demo", subject: str | int = "all", model: str = "minilm",
              layers: Sequence[str] | None = None, weights: str | None = None,
              model_options: dict[str, Any] | None = None, window: str | None = None, baseline: str = "auto",
              targets: str = "rois", out: str | Path | None = "results", cache: Path | None = None, device: str | None = None,
              n_boot: int = 1000, block_len: int = 10, seed: int = 0, progress: bool = True,
              command: list[str] | None = None, echo: Callable[[str], None] | None = print) -> LayersResult:
    """Run the layerwise study of ``model`` on ``dataset`` for one subject or ``"all"``.

    ``baseline``: ``"word-rate"`` (a constant per word, Lanczos-resampled), ``"none"``, or
    ``"auto"`` (word rate when every run has a words file). Several subjects give across-subject
    CIs and paired t-tests; one subject gives time-block bootstrap CIs (``n_boot`` resamples of
    ``block_len`` TRs of held-out time). ``targets``: ``"rois"`` encodes the voxels inside the ROIs
    (fast; maps are 0 elsewhere), ``"all"`` every target (whole-brain maps). Features are read from /
    written to ``cache`` (default ``$MMNEURO_CACHE``). Writes the result folder under ``out`` unless
    ``out`` is None.
    """
    if baseline not in BASELINES:
        raise InputError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
    if targets not in TARGETS:
        raise InputError(f"targets must be one of {', '.join(TARGETS)}, got {targets!r}")
    timings = Timings()
    ds = dataset if isinstance(dataset, Dataset) else pipeline.load_dataset(dataset)
    subjects = pipeline.resolve_subjects(ds, subject)
    with timings("features"):
        features, weights_info = pipeline.model_features(
            model, ds, layers, weights, device=device, cache=pipeline.DEFAULT_CACHE if cache is None else cache,
            seed=seed, progress=progress, model_options=model_options, window=window)
        has_words = all(run.words is not None for run in ds.runs)
        use_rate = baseline == "word-rate" or (baseline == "auto" and has_words)
        base = word_rate(ds) if use_rate else None
    with timings("study"):
        mask = np.any(np.stack(list(ds.rois.values())), axis=0) if targets == "rois" else None
        study = layer_study(ds, features, subjects, baseline=base, n_boot=n_boot, block_len=block_len, seed=seed,
                            ceiling_cache=ceiling_cache_dir(pipeline.DEFAULT_CACHE if cache is None else cache),
                            targets=mask, progress=progress)
    label = pipeline.model_label(model, weights_info)
    summary = results_summary(study, ds, model, weights_info, "word rate" if use_rate else None)
    summary["targets"] = targets
    result = LayersResult(study, summary, ds.name, model, weights_info, timings=timings.seconds)
    if out is not None:
        config = {"study": "layers", "dataset": str(ds.root), "subjects": subjects, "model": model,
                  "layers": study.layers, "weights": weights, "model_options": _jsonable(model_options),
                  "window": window, "baseline": "word-rate" if use_rate else None, "n_boot": n_boot,
                  "block_len": block_len, "targets": targets, "delays": list(ds.delays),
                  "evaluation": ds.evaluation}
        folder = result_dir(out, (ds.name, f"sub-{subjects[0] if len(subjects) == 1 else 'all'}", "ablate-layers"),
                            label, config)
        result.out_dir = write_results(result, ds, folder, config, command, seed)
    if echo is not None:
        echo(format_study(study, f"{ds.name} {label}{' [RANDOM WEIGHTS]' if weights_info.get('is_random') else ''}"))
    return result


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def results_summary(study: LayerStudy, dataset: Dataset, model: str, weights: dict[str, Any],
                    baseline_name: str | None) -> dict[str, Any]:
    """The ``results.json`` content (plain JSON types; NaN where a number is undefined)."""
    from mmneuro.analyses.stats import fdr_correct

    table = study.table()
    p = np.stack([study.group[k].p for k in study.layers])  # (n_layers, n_rois), r != 0
    _, q = fdr_correct(p.ravel())
    q = q.reshape(p.shape)
    per_layer = {}
    for j, layer in enumerate(study.layers):
        per_layer[layer] = {roi: {"r": table["r"][j, r], "ci_low": table["ci_low"][j, r],
                                  "ci_high": table["ci_high"][j, r], "p": p[j, r], "q": q[j, r],
                                  "normalized": table["normalized"][j, r],
                                  "normalized_ci_low": table["normalized_ci_low"][j, r],
                                  "normalized_ci_high": table["normalized_ci_high"][j, r]}
                            for r, roi in enumerate(study.rois)}
    out: dict[str, Any] = {
        "study": "layers", "dataset": dataset.name, "model": model, "weights": weights,
        "random_weights": bool(weights.get("is_random")), "subjects": study.subjects,
        "n_subjects": len(study.subjects), "ci_method": study.ci_method, "ci_level": 0.95,
        "layers": study.layers, "rois": study.rois, "per_layer": per_layer,
        "best_layer": study.best_layer,
        "best": {roi: per_layer[study.best_layer[roi]][roi] | {"layer": study.best_layer[roi]} for roi in study.rois},
        "ceiling": {"method": study.ceiling_method, "min_ceiling": study.min_ceiling,
                    "roi_mean": dict(zip(study.rois, np.nanmean(study.ceiling, axis=0)))},
        "baseline": None,
        "comparisons": study.comparisons,
        "comparison_definitions": {k: v for k, v in COMPARISONS.items()},
    }
    if study.baseline_group is not None:
        g = study.baseline_group
        out["baseline"] = {"name": baseline_name, "roi": {roi: {"r": g.mean[r], "ci_low": g.ci_low[r],
                                                                "ci_high": g.ci_high[r], "p": g.p[r]}
                                                          for r, roi in enumerate(study.rois)}}
    return _floats(out)


def _floats(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_floats(v) for v in value]
    if isinstance(value, np.ndarray):
        return _floats(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_results(result: LayersResult, dataset: Dataset, folder: Path, config: dict[str, Any],
                  command: list[str] | None, seed: int) -> Path:
    """results.json, arrays.npz, maps (volumetric data), figure.png and provenance.json, atomically."""

    from mmneuro.plotting.layers import plot_layer_study

    study = result.study
    with ResultFolder(folder, "ablate-layers", config) as tmp:
        write_json(tmp / "results.json", result.summary)
        arrays = {"roi_r": study.roi_r, "ceiling": study.ceiling, "normalized": study.normalized(),
                  "voxel_r": study.voxel_r, "layers": np.array(study.layers), "rois": np.array(study.rois),
                  "subjects": np.array(study.subjects)} | study.table()
        for name in ("baseline_r", "boot_r", "boot_baseline_r"):
            if getattr(study, name) is not None:
                arrays[name] = getattr(study, name)
        np.savez_compressed(tmp / "arrays.npz", **arrays)
        if dataset.mask_img is not None:
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # targets not encoded: NaN in every subject
                mean_r = np.nanmean(study.voxel_r, axis=0)  # (n_layers, n_targets), mean over subjects
            for j, layer in enumerate(study.layers):
                pipeline.write_map(mean_r[j], dataset, tmp / f"r_{layer}")
            valid = np.isfinite(mean_r).any(axis=0)
            best = np.where(valid, np.nanargmax(np.where(np.isfinite(mean_r), mean_r, -np.inf), axis=0) + 1, 0)
            pipeline.write_map(best.astype(np.float32), dataset, tmp / "best_layer")  # 1-based layer position
        who = f"sub-{study.subjects[0]}" if len(study.subjects) == 1 else f"{len(study.subjects)} subjects"
        fig = plot_layer_study(study, f"{result.dataset} {who}: {pipeline.model_label(result.model, result.weights)} "
                                      f"layers ({study.ci_method} 95 % CI)",
                               baseline_label=(result.summary["baseline"] or {}).get("name") or "baseline")
        pipeline.write_figure_and_provenance(tmp, fig, provenance(command, config, result.weights, seed, result.timings))
    return folder


def format_study(study: LayerStudy, title: str) -> str:
    """A short table: mean r per layer and ROI (best layer marked ``*``), baseline, ceiling, and the
    intermediate-vs-first / -last differences with their FDR q."""
    rois = study.rois
    head = ["layer"] + rois
    rows = []
    for layer in study.layers:
        g = study.group[layer]
        rows.append([layer] + [f"{g.mean[r]:.3f}{'*' if study.best_layer[k] == layer else ' '}"
                               for r, k in enumerate(rois)])
    if study.baseline_group is not None:
        rows.append(["baseline"] + [f"{v:.3f} " for v in study.baseline_group.mean])
    rows.append(["ceiling"] + [f"{v:.3f} " for v in np.nanmean(study.ceiling, axis=0)])
    for name, short in (("intermediate_vs_first", "mid-first"), ("intermediate_vs_last", "mid-last")):
        if all(name in study.comparisons[k] for k in rois):
            rows.append([f"{short} (q)"] + [f"{study.comparisons[k][name]['mean_difference']:+.3f}"
                                            f"({study.comparisons[k][name]['q']:.2g})" for k in rois])
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    who = f"sub-{study.subjects[0]}" if len(study.subjects) == 1 else f"{len(study.subjects)} subjects"
    caption = f"\n{title}, {who}: held-out r per layer (* best; CIs by {study.ci_method} in results.json)"
    return "\n".join([caption, line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``mmneuro ablate layers``."""
    parser.add_argument("--dataset", default="demo", help="'demo' (data/demo), 'alice', or a dataset folder")
    parser.add_argument("--subject", default="all", help="subject label or number, or 'all' (default)")
    parser.add_argument("--model", default="minilm", help="registry name (see `mmneuro models`; default minilm)")
    parser.add_argument("--layers", nargs="+", help="layer names or indices (default: all)")
    parser.add_argument("--weights", help="HUB_ID, local folder, or 'random' (labelled in every output)")
    parser.add_argument("--window", help="'clip' or 'context:SECONDS' (default: the model's)")
    parser.add_argument("--baseline", choices=BASELINES, default="auto",
                        help="word-rate baseline: auto (when the dataset has words), word-rate, none")
    parser.add_argument("--targets", choices=TARGETS, default="rois",
                        help="encode the voxels inside the ROIs (default, fast) or all targets (whole-brain maps)")
    add_run_arguments(parser, download=False)


def run(args: argparse.Namespace) -> Path:
    """``mmneuro ablate layers``: run :func:`layerwise`, print the table, return the result folder."""
    import sys

    result = layerwise(dataset=args.dataset, subject=args.subject, model=args.model, layers=args.layers,
                       weights=args.weights, window=args.window, baseline=args.baseline, targets=args.targets,
                       out=args.out,
                       cache=args.cache, device=args.device, n_boot=args.n_boot, block_len=args.block_len,
                       seed=args.seed, progress=not args.no_progress, command=sys.argv)
    return result.out_dir
