"""``mmneuro ablate partition``: unique and shared variance of 2-3 feature spaces, per voxel and ROI.

Every subset of the spaces is fitted with himalaya's banded ridge and scored on held-out data
(:func:`mmneuro.analyses.partition.variance_partition`); the ROI means get block-bootstrap CIs,
p-values and "dominance" contrasts ``unique(A) - unique(B)`` (BH-FDR;
:func:`~mmneuro.analyses.partition.partition_test`). With a joint model (``joint=``, e.g. TVLT),
each space's features are also removed from the joint model's features
(:func:`mmneuro.analyses.removal.feature_removal`) and the two answers are set side by side per
ROI (:func:`~mmneuro.analyses.partition.compare_with_removal`).

Writes ``results/<dataset>/sub-<label>/ablate-partition/<spaces label>-<digest>/``: ``results.json``,
``arrays.npz`` (per-target R² of every subset, unique, shared, split), ``unique_<space>`` and
``shared`` maps (NIfTI; ``.npy`` for ROI datasets), ``provenance.json`` and ``figure.png``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mmneuro import pipeline
from mmneuro.ablate.remove import (
    ModelSpec,
    add_common_arguments,
    add_model_arguments,
    as_spec,
    concat_layers,
    spec_features,
    target_mask,
)
from mmneuro.analyses.partition import (
    PartitionResult,
    compare_with_removal,
    partition_test,
    variance_partition,
)
from mmneuro.analyses.removal import RemovalResult, feature_removal
from mmneuro.analyses.targets import expand_targets, restrict_targets
from mmneuro.datasets.base import Dataset
from mmneuro.errors import InputError
from mmneuro.provenance import Timings, provenance
from mmneuro.results import ResultFolder, result_dir, write_json

STUDY = "partition"


@dataclass
class PartitionStudy:
    """What :func:`partition_study` found for one subject.

    ``partition``: :class:`~mmneuro.analyses.partition.PartitionResult` on the encoded targets;
    ``stats``: :func:`~mmneuro.analyses.partition.partition_test` output; ``removal``: {space:
    :class:`~mmneuro.analyses.removal.RemovalResult`} when a joint model was given, with
    ``comparison`` (:func:`~mmneuro.analyses.partition.compare_with_removal`).
    """

    dataset: str
    subject: str
    spaces: dict[str, dict[str, Any]]
    layers: dict[str, list[str]]
    partition: PartitionResult
    stats: dict[str, Any]
    weights: dict[str, dict[str, Any]]
    keep: np.ndarray | None
    joint: dict[str, Any] | None = None
    joint_layer: str | None = None
    removal: dict[str, RemovalResult] = field(default_factory=dict)
    comparison: dict[str, Any] | None = None
    out_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``<space>-<model>+...`` with random weights spelled out."""
        return "+".join(f"{k}-{pipeline.model_label(v['model'], self.weights[k])}" for k, v in self.spaces.items())

    def summary(self) -> dict[str, Any]:
        """The ``results.json`` content."""
        p = self.partition
        out = {
            "study": STUDY, "dataset": self.dataset, "subject": self.subject,
            "spaces": self.spaces, "layers": self.layers, "weights": self.weights,
            "random_weights": {k: bool(w.get("is_random")) for k, w in self.weights.items()},
            "targets": "all" if self.keep is None else "rois", "n_targets": int(len(p.shared)),
            "formulas": {"unique(S)": "R2(all spaces) - R2(all spaces except S)",
                         "shared": "inclusion-exclusion over the R2 of every subset (the part common to all)"},
            "roi": p.roi,
            "stats": self.stats,
            "removal": None, "comparison": self.comparison,
        }
        if self.removal:
            out["removal"] = {"joint": self.joint, "layer": self.joint_layer,
                              "by_space": {k: r.roi for k, r in self.removal.items()},
                              "contrasts": {k: r.contrasts for k, r in self.removal.items()}}
        return out


