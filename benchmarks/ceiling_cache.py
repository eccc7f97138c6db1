"""Noise-ceiling cache: time of a first (computing) and a second (cached) call, and the ratio.

Synthetic data of a realistic size (default 40 subjects x 293 regions x 1000 TRs, one run
evaluated by 2 contiguous folds, as Alice is): a shared signal plus subject noise. For each
method the first call computes, hashes the responses and writes ``<method>-<sha256>.npz``;
the second hashes the responses and reads the file (the plain, uncached time is
printed too where computing takes under 10 s). ``--alice`` also prints, per ROI of the
real Alice data, the group mean of the ridge ceiling and of the leave-one-out ISC.

    python benchmarks/ceiling_cache.py [--subjects 40 --targets 293 --trs 1000] [--alice]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from mmneuro.analyses.noise_ceiling import noise_ceilings
from mmneuro.datasets.base import Dataset, Responses, StimulusRun


def synthetic(n_subjects: int, n_targets: int, n_trs: int, seed: int = 0) -> tuple[Dataset, list[Responses]]:
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((n_trs, n_targets)) * rng.uniform(0.1, 1.0, n_targets)
    everyone = [Responses(f"{i:02d}", {"story": (signal + rng.standard_normal((n_trs, n_targets)))[None]
                                       .astype(np.float32)}) for i in range(n_subjects)]
    run = StimulusRun("story", (np.arange(n_trs) + 0.5) * 2.0)
    ds = Dataset(name="bench", root=Path("."), tr=2.0, runs=[run], subjects=[o.subject for o in everyone],
                 rois={"all": np.ones(n_targets, bool)}, load_responses=None, evaluation="contiguous-folds",
                 eval_folds=2)
    return ds, everyone


def bench(ds: Dataset, everyone: list[Responses], method: str) -> None:
    ds.ceiling = method
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        first = noise_ceilings(ds, everyone, cache=folder)
        t1 = time.perf_counter()
        second = noise_ceilings(ds, everyone, cache=folder)
        t2 = time.perf_counter()
        same = all(np.array_equal(first[s].r, second[s].r, equal_nan=True) for s in first)
        size = sum(p.stat().st_size for p in Path(folder).iterdir()) / 1e6
    if t1 - t0 < 10:  # the cost of hashing and writing, where computing is cheap
        t3 = time.perf_counter()
        noise_ceilings(ds, everyone)
        plain = f"{time.perf_counter() - t3:8.3f} s"
    else:
        plain = "  (skipped)"
    print(f"{method:8s} no cache {plain}   first (compute + write) {t1 - t0:8.3f} s   "
          f"second (cached) {t2 - t1:7.3f} s   ratio first/second {(t1 - t0) / (t2 - t1):7.1f}x   "
          f"identical {same}   file {size:.1f} MB")


def alice() -> None:
    from mmneuro.datasets.alice import load_alice

    ds = load_alice()
    everyone = [ds.load_responses(s) for s in ds.subjects]
    rois = list(ds.rois)
    table = {}
    for method in ("ridge", "loo-isc"):
        ds.ceiling = method
        out = noise_ceilings(ds, everyone)
        table[method] = np.array([[out[o.subject].roi_means(ds.rois)[k] for k in rois] for o in everyone])
    print(f"\nAlice ({len(everyone)} subjects, evaluation {ds.evaluation}, {ds.eval_folds} folds): "
          f"group mean ceiling per ROI")
    print(f"{'ROI':8s} {'ridge':>7s} {'loo-isc':>8s} {'diff':>7s}   (per-subject mean |diff|)")
    for j, k in enumerate(rois):
        ridge, isc = table["ridge"][:, j], table["loo-isc"][:, j]
        print(f"{k:8s} {np.nanmean(ridge):7.3f} {np.nanmean(isc):8.3f} {np.nanmean(isc - ridge):+7.3f}   "
              f"{np.nanmean(np.abs(isc - ridge)):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=40)
    ap.add_argument("--targets", type=int, default=293)
    ap.add_argument("--trs", type=int, default=1000)
    ap.add_argument("--methods", default="ridge,loo-isc")
    ap.add_argument("--alice", action="store_true", help="also compare ridge and LOO-ISC ceilings on Alice")
    args = ap.parse_args()
    ds, everyone = synthetic(args.subjects, args.targets, args.trs)
    print(f"{args.subjects} subjects x {args.targets} targets x {args.trs} TRs "
          f"({sum(o.runs['story'].nbytes for o in everyone) / 1e6:.0f} MB of float32 responses hashed per call)")
    for method in args.methods.split(","):
        bench(ds, everyone, method)
    if args.alice:
        alice()


if __name__ == "__main__":
    main()
