"""Brain maps of per-target values in any target space, each with a labelled colour bar.

One entry point, :func:`plot_map`, draws what suits the space (``space.kind``):

- volume, and parcels with an atlas: a nilearn glass brain of ``space.to_image(values)``;
- surface: lateral views of the left and right hemispheres (nilearn ``plot_surf_stat_map``
  on the space's ``SurfaceImage``), one shared colour bar;
- parcels without an atlas: a horizontal bar chart of the top ``k`` parcels.

No legend is drawn (a legend entry per target is unreadable with 1,000 parcels); values are
told by one colour bar or one axis label. Spaces are used by duck typing (``kind``,
``check_values``, ``to_image``, ``mesh``), so this module imports nothing from ``brain``.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (files, not windows; notebooks still show the returned figure)
import matplotlib.pyplot as plt
import numpy as np

from mmneuro.errors import InputError
from mmneuro.plotting.figures import noise_threshold
from mmneuro.plotting.tables import top_k_table

DEFAULT_LABEL = "held-out Pearson r"


def _region(ax_or_fig: Any, figsize: tuple[float, float]) -> tuple[plt.Figure, tuple[float, float, float, float]]:
    """The figure and the rectangle (figure fraction) to draw in; a given Axes is replaced."""
    if ax_or_fig is None:
        fig = plt.figure(figsize=figsize)
        return fig, (0.0, 0.0, 1.0, 1.0)
    if isinstance(ax_or_fig, plt.Figure):
        return ax_or_fig, (0.0, 0.0, 1.0, 1.0)
    if isinstance(ax_or_fig, plt.Axes):
        fig = ax_or_fig.figure
        box = ax_or_fig.get_position().bounds
        ax_or_fig.remove()
        return fig, box
    raise InputError(f"ax_or_fig must be None, a matplotlib Figure or an Axes, got {type(ax_or_fig).__name__}")


def _sub(box: tuple[float, float, float, float], x: float, y: float, w: float, h: float) -> tuple[float, ...]:
    """A rectangle given in fractions of ``box``, in figure fraction."""
    x0, y0, bw, bh = box
    return (x0 + x * bw, y0 + y * bh, w * bw, h * bh)


def color_scale(values: np.ndarray, threshold: float | str | None = "auto", vmax: float | None = None,
                cmap: str | None = None) -> dict[str, Any]:
    """vmin, vmax, threshold and colour map for ``values``.

    Signed values get a symmetric scale (``RdBu_r``) and, with ``threshold="auto"``, the
    noise threshold of :func:`~mmneuro.plotting.figures.noise_threshold` (3 noise s.d. from
    the negative values); non-negative values get ``[0, vmax]`` (``viridis``) and no threshold.
    ``vmax`` defaults to the 99.9th percentile of ``|values|``.
    """
    finite = values[np.isfinite(values)]
    signed = bool((finite < 0).any())
    if isinstance(threshold, str):
        if threshold != "auto":
            raise InputError(f"threshold must be a number, 'auto' or None, got {threshold!r}")
        threshold = noise_threshold(finite) if signed else None
    threshold = float(threshold) if threshold else None
    if vmax is None:
        vmax = float(np.percentile(np.abs(finite), 99.9)) if finite.size else 1.0
    vmax = float(vmax) if vmax > 0 else 1.0
    if threshold is not None and threshold >= vmax:
        vmax = threshold * 1.01
    return {"vmin": -vmax if signed else 0.0, "vmax": vmax, "threshold": threshold,
            "cmap": cmap or ("RdBu_r" if signed else "viridis"), "signed": signed}


def _colorbar(fig: plt.Figure, rect: tuple[float, ...], scale: dict[str, Any], label: str):
    """A vertical colour bar with ``label``; the sub-threshold band is greyed."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    cax = fig.add_axes(rect)
    mappable = ScalarMappable(Normalize(scale["vmin"], scale["vmax"]), plt.get_cmap(scale["cmap"]))
    cb = fig.colorbar(mappable, cax=cax, orientation="vertical")
    cb.set_label(label, fontsize=8)
    cb.ax.tick_params(labelsize=7)
    t = scale["threshold"]
    if t:
        lo = -t if scale["signed"] else scale["vmin"]
        cb.ax.axhspan(lo, t, color="0.85", zorder=3)
    return cb


def _glass_brain(fig, box, img, title: str, scale: dict[str, Any], label: str) -> None:
    from nilearn.plotting import plot_glass_brain

    ax = fig.add_axes(_sub(box, 0.0, 0.0, 0.86, 0.88))
    plot_glass_brain(img, figure=fig, axes=ax, colorbar=False, plot_abs=False, cmap=scale["cmap"],
                     vmin=scale["vmin"], vmax=scale["vmax"], threshold=scale["threshold"] or 1e-12, annotate=False)
    fig.text(box[0] + box[2] * 0.44, box[1] + box[3] * 0.97, title, ha="center", va="top", fontsize=10)
    _colorbar(fig, _sub(box, 0.88, 0.1, 0.018, 0.72), scale, label)


