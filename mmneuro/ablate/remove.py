"""``mmneuro ablate remove``: take a unimodal model's features out of a multimodal model's, re-encode.

For each studied layer of the joint model (e.g. TVLT), its features are predicted from the
removed model's features (e.g. ``melspec``) by ridge fitted on the training runs only, the
residual is encoded like any feature space, and the drop of held-out r is tested per voxel and
per ROI with a paired block bootstrap, BH-FDR over ROIs; ROI contrasts ("the auditory ROI
loses more than the visual ROI") are tested on the same draws
(:func:`mmneuro.analyses.removal.feature_removal`).

Writes ``results/<dataset>/sub-<label>/ablate-remove/<joint>-minus-<removed>-<digest>/``:
``results.json`` (per layer and ROI: r full / residual, drop, 95 % CI, p, q; contrasts),
``arrays.npz`` (per-target r, drop, p, q of every layer), ``drop_<layer>.nii.gz`` maps (``.npy``
for ROI datasets), ``provenance.json`` and ``figure.png``.

Random weights (``weights="random"``) take the architecture from ``config``: ``"tiny"`` (the
laptop-sized presets of :data:`TINY_PRESETS`), a JSON file or JSON text of the model's config.
:class:`ModelSpec` and :func:`spec_features` are shared with ``mmneuro ablate partition``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mmneuro import pipeline
from mmneuro.ablate import add_run_arguments
from mmneuro.analyses.removal import RemovalResult, removal_by_layer
from mmneuro.analyses.targets import expand_targets, restrict_targets, roi_union
from mmneuro.datasets.base import Dataset
from mmneuro.errors import InputError
from mmneuro.models.registry import TINY_PRESETS, random_weights_options
from mmneuro.provenance import Timings, provenance
from mmneuro.results import ResultFolder, result_dir, write_json

STUDY = "remove"

@dataclass
class ModelSpec:
    """One feature source: a registered model, its weights, architecture and layers.

    ``weights``: None (the model's own), ``"random"``, a folder or a hub id. ``config`` (random
    weights only): ``"tiny"``, a JSON file, JSON text or a config object/dict. ``layers``: names
    or indices (None: the caller's default). ``options``: more adapter options.
    """

    model: str
    weights: str | None = None
    layers: Sequence[str] | None = None
    config: Any = "tiny"
    options: dict[str, Any] = field(default_factory=dict)

    def adapter_options(self) -> dict[str, Any]:
        """Options for :func:`mmneuro.models.registry.get_adapter` (``config`` resolved)."""
        return random_weights_options(self.model, self.weights, self.config, self.options)

    def record(self) -> dict[str, Any]:
        """A JSON-able description (for results and provenance)."""
        opts = {k: _jsonable(v) for k, v in self.adapter_options().items()}
        return {"model": self.model, "weights": self.weights, "layers": None if self.layers is None else list(self.layers),
                "options": opts}


def _jsonable(v: Any) -> Any:
    if hasattr(v, "to_dict"):
        return v.to_dict()
    if isinstance(v, (dict, list, str, int, float, bool)) or v is None:
        return v
    return str(v)


def as_spec(spec: ModelSpec | str) -> ModelSpec:
    """A :class:`ModelSpec` from a spec or ``"MODEL[:LAYER[,LAYER]]"`` (weights: the model's own)."""
    if isinstance(spec, ModelSpec):
        return spec
    model, _, layers = str(spec).partition(":")
    return ModelSpec(model, layers=[l for l in layers.split(",") if l] or None)


def spec_features(spec: ModelSpec, dataset: Dataset, cache: Path | None, device: str | None, seed: int,
                  progress: bool, allow_download: bool = False,
                  default_layers: str = "all") -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Features of ``spec`` on every run of ``dataset`` ({layer: {run: (n_trs, p)}}) and its weights record.

    ``default_layers`` when ``spec.layers`` is None: ``"all"`` or ``"last"``.
    """
    layers = spec.layers
    if layers is None and default_layers == "last":
        layers = ["-1"]
    opts = spec.adapter_options()
    return pipeline.model_features(spec.model, dataset, layers, spec.weights, allow_download, device, cache, seed,
                                   progress, opts)


def concat_layers(by_layer: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """{layer: {run: (n_trs, p_l)}} -> {run: (n_trs, sum p_l)} (layers side by side)."""
    runs = next(iter(by_layer.values()))
    return {run: np.concatenate([by_layer[l][run] for l in by_layer], axis=1) for run in runs}


def target_mask(dataset: Dataset, targets: str) -> np.ndarray | None:
    """``"rois"``: (n_targets,) True inside any ROI; ``"all"``: None (every target)."""
    if targets == "all":
        return None
    if targets != "rois":
        raise InputError(f"targets must be 'rois' or 'all'; got {targets!r}")
    return roi_union(dataset.rois)


# --------------------------------------------------------------------------- the study


@dataclass
class RemovalStudy:
    """What :func:`removal_study` found for one subject.

    ``results[layer]``: :class:`~mmneuro.analyses.removal.RemovalResult` on the encoded targets;
    ``keep`` (n_targets,) which targets were encoded (None: all); ``joint`` / ``removed``: the two
    model specs' records; ``weights``: {"joint": ..., "removed": ...} weights records.
    """

    dataset: str
    subject: str
    joint: dict[str, Any]
    removed: dict[str, Any]
    layers: list[str]
    removed_layers: list[str]
    results: dict[str, RemovalResult]
    weights: dict[str, dict[str, Any]]
    keep: np.ndarray | None
    contrasts: list[str]
    n_boot: int
    block_len: int
    out_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``<joint>-minus-<removed>`` with random weights spelled out."""
        return (f"{pipeline.model_label(self.joint['model'], self.weights['joint'])}-minus-"
                f"{pipeline.model_label(self.removed['model'], self.weights['removed'])}")

    def summary(self) -> dict[str, Any]:
        """The ``results.json`` content."""
        return {
            "study": STUDY, "dataset": self.dataset, "subject": self.subject,
            "joint": self.joint, "removed": self.removed, "weights": self.weights,
            "random_weights": {k: bool(w.get("is_random")) for k, w in self.weights.items()},
            "layers": self.layers, "removed_layers": self.removed_layers,
            "targets": "all" if self.keep is None else "rois", "n_targets": int(
                len(next(iter(self.results.values())).drop)),
            "test": {"kind": "paired block bootstrap of held-out r, one-sided (drop > 0)", "n_boot": self.n_boot,
                     "block_len": self.block_len, "fdr": "Benjamini-Hochberg over ROIs (and over contrasts)"},
            "by_layer": {layer: {"roi": res.roi, "contrasts": res.contrasts} for layer, res in self.results.items()},
        }


def removal_study(dataset: str | Path | Dataset = "demo", subject: str | int = 1, model: ModelSpec | str = "tvlt",
                  remove: ModelSpec | str = "melspec", targets: str = "rois",
                  contrasts: Sequence[tuple[str, str] | str] | str | None = "all",
                  out: str | Path | None = "results", cache: Path | None = pipeline.DEFAULT_CACHE,
                  device: str | None = None, delays: Sequence[int] | None = None, n_boot: int = 1000,
                  block_len: int = 10, seed: int = 0, allow_download: bool = False, progress: bool = True,
                  command: list[str] | None = None, echo: Callable[[str], None] | None = print) -> RemovalStudy:
    """Remove ``remove``'s features from each layer of ``model`` and test the drop of alignment.

    Parameters
    ----------
    dataset, subject : which data (one subject).
    model : the joint model (a :class:`ModelSpec` or ``"MODEL[:LAYER,...]"``); layers default to all.
    remove : the model whose features are removed; its layers default to the last one (several
        layers are put side by side).
    targets : ``"rois"`` (encode voxels inside the ROIs; maps NaN elsewhere) or ``"all"``.
    contrasts : ROI contrasts ``drop(A) > drop(B)``: ``"all"`` ordered pairs, pairs, ``"A>B"``, or None.
    out : results root (None: write nothing). cache : feature cache folder.
    n_boot, block_len, seed : bootstrap resamples, block length (TRs), seed (also the random-weights seed).

    Returns a :class:`RemovalStudy` (its ``out_dir`` is the result folder).
    """
    timings = Timings()
    joint, removed = as_spec(model), as_spec(remove)
    ds = dataset if isinstance(dataset, Dataset) else pipeline.load_dataset(dataset)
    [label] = _one_subject(ds, subject)
    with timings("features"):
        target_feats, w_joint = spec_features(joint, ds, cache, device, seed, progress, allow_download, "all")
        source_by_layer, w_removed = spec_features(removed, ds, cache, device, seed, progress, allow_download, "last")
    keep = target_mask(ds, targets)
    sub_ds, resp = restrict_targets(ds, ds.load_responses(label), keep)
    with timings("removal"):
        results = removal_by_layer(sub_ds, target_feats, concat_layers(source_by_layer), resp, progress=progress,
                                   delays=delays, n_boot=n_boot, block_len=block_len, seed=seed, contrasts=contrasts)
    study = RemovalStudy(ds.name, label, joint.record(), removed.record(), list(target_feats), list(source_by_layer),
                         results, {"joint": w_joint, "removed": w_removed}, keep,
                         list(next(iter(results.values())).contrasts), n_boot, block_len,
                         timings=dict(timings.seconds))
    if out is not None:
        config = {"dataset": str(ds.root), "subject": label, "joint": study.joint, "removed": study.removed,
                  "targets": targets, "contrasts": study.contrasts, "delays": list(delays or ds.delays),
                  "n_boot": n_boot, "block_len": block_len}
        folder = result_dir(out, (ds.name, f"sub-{label}", f"ablate-{STUDY}"), study.label, config)
        study.out_dir = write_study(study, ds, folder, config, command, seed)
    if echo is not None:
        echo(format_study(study))
    return study


def _one_subject(ds: Dataset, subject: str | int) -> list[str]:
    labels = pipeline.resolve_subjects(ds, subject)
    if len(labels) != 1:
        raise InputError(f"ablate {STUDY} studies one subject at a time; got {subject!r} ({len(labels)} subjects)")
    return labels


def write_study(study: RemovalStudy, dataset: Dataset, out_dir: Path, config: dict[str, Any],
                command: list[str] | None, seed: int) -> Path:
    """results.json, arrays.npz, drop maps, figure.png and provenance.json, atomically."""

    from mmneuro.plotting.removal import removal_figure

    summary = study.summary()
    with ResultFolder(out_dir, "ablate-remove", config) as tmp:
        write_json(tmp / "results.json", summary)
        arrays = {}
        for layer, res in study.results.items():
            for name in ("r_full", "r_residual", "drop", "voxel_p", "voxel_q"):
                arrays[f"{name}_{layer}"] = expand_targets(getattr(res, name), study.keep).astype(np.float32)
            pipeline.write_map(arrays[f"drop_{layer}"], dataset, tmp / f"drop_{layer}")
        np.savez_compressed(tmp / "arrays.npz", layers=np.array(study.layers), **arrays)
        fig = removal_figure(summary, f"{study.dataset} sub-{study.subject}: {study.label}")
        pipeline.write_figure_and_provenance(tmp, fig, provenance(command, config, study.weights, seed, study.timings))
    return out_dir


def format_study(study: RemovalStudy) -> str:
    """Per layer and ROI: r full -> residual, drop [95 % CI] and q; then the contrasts with q < 0.05."""
    tags = [k for k, w in study.weights.items() if w.get("is_random")]
    tag = f" [RANDOM WEIGHTS: {', '.join(tags)}]" if tags else ""
    rois = list(next(iter(study.results.values())).roi)
    lines = [f"\n{study.dataset} sub-{study.subject} {study.label}{tag}: feature removal "
             f"(removed layers {', '.join(study.removed_layers)})",
             f"{'layer':>12s} {'roi':>14s} {'r full':>7s} {'r resid':>7s} {'drop':>7s} {'95% CI':>17s} {'q':>7s}"]
    for layer, res in study.results.items():
        for k in rois:
            d = res.roi[k]
            lines.append(f"{layer:>12s} {k:>14s} {d['r_full']:7.3f} {d['r_residual']:7.3f} {d['drop']:+7.3f} "
                         f"[{d['ci_low']:+.3f},{d['ci_high']:+.3f}] {d['q']:7.3g}")
        strong = [f"{name} {c['diff']:+.3f} (q {c['q']:.2g})" for name, c in res.contrasts.items() if c["q"] < 0.05]
        if strong:
            lines.append(f"{'':>12s} contrasts q<0.05: " + "; ".join(strong))
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def add_model_arguments(parser: argparse.ArgumentParser, prefix: str, what: str, layers_help: str) -> None:
    """``--<prefix>-weights``, ``--<prefix>-config``, ``--<prefix>-layers`` (no prefix: ``--weights`` ...)."""
    p = f"--{prefix}-" if prefix else "--"
    parser.add_argument(f"{p}layers", nargs="+", default=None, help=f"{what} layers (names or indices; {layers_help})")
    parser.add_argument(f"{p}weights", default=None,
                        help=f"{what} weights: 'random' (labelled in every output), a folder or a hub id "
                             "(default: the model's own)")
    parser.add_argument(f"{p}config", default="tiny",
                        help=f"{what} architecture for random weights: 'tiny' (default; presets: "
                             f"{', '.join(TINY_PRESETS)}), a JSON file or JSON text of the model's config")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Dataset, subject, targets, output, cache, device, bootstrap and seed options."""
    parser.add_argument("--dataset", default="demo", help="'demo', 'alice' or a dataset folder (default demo)")
    parser.add_argument("--subject", default="1", help="one subject label or number (default 1)")
    parser.add_argument("--targets", choices=("rois", "all"), default="rois",
                        help="encode the voxels inside the ROIs (default) or all targets")
    parser.add_argument("--delays", nargs="+", type=int, default=None, help="FIR delays in TRs (default: the dataset's)")
    add_run_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mmneuro ablate remove``."""
    parser.add_argument("--model", default="tvlt", help="the joint (multimodal) model (default tvlt)")
    add_model_arguments(parser, "", "joint model", "default all")
    parser.add_argument("--remove", required=True, help="the model whose features are removed (e.g. melspec, vit)")
    add_model_arguments(parser, "remove", "removed model", "default its last layer; several are put side by side")
    parser.add_argument("--contrast", nargs="+", default=None, metavar="A>B",
                        help="ROI contrasts drop(A) > drop(B) to test (default: every ordered pair of ROIs)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> Path:
    """``mmneuro ablate remove``: run :func:`removal_study`, print its table, return the result folder."""
    study = removal_study(
        dataset=args.dataset, subject=args.subject,
        model=ModelSpec(args.model, args.weights, args.layers, args.config),
        remove=ModelSpec(args.remove, args.remove_weights, args.remove_layers, args.remove_config),
        targets=args.targets, contrasts=args.contrast or "all", out=args.out,
        cache=args.cache if args.cache is not None else pipeline.DEFAULT_CACHE, device=args.device,
        delays=args.delays, n_boot=args.n_boot, block_len=args.block_len, seed=args.seed,
        allow_download=args.download, progress=not args.no_progress, command=sys.argv)
    return study.out_dir
