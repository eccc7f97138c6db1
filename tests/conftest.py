"""Shared fixtures: one demo dataset and one feature cache per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The embedded demo dataset, generated once (seed 0) into a session folder."""
    from mmneuro.datasets.demo import generate_demo

    root = tmp_path_factory.mktemp("data") / "demo"
    generate_demo(root, seed=0)
    return root


@pytest.fixture(scope="session")
def demo(demo_root):
    from mmneuro.datasets.demo import load_demo

    return load_demo(demo_root)


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def alice_root() -> Path:
    """The real Alice data (read from ../shared or $MMNEURO_ALICE, never copied into the repo)."""
    from mmneuro.datasets.alice import resolve_alice_root
    from mmneuro.errors import InputError

    try:
        return resolve_alice_root()
    except InputError as err:
        pytest.skip(f"real Alice data absent: {err}")
