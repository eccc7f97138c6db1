"""Where a dataset named on the command line is: a description file, a folder holding one, or a known name.

Every dataset is read through its description (:func:`mmneuro.datasets.described.load_described`);
this module only finds it. Known names are descriptions that ship with mmneuro for data
folders that cannot hold one (read-only shared copies), plus ``demo``, the generated demo
folder (``$MMNEURO_DEMO`` or ``data/demo``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from mmneuro.datasets.base import Dataset
from mmneuro.datasets.description import FILENAME
from mmneuro.errors import InputError


def _alice(resolution: str) -> Callable[[Path | None], Dataset]:
    def load(root: Path | None = None) -> Dataset:
        from mmneuro.datasets.alice import load_alice

        return load_alice(root, resolution=resolution)

    return load


def _is_alice(path: Path) -> bool:
    return (path / "fmri" / "6mm").is_dir() and (path / "stimulus").is_dir()


#: Packaged descriptions, by name; each finds its own (read-only) data folder when given none.
KNOWN: dict[str, Callable[[Path | None], Dataset]] = {"alice": _alice("6mm"), "alice-10mm": _alice("10mm")}
#: Read-only folders recognised by their layout, read with a packaged description.
LAYOUTS: list[tuple[Callable[[Path], bool], Callable[[Path | None], Dataset]]] = [(_is_alice, KNOWN["alice"])]


def demo_folder(ensure: bool = False) -> Path:
    """The demo dataset folder: ``$MMNEURO_DEMO`` or ``data/demo``. With ``ensure``, the demo is generated
    there (seed 0, about half a minute) when the folder holds no description yet, replacing a demo written
    by an older mmneuro."""
    root = Path(os.environ.get("MMNEURO_DEMO", "data/demo"))
    if ensure and not (root / FILENAME).is_file():
        from mmneuro.datasets.demo import generate_demo

        print(f"generating the demo dataset into {root} (seed 0)")
        generate_demo(root, seed=0, overwrite=True)
    return root


def is_dataset(path: Path) -> bool:
    """Whether ``path`` is a dataset description or a folder holding one."""
    return (path.is_file() and path.suffix == ".toml") or (path / FILENAME).is_file()


def open_dataset(spec: str | Path | Dataset) -> Dataset:
    """The dataset ``spec`` names: a :class:`Dataset`, ``"demo"``, a known name, a folder or a ``.toml`` file."""
    from mmneuro.datasets.described import load_described

    if isinstance(spec, Dataset):
        return spec
    text = str(spec)
    if text in KNOWN:
        return KNOWN[text](None)
    path = demo_folder() if text == "demo" else Path(text)
    if is_dataset(path):
        return load_described(path)
    if text == "demo":
        raise InputError(f"no demo dataset in {path}; run `mmneuro datasets demo --out {path}` (or set $MMNEURO_DEMO)")
    if not path.exists():
        raise InputError(f"dataset {text!r} is not a known name ({', '.join(['demo', *KNOWN])}), a folder or a "
                         f"description file")
    for matches, load in LAYOUTS:
        if path.is_dir() and matches(path):
            return load(path)
    if (path / "dataset_description.json").is_file() and (path / "ground_truth").is_dir():
        raise InputError(f"{path} holds a demo written by an older mmneuro (no {FILENAME}); regenerate it with "
                         f"`mmneuro datasets demo --out {path} --overwrite`")
    raise InputError(f"{path} has no dataset description ({FILENAME}); run `mmneuro datasets init {path}` to scan "
                     f"it and write one, then `mmneuro datasets check {path}`")