def partition_study(dataset: str | Path | Dataset = "demo", subject: str | int = 1,
                    spaces: dict[str, ModelSpec | str] | None = None, joint: ModelSpec | str | None = None,
                    targets: str = "rois", out: str | Path | None = "results",
                    cache: Path | None = pipeline.DEFAULT_CACHE, device: str | None = None,
                    delays: Sequence[int] | None = None, n_iter: int = 20, n_boot: int = 1000, block_len: int = 10,
                    seed: int = 0, allow_download: bool = False, progress: bool = True,
                    command: list[str] | None = None, echo: Callable[[str], None] | None = print) -> PartitionStudy:
    """Partition held-out variance among ``spaces`` and (with ``joint``) compare with feature removal.

    Parameters
    ----------
    dataset, subject : which data (one subject).
    spaces : {name: :class:`ModelSpec` or ``"MODEL[:LAYER,...]"``}, 2 or 3 spaces (default
        ``{"audio": "melspec", "visual": "vit"}``); a space's layers default to the model's last
        (several layers are put side by side).
    joint : a joint model whose features each space is removed from (one layer, default its last).
    targets : ``"rois"`` (voxels inside the ROIs; maps NaN elsewhere) or ``"all"``.
    n_iter : random-search iterations of the banded ridge. n_boot, block_len, seed : bootstrap settings
        (the seed is also the random-weights seed).

    Returns a :class:`PartitionStudy` (its ``out_dir`` is the result folder).
    """
    timings = Timings()
    specs = {k: as_spec(v) for k, v in (spaces or {"audio": "melspec", "visual": "vit"}).items()}
    if not 2 <= len(specs) <= 3:
        raise InputError(f"variance partitioning takes 2 or 3 feature spaces, got {len(specs)}: {list(specs)}")
    joint_spec = None if joint is None else as_spec(joint)
    ds = dataset if isinstance(dataset, Dataset) else pipeline.load_dataset(dataset)
    labels = pipeline.resolve_subjects(ds, subject)
    if len(labels) != 1:
        raise InputError(f"ablate {STUDY} studies one subject at a time; got {subject!r} ({len(labels)} subjects)")
    label = labels[0]
    feats, weights, layers = {}, {}, {}
    with timings("features"):
        for name, spec in specs.items():
            by_layer, weights[name] = spec_features(spec, ds, cache, device, seed, progress, allow_download, "last")
            feats[name], layers[name] = concat_layers(by_layer), list(by_layer)
        if joint_spec is not None:
            joint_by_layer, w_joint = spec_features(joint_spec, ds, cache, device, seed, progress, allow_download,
                                                    "last")
            if len(joint_by_layer) != 1:
                raise InputError(f"joint model {joint_spec.model}: give one layer (got {list(joint_by_layer)})")
    keep = target_mask(ds, targets)
    sub_ds, resp = restrict_targets(ds, ds.load_responses(label), keep)
    with timings("partition"):
        part = variance_partition(sub_ds, feats, resp, delays, n_iter=n_iter, seed=seed)
        stats = partition_test(part, sub_ds.rois, n_boot, block_len, seed)
    study = PartitionStudy(ds.name, label, {k: s.record() for k, s in specs.items()}, layers, part, stats, weights,
                           keep, timings={})
    if joint_spec is not None:
        [(joint_layer, joint_feats)] = joint_by_layer.items()
        with timings("removal"):
            study.removal = {k: feature_removal(sub_ds, joint_feats, feats[k], resp, delays, n_boot, block_len, seed,
                                                contrasts="all") for k in specs}
        study.joint, study.joint_layer = joint_spec.record(), joint_layer
        study.weights["joint"] = w_joint
        study.comparison = compare_with_removal(part.roi, {k: r.roi for k, r in study.removal.items()})
    study.timings = dict(timings.seconds)
    if out is not None:
        config = {"dataset": str(ds.root), "subject": label, "spaces": study.spaces, "joint": study.joint,
                  "targets": targets, "delays": list(delays or ds.delays), "n_iter": n_iter, "n_boot": n_boot,
                  "block_len": block_len}
        folder = result_dir(out, (ds.name, f"sub-{label}", f"ablate-{STUDY}"), study.label, config)
        study.out_dir = write_study(study, ds, folder, config, command, seed)
    if echo is not None:
        echo(format_study(study))
    return study


def write_study(study: PartitionStudy, dataset: Dataset, out_dir: Path, config: dict[str, Any],
                command: list[str] | None, seed: int) -> Path:
    """results.json, arrays.npz, unique/shared maps, figure.png and provenance.json, atomically."""

    from mmneuro.plotting.removal import partition_figure

    summary = study.summary()
    p = study.partition
    with ResultFolder(out_dir, "ablate-partition", config) as tmp:
        write_json(tmp / "results.json", summary)
        arrays = {f"r2_{'+'.join(s)}": p.r2[s] for s in p.r2}
        arrays.update({f"unique_{k}": v for k, v in p.unique.items()})
        arrays.update({f"split_{k}": v for k, v in p.split.items()})
        arrays["shared"] = p.shared
        arrays.update({f"drop_{k}": r.drop for k, r in study.removal.items()})
        arrays = {k: expand_targets(v, study.keep).astype(np.float32) for k, v in arrays.items()}
        for k in list(p.unique) + ["shared"]:
            name = k if k == "shared" else f"unique_{k}"
            pipeline.write_map(arrays[name], dataset, tmp / name)
        np.savez_compressed(tmp / "arrays.npz", spaces=np.array(p.spaces), **arrays)
        fig = partition_figure(summary, f"{study.dataset} sub-{study.subject}: {study.label}")
        pipeline.write_figure_and_provenance(tmp, fig, provenance(command, config, study.weights, seed, study.timings))
    return out_dir


