"""Features computed elsewhere, brought in as if a model had produced them.

Format: one ``.npz`` file per stimulus run, holding

- ``times``: (n,) float seconds on the stimulus clock, one per row;
- one array per layer, named by the layer: (n, p) floats (a 1-D (n,) array is one
  feature, read as (n, 1));
- optionally ``pooling``: a string (0-d array) recorded with every layer
  (default ``"precomputed"``).

Write one with ``numpy.savez(path, times=times, layer_a=A, layer_b=B)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmneuro.errors import InputError
from mmneuro.models.base import TimedFeatures

RESERVED = ("times", "pooling")


def load_precomputed(path: str | Path, layers: list[str] | None = None, model: str = "precomputed") -> dict[str, TimedFeatures]:
    """Read a precomputed-features ``.npz`` -> layer -> :class:`TimedFeatures`.

    Raises InputError naming the file and the numbers when ``times`` is missing or not
    finite, a layer's length differs from ``times``, or values are not finite.
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"{path}: precomputed features must be an .npz file with a 'times' array and one array per layer")
    if not path.is_file():
        raise InputError(f"{path}: precomputed features file not found")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:
        raise InputError(f"{path}: cannot read as .npz ({e})") from e
    with z:
        return _read_members(path, z, layers, model)


def _member(path: Path, z, name: str) -> np.ndarray:
    """One array of the archive; a damaged or non-numeric member -> InputError naming it."""
    try:
        a = np.asarray(z[name])
    except Exception as e:  # BadZipFile, a CRC error, a pickled object refused, a truncated member
        raise InputError(f"{path}: array {name!r} cannot be read ({type(e).__name__}); write the file again "
                         "with numpy.savez") from e
    if name != "pooling" and a.dtype.kind not in "biuf":  # bool, integers, floats; complex and text refused
        raise InputError(f"{path}: array {name!r} is not real numbers (dtype {a.dtype})")
    return a


def _read_members(path: Path, z, layers: list[str] | None, model: str) -> dict[str, TimedFeatures]:
    if "times" not in z.files:
        raise InputError(f"{path}: no 'times' array (found {sorted(z.files)})")
    times = _member(path, z, "times").astype(np.float64)
    if times.ndim != 1:
        raise InputError(f"{path}: 'times' must be 1-D; got shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise InputError(f"{path}: 'times' has {int((~np.isfinite(times)).sum())} non-finite values")
    pooling = str(_member(path, z, "pooling")) if "pooling" in z.files else "precomputed"
    names = [k for k in z.files if k not in RESERVED]
    if not names:
        raise InputError(f"{path}: no layer arrays besides 'times'")
    if layers is not None:
        missing = [l for l in layers if l not in names]
        if missing:
            raise InputError(f"{path}: layers {missing} not found; the file has {sorted(names)}")
        names = list(layers)
    out = {}
    for name in names:
        a = _member(path, z, name)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise InputError(f"{path}: layer {name!r} must be (n, p); got shape {a.shape}")
        if a.shape[0] != times.shape[0]:
            raise InputError(
                f"{path}: layer {name!r} has {a.shape[0]} rows but 'times' has {times.shape[0]} entries"
            )
        bad = ~np.isfinite(a)
        if bad.any():
            raise InputError(f"{path}: layer {name!r} has {int(bad.sum())} non-finite values")
        out[name] = TimedFeatures(data=a.astype(np.float32), times=times.copy(), pooling=pooling, layer=name, model=model)
    return out
