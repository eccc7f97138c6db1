"""``mmneuro ablate``: the face of the attribution studies (one module per study).

Each module ``mmneuro.ablate.<study>`` offers a plain function for notebooks and scripts,
plus ``add_arguments(parser)`` and ``run(args) -> Path`` for the command line. The maths
lives in :mod:`mmneuro.analyses`; these modules load data, call the analyses, write a
result folder (``results.json``, arrays/maps, ``provenance.json``, a figure) and print a
short table.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from types import ModuleType

#: study name (the subcommand) -> what it answers
STUDIES = {
    "layers": "every layer of a model: per-ROI alignment with CIs, best layer per ROI",
    "remove": "remove a unimodal model's features from a multimodal model's and re-encode",
    "partition": "banded ridge over feature spaces: unique and shared variance per voxel and ROI",
    "experts": "mixture-of-experts routing, collapse index and expert-ablation interventions",
    "attention": "cross-modal attention shares, rollout, and blocking cross-modal attention",
}


def study_module(name: str) -> ModuleType:
    """The face module of study ``name`` (one of :data:`STUDIES`)."""
    if name not in STUDIES:
        raise KeyError(f"unknown study {name!r}; choose from {', '.join(STUDIES)}")
    return importlib.import_module(f"mmneuro.ablate.{name}")


def add_run_arguments(parser: argparse.ArgumentParser, *, download: bool = True) -> None:
    """The options every study shares: bootstrap, device, feature cache, output, seed, progress
    (and ``--download`` where the study loads hub weights)."""
    parser.add_argument("--n-boot", type=int, default=1000, help="block-bootstrap resamples (default 1000)")
    parser.add_argument("--block-len", type=int, default=10, help="bootstrap block length in TRs (default 10)")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--cache", type=Path, help="feature cache folder (default: $MMNEURO_CACHE or "
                                                   "~/.cache/mmneuro/features)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results folder (default: results)")
    parser.add_argument("--seed", type=int, default=0, help="random-weights seed and bootstrap seed (default 0)")
    if download:
        parser.add_argument("--download", action="store_true", help="allow fetching weights from the model hub")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
