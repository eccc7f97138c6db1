"""Target spaces: one object per kind of response columns that reads files into
``(time, targets)`` arrays and turns per-target values back into images and files.

Three spaces behind one small protocol (:class:`TargetSpace`), in the manner of nilearn's
maskers (``transform`` / ``inverse_transform``):

- :class:`VolumeSpace` — in-mask voxels of a brain mask (NIfTI runs in, NIfTI maps out).
- :class:`SurfaceSpace` — vertices of a two-hemisphere mesh, **left hemisphere first, then
  right** (GIfTI ``.func.gii`` time series in, one ``.func.gii`` map per hemisphere out).
- :class:`ParcelSpace` — named parcels (array / text tables or NIfTI runs averaged over an
  atlas in; ``.npy`` + ``.tsv`` out, plus a painted NIfTI map when an atlas is given).

Every space has ``kind``, ``n_targets``, ``has_image``, ``load(run)`` (one run),
``load_runs(runs)``, ``to_image(values)``, ``write(values, stem)`` and
``target_name(index)``. :func:`space_for` builds the space a dataset description's
``targets`` section names.

Conventions
-----------
- ``values`` are ``(n_targets,)``; anything else is an :class:`~mmneuro.errors.InputError`.
- Images (NIfTI, GIfTI, nilearn ``SurfaceImage``) hold NaN as 0 (nilearn's plots and most
  viewers treat NaN badly, and 0 is background); ``.npy`` and ``.tsv`` keep NaN (``n/a``).
- Parcel ``k`` is painted into the atlas voxels whose label is ``labels[k]``. Without
  explicit ``labels`` these are the atlas's non-zero label values sorted ascending, so the
  first name goes with the smallest label; the atlas must then have exactly one non-zero
  label per name.
- A surface mesh other than ``fsaverage5`` (which nilearn ships) comes from a FreeSurfer
  subject folder given by the user: ``<folder>/surf/lh.inflated`` and ``rh.inflated`` (or
  the ``surf`` folder itself), e.g. ``$FREESURFER_HOME/subjects/fsaverage6`` or fMRIPrep's
  ``sourcedata/freesurfer/fsaverage6``. Optional ``lh.sulc`` / ``rh.sulc`` beside them
  shade plots. The mesh is needed only for images and plots, not to load or write data.

Imports only numpy, nibabel and nilearn (never models).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from mmneuro.brain.loaders import (
    _READ_ERRORS,
    _check_run_header,
    _existing_file,
    _iter_volumes,
    _mask_image,
    _open_image,
    _read_image,
    _scaler,
    fortran_index,
    load_array,
    load_nifti_runs,
    load_roi_timeseries,
)
from mmneuro.brain.preprocess import validate_responses
from mmneuro.errors import InputError

PathLike = str | Path

HEMIS = ("L", "R")
_NILEARN_HEMI = {"L": "left", "R": "right"}
_FS_PREFIX = {"L": "lh", "R": "rh"}
_STRUCTURE = {"L": "CortexLeft", "R": "CortexRight"}

#: vertices per hemisphere of FreeSurfer's fsaverage templates (icosahedron order 3..7).
TEMPLATE_VERTICES = {"fsaverage3": 642, "fsaverage4": 2562, "fsaverage5": 10242,
                     "fsaverage6": 40962, "fsaverage": 163842}
#: templates nilearn ships with the package (usable offline).
SHIPPED_MESHES = ("fsaverage5",)


@runtime_checkable
class TargetSpace(Protocol):
    """What every target space offers (see the module docstring)."""

    kind: str  # "volume" | "surface" | "parcels"

    @property
    def n_targets(self) -> int: ...
    @property
    def has_image(self) -> bool: ...
    def load(self, run: Any) -> np.ndarray: ...  # one run -> (n_trs, n_targets) float32
    def load_runs(self, runs: Sequence[Any]) -> list[np.ndarray]: ...
    def check_values(self, values: Any, what: str = "values") -> np.ndarray: ...  # -> (n_targets,) float32
    def to_image(self, values: np.ndarray) -> Any: ...
    def write(self, values: np.ndarray, stem: PathLike) -> list[Path]: ...
    def target_name(self, index: int) -> str: ...


class _Space:
    """Shared checks of the three spaces."""

    kind = "?"
    n_targets: int  # a property in each space
    load: Any  # defined by each space

    def load_runs(self, runs: Sequence[Any]) -> list[np.ndarray]:
        """``load`` of each run: a list of ``(n_trs, n_targets)`` float32 arrays."""
        if isinstance(runs, (str, Path, Mapping)):
            raise InputError(f"{type(self).__name__}.load_runs expects a list of runs, got one run {runs!r}; "
                             f"use load() for a single run")
        if len(runs) == 0:
            raise InputError(f"{type(self).__name__}.load_runs: no runs given")
        return [self.load(run) for run in runs]

    def check_values(self, values: Any, what: str = "values") -> np.ndarray:
        """``values`` as a float32 ``(n_targets,)`` array, or an InputError naming the shapes."""
        arr = np.asarray(values)
        if arr.shape != (self.n_targets,):
            raise InputError(f"{what}: expected one value per target, shape ({self.n_targets},) for this "
                             f"{self.kind} space ({self}), got shape {arr.shape}")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise InputError(f"{what}: expected numbers, got dtype {arr.dtype}")
        return arr.astype(np.float32, copy=False)

    @staticmethod
    def _stem(stem: PathLike) -> Path:
        p = Path(stem)
        if not p.parent.is_dir():
            raise InputError(f"cannot write {p}.*: folder {p.parent} does not exist")
        return p


# --------------------------------------------------------------------------- volume

class VolumeSpace(_Space):
    """In-mask voxels of a 3-D brain mask, in nilearn ``NiftiMasker`` order (``data[mask]``).

    Parameters
    ----------
    mask_img : path or nibabel image; non-zero voxels are the targets.
    """

    kind = "volume"

    def __init__(self, mask_img: PathLike | Any):
        self.mask_img, self._binary, self._label = _mask_image(mask_img)

    def __repr__(self) -> str:
        return f"VolumeSpace({self._label}, {self.n_targets} voxels)"

    @property
    def n_targets(self) -> int:
        return int(self._binary.sum())

    @property
    def has_image(self) -> bool:
        return True

    @property
    def affine(self) -> np.ndarray:
        return self.mask_img.affine

    def load(self, run: PathLike) -> np.ndarray:
        """One 4-D NIfTI run -> ``(n_trs, n_voxels)`` float32 (see ``load_nifti_runs``)."""
        if not isinstance(run, (str, Path)):
            raise InputError(f"VolumeSpace.load takes the path of one 4-D NIfTI run, got {type(run).__name__}; "
                             f"use load_runs() for several")
        return load_nifti_runs([run], self.mask_img)[0]

    def to_image(self, values: np.ndarray):
        """``(n_voxels,)`` -> 3-D float32 NIfTI on the mask's grid (0 outside the mask and for NaN)."""
        import nibabel as nib

        v = self.check_values(values)
        out = np.zeros(self._binary.shape, np.float32)
        out[self._binary] = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
        return nib.Nifti1Image(out, self.affine)

    def write(self, values: np.ndarray, stem: PathLike) -> list[Path]:
        """``stem.nii.gz``; returns its path."""
        path = self._stem(stem).with_name(Path(stem).name + ".nii.gz")
        self.to_image(values).to_filename(str(path))
        return [path]

    def target_name(self, index: int) -> str:
        ijk = np.argwhere(self._binary)[int(index)]
        xyz = self.affine[:3, :3] @ ijk + self.affine[:3, 3]
        return f"voxel ({xyz[0]:.0f}, {xyz[1]:.0f}, {xyz[2]:.0f}) mm"


