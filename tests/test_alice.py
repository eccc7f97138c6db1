"""The Alice loader: screening on a synthetic copy (always), the real folder when present."""

from __future__ import annotations

import numpy as np
import pytest

from mmneuro.datasets import alice as alice_mod
from mmneuro.datasets.alice import ROI_NAMES, alice_regressor, load_alice, resolve_alice_root
from mmneuro.errors import InputError


def _real_root():
    try:
        return resolve_alice_root()
    except InputError:
        return None


REAL = _real_root()
needs_real = pytest.mark.skipif(
    REAL is None,
    reason="Alice data folder absent (set MMNEURO_ALICE or place ../shared/data/alice-brennan2016)",
)


# --------------------------------------------------------------------------- synthetic copy


def _write_subject(folder, num, arr):
    np.savetxt(folder / f"s{num}-timecourses.txt", arr, fmt="%.7e", delimiter="\t")


@pytest.fixture
def fake_root(tmp_path):
    """A mini Alice folder: good, constant-column, all-zero, short and NaN subjects."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "fmri" / "6mm"
    folder.mkdir(parents=True)
    (tmp_path / "stimulus").mkdir()
    (tmp_path / alice_mod.TEXTGRID).write_text("File type = \"ooTextFile\"\n")
    t = np.arange(362.0)

    def series():
        return 150 + 2 * rng.standard_normal((362, 6)) + 0.01 * t[:, None] + 1e-5 * t[:, None] ** 2

    good = series()
    _write_subject(folder, 18, good)
    const = series()
    const[:, 4] = 101.5  # LPreM constant over the whole series
    const[181:, 1] = 88.0  # RATL constant in the second half only
    _write_subject(folder, 22, const)
    _write_subject(folder, 33, np.zeros((362, 6)))
    _write_subject(folder, 40, series()[:300])
    nan = series()
    nan[10, 2] = np.nan
    _write_subject(folder, 41, nan)
    np.savetxt(tmp_path / "fmri" / "s18-rate.txt", np.linspace(0, 1, 362))
    np.savetxt(tmp_path / "fmri" / "s22-rate.txt", np.linspace(0, 1, 300))
    return tmp_path, good


def test_fake_screening(fake_root):
    root, _ = fake_root
    ds = load_alice(root)
    assert ds.subjects == ["18", "22"]
    notes = "\n".join(ds.notes)
    assert "subject 33 excluded" in notes and "s33-timecourses.txt: every column is all zero" in notes
    assert "subject 40 excluded" in notes and "300 rows but run 'story' has 362 TRs" in notes
    assert "subject 41 excluded" in notes and "1 NaN" in notes and "(first: 2)" in notes  # column 2 = LPTL
    assert "2 of 5 subjects usable" in notes and "2 constant subject-target columns" in notes
    with pytest.warns(UserWarning, match=r"s22-timecourses.txt: 1 of 6 targets are constant \(first indices \[4\]\)"):
        r22 = ds.load_responses("22")
    assert r22.valid.tolist() == [True, False, True, True, False, True]
    story = r22.runs["story"][0]
    assert not np.isnan(story).any()
    np.testing.assert_array_equal(story[:, 4], 0.0)  # constant over the whole series -> zeros
    assert abs(story[:, 1].std() - 1) < 1e-5  # constant in one half only: cleaned, but marked invalid
    assert ds.load_responses("18").valid is None  # None: every target valid
    with pytest.raises(InputError, match="excluded: .*every column is all zero"):
        ds.load_responses("33")


def test_fake_cleaning_is_over_the_whole_story(fake_root):
    root, good = fake_root
    y = load_alice(root).load_responses("18").runs["story"][0].astype(np.float64)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=0), 1.0, atol=1e-5)
    # equals the whole series' quadratic-detrended, z-scored raw values
    x = np.arange(362, dtype=float)
    resid = good - np.stack([np.polyval(np.polyfit(x, good[:, j], 2), x) for j in range(6)], axis=1)
    np.testing.assert_allclose(y, resid / resid.std(axis=0), atol=2e-4)


def test_fake_regressor_and_root_resolution(fake_root, monkeypatch, tmp_path_factory):
    root, _ = fake_root
    np.testing.assert_allclose(alice_regressor(root, "18", "rate"), np.linspace(0, 1, 362))
    with pytest.raises(InputError, match="s22-rate.txt"):
        alice_regressor(root, "22")
    with pytest.raises(InputError, match="s18-sndpwr.txt"):
        alice_regressor(root, "18", "sndpwr")
    with pytest.raises(InputError, match="'rate' or 'sndpwr'"):
        alice_regressor(root, "18", "pitch")
    monkeypatch.setenv("MMNEURO_ALICE", str(root))
    assert load_alice().root == root
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(InputError, match="not found"):
        load_alice(empty)
    with pytest.raises(InputError, match="resolution"):
        load_alice(root, resolution="3mm")


# --------------------------------------------------------------------------- real data


@needs_real
def test_real_subjects_and_exclusion():
    ds = load_alice()
    assert ds.name == "alice"
    assert len(ds.subjects) == 27
    assert "33" not in ds.subjects and "18" in ds.subjects
    notes = "\n".join(ds.notes)
    assert "subject 33 excluded" in notes
    assert "27 of 28 subjects usable" in notes


@needs_real
def test_real_structure():
    ds = load_alice()
    assert ds.tr == 2.0 and ds.evaluation == "contiguous-folds" and ds.eval_folds == 2
    assert ds.delays == (1, 2, 3, 4)
    assert ds.target_names == ROI_NAMES and ds.mask_img is None
    assert [r.name for r in ds.runs] == ["story"]
    story = ds.runs[0]
    assert story.tr_times[0] == 20.0 and story.n_trs == 362 and story.tr_times[-1] == 20.0 + 2 * 361
    np.testing.assert_allclose(np.diff(story.tr_times), 2.0)
    assert story.words.name == "DownTheRabbitHoleFinal_exp120_pad_1.TextGrid" and story.words.is_file()
    assert set(ds.rois) == set(ROI_NAMES)
    for j, name in enumerate(ROI_NAMES):
        assert ds.rois[name].dtype == bool and ds.rois[name].tolist() == [k == j for k in range(6)]


@needs_real
def test_real_responses_and_constant_columns():
    ds = load_alice()
    n_invalid = 0
    for subject in ds.subjects:
        r = ds.load_responses(subject)
        assert r.subject == subject
        assert set(r.runs) == {"story"}
        assert r.runs["story"].shape == (1, 362, 6) and r.runs["story"].dtype == np.float32
        assert not np.isnan(r.runs["story"]).any()
        valid = np.ones(6, bool) if r.valid is None else r.valid
        n_invalid += int((~valid).sum())
        # invalid columns are exactly the all-zero cleaned ones
        for run in r.runs.values():
            flat = (run[0] == 0).all(axis=0)
            assert (flat & valid).sum() == 0
    # this copy of the data has no constant column in a usable subject; the note says so
    assert n_invalid == 0
    assert "0 constant subject-target columns" in "\n".join(ds.notes)


@needs_real
def test_real_rate_regressor_tracks_words():
    rate = alice_regressor(None, "18", "rate")
    assert rate.shape == (362,)
    assert rate.std() > 0
    # the same regressor is provided for every subject (only rounding differs)
    other = alice_regressor(None, "s44", "rate")
    assert np.corrcoef(rate, other)[0, 1] > 0.99
