"""Compare several feature spaces (e.g. unimodal vs multimodal models) on the same subject, per ROI.

Each feature space is encoded with the same held-out scheme (:func:`~mmneuro.analyses.heldout.fit_evaluate`);
per ROI the mean held-out r gets a block-bootstrap confidence interval over time, and a reference
space (e.g. the multimodal model) is compared with each other space by the paired block bootstrap
of :func:`~mmneuro.analyses.removal.paired_drop_test` (the same time blocks for both predictions).

Shapes: features ``{run: (n_trs, p)}`` per space; held-out responses and predictions ``(n_scored, n_targets)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mmneuro.analyses.heldout import fit_evaluate, heldout_responses
from mmneuro.analyses.removal import paired_drop_test
from mmneuro.analyses.stats import block_resample, fdr_correct
from mmneuro.analyses.targets import roi_union
from mmneuro.datasets.base import Dataset, Responses
from mmneuro.encoding.metrics import pearson_r
from mmneuro.errors import InputError


def roi_r_ci(Y: np.ndarray, P: np.ndarray, rois: dict[str, np.ndarray], n_boot: int = 1000, block_len: int = 10,
             ci: float = 0.95, seed: int = 0) -> dict[str, dict[str, float]]:
    """ROI-mean Pearson r of ``P`` against ``Y`` (n_samples, n_targets) with a block-bootstrap interval.

    Returns ``{roi: {"r", "ci_low", "ci_high"}}``; the same resampled time blocks serve every ROI.
    """
    if Y.shape != P.shape:
        raise InputError(f"responses {Y.shape} and predictions {P.shape} differ in shape")
    n = Y.shape[0]
    if not 1 <= block_len <= n // 2:
        raise InputError(f"block_len must be in 1..{n // 2} for {n} samples, got {block_len}")
    names = list(rois)
    masks = [np.asarray(rois[k], bool) for k in names]
    cols = np.flatnonzero(np.any(np.stack(masks), axis=0))
    Yc, Pc = Y[:, cols], P[:, cols]
    sub = [m[cols] for m in masks]

    def means(idx) -> list[float]:
        r = pearson_r(Yc[idx], Pc[idx])
        return [float(np.nanmean(r[m])) for m in sub]

    observed = means(slice(None))
    rng = np.random.default_rng(seed)
    boot = np.array([means(block_resample(rng, n, block_len)) for _ in range(n_boot)])
    tail = (1 - ci) / 2
    return {k: {"r": observed[j], "ci_low": float(np.nanquantile(boot[:, j], tail)),
                "ci_high": float(np.nanquantile(boot[:, j], 1 - tail))} for j, k in enumerate(names)}


@dataclass
class ModelComparison:
    """Per-ROI alignment of several feature spaces for one subject.

    ``roi[space][roi]``: ``r`` (ROI-mean held-out r), ``ci_low``, ``ci_high``; ``r[space]``:
    (n_targets,) held-out r (NaN for targets not fitted); ``paired[other][roi]``: reference minus
    ``other``: ``difference`` (= ``drop`` of :func:`paired_drop_test`), CI, one-sided ``p``
    (reference > other) and ``q`` (BH-FDR over every other x ROI).
    """

    spaces: list[str]
    rois: list[str]
    reference: str | None
    roi: dict[str, dict[str, dict[str, float]]]
    r: dict[str, np.ndarray]
    paired: dict[str, dict[str, dict[str, float]]]

    def as_dict(self) -> dict:
        """JSON-able content: spaces, ROIs, reference, per-ROI r with CIs and the paired tests."""
        return {"spaces": self.spaces, "rois": self.rois, "reference": self.reference, "roi": self.roi,
                "paired_reference_minus_other": self.paired}

    def table(self) -> str:
        """A text table: one row per space, ``r [low, high]`` per ROI; then ``ref - <space>`` rows (q)."""
        head = f"{'space':>22} " + " ".join(f"{k:>22}" for k in self.rois)
        rows = [head]
        for s in self.spaces:
            rows.append(f"{s:>22} " + " ".join(
                f"{self.roi[s][k]['r']:+.3f} [{self.roi[s][k]['ci_low']:+.3f},{self.roi[s][k]['ci_high']:+.3f}]"
                .rjust(22) for k in self.rois))
        for other, per in self.paired.items():
            rows.append(f"{('ref - ' + other)[:22]:>22} " + " ".join(
                f"{per[k]['difference']:+.3f} (q {per[k]['q']:.2g})".rjust(22) for k in self.rois))
        return "\n".join(rows)


def compare_models(dataset: Dataset, responses: Responses, features: dict[str, dict[str, np.ndarray]],
                   reference: str | None = None, targets: np.ndarray | None = None,
                   delays: Sequence[int] | None = None, n_boot: int = 1000, block_len: int = 10,
                   seed: int = 0) -> ModelComparison:
    """Encode every feature space of ``features`` ({space: {run: (n_trs, p)}}) and compare them per ROI.

    ``reference``: the space compared with every other (e.g. the multimodal model); ``targets``:
    optional (n_targets,) bool mask of the response columns to fit (e.g. the ROI voxels).
    """
    spaces = list(features)
    if not spaces:
        raise InputError("compare_models needs at least one feature space")
    if reference is not None and reference not in features:
        raise InputError(f"reference {reference!r} is not one of the feature spaces {spaces}")
    keep = np.ones(responses.n_targets, bool) if targets is None else np.asarray(targets, bool)
    if keep.shape != (responses.n_targets,):
        raise InputError(f"targets must be a ({responses.n_targets},) mask, got {keep.shape}")
    sub = Responses(responses.subject, {k: v[..., keep] for k, v in responses.runs.items()},
                    None if responses.valid is None else responses.valid[keep])
    rois = {k: m[keep] for k, m in dataset.rois.items() if m[keep].any()}
    Y = heldout_responses(dataset, sub)
    preds, r_all, roi = {}, {}, {}
    for s in spaces:
        fit = fit_evaluate(dataset, features[s], sub, delays, keep_predictions=True)
        preds[s] = fit.prediction
        full = np.full(keep.shape, np.nan)
        full[keep] = fit.r
        r_all[s] = full
        roi[s] = roi_r_ci(Y, fit.prediction, rois, n_boot, block_len, seed=seed)
    paired: dict[str, dict[str, dict[str, float]]] = {}
    if reference is not None:
        cols = np.flatnonzero(roi_union(rois))  # the tests only need ROI columns
        for other in spaces:
            if other == reference:
                continue
            test = paired_drop_test(Y[:, cols], preds[reference][:, cols], preds[other][:, cols],
                                    {k: m[cols] for k, m in rois.items()}, n_boot, block_len, seed)["roi"]
            paired[other] = {k: {"difference": v["drop"], "ci_low": v["ci_low"], "ci_high": v["ci_high"],
                                 "p": v["p"]} for k, v in test.items()}
        keys = [(o, k) for o in paired for k in paired[o]]
        _, q = fdr_correct(np.array([paired[o][k]["p"] for o, k in keys]))
        for (o, k), qv in zip(keys, q):
            paired[o][k]["q"] = float(qv)
    return ModelComparison(spaces, list(rois), reference, roi, r_all, paired)