# --------------------------------------------------------------------------- surface

def _template_for(n: int) -> str | None:
    return next((name for name, k in TEMPLATE_VERTICES.items() if k == n), None)


def _find_surf_dir(folder: Path, surface: str) -> Path:
    """The folder holding ``lh.<surface>`` / ``rh.<surface>``: ``folder`` or ``folder/surf``."""
    for cand in (folder / "surf", folder):
        if all((cand / f"{_FS_PREFIX[h]}.{surface}").is_file() for h in HEMIS):
            return cand
    have = sorted(p.name for p in folder.iterdir())[:12] if folder.is_dir() else []
    raise InputError(
        f"mesh folder {folder} has no FreeSurfer surfaces lh.{surface} and rh.{surface} (looked in {folder}/surf "
        f"and {folder}); give a FreeSurfer subject folder such as $FREESURFER_HOME/subjects/fsaverage6 or "
        f"fMRIPrep's sourcedata/freesurfer/fsaverage6. It holds {have}")


def _read_fs_mesh(path: Path):
    import nibabel as nib
    from nilearn.surface import InMemoryMesh

    try:
        coords, faces = nib.freesurfer.read_geometry(str(path))
    except (*_READ_ERRORS, IndexError) as exc:
        raise InputError(f"mesh file {path} could not be read as a FreeSurfer surface: "
                         f"{type(exc).__name__}: {exc}") from exc
    return InMemoryMesh(np.asarray(coords, np.float32), np.asarray(faces, np.int32))