def format_study(study: PartitionStudy) -> str:
    """Per ROI: R² of all spaces, unique R² per space [95 % CI], shared; removal drops when present."""
    tags = [k for k, w in study.weights.items() if w.get("is_random")]
    tag = f" [RANDOM WEIGHTS: {', '.join(tags)}]" if tags else ""
    names = list(study.spaces)
    roi_stats = study.stats["roi"]
    lines = [f"\n{study.dataset} sub-{study.subject} {study.label}{tag}: variance partitioning (held-out R²)",
             f"{'roi':>14s} {'R2 all':>7s} " + " ".join(f"{'unique ' + k:>26s}" for k in names) + f" {'shared':>7s}"]
    for roi, st in roi_stats.items():
        cells = [f"{st[f'unique_{k}']['value']:+.3f} [{st[f'unique_{k}']['ci_low']:+.3f},"
                 f"{st[f'unique_{k}']['ci_high']:+.3f}]" for k in names]
        lines.append(f"{roi:>14s} {study.partition.roi['r2_all'][roi]:7.3f} " + " ".join(f"{c:>26s}" for c in cells)
                     + f" {st['shared']['value']:+7.3f}")
    if study.comparison:
        lines.append(f"feature removal from {study.joint['model']} ({study.joint_layer}): drop of r (q); "
                     "largest unique part vs largest drop")
        for roi, c in study.comparison.items():
            drops = ", ".join(f"{k} {c['drop'][k]:+.3f} ({c['drop_q'][k]:.2g})" for k in c["drop"])
            lines.append(f"{roi:>14s} {drops}; partition: {c['partition_top']}, removal: {c['removal_top']}"
                         f"{'' if c['agree'] else '  (DISAGREE)'}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def _pairs(items: Sequence[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise InputError(f"{what} {item!r}: expected NAME=VALUE")
        out[name] = value
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mmneuro ablate partition``."""
    parser.add_argument("--space", action="append", default=None, metavar="NAME=MODEL[:LAYER,...]",
                        help="a feature space (2 or 3; default audio=melspec visual=vit); layers default to the "
                             "model's last")
    parser.add_argument("--space-weights", action="append", default=None, metavar="NAME=WEIGHTS",
                        help="weights of a space's model: 'random' (labelled in every output), a folder or a hub id")
    parser.add_argument("--space-config", action="append", default=None, metavar="NAME=CONFIG",
                        help="architecture of a space's random weights: 'tiny' (default), a JSON file or JSON text")
    parser.add_argument("--joint", default=None, metavar="MODEL[:LAYER]",
                        help="also remove each space from this joint model's features (one layer, default its "
                             "last) and compare with the partition")
    add_model_arguments(parser, "joint", "joint model", "overrides the layer of --joint")
    parser.add_argument("--n-iter", type=int, default=20, help="banded-ridge random-search iterations (default 20)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> Path:
    """``mmneuro ablate partition``: run :func:`partition_study`, print its table, return the result folder."""
    spaces = _pairs(args.space or ["audio=melspec", "visual=vit"], "--space")
    weights, configs = _pairs(args.space_weights, "--space-weights"), _pairs(args.space_config, "--space-config")
    for name in list(weights) + list(configs):
        if name not in spaces:
            raise InputError(f"--space-weights/--space-config name {name!r} is not a space ({', '.join(spaces)})")
    specs = {}
    for name, text in spaces.items():
        base = as_spec(text)
        specs[name] = ModelSpec(base.model, weights.get(name), base.layers, configs.get(name, "tiny"))
    joint = None
    if args.joint:
        base = as_spec(args.joint)
        joint = ModelSpec(base.model, args.joint_weights, args.joint_layers or base.layers, args.joint_config)
    study = partition_study(
        dataset=args.dataset, subject=args.subject, spaces=specs, joint=joint, targets=args.targets, out=args.out,
        cache=args.cache if args.cache is not None else pipeline.DEFAULT_CACHE, device=args.device,
        delays=args.delays, n_iter=args.n_iter, n_boot=args.n_boot, block_len=args.block_len, seed=args.seed,
        allow_download=args.download, progress=not args.no_progress, command=sys.argv)
    return study.out_dir
