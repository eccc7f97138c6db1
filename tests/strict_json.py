"""Strict JSON for tests: bare NaN / Infinity (invalid JSON that Python's parser accepts) fail the test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _refuse(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def read_json(path: str | Path) -> Any:
    """Parse a JSON file as a strict parser would (no NaN, Infinity or -Infinity)."""
    return json.loads(Path(path).read_text(), parse_constant=_refuse)
