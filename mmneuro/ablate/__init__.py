"""``mmneuro ablate``: the face of the attribution studies (one module per study).

Each module ``mmneuro.ablate.<study>`` offers a plain function for notebooks and scripts,
plus ``add_arguments(parser)`` and ``run(args) -> Path`` for the command line. The maths
lives in :mod:`mmneuro.analyses`; these modules load data, call the analyses, write a
result folder (``results.json``, arrays/maps, ``provenance.json``, a figure) and print a
short table.
"""

from __future__ import annotations

import importlib
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
