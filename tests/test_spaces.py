"""Target spaces (volume, surface, parcels): files in, values back out as images; maps and tables."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import matplotlib
import nibabel as nib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mmneuro.brain.spaces import ParcelSpace, SurfaceSpace, TargetSpace, VolumeSpace, space_for  # noqa: E402
from mmneuro.errors import InputError  # noqa: E402
from mmneuro.plotting.maps import plot_map  # noqa: E402
from mmneuro.plotting.tables import format_top_k, top_k_table  # noqa: E402

AFFINE = np.array([[4.0, 0, 0, -16], [0, 4, 0, -20], [0, 0, 4, -12], [0, 0, 0, 1]])
N5 = 10242  # fsaverage5 vertices per hemisphere


@pytest.fixture
def mask_img():
    mask = np.zeros((8, 9, 7), np.uint8)
    mask[2:6, 2:7, 2:5] = 1
    mask[3, 3, 3] = 0
    return nib.Nifti1Image(mask, AFFINE)


def _write_series(path, frames, intent="NIFTI_INTENT_TIME_SERIES", tr=1.5):
    """A GIfTI time series as FreeSurfer/fMRIPrep write it: one float32 data array per TR."""
    darrays = [nib.gifti.GiftiDataArray(np.asarray(f, np.float32), intent=intent, datatype="NIFTI_TYPE_FLOAT32",
                                        meta=nib.gifti.GiftiMetaData({"TimeStep": f"{tr:f}"})) for f in frames]
    nib.save(nib.gifti.GiftiImage(darrays=darrays), str(path))
    return path


def _octahedron(shift: float):
    coords = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float32) * 40
    coords[:, 0] += shift
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]],
                     np.int32)
    return coords, faces


@pytest.fixture
def tiny_mesh():
    from nilearn.surface import InMemoryMesh, PolyMesh

    return PolyMesh(left=InMemoryMesh(*_octahedron(-45)), right=InMemoryMesh(*_octahedron(45)))


def _labels(fig) -> list[str]:
    return [t for ax in fig.axes for t in (ax.get_ylabel(), ax.get_xlabel()) if t]


def _no_legend(fig) -> bool:
    return all(ax.get_legend() is None for ax in fig.axes) and not fig.legends


# --------------------------------------------------------------------------- volume

def test_volume_round_trip(mask_img, tmp_path):
    space = VolumeSpace(mask_img)
    assert isinstance(space, TargetSpace) and space.kind == "volume"
    n = int(np.asarray(mask_img.dataobj).sum())
    assert space.n_targets == n
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((3, n)).astype(np.float32)
    img = space.to_image(frames[0])
    assert img.shape == mask_img.shape and np.allclose(img.affine, AFFINE)
    from nilearn.masking import apply_mask

    assert np.array_equal(apply_mask(img, mask_img), frames[0])
    run = nib.Nifti1Image(np.stack([space.to_image(f).get_fdata(dtype=np.float32) for f in frames], axis=3), AFFINE)
    run.to_filename(tmp_path / "run.nii.gz")
    assert np.array_equal(space.load(tmp_path / "run.nii.gz"), frames)  # load order == to_image order
    (path,) = space.write(frames[1], tmp_path / "r_layer")
    assert path.name == "r_layer.nii.gz"
    assert np.array_equal(nib.load(path).get_fdata(dtype=np.float32)[np.asarray(mask_img.dataobj) != 0], frames[1])
    with pytest.raises(InputError, match=rf"shape \({n},\)"):
        space.to_image(frames[0][:-1])
    assert space.target_name(0).startswith("voxel (")


# --------------------------------------------------------------------------- surface

def test_surface_write_read_back(tmp_path):
    space = SurfaceSpace("fsaverage5")
    assert space.n_targets == 2 * N5 and space.hemi_slices()["R"] == slice(N5, 2 * N5)
    values = np.random.default_rng(1).standard_normal(2 * N5).astype(np.float32)
    paths = space.write(values, tmp_path / "r_best")
    assert [p.name for p in paths] == ["r_best_hemi-L.func.gii", "r_best_hemi-R.func.gii"]
    back = []
    for p, structure in zip(paths, ("CortexLeft", "CortexRight")):
        g = nib.load(p)
        assert len(g.darrays) == 1 and g.darrays[0].data.dtype == np.float32
        assert g.meta["AnatomicalStructurePrimary"] == structure
        back.append(g.agg_data())
    assert np.array_equal(np.concatenate(back), values)


def test_surface_load_fmriprep_series(tmp_path):
    n_trs = 4
    left = np.arange(n_trs)[:, None] + np.zeros((1, N5))                    # L: 0, 1, 2, 3
    right = 100 + np.arange(n_trs)[:, None] + np.linspace(0, 1, N5)[None]  # R: >= 100
    files = {h: _write_series(tmp_path / f"sub-01_task-x_hemi-{h}_space-fsaverage5_bold.func.gii", y)
             for h, y in (("L", left), ("R", right))}
    space = SurfaceSpace("fsaverage5", {"L": N5, "R": N5})
    Y = space.load(files)
    assert Y.shape == (n_trs, 2 * N5) and Y.dtype == np.float32
    assert np.array_equal(Y[:, :N5], left) and np.allclose(Y[:, N5:], right)  # left hemisphere first
    assert np.array_equal(space.load([files["R"], files["L"]]), Y)           # hemi told by the names
    [one] = space.load_runs([files])
    assert np.array_equal(one, Y)
    # a single-frame file as FreeSurfer writes it (intent NONE) is one time point
    single = {h: _write_series(tmp_path / f"one_hemi-{h}.func.gii", y[:1], intent="NIFTI_INTENT_NONE")
              for h, y in (("L", left), ("R", right))}
    assert space.load(single).shape == (1, 2 * N5)


def test_surface_load_errors(tmp_path):
    space = SurfaceSpace("fsaverage5")
    left = _write_series(tmp_path / "sub-01_task-x_hemi-L_space-fsaverage5_bold.func.gii", np.zeros((2, N5)))
    right = tmp_path / "sub-01_task-x_hemi-R_space-fsaverage5_bold.func.gii"
    with pytest.raises(InputError, match=r"hemi-R.*does not exist"):
        space.load({"L": left, "R": right})
    with pytest.raises(InputError, match="no file for hemisphere R"):
        space.load({"L": left})
    with pytest.raises(InputError, match="no hemi-R file"):
        space.load([left])
    _write_series(right, np.zeros((2, 40962)))
    with pytest.raises(InputError, match=r"hemi-R.*40962 vertices \(that is fsaverage6.*10242"):
        space.load({"L": left, "R": right})
    _write_series(right, np.zeros((3, N5)))
    with pytest.raises(InputError, match="2 time points .* 3"):
        space.load({"L": left, "R": right})
    with pytest.raises(InputError, match="named hemi-R but was given as hemisphere L"):
        space.load({"L": right, "R": left})
    with pytest.raises(InputError, match=r"n_vertices_per_hemi .* does not match"):
        SurfaceSpace("fsaverage5", {"L": 40962, "R": 40962})


def test_surface_mesh_needs_a_folder(tmp_path):
    space = SurfaceSpace("fsaverage6")  # loading and writing need only the vertex counts
    assert space.n_targets == 2 * 40962 and not space.has_mesh
    with pytest.raises(InputError, match=r"not shipped with nilearn.*mesh_dir.*lh\.inflated"):
        space.mesh
    with pytest.raises(InputError, match=r"mesh folder .*nope does not exist.*surf/lh\.inflated"):
        SurfaceSpace("fsaverage6", mesh_dir=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no FreeSurfer surfaces lh\.inflated and rh\.inflated"):
        SurfaceSpace(tmp_path / "empty")
    surf = tmp_path / "tiny" / "surf"
    surf.mkdir(parents=True)
    for h, shift in (("lh", -45), ("rh", 45)):
        nib.freesurfer.write_geometry(str(surf / f"{h}.inflated"), *_octahedron(shift))
    with pytest.raises(InputError, match=r"has \{'L': 6, 'R': 6\} vertices per hemisphere but fsaverage6"):
        SurfaceSpace("fsaverage6", mesh_dir=tmp_path / "tiny")
    folder = SurfaceSpace(tmp_path / "tiny")  # a subject folder; the surf/ inside is found
    assert folder.n_vertices_per_hemi == {"L": 6, "R": 6} and folder.mesh.parts["left"].n_vertices == 6
    clone = pickle.loads(pickle.dumps(folder))
    assert clone._mesh is None and clone.mesh.parts["right"].n_vertices == 6


def test_fsaverage5_mesh_offline():
    space = SurfaceSpace("fsaverage5")
    assert {k: p.n_vertices for k, p in space.mesh.parts.items()} == {"left": N5, "right": N5}
    assert pickle.loads(pickle.dumps(space))._mesh is None  # not shipped inside pickles


# --------------------------------------------------------------------------- parcels

@pytest.fixture
def atlas_img():
    atlas = np.zeros((6, 5, 4), np.int16)
    atlas[0:2] = 7
    atlas[2:4] = 3
    atlas[4:5] = 12
    atlas[5, 0, 0] = 0
    return nib.Nifti1Image(atlas, AFFINE)


def test_parcels_painted_into_atlas(atlas_img, tmp_path):
    atlas = np.asarray(atlas_img.dataobj)
    space = ParcelSpace(["a", "b", "c"], atlas_img)  # labels sorted ascending: a=3, b=7, c=12
    assert space.labels == [3, 7, 12] and space.has_image
    img = space.to_image([0.1, 0.2, np.nan])
    out = img.get_fdata(dtype=np.float32)
    assert np.allclose(out[atlas == 3], 0.1) and np.allclose(out[atlas == 7], 0.2)
    assert (out[atlas == 12] == 0).all() and (out[atlas == 0] == 0).all()  # NaN and background -> 0
    explicit = ParcelSpace(["c", "a", "b"], atlas_img, labels=[12, 3, 7])
    out = explicit.to_image([1.0, 2.0, 3.0]).get_fdata()
    assert (out[atlas == 12] == 1).all() and (out[atlas == 3] == 2).all() and (out[atlas == 7] == 3).all()
    paths = explicit.write([1.0, np.nan, 3.0], tmp_path / "r")
    assert [p.name for p in paths] == ["r.npy", "r.tsv", "r.nii.gz"]
    assert (tmp_path / "r.tsv").read_text().splitlines() == ["name\tlabel\tvalue", "c\t12\t1", "a\t3\tn/a", "b\t7\t3"]
    with pytest.raises(InputError, match=r"3 non-zero labels \(3, 7, 12\) but 2 parcel names.*labels="):
        ParcelSpace(["a", "b"], atlas_img)
    with pytest.raises(InputError, match=r"labels 5 do not occur"):
        ParcelSpace(["a", "b", "c"], atlas_img, labels=[3, 5, 7])
    # a 4-D run averaged over each parcel's voxels
    run = np.stack([atlas * 1.0 + t for t in range(3)], axis=3).astype(np.float32)
    nib.Nifti1Image(run, AFFINE).to_filename(tmp_path / "run.nii.gz")
    Y = space.load(tmp_path / "run.nii.gz")
    assert np.allclose(Y, np.array([3, 7, 12])[None] + np.arange(3)[:, None])


def test_parcels_without_atlas(tmp_path):
    names = [f"parcel {i}" for i in range(5)]
    space = ParcelSpace(names)
    assert not space.has_image
    paths = space.write(np.arange(5) / 10, tmp_path / "r")
    assert [p.name for p in paths] == ["r.npy", "r.tsv"]
    assert np.allclose(np.load(paths[0]), np.arange(5) / 10)
    assert paths[1].read_text().splitlines()[:2] == ["name\tvalue", "parcel 0\t0"]
    with pytest.raises(InputError, match="needs an atlas"):
        space.to_image(np.zeros(5))
    np.save(tmp_path / "ts.npy", np.zeros((4, 6), np.float32))
    with pytest.raises(InputError, match="6 columns but there are 5 parcels"):
        space.load(tmp_path / "ts.npy")
    with pytest.raises(InputError, match="repeat"):
        ParcelSpace(["a", "a"])


def test_space_for_description(mask_img, atlas_img, tmp_path):
    mask_img.to_filename(tmp_path / "mask.nii.gz")
    atlas_img.to_filename(tmp_path / "atlas.nii.gz")
    vol = space_for(SimpleNamespace(kind="volume", mask="mask.nii.gz"), tmp_path)
    assert isinstance(vol, VolumeSpace) and vol.n_targets == int(np.asarray(mask_img.dataobj).sum())
    surf = space_for(SimpleNamespace(kind="surface", mesh="fsaverage6"), tmp_path)
    assert surf.n_targets == 81924
    parc = space_for(SimpleNamespace(kind="parcels", names=None, names_file=None, atlas="atlas.nii.gz"), tmp_path)
    assert parc.names == ["label-3", "label-7", "label-12"]
    bare = space_for(SimpleNamespace(kind="parcels", names=None, names_file=None, atlas=None), tmp_path, n_targets=3)
    assert bare.names == ["parcel-1", "parcel-2", "parcel-3"]


# --------------------------------------------------------------------------- plots and tables

def test_plot_map_volume_and_painted_parcels(mask_img, atlas_img):
    space = VolumeSpace(mask_img)
    values = np.linspace(-0.2, 0.6, space.n_targets)
    fig = plot_map(space, values, "volume r", label="held-out Pearson r")
    assert "held-out Pearson r" in _labels(fig) and _no_legend(fig)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    out = plot_map(ParcelSpace(["a", "b", "c"], atlas_img), [0.1, 0.3, 0.5], "parcels", axes[1], label="r / ceiling")
    fig.canvas.draw()
    assert out is fig and "r / ceiling" in _labels(fig) and _no_legend(fig)
    plt.close(fig)


def test_plot_map_surface(tiny_mesh):
    space = SurfaceSpace(tiny_mesh)
    assert space.n_targets == 12 and space.has_image
    assert pickle.loads(pickle.dumps(space)).mesh.parts["left"].n_vertices == 6  # an in-memory mesh travels
    fig = plot_map(space, np.linspace(-1, 1, 12), "surface r", label="Δr", threshold=0.1)
    fig.canvas.draw()
    assert "Δr" in _labels(fig) and _no_legend(fig)
    assert sum(ax.name == "3d" for ax in fig.axes) == 2  # left and right lateral views
    plt.close(fig)
    with pytest.raises(InputError, match="mesh_dir"):
        plot_map(SurfaceSpace("fsaverage6"), np.zeros(81924), "no mesh")


def test_plot_map_parcel_bars_and_top_k():
    n = 1000
    names = [f"parcel {i:04d}" for i in range(n)]
    values = np.random.default_rng(2).uniform(-0.1, 0.3, n)
    values[[5, 17]] = [0.9, np.nan]
    space = ParcelSpace(names)
    fig = plot_map(space, values, "1,000 parcels", k=8)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "held-out Pearson r" and len(ax.patches) == 8 and _no_legend(fig)
    assert ax.get_yticklabels()[0].get_text() == "parcel 0005"
    plt.close(fig)
    rows = top_k_table(values, names, k=10)
    assert len(rows) == 10 and rows[0] == {"rank": 1, "index": 5, "name": "parcel 0005", "value": 0.9}
    assert all(a["value"] >= b["value"] for a, b in zip(rows, rows[1:]))
    assert top_k_table(values, space, k=2)[0]["name"] == "parcel 0005"
    assert top_k_table(values, k=1, largest=False)[0]["name"].startswith("target ")
    text = format_top_k(values, names, k=10, label="r")
    assert len(text.splitlines()) == 12 and "989 more targets not shown, 1 NaN (1000 in all)" in text
