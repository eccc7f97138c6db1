"""A ROI time-series study at the size that exposed the old recipe: 40 subjects x 293 regions, TR 0.8 s,
one run, an events TSV; prints the time of `encode --subject all` with and without writing results.

    python benchmarks/roi_study.py [--subjects 40 --regions 293 --trs 1000]

The writing time is the cost of the per-subject result folders and the group folder (scores,
maps, figures, provenance); with many targets the figures draw the best regions only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from mmneuro import pipeline


def write_study(root: Path, n_subjects: int, n_regions: int, n_trs: int, tr: float = 0.8) -> None:
    rng = np.random.default_rng(0)
    onsets = np.sort(rng.uniform(2, n_trs * tr - 10, n_trs // 6))
    types = rng.choice(["face", "place", "speech", "tool"], onsets.size)
    lines = ["onset\tduration\ttrial_type"] + [f"{o:.3f}\t{rng.uniform(0.5, 3):.3f}\t{k}" for o, k in zip(onsets, types)]
    (root / "events.tsv").write_text("\n".join(lines) + "\n")
    (root / "regions.txt").write_text("\n".join(f"region-{j:03d}" for j in range(n_regions)) + "\n")
    for s in range(1, n_subjects + 1):
        np.save(root / f"sub-{s:02d}_regions.npy", (100 + rng.standard_normal((n_trs, n_regions))).astype(np.float32))
    (root / "mmneuro.toml").write_text(
        f'name = "roi-bench"\ntr = {tr}\n[[runs]]\nname = "movie"\nevents = "events.tsv"\n'
        'responses = ["sub-{subject}_regions.npy"]\n[targets]\nkind = "parcels"\nnames_file = "regions.txt"\n'
        '[evaluation]\nscheme = "contiguous-folds"\nfolds = 2\n')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=40)
    parser.add_argument("--regions", type=int, default=293)
    parser.add_argument("--trs", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "study"
        root.mkdir()
        write_study(root, args.subjects, args.regions, args.trs)
        cache = Path(tmp) / "cache"
        times = {}
        for label, out in (("no output", None), ("with result folders", Path(tmp) / "out")):
            t0 = time.perf_counter()
            pipeline.encode("events-hrf", subject="all", dataset=root, out=out, cache=cache, progress=False, echo=None)
            times[label] = time.perf_counter() - t0
        print(f"{args.subjects} subjects x {args.regions} regions x {args.trs} TRs, encode --subject all (ceilings cached "
              f"after the first call):")
        for label, seconds in times.items():
            print(f"  {label:22s} {seconds:6.1f} s")
        print(f"  writing {args.subjects + 1} result folders: {times['with result folders'] - times['no output']:.1f} s")


if __name__ == "__main__":
    main()