def _surfaces(fig, box, space, values, title: str, scale: dict[str, Any], label: str) -> None:
    from nilearn.plotting import plot_surf_stat_map
    from nilearn.surface import SurfaceImage

    img = space.to_image(values)
    bg = space.background() if hasattr(space, "background") else None
    bg_img = SurfaceImage(mesh=img.mesh, data={"left": bg["L"], "right": bg["R"]}) if bg is not None else None
    for j, hemi in enumerate(("left", "right")):
        ax = fig.add_axes(_sub(box, 0.44 * j, 0.0, 0.44, 0.88), projection="3d")
        plot_surf_stat_map(stat_map=img, hemi=hemi, view="lateral", bg_map=bg_img, axes=ax, figure=fig,
                           colorbar=False, cmap=scale["cmap"], vmin=scale["vmin"], vmax=scale["vmax"],
                           threshold=scale["threshold"], symmetric_cbar=scale["signed"], bg_on_data=bg is not None)
        ax.set_title(f"{hemi} hemisphere", fontsize=8, y=0.9)
    fig.text(box[0] + box[2] * 0.44, box[1] + box[3] * 0.97, title, ha="center", va="top", fontsize=10)
    _colorbar(fig, _sub(box, 0.9, 0.12, 0.018, 0.68), scale, label)


def _top_bars(ax: plt.Axes, space, values: np.ndarray, title: str, scale: dict[str, Any], label: str,
              k: int) -> None:
    from matplotlib.colors import Normalize

    rows = top_k_table(values, space, k)
    names = [r["name"] if len(r["name"]) <= 32 else r["name"][:31] + "…" for r in rows]
    vals = np.array([r["value"] for r in rows])
    colors = plt.get_cmap(scale["cmap"])(Normalize(scale["vmin"], scale["vmax"])(vals))
    y = np.arange(len(rows))
    ax.barh(y, vals, color=colors, height=0.7)
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="0.6", lw=0.8)
    if scale["threshold"]:
        ax.axvline(scale["threshold"], color="0.5", ls=":", lw=0.8)
    ax.set_xlabel(label, fontsize=8)
    n = int(np.asarray(values).size)
    ax.set_title(f"{title}\ntop {len(rows)} of {n} {space.kind}", fontsize=9)


def plot_map(space: Any, values: Any, title: str, ax_or_fig: Any = None, *, label: str = DEFAULT_LABEL,
             threshold: float | str | None = "auto", vmax: float | None = None, cmap: str | None = None,
             k: int = 10) -> plt.Figure:
    """Draw per-target ``values`` of ``space`` (see the module docstring); returns the figure.

    Parameters
    ----------
    space : a target space (``VolumeSpace``, ``SurfaceSpace``, ``ParcelSpace``).
    values : (space.n_targets,) numbers; NaN are drawn as background.
    title : drawn above the map.
    ax_or_fig : None (a new figure), a Figure (drawn over the whole figure) or an Axes (its
        rectangle is used; the Axes itself is replaced).
    label : the colour bar's (or, for bars, the x axis') label.
    threshold : ``"auto"`` (noise threshold for signed values, none otherwise), a number
        (``|value|`` below it is not coloured) or None.
    vmax, cmap : colour scale; see :func:`color_scale`.
    k : bars shown for parcels without an atlas.
    """
    v = space.check_values(values)
    scale = color_scale(v, threshold, vmax, cmap)
    kind = getattr(space, "kind", None)
    if kind == "surface":
        space.mesh  # noqa: B018 (loading it raises, saying what to provide, before any figure is made)
        fig, box = _region(ax_or_fig, (9.0, 3.4))
        _surfaces(fig, box, space, v, title, scale, label)
    elif kind in ("volume", "parcels") and space.has_image:
        img = space.to_image(v)
        fig, box = _region(ax_or_fig, (9.0, 3.4))
        _glass_brain(fig, box, img, title, scale, label)
    elif kind == "parcels":
        if isinstance(ax_or_fig, plt.Axes):
            fig, ax = ax_or_fig.figure, ax_or_fig
        else:
            fig = ax_or_fig if isinstance(ax_or_fig, plt.Figure) else plt.figure(figsize=(5.0, 0.9 + 0.25 * k))
            ax = fig.add_axes((0.36, 0.12, 0.58, 0.72))
        _top_bars(ax, space, v, title, scale, label, k)
    else:
        raise InputError(f"plot_map: unknown target space {space!r} (kind {kind!r})")
    return fig