def _nilearn_surface(surface: str) -> str:
    """nilearn's name of a FreeSurfer surface (``white`` is ``white_matter`` there)."""
    return {"white": "white_matter"}.get(surface, surface)


def _hemi_in_name(path: Path) -> str | None:
    m = re.search(r"(?:^|_)hemi-([LR])(?:_|\.)", path.name)
    return m.group(1) if m else None


class SurfaceSpace(_Space):
    """Vertices of a two-hemisphere mesh; targets are the left hemisphere's vertices, then the right's.

    Parameters
    ----------
    mesh : ``"fsaverage5"`` (shipped with nilearn, works offline), another template name
        (``"fsaverage6"``, ``"fsaverage"``, ...: vertex counts are known, the mesh itself comes
        from ``mesh_dir``), a FreeSurfer subject folder (the template is told by its vertex
        count), or a nilearn ``PolyMesh`` with ``left`` and ``right`` parts.
    n_vertices_per_hemi : ``{"L": n, "R": n}``; optional, checked against the mesh.
    mesh_dir : FreeSurfer subject folder (or its ``surf/``) holding ``lh.<surface>`` and
        ``rh.<surface>``; read at once, so a wrong folder fails here.
    surface : which FreeSurfer surface to draw on (``inflated``, ``pial``, ``white``).

    Loading and writing need only the vertex counts; ``mesh``, ``to_image`` and plots need the
    mesh and raise an InputError saying what to provide when there is none.
    """

    kind = "surface"

    def __init__(self, mesh: str | PathLike | Any = "fsaverage5",
                 n_vertices_per_hemi: Mapping[str, int] | None = None,
                 mesh_dir: PathLike | None = None, surface: str = "inflated"):
        self.surface = surface
        self.mesh_dir: Path | None = None
        self._mesh = None
        self._source = "none"  # where the mesh comes from: nilearn | folder | memory | none
        self._bg: dict[str, np.ndarray] | None = None
        counts: dict[str, int] | None = None
        if isinstance(mesh, (str, Path)) and str(mesh) in TEMPLATE_VERTICES:
            self.name = str(mesh)
            counts = {h: TEMPLATE_VERTICES[self.name] for h in HEMIS}
            self._source = "nilearn" if self.name in SHIPPED_MESHES and mesh_dir is None else "none"
        elif isinstance(mesh, (str, Path)):
            if mesh_dir is not None:
                raise InputError(f"mesh {mesh!r} is a folder and mesh_dir={mesh_dir!r} another; give one")
            mesh_dir, self.name = mesh, ""
        elif hasattr(mesh, "parts"):  # nilearn PolyMesh
            if mesh_dir is not None:
                raise InputError("give either a PolyMesh or mesh_dir, not both")
            missing = [p for p in ("left", "right") if p not in mesh.parts]
            if missing:
                raise InputError(f"the PolyMesh given as mesh has no {missing} part; it needs 'left' and 'right'")
            self._mesh, self._source = mesh, "memory"
            counts = {h: int(mesh.parts[_NILEARN_HEMI[h]].n_vertices) for h in HEMIS}
            self.name = (_template_for(counts["L"]) if counts["L"] == counts["R"] else None) or "custom mesh"
        else:
            raise InputError(f"mesh must be a template name ({', '.join(TEMPLATE_VERTICES)}), a mesh folder or "
                             f"a nilearn PolyMesh, got {type(mesh).__name__}")
        if mesh_dir is not None:
            folder = Path(mesh_dir)
            if not folder.is_dir():
                raise InputError(f"mesh folder {folder} does not exist; give a FreeSurfer subject folder holding "
                                 f"surf/lh.{surface} and surf/rh.{surface} (e.g. $FREESURFER_HOME/subjects/"
                                 f"{self.name or 'fsaverage6'})")
            self.mesh_dir, self._source = _find_surf_dir(folder, surface), "folder"
            self._mesh = self._read_folder()
            found = {h: int(self._mesh.parts[_NILEARN_HEMI[h]].n_vertices) for h in HEMIS}
            if counts is not None and found != counts:
                raise InputError(f"mesh folder {self.mesh_dir} has {found} vertices per hemisphere but {self.name} "
                                 f"has {counts}; give the folder of {self.name}")
            counts = found
            if not self.name:
                self.name = (_template_for(found["L"]) if found["L"] == found["R"] else None) or str(folder.name)
        if n_vertices_per_hemi is not None:
            given = {str(k): int(v) for k, v in dict(n_vertices_per_hemi).items()}
            if set(given) != set(HEMIS):
                raise InputError(f"n_vertices_per_hemi must have keys 'L' and 'R', got {sorted(given)}")
            if given != counts:
                raise InputError(f"n_vertices_per_hemi {given} does not match mesh {self.name} with {counts} "
                                 f"vertices per hemisphere")
        assert counts is not None
        self.n_vertices_per_hemi: dict[str, int] = counts

    def __repr__(self) -> str:
        return f"SurfaceSpace({self.name}, L={self.n_vertices_per_hemi['L']}, R={self.n_vertices_per_hemi['R']})"

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self._source in ("nilearn", "folder"):
            state["_mesh"], state["_bg"] = None, None  # re-read on demand; keeps pickles (Dask) small
        return state

    @property
    def n_targets(self) -> int:
        return self.n_vertices_per_hemi["L"] + self.n_vertices_per_hemi["R"]

    @property
    def has_image(self) -> bool:
        return self.has_mesh

    def hemi_slices(self) -> dict[str, slice]:
        """``{"L": slice, "R": slice}`` of the target columns."""
        n_l = self.n_vertices_per_hemi["L"]
        return {"L": slice(0, n_l), "R": slice(n_l, self.n_targets)}

    # ---------------------------------------------------------------- mesh
    @property
    def has_mesh(self) -> bool:
        return self._source != "none"

    @property
    def mesh(self):
        """The nilearn ``PolyMesh`` (parts ``left`` / ``right``); read on first use."""
        if self._mesh is None:
            if self._source == "folder":
                self._mesh = self._read_folder()
            elif self._source == "nilearn":
                from nilearn.datasets import load_fsaverage

                self._mesh = load_fsaverage(self.name)[_nilearn_surface(self.surface)]
            else:
                raise InputError(
                    f"surface mesh {self.name!r} is not shipped with nilearn (only {', '.join(SHIPPED_MESHES)} is) "
                    f"and no mesh folder was given; pass mesh_dir= (or targets.mesh in the dataset description) "
                    f"a FreeSurfer subject folder holding surf/lh.{self.surface} and surf/rh.{self.surface}, "
                    f"e.g. $FREESURFER_HOME/subjects/{self.name} or fMRIPrep's sourcedata/freesurfer/{self.name}")
        return self._mesh

    def _read_folder(self):
        from nilearn.surface import PolyMesh

        assert self.mesh_dir is not None
        parts = {_NILEARN_HEMI[h]: _read_fs_mesh(self.mesh_dir / f"{_FS_PREFIX[h]}.{self.surface}") for h in HEMIS}
        return PolyMesh(**parts)

    def background(self) -> dict[str, np.ndarray] | None:
        """Sulcal depth per hemisphere for shading plots, or None when the mesh has none."""
        if self._bg is None:
            try:
                if self._source == "folder" and all((self.mesh_dir / f"{_FS_PREFIX[h]}.sulc").is_file()
                                                     for h in HEMIS):
                    import nibabel as nib

                    self._bg = {h: np.asarray(nib.freesurfer.read_morph_data(
                        str(self.mesh_dir / f"{_FS_PREFIX[h]}.sulc")), np.float32) for h in HEMIS}
                elif self._source == "nilearn":
                    from nilearn.datasets import load_fsaverage_data

                    img = load_fsaverage_data(mesh=self.name, mesh_type=_nilearn_surface(self.surface),
                                              data_type="sulcal")
                    self._bg = {h: np.asarray(img.data.parts[_NILEARN_HEMI[h]], np.float32) for h in HEMIS}
            except (InputError, *_READ_ERRORS):
                self._bg = None  # shading is decoration: a plot without it is still right
        if self._bg is not None and any(len(self._bg[h]) != self.n_vertices_per_hemi[h] for h in HEMIS):
            self._bg = None
        return self._bg

    # ---------------------------------------------------------------- files
    def _run_paths(self, run: Any) -> dict[str, Path]:
        if isinstance(run, Mapping):
            keys = dict(run)
            extra = sorted(str(k) for k in set(keys) - set(HEMIS))
            if extra:
                raise InputError(f"surface run {dict(run)!r}: unknown hemisphere keys {extra}; use 'L' and 'R'")
            missing = [h for h in HEMIS if keys.get(h) is None]
            if missing:
                raise InputError(f"surface run {dict(run)!r} has no file for hemisphere {missing[0]}; a surface run "
                                 f"needs one .func.gii per hemisphere ({{'L': ..._hemi-L_..., 'R': ..._hemi-R_...}})")
            return {h: Path(keys[h]) for h in HEMIS}
        if isinstance(run, (str, Path)):
            run = [run]
        paths = [Path(p) for p in run]
        by_hemi: dict[str, Path] = {}
        for p in paths:
            h = _hemi_in_name(p)
            if h is None:
                raise InputError(f"surface file {p} has no hemi-L / hemi-R in its name; pass {{'L': path, 'R': path}}")
            if h in by_hemi:
                raise InputError(f"surface run has two hemi-{h} files: {by_hemi[h]} and {p}")
            by_hemi[h] = p
        missing = [h for h in HEMIS if h not in by_hemi]
        if missing:
            raise InputError(f"surface run {[str(p) for p in paths]} has no hemi-{missing[0]} file; a surface run "
                             f"needs one .func.gii per hemisphere")
        return by_hemi

    def _read_hemi(self, path: Path, hemi: str) -> np.ndarray:
        import nibabel as nib
        from nibabel.filebasedimages import ImageFileError

        n = self.n_vertices_per_hemi[hemi]
        if not path.exists():
            raise InputError(f"GIfTI file {path} (hemisphere {hemi}) does not exist; a surface run needs a "
                             f"hemi-L and a hemi-R .func.gii")
        p = _existing_file(path, f"GIfTI file (hemisphere {hemi})")
        named = _hemi_in_name(p)
        if named is not None and named != hemi:
            raise InputError(f"GIfTI file {p} is named hemi-{named} but was given as hemisphere {hemi}")
        from xml.parsers.expat import ExpatError

        try:
            img = nib.load(str(p))
        except (ImageFileError, ExpatError, *_READ_ERRORS, KeyError, IndexError, TypeError, AttributeError,
                MemoryError) as exc:  # nibabel's GIfTI parser lets malformed XML through as any of these
            raise InputError(f"GIfTI file {p} could not be read (corrupt or truncated?): "
                             f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(img, nib.gifti.GiftiImage):
            raise InputError(f"GIfTI file {p} is a {type(img).__name__}, not a GIfTI image (.func.gii)")
        structure = img.meta.get("AnatomicalStructurePrimary") if img.meta is not None else None
        if structure in _STRUCTURE.values() and structure != _STRUCTURE[hemi]:
            raise InputError(f"GIfTI file {p} says it is {structure} but was given as hemisphere {hemi}")
        arrays = list(img.darrays)
        if not arrays:
            raise InputError(f"GIfTI file {p} holds no data array")
        mesh_like = [d for d in arrays if d.intent in (1008, 1009)]  # POINTSET, TRIANGLE
        if mesh_like:
            raise InputError(f"GIfTI file {p} is a surface mesh (coordinates / triangles), not data; give the "
                             f"functional .func.gii")
        try:
            data = [np.asarray(d.data) for d in arrays]
        except (*_READ_ERRORS, TypeError, AttributeError) as exc:
            raise InputError(f"GIfTI file {p}: data could not be decoded: {type(exc).__name__}: {exc}") from exc
        odd = [(i, a.dtype) for i, a in enumerate(data) if not (np.issubdtype(a.dtype, np.number) or
                                                              a.dtype == np.bool_)
               or np.issubdtype(a.dtype, np.complexfloating)]
        if odd:
            raise InputError(f"GIfTI file {p}: data array {odd[0][0]} has dtype {odd[0][1]}; expected real numbers")
        if len(data) == 1 and data[0].ndim == 2:  # one (vertices, time) array
            with np.errstate(over="ignore"):  # float64 beyond float32's range: inf, caught below
                Y = data[0].T.astype(np.float32)
            counts = {data[0].shape[0]}
        else:
            bad = [(i, a.shape) for i, a in enumerate(data) if a.ndim != 1]
            if bad:
                raise InputError(f"GIfTI file {p}: data array {bad[0][0]} has shape {bad[0][1]}; expected one "
                                 f"1-D array of vertex values per time point (as fMRIPrep writes)")
            counts = {a.shape[0] for a in data}
            if len(counts) > 1:
                raise InputError(f"GIfTI file {p}: data arrays have different lengths {sorted(counts)}")
            Y = np.empty((len(data), data[0].shape[0]), np.float32)  # filled row by row: no stacked copy
            with np.errstate(over="ignore"):
                for t, a in enumerate(data):
                    Y[t] = a
        data.clear()
        got = counts.pop()
        if got != n:
            other = _template_for(got)
            hint = f" (that is {other}: was it sampled to space-{other}?)" if other else ""
            raise InputError(f"GIfTI file {p} (hemisphere {hemi}) has {got} vertices{hint}, but mesh {self.name} "
                             f"has {n} per hemisphere")
        validate_responses(Y, f"GIfTI file {p}")
        return Y

    def load(self, run: Mapping[str, PathLike] | Sequence[PathLike]) -> np.ndarray:
        """One run -> ``(n_trs, n_L + n_R)`` float32, left hemisphere's vertices first.

        ``run`` is ``{"L": path, "R": path}`` or two paths whose names hold ``hemi-L`` and
        ``hemi-R`` (fMRIPrep: ``sub-01_task-x_hemi-L_space-fsaverage5_bold.func.gii``). Each
        file holds one data array per time point (intent ``NIFTI_INTENT_TIME_SERIES``, or
        ``NIFTI_INTENT_NONE`` for a single frame, as FreeSurfer writes them) or one 2-D
        ``(vertices, time)`` array.
        """
        paths = self._run_paths(run)
        parts = {h: self._read_hemi(paths[h], h) for h in HEMIS}
        if parts["L"].shape[0] != parts["R"].shape[0]:
            raise InputError(f"surface run: {paths['L']} has {parts['L'].shape[0]} time points but {paths['R']} has "
                             f"{parts['R'].shape[0]}")
        return np.concatenate([parts["L"], parts["R"]], axis=1)

    def split(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """``(n_targets,)`` -> ``{"L": (n_L,), "R": (n_R,)}`` float32."""
        v = self.check_values(values)
        return {h: v[s] for h, s in self.hemi_slices().items()}

    def to_image(self, values: np.ndarray):
        """nilearn ``SurfaceImage`` on the mesh (NaN as 0); needs the mesh."""
        from nilearn.surface import SurfaceImage

        parts = {_NILEARN_HEMI[h]: np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
                 for h, v in self.split(values).items()}
        return SurfaceImage(mesh=self.mesh, data=parts)

    def write(self, values: np.ndarray, stem: PathLike) -> list[Path]:
        """``stem_hemi-L.func.gii`` and ``stem_hemi-R.func.gii`` (one float32 data array each)."""
        import nibabel as nib

        base = self._stem(stem)
        out = []
        for h, v in self.split(values).items():
            arr = nib.gifti.GiftiDataArray(np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32),
                                           intent="NIFTI_INTENT_NONE", datatype="NIFTI_TYPE_FLOAT32")
            meta = nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": _STRUCTURE[h]})
            path = base.with_name(f"{base.name}_hemi-{h}.func.gii")
            nib.save(nib.gifti.GiftiImage(darrays=[arr], meta=meta), str(path))
            out.append(path)
        return out

    def target_name(self, index: int) -> str:
        i = int(index)
        n_l = self.n_vertices_per_hemi["L"]
        if not 0 <= i < self.n_targets:
            raise IndexError(f"target {i} out of range for {self}")
        return f"L vertex {i}" if i < n_l else f"R vertex {i - n_l}"


# --------------------------------------------------------------------------- parcels

def _atlas_data(atlas_img: PathLike | Any) -> tuple[np.ndarray, np.ndarray, str]:
    """(int64 3-D labels, affine, description) of a label image."""
    import nibabel as nib

    if isinstance(atlas_img, (str, Path)):
        img, data = _read_image(atlas_img, "atlas file")
        label = f"atlas {Path(atlas_img)}"
    elif isinstance(atlas_img, nib.spatialimages.SpatialImage):
        img, data = atlas_img, np.asarray(atlas_img.dataobj)
        label = "atlas image (in memory)"
    else:
        raise InputError(f"atlas_img must be a path or a nibabel image, got {type(atlas_img).__name__}")
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{label} must be a 3-D label image, got shape {data.shape} (a 4-D probabilistic atlas "
                         f"is not a label image)")
    if np.issubdtype(data.dtype, np.floating):
        if not np.isfinite(data).all() or not np.array_equal(data, np.round(data)):
            bad = data[~np.isfinite(data) | (data != np.round(data))][:3]
            raise InputError(f"{label} must hold integer labels; it holds values such as {bad.tolist()} "
                             f"(is it a probabilistic or resampled atlas? resample with nearest neighbour)")
    if data.min() < 0:
        raise InputError(f"{label} holds negative labels (min {data.min()})")
    return data.astype(np.int64), np.asarray(img.affine), label


class ParcelSpace(_Space):
    """Named parcels; with an atlas, parcel values are painted into its voxels.

    Parameters
    ----------
    names : one name per parcel (unique; no tab or newline).
    atlas_img : optional 3-D integer label image (path or nibabel image); 0 is background.
    labels : the atlas label value of each parcel (same length as ``names``). Default: the
        atlas's non-zero label values sorted ascending (the first name is the smallest label).
    """

    kind = "parcels"

    def __init__(self, names: Sequence[str], atlas_img: PathLike | Any = None,
                 labels: Sequence[int] | None = None):
        if isinstance(names, str):
            raise InputError(f"names must be a list of parcel names, got the string {names!r}")
        self.names = [str(n) for n in names]
        if not self.names:
            raise InputError("ParcelSpace: no parcel names given")
        bad = [n for n in self.names if not n.strip() or any(c in n for c in "\t\r\n")]
        if bad:
            raise InputError(f"parcel names must be non-empty and hold no tab or newline: {bad[:3]!r}")
        seen: set[str] = set()
        dup = [n for n in self.names if n in seen or seen.add(n)]
        if dup:
            raise InputError(f"parcel names repeat: {sorted(set(dup))[:5]}")
        self.atlas_label = None
        self._atlas: np.ndarray | None = None
        self._affine: np.ndarray | None = None
        self.labels: list[int] | None = None
        if atlas_img is None:
            if labels is not None:
                raise InputError("labels were given without atlas_img; labels say which atlas label each parcel is")
            return
        self._atlas, self._affine, self.atlas_label = _atlas_data(atlas_img)
        present = np.unique(self._atlas)
        present = present[present != 0]
        if labels is None:
            if len(present) != len(self.names):
                raise InputError(
                    f"{self.atlas_label} has {len(present)} non-zero labels ({_short(present)}) but {len(self.names)} "
                    f"parcel names were given; pass labels=[...] (one atlas label per name) to say which is which")
            self.labels = [int(x) for x in present]
        else:
            lab = np.asarray(labels)
            if lab.ndim != 1 or len(lab) != len(self.names):
                raise InputError(f"labels: {lab.size} values for {len(self.names)} parcel names; give one each")
            if not np.issubdtype(lab.dtype, np.integer):
                if not (np.issubdtype(lab.dtype, np.floating) and np.array_equal(lab, np.round(lab))):
                    raise InputError(f"labels must be integers, got {_short(lab)}")
            lab = lab.astype(np.int64)
            if (lab <= 0).any():
                raise InputError(f"labels must be positive (0 is the atlas background), got {_short(lab[lab <= 0])}")
            if len(np.unique(lab)) != len(lab):
                raise InputError(f"labels repeat: {_short(lab)}")
            absent = np.setdiff1d(lab, present)
            if absent.size:
                raise InputError(f"labels {_short(absent)} do not occur in {self.atlas_label} "
                                 f"(its labels: {_short(present)})")
            self.labels = [int(x) for x in lab]

    def __repr__(self) -> str:
        return f"ParcelSpace({self.n_targets} parcels" + (f", {self.atlas_label})" if self.atlas_label else ")")

    @property
    def n_targets(self) -> int:
        return len(self.names)

    @property
    def has_image(self) -> bool:
        return self._atlas is not None

    def _require_atlas(self, what: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
        if self._atlas is None or self._affine is None or self.labels is None:
            raise InputError(f"{what} needs an atlas: these {self.n_targets} parcels have no atlas_img (pass "
                             f"atlas_img=, or targets.atlas in the dataset description)")
        return self._atlas, self._affine, self.labels

    def load(self, run: PathLike) -> np.ndarray:
        """One run -> ``(n_trs, n_parcels)`` float32.

        ``.npy`` / ``.npz`` / ``.h5`` arrays and ``.txt`` / ``.tsv`` tables are read as
        ``(time, parcels)``; a 4-D NIfTI run (same grid as the atlas) is averaged over each
        parcel's voxels.
        """
        if not isinstance(run, (str, Path)):
            raise InputError(f"ParcelSpace.load takes the path of one run, got {type(run).__name__}")
        p = Path(run)
        name = p.name.lower()
        if name.endswith((".nii", ".nii.gz")):
            Y = self._average(p)
        elif name.endswith((".txt", ".tsv")):
            Y = load_roi_timeseries(p).astype(np.float32)
        else:
            Y = load_array(p)
        if Y.shape[1] != self.n_targets:
            raise InputError(f"parcel file {p} has {Y.shape[1]} columns but there are {self.n_targets} parcels "
                             f"({_short(self.names)})")
        return Y

    def _average(self, path: Path) -> np.ndarray:
        """Parcel means of a 4-D run, streamed volume by volume (float64 sums of one volume at a time)."""
        atlas, affine, labels = self._require_atlas(f"averaging NIfTI run {path} over parcels")
        p, img, shape = _open_image(path, "NIfTI file")
        _check_run_header(p, shape, np.asarray(img.affine, np.float64), atlas.shape, affine,
                          str(self.atlas_label), "resample the atlas (nearest neighbour) to the run's grid")
        flat = atlas.reshape(-1)
        order = np.argsort(labels)
        sorted_labels = np.asarray(labels)[order]
        idx = np.searchsorted(sorted_labels, flat).clip(0, len(labels) - 1)
        inside = sorted_labels[idx] == flat
        col = order[idx[inside]]
        where = fortran_index(np.flatnonzero(inside), atlas.shape)  # voxels in parcels, C order
        counts = np.bincount(col, minlength=len(labels))
        scale = _scaler(img.dataobj)
        sums = np.zeros((len(labels), shape[3]))
        for t, vol in enumerate(_iter_volumes(p, img, shape, "NIfTI file")):
            sums[:, t] = np.bincount(col, weights=np.asarray(scale(vol[where]), np.float64), minlength=len(labels))
        Y = (sums / counts[:, None]).T.astype(np.float32)
        validate_responses(Y, f"NIfTI file {p} (parcel means)")
        return Y

    def to_image(self, values: np.ndarray):
        """3-D float32 NIfTI on the atlas grid: voxels of label ``labels[k]`` get ``values[k]``
        (0 for background, labels that are no parcel, and NaN)."""
        import nibabel as nib

        atlas, affine, labels = self._require_atlas("a parcel image")
        v = np.nan_to_num(self.check_values(values), nan=0.0, posinf=0.0, neginf=0.0)
        order = np.argsort(labels)
        sorted_labels = np.asarray(labels)[order]
        idx = np.searchsorted(sorted_labels, atlas).clip(0, len(labels) - 1)
        inside = sorted_labels[idx] == atlas
        out = np.zeros(atlas.shape, np.float32)
        out[inside] = v[order][idx[inside]]
        return nib.Nifti1Image(out, affine)

    def write(self, values: np.ndarray, stem: PathLike) -> list[Path]:
        """``stem.npy`` (float32, NaN kept), ``stem.tsv`` (``name``, [``label``,] ``value``; NaN
        as ``n/a``) and, with an atlas, ``stem.nii.gz``; returns the paths."""
        v = self.check_values(values)
        base = self._stem(stem)
        npy = base.with_name(base.name + ".npy")
        np.save(npy, v)
        tsv = base.with_name(base.name + ".tsv")
        header = ["name"] + (["label"] if self.labels is not None else []) + ["value"]
        lines = ["\t".join(header)]
        for k, (name, x) in enumerate(zip(self.names, v)):
            cells = [name] + ([str(self.labels[k])] if self.labels is not None else [])
            lines.append("\t".join(cells + ["n/a" if not np.isfinite(x) else f"{float(x):.7g}"]))
        tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out = [npy, tsv]
        if self.has_image:
            nii = base.with_name(base.name + ".nii.gz")
            self.to_image(v).to_filename(str(nii))
            out.append(nii)
        return out

    def target_name(self, index: int) -> str:
        return self.names[int(index)]


def _short(items: Any, n: int = 8) -> str:
    items = list(np.asarray(items).tolist()) if not isinstance(items, list) else items
    return ", ".join(str(x) for x in items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


# --------------------------------------------------------------------------- from a description

def space_for(targets: Any, root: PathLike, n_targets: int | None = None) -> _Space:
    """The target space a dataset description's ``targets`` section names.

    ``targets`` has ``kind`` (``volume`` | ``surface`` | ``parcels``), ``mask``, ``mesh``,
    ``names``, ``names_file`` and ``atlas`` (paths relative to ``root``; the mesh folder may be
    absolute). Parcels without names are called ``label-<k>`` after their atlas label, or
    ``parcel-<i>`` (1-based) when only ``n_targets`` is known.
    """
    root = Path(root)
    kind = getattr(targets, "kind", None)

    def rel(value: Any) -> Path:
        p = Path(value)
        return p if p.is_absolute() else root / p

    if kind == "volume":
        if getattr(targets, "mask", None) is None:
            raise InputError("targets of kind 'volume' need 'mask' (the brain mask NIfTI whose voxels are the targets)")
        return VolumeSpace(rel(targets.mask))
    if kind == "surface":
        mesh = getattr(targets, "mesh", None) or "fsaverage5"
        return SurfaceSpace(mesh if str(mesh) in TEMPLATE_VERTICES else rel(mesh))
    if kind == "parcels":
        names = list(targets.names) if getattr(targets, "names", None) is not None else None
        if getattr(targets, "names_file", None) is not None:
            p = _existing_file(rel(targets.names_file), "parcel names file (targets.names_file)")
            names = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
        atlas = rel(targets.atlas) if getattr(targets, "atlas", None) is not None else None
        if names is None:
            if atlas is not None:
                data, _, _ = _atlas_data(atlas)
                present = np.unique(data)
                names = [f"label-{int(k)}" for k in present[present != 0]]
            elif n_targets is not None:
                names = [f"parcel-{i + 1}" for i in range(int(n_targets))]
            else:
                raise InputError("targets of kind 'parcels' need 'names', 'names_file' or 'atlas' to tell the parcels")
        return ParcelSpace(names, atlas_img=atlas)
    raise InputError(f"targets.kind must be 'volume', 'surface' or 'parcels', got {kind!r}")
