"""Short tables of many targets: the top k, never one line per target.

A result over 1,000 parcels or 20,484 vertices prints its ``k`` best targets and one line
saying how many were left out (and how many were NaN).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mmneuro.errors import InputError


def _name_of(names: Any, i: int) -> str:
    if names is None:
        return f"target {i}"
    if hasattr(names, "target_name"):  # a target space
        return str(names.target_name(i))
    return str(names[i])


def top_k_table(values: Any, names: Sequence[str] | Any | None = None, k: int = 10,
                largest: bool = True) -> list[dict[str, Any]]:
    """The ``k`` targets with the largest (or smallest) finite values, best first.

    Parameters
    ----------
    values : (n_targets,) numbers; NaN / inf are skipped.
    names : one name per target, a target space (its ``target_name``), or None
        (``target <i>``).
    k : how many rows at most (>= 1).
    largest : True for the largest values, False for the smallest.

    Returns
    -------
    list of ``{"rank": 1.., "index": i, "name": str, "value": float}``; ties keep target order.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise InputError(f"top_k_table: values must be 1-D (one per target), got shape {v.shape}")
    if int(k) < 1:
        raise InputError(f"top_k_table: k must be at least 1, got {k}")
    if names is not None and not hasattr(names, "target_name") and len(names) != v.size:
        raise InputError(f"top_k_table: {len(names)} names for {v.size} values")
    finite = np.flatnonzero(np.isfinite(v))
    key = -v[finite] if largest else v[finite]
    chosen = finite[np.argsort(key, kind="stable")[: int(k)]]
    return [{"rank": r + 1, "index": int(i), "name": _name_of(names, int(i)), "value": float(v[i])}
            for r, i in enumerate(chosen)]


def format_top_k(values: Any, names: Sequence[str] | Any | None = None, k: int = 10, label: str = "value",
                 largest: bool = True) -> str:
    """:func:`top_k_table` as aligned text lines plus a line counting the targets not shown."""
    v = np.asarray(values, dtype=np.float64)
    rows = top_k_table(v, names, k, largest)
    width = max([len("target")] + [len(r["name"]) for r in rows])
    lines = [f"{'#':>3}  {'target':<{width}}  {label}"]
    lines += [f"{r['rank']:>3}  {r['name']:<{width}}  {r['value']:.3f}" for r in rows]
    n_nan = int((~np.isfinite(v)).sum())
    rest = v.size - len(rows) - n_nan
    if rest > 0 or n_nan:
        more = [f"{rest} more targets not shown"] if rest > 0 else []
        more += [f"{n_nan} NaN"] if n_nan else []
        lines.append(f"     ... {', '.join(more)} ({v.size} in all)")
    return "\n".join(lines)


#: ROIs shown by name in tables and line plots; with more, the best ones are shown and the rest counted.
MAX_ROIS_SHOWN = 10


def shown_rois(per_layer_roi_r: dict[str, dict[str, float]], k: int = MAX_ROIS_SHOWN) -> list[str]:
    """The ROIs to show: all of them when there are at most ``k``, else the ``k`` with the highest
    r at any layer (``per_layer_roi_r``: layer -> ROI -> r), in their original order."""
    rois = list(next(iter(per_layer_roi_r.values())))
    if len(rois) <= k:
        return rois
    best = np.array([np.nanmax([np.nan_to_num(per_layer_roi_r[layer][roi], nan=-np.inf) for layer in per_layer_roi_r])
                     for roi in rois])
    keep = set(np.argsort(-best, kind="stable")[:k].tolist())
    return [roi for j, roi in enumerate(rois) if j in keep]
