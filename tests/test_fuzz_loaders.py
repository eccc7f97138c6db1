"""Property-based fuzzing of every loader and of the dataset description parser.

Each target writes small generated files (valid, near-valid, or valid then corrupted by
truncation, garbage bytes or flipped bytes) and asserts that the only exceptions to escape
are mmneuro's own (:class:`~mmneuro.errors.MMNeuroError`; ``InputError`` is one). A bare
ValueError / KeyError / IndexError / TypeError / UnicodeDecodeError / OSError from inside a
loader is a failure. Every target runs at least 500 generated cases (checked), derandomized
so that CI sees the same cases every time; the whole file stays within a few minutes on
two cores.
"""

from __future__ import annotations

import io
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mmneuro.errors import MMNeuroError

N_CASES = 500
FUZZ = settings(max_examples=N_CASES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def ours(fn, *args, **kwargs):
    """Call ``fn``; return its value, or None when it raised one of mmneuro's own errors."""
    try:
        return fn(*args, **kwargs)
    except MMNeuroError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} with an empty message"
        return None


def run_counted(test) -> int:
    """Run a ``@given`` function that appends to its ``seen`` list; return how many cases ran."""
    test.seen = []
    test()
    return len(test.seen)


# --------------------------------------------------------------------------- shared strategies

@st.composite
def corrupt(draw, raw: bytes) -> bytes:
    """``raw`` unchanged, truncated, with garbage inserted/overwritten, or with bytes flipped."""
    how = draw(st.sampled_from(["none", "none", "truncate", "overwrite", "insert", "flip", "garbage"]))
    if how == "none" or not raw:
        return raw
    if how == "garbage":
        return draw(st.binary(max_size=200))
    at = draw(st.integers(0, len(raw) - 1))
    if how == "truncate":
        return raw[:at]
    if how == "flip":
        flips = draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=8))
        out = bytearray(raw)
        for i in flips:
            out[i] ^= 0xFF
        return bytes(out)
    junk = draw(st.binary(min_size=1, max_size=64))
    if how == "insert":
        return raw[:at] + junk + raw[at:]
    return raw[:at] + junk + raw[at + len(junk):]


NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**6, 10**6).map(str),
    st.sampled_from(["n/a", "", " ", "nan", "inf", "-inf", "1e999", "0x10", "1,5", "--1", ".", "1.2.3", "NaN",
                     "+.5", "5.", "1_000", "\u0661", "\x00"]),
)
JUNK_TEXT = st.one_of(st.text(max_size=12), st.sampled_from(['"', '""', "'", "\\", "\t", "\r", "[", "]", "{", "}",
                                                             "a/b", "..", "../x", "\ufeff", "sp", "SIL"]))
CELL = st.one_of(NUMBER_TEXT, JUNK_TEXT)


def tsv(header: list[str], rows: list[list[str]], newline: str = "\n") -> str:
    return newline.join("\t".join(r) for r in [header, *rows]) + newline


@st.composite
def table_text(draw, columns: list[str], extra: list[str] = ()) -> str:
    """A tab-separated table whose header is drawn from ``columns`` (+ ``extra``) with random rows."""
    names = draw(st.lists(st.sampled_from([*columns, *extra, "x", "", "onset"]), max_size=6))
    if draw(st.booleans()):
        names = list(dict.fromkeys([*columns, *names]))
    n_rows = draw(st.integers(0, 5))
    rows = []
    for _ in range(n_rows):
        width = len(names) + draw(st.sampled_from([0, 0, 0, 0, -1, 1]))
        rows.append(draw(st.lists(CELL, min_size=max(width, 0), max_size=max(width, 0))))
    text = tsv(names, rows, draw(st.sampled_from(["\n", "\r\n", "\r"])))
    if draw(st.booleans()):
        text = draw(st.sampled_from(["", "\ufeff", "\n\n"])) + text
    return text


@st.composite
def text_file(draw, text_strategy) -> bytes:
    text = draw(text_strategy)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-16", "latin-1"]))
    raw = text.encode(encoding, errors="replace")
    return draw(corrupt(raw))


# --------------------------------------------------------------------------- dataset description

GOOD_LABELS = st.sampled_from(["01", "a", "run-1", "x.y", "sub_2"])
BAD_LABELS = st.one_of(st.sampled_from(["", "a/b", "..", "../x", "a\\b", ".hidden", "-a", "a..b", "sub 1", "é", "C:x",
                                        "x" * 70, "{subject}"]), st.text(max_size=8))
LABELS = st.one_of(GOOD_LABELS, GOOD_LABELS, GOOD_LABELS, BAD_LABELS)
GOOD_PATTERNS = st.sampled_from(["sub-{subject}_run.npy", "resp.h5#*", "resp.h5#run", "resp.h5#grp/*", "roi.txt",
                                 "run.nii.gz", "sub-{subject}_hemi-{hemi}.func.gii", "names.txt", "missing.npy"])
BAD_PATTERNS = st.one_of(
    st.sampled_from(["resp.h5#nope", "resp.h5#/", "resp.h5#", "../outside.npy", "/etc/passwd", "a/../../b.npy",
                     "C:/x.npy", "\\\\server\\x.npy", "{subject}", "sub-{subject}/../../x.npy",
                     "sub-{subject}_run.npy#k", "resp.h5#[", "sub-{subject}{subject}.npy"]),
    st.text(max_size=10))
PATTERNS = st.one_of(GOOD_PATTERNS, GOOD_PATTERNS, BAD_PATTERNS)
TOML_SCALAR = st.one_of(st.integers(-3, 200), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                        JUNK_TEXT, LABELS)
TOML_ANY = st.one_of(TOML_SCALAR, st.lists(TOML_SCALAR, max_size=3),
                     st.dictionaries(st.sampled_from(["a", "file", "name", "x"]), TOML_SCALAR, max_size=2))


# valid starting points: (targets, response pattern, subjects) that the files of _write_root satisfy
BASES = [
    ({"kind": "parcels"}, "sub-{subject}_run.npy", None),
    ({"kind": "parcels", "names_file": "names.txt"}, "sub-{subject}_run.npy", ["01"]),
    ({"kind": "parcels", "names": ["V1", "A1", "MT"]}, "resp.h5#run", ["01"]),
    ({"kind": "parcels"}, "resp.h5#grp/*", ["01"]),
    ({"kind": "parcels"}, "roi.txt", ["01"]),
    ({"kind": "volume", "mask": "mask.nii.gz"}, "run.nii.gz", ["01"]),
    ({"kind": "parcels", "names": ["V1", "A1", "MT"]}, {"file": "sub-{subject}_run.npy", "confounds": "conf.tsv"},
     None),
]
MUTANT_VALUES = st.one_of(TOML_ANY, BAD_LABELS, BAD_PATTERNS, GOOD_PATTERNS, GOOD_LABELS,
                          st.sampled_from([0, -1, 1, 25, 1e308, math.nan, math.inf, "", [], {}, [0, 5], [5, 0],
                                           [0, 10], "train", "test", "exclude", "volume", "surface", "fsaverage5",
                                           "leave-one-run-out", "heldout", ["V1", "V1"], ["cosine*", "["]]))
MUTANT_KEYS = ["name", "tr", "first_tr_time", "subjects", "format", "root", "on_bad_subject", "ground_truth", "notes",
               "mmneuro_dataset", "extra", "runs", "targets", "rois", "evaluation", "recipe",
               "runs.0.name", "runs.0.split", "runs.0.responses", "runs.0.responses.0", "runs.0.n_trs", "runs.0.rows",
               "runs.0.first_tr_time", "runs.0.events", "runs.0.words", "runs.0.audio", "runs.0.video", "runs.0.x",
               "runs.1", "runs.1.name", "runs.1.split",
               "targets.kind", "targets.mask", "targets.mesh", "targets.names", "targets.names_file", "targets.atlas",
               "targets.time_axis", "rois.masks", "rois.masks.v", "rois.table", "rois.per_target",
               "evaluation.scheme", "evaluation.folds", "evaluation.ceiling",
               "recipe.delays", "recipe.detrend", "recipe.confounds", "recipe.standardize", "recipe.feature_detrend"]


def _set(data, dotted: str, value, delete: bool) -> None:
    """Set (or delete) ``dotted`` in nested dicts / lists, creating dicts on the way."""
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        if isinstance(node, list):
            if not part.isdigit():  # an earlier mutation made this a list: nothing named here to set
                return
            i = int(part)
            if i >= len(node):
                node.append({})
                i = len(node) - 1
            node = node[i]
        else:
            if not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit():
            return
        i = int(last)
        if delete and i < len(node):
            del node[i]
        elif not delete:
            node[i:i + 1] = [value]
    elif delete:
        node.pop(last, None)
    else:
        node[last] = value


@st.composite
def description_dict(draw) -> dict:
    """A valid description of the files in :func:`_write_root`, then 0-3 mutations (set a key to a value of
    any type or a near-miss value, or delete it)."""
    targets, pattern, subjects = draw(st.sampled_from(BASES))
    n_runs = draw(st.integers(1, 2))
    runs = [{"name": f"run-{i + 1}", "responses": [pattern], "split": "train"} for i in range(n_runs)]
    data = {"name": "fuzz", "tr": 1.5, "runs": runs, "targets": dict(targets),
            "evaluation": {"scheme": "contiguous-folds", "folds": 2}, "recipe": {"confounds": ["trans_x", "cos*"]}}
    if subjects is not None:
        data["subjects"] = list(subjects)
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 3]))):
        key = draw(st.sampled_from(MUTANT_KEYS))
        delete = draw(st.integers(0, 5)) == 0
        # 'root' only moves within the small fuzz folder (a root of / or /tmp would make subject discovery
        # glob big trees: slow, not wrong)
        value = draw(st.sampled_from([".", "..", "sub", "/nonexistent", "names.txt", ""])) if key == "root" else \
            draw(MUTANT_VALUES)
        _set(data, key, None if delete else value, delete)
    return data


def _write_root(root: Path) -> None:
    """Files a fuzzed description may point at (small and mostly valid)."""
    import h5py
    import nibabel as nib

    rng = np.random.default_rng(0)
    y = rng.standard_normal((20, 3)).astype(np.float32)
    for s in ("01", "a", "x.y"):
        np.save(root / f"sub-{s}_run.npy", y)
    (root / "names.txt").write_text("V1\nA1\nMT\n")
    (root / "roi.txt").write_text("\n".join(" ".join(f"{v:.3f}" for v in row) for row in y) + "\n")
    (root / "events.tsv").write_text("onset\tduration\ttrial_type\n0\t1\ta\n")
    (root / "words.tsv").write_text("onset\tduration\tword\n0\t0.5\thi\n")
    (root / "v.mp4").write_bytes(b"\x00" * 10)
    (root / "conf.tsv").write_text("trans_x\tcosine00\nn/a\t1\n" + "0.1\t2\n" * 19)
    (root / "rois.tsv").write_text("target\troi\nV1\tvisual\n5\tx\n")
    with h5py.File(root / "resp.h5", "w") as f:
        f["run"] = y
        f["grp/run2"] = y
    mask = np.zeros((3, 3, 3), np.uint8)
    mask[1:, 1:, 1:] = 1
    nib.save(nib.Nifti1Image(mask, np.eye(4)), root / "mask.nii.gz")
    nib.save(nib.Nifti1Image(rng.standard_normal((3, 3, 3, 20)).astype(np.float32), np.eye(4)), root / "run.nii.gz")
    (root / "gt").mkdir()
    (root / "sub").mkdir()


def test_fuzz_description_random_bytes():
    from mmneuro.datasets.description import read_description

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "mmneuro.toml"
        valid = b'name = "x"\ntr = 2.0\n[[runs]]\nname = "r"\nresponses = ["a.npy"]\n[targets]\nkind = "parcels"\n'

        @FUZZ
        @given(st.one_of(st.binary(max_size=300), corrupt(valid),
                         st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))))
        def case(raw):
            case.seen.append(1)
            path.write_bytes(raw)
            ours(read_description, path)

        assert run_counted(case) >= N_CASES


def test_fuzz_description_near_valid():
    import tomli_w

    from mmneuro.datasets.described import load_described
    from mmneuro.datasets.description import read_description

    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "ds"  # so that root = ".." stays inside the fuzz folder
        root.mkdir()
        _write_root(root)
        path = root / "mmneuro.toml"

        @FUZZ
        @given(description_dict())
        def case(data):
            case.seen.append(1)
            path.write_text(tomli_w.dumps(data), encoding="utf-8")
            desc = ours(read_description, path)
            if desc is None:
                event("description rejected")
                return
            ds = ours(load_described, path)
            event("dataset loaded" if ds is not None else "description valid, dataset rejected")
            if ds is not None and ds.subjects:
                ours(ds.load_responses, ds.subjects[0])

        assert run_counted(case) >= N_CASES


# --------------------------------------------------------------------------- words, transcripts, TextGrid

@st.composite
def textgrid_text(draw) -> str:
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", "xmax = 10",
             "tiers? <exists>", f"size = {draw(st.integers(0, 3))}", "item []:"]
    if draw(st.integers(0, 5)) == 0:
        lines = lines[draw(st.integers(0, 3)):]
    for k in range(draw(st.integers(0, 3))):
        lines += [f"    item [{k + 1}]:",
                  f'        class = "{draw(st.sampled_from(["IntervalTier", "TextTier", "x"]))}"',
                  f'        name = "{draw(st.sampled_from(["words", "phones", "", "W"]))}"',
                  "        xmin = 0", "        xmax = 10",
                  f"        intervals: size = {draw(st.integers(0, 4))}"]
        for j in range(draw(st.integers(0, 4))):
            lines.append(f"        {draw(st.sampled_from(['intervals', 'points']))} [{j + 1}]:")
            for key in draw(st.permutations(["xmin", "xmax", "text"])):
                if draw(st.integers(0, 6)) == 0:
                    continue
                if key == "text":
                    value = '"' + draw(st.sampled_from(["hi", "sp", "", 'say ""x""', "two\nlines", 'open'])) + \
                            draw(st.sampled_from(['"', '"', '"', ""]))
                else:
                    value = draw(NUMBER_TEXT)
                lines.append(f"            {key} = {value}")
    text = "\n".join(lines)
    if draw(st.integers(0, 4)) == 0:
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(JUNK_TEXT) + text[cut:]
    return text


TRANSCRIPT_CELL = st.one_of(
    st.lists(st.text(max_size=5), max_size=3).map(repr),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3).map(repr),
    st.lists(st.one_of(st.integers(-5, 50), st.booleans(), st.none(), st.text(max_size=3)), max_size=3).map(repr),
    st.sampled_from(["[]", "", "[1, 2", "[[1]]", "(1, 2)", "{'a': 1}", "1e999", "[1e999]", "[-1]", "__import__('os')",
                     "[" * 300 + "]" * 300, "[" * 3000, "['There''s']", '["a\tb"]', "[1j]", "[True]", "nan",
                     "[0.5, 'a']", "x" * 5000]),
    CELL)


@st.composite
def transcript_text(draw) -> str:
    cols = ["text_per_tr", "words_per_tr", "onsets_per_tr", "durations_per_tr"]
    header = draw(st.permutations(cols))
    if draw(st.integers(0, 6)) == 0:
        header = header[:draw(st.integers(0, 3))]
    rows = []
    for _ in range(draw(st.integers(0, 5))):
        n = draw(st.integers(0, 3))
        good = {"text_per_tr": "x", "words_per_tr": repr(["w"] * n),
                "onsets_per_tr": repr([0.1 * i for i in range(n)]), "durations_per_tr": repr([0.05] * n)}
        row = [good.get(c, "") if draw(st.integers(0, 2)) else draw(TRANSCRIPT_CELL) for c in header]
        if draw(st.integers(0, 8)) == 0:
            row = row[:-1]
        rows.append(row)
    return tsv(header, rows)


def test_fuzz_words_textgrid():
    from mmneuro.stimuli.words import read_textgrid_tier, read_words

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "w.TextGrid"

        @FUZZ
        @given(text_file(textgrid_text()), st.sampled_from([None, "words", "nope", ""]))
        def case(raw, tier):
            case.seen.append(1)
            path.write_bytes(raw)
            ours(read_words, path)
            ours(read_textgrid_tier, path, tier)

        assert run_counted(case) >= N_CASES


def test_fuzz_words_tsv():
    from mmneuro.stimuli.words import read_words

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "w.tsv"

        @FUZZ
        @given(text_file(table_text(["onset", "duration", "word"], ["offset", "Word", "words_per_tr"])))
        def case(raw):
            case.seen.append(1)
            path.write_bytes(raw)
            ours(read_words, path)

        assert run_counted(case) >= N_CASES


def test_fuzz_words_transcripts():
    from mmneuro.stimuli.words import read_transcript_tsv, read_words

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "friends_s01e01a.tsv"

        @FUZZ
        @given(text_file(transcript_text()), st.sampled_from([None, 1.49, 0.1, 0.0, -1.0, math.nan, math.inf]))
        def case(raw, tr):
            case.seen.append(1)
            path.write_bytes(raw)
            ours(read_words, path)
            ours(read_transcript_tsv, path, tr=tr)

        assert run_counted(case) >= N_CASES


# --------------------------------------------------------------------------- events and confounds

def test_fuzz_events_tsv():
    from mmneuro.stimuli.events import read_events

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "events.tsv"

        @FUZZ
        @given(text_file(table_text(["onset", "duration", "trial_type"], ["modulation", "stim_file"])),
               st.sampled_from([None, 0.0, 1.5, -1.0, math.nan]), st.sampled_from([None, "x", "", "n/a", " "]))
        def case(raw, na_duration, default_type):
            case.seen.append(1)
            path.write_bytes(raw)
            ours(read_events, path, na_duration=na_duration, default_trial_type=default_type)

        assert run_counted(case) >= N_CASES


@st.composite
def confounds_text(draw, names: list[str]) -> str:
    """A confounds table with the right width and mostly numeric cells (n/a, nan, inf among them)."""
    header = draw(st.permutations(names))
    cells = st.one_of(st.floats(-1e3, 1e3).map(repr), NUMBER_TEXT)
    rows = draw(st.lists(st.lists(cells, min_size=len(header), max_size=len(header)), max_size=5))
    return tsv(header, rows)


def test_fuzz_confounds_tsv():
    from mmneuro.brain.loaders import load_confounds

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "confounds.tsv"
        names = ["trans_x", "rot_y", "csf", "cosine00", "cosine01"]

        @FUZZ
        @given(st.one_of(text_file(table_text(names, ["white_matter", "trans_x"])), text_file(confounds_text(names))),
               st.lists(st.sampled_from([*names, "cosine*", "missing", "[", "*", "", "trans_?"]), max_size=4))
        def case(raw, columns):
            case.seen.append(1)
            path.write_bytes(raw)
            out = ours(load_confounds, path, columns)
            if out is not None:
                arr, chosen = out
                assert arr.ndim == 2 and arr.shape[1] == len(chosen)
                assert np.isfinite(arr).all()

        assert run_counted(case) >= N_CASES


def test_fuzz_roi_text():
    from mmneuro.brain.loaders import load_roi_timeseries

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "rois.txt"
        row = st.lists(NUMBER_TEXT, min_size=0, max_size=4).map(" ".join)
        lines = st.lists(st.one_of(row, st.just("# comment"), JUNK_TEXT), max_size=6).map("\n".join)

        @FUZZ
        @given(text_file(lines), st.booleans())
        def case(raw, check):
            case.seen.append(1)
            path.write_bytes(raw)
            out = ours(load_roi_timeseries, path, check_finite=check)
            if out is not None:
                assert out.ndim == 2 and out.size

        assert run_counted(case) >= N_CASES


# --------------------------------------------------------------------------- NIfTI runs (volume and parcels)

NIFTI_DTYPES = [np.uint8, np.int16, np.int32, np.float32, np.float64, np.complex64, np.int8, np.uint16]


@st.composite
def nifti_case(draw):
    import nibabel as nib

    shape3 = tuple(draw(st.lists(st.integers(1, 4), min_size=3, max_size=3)))
    ndim = draw(st.sampled_from([4, 4, 4, 3, 5]))
    n_t = draw(st.integers(0, 5))
    shape = shape3 + ((n_t,) if ndim >= 4 else ()) + ((2,) if ndim == 5 else ())
    dtype = np.dtype(draw(st.sampled_from(NIFTI_DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    data = (rng.standard_normal(shape) * 50 + 60).astype(dtype)
    if dtype.kind in "fc" and data.size and draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):
            data[tuple(rng.integers(0, max(s, 1)) for s in shape)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    mask = rng.random(shape3) < draw(st.sampled_from([0.0, 0.5, 1.0]))
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    run_affine = affine.copy()
    if draw(st.integers(0, 5)) == 0:
        run_affine[0, 3] += draw(st.sampled_from([1e-6, 5.0]))
    mask_shape_ok = draw(st.integers(0, 6)) > 0
    mask_data = mask.astype(draw(st.sampled_from([np.uint8, np.float32, np.int16])))
    if not mask_shape_ok:
        mask_data = np.ones(tuple(s + 1 for s in shape3), np.uint8)
    img = nib.Nifti1Image(data, run_affine)
    if dtype.kind in "iu" and draw(st.booleans()):
        img.header.set_slope_inter(draw(st.sampled_from([0.5, 3.3333333, 1e30, -2.0])),
                                   draw(st.sampled_from([0.0, 10.0, -1e6])))
    buf = io.BytesIO()
    fh = nib.FileHolder(fileobj=buf)
    img.to_file_map({"header": fh, "image": fh})
    raw = buf.getvalue()
    gz = draw(st.booleans())
    if gz:
        import gzip

        raw = gzip.compress(raw, mtime=0)
    bad = draw(corrupt(raw))
    return {"raw": bad, "corrupted": bad != raw, "gz": gz, "mask": mask_data, "affine": affine,
            "mask_raw_corrupt": draw(st.integers(0, 9)) == 0}


def _write_case(root: Path, case) -> tuple[Path, Path]:
    import nibabel as nib

    run = root / ("run.nii.gz" if case["gz"] else "run.nii")
    run.write_bytes(case["raw"])
    mask = root / "mask.nii.gz"
    nib.save(nib.Nifti1Image(case["mask"], case["affine"]), mask)
    if case["mask_raw_corrupt"]:
        mask.write_bytes(mask.read_bytes()[: len(mask.read_bytes()) // 2])
    return run, mask


def test_fuzz_nifti_runs():
    import nibabel as nib

    from mmneuro.brain.loaders import load_nifti_runs

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)

        @FUZZ
        @given(nifti_case())
        def case(c):
            case.seen.append(1)
            run, mask = _write_case(root, c)
            out = ours(load_nifti_runs, [run], mask)
            if out is not None and not c["corrupted"] and not c["mask_raw_corrupt"]:
                # the streamed float32 values equal nibabel's full (float64 where scaled) array, masked and cast
                binary = np.asarray(nib.load(str(mask)).dataobj) != 0
                full = np.asarray(nib.load(str(run)).dataobj)
                np.testing.assert_array_equal(out[0], full[binary].T.astype(np.float32))

        assert run_counted(case) >= N_CASES


def test_fuzz_nifti_parcel_average():
    import nibabel as nib

    from mmneuro.brain.spaces import ParcelSpace

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)

        @FUZZ
        @given(nifti_case(), st.sampled_from([[1], [1, 2], [2, 5]]))
        def case(c, labels):
            case.seen.append(1)
            run, mask = _write_case(root, c)
            shape3 = c["mask"].shape
            atlas = (np.arange(int(np.prod(shape3))).reshape(shape3) % (max(labels) + 1)).astype(np.int16)
            atlas_path = root / "atlas.nii.gz"
            nib.save(nib.Nifti1Image(atlas, c["affine"]), atlas_path)
            space = ours(ParcelSpace, [f"p{k}" for k in labels], atlas_img=atlas_path, labels=labels)
            if space is not None:
                ours(space.load, run)

        assert run_counted(case) >= N_CASES


# --------------------------------------------------------------------------- GIfTI surfaces

def _tiny_mesh(n: int):
    from nilearn.surface import InMemoryMesh, PolyMesh

    coords = np.random.default_rng(0).standard_normal((n, 3)).astype(np.float32)
    faces = np.array([[0, 1, 2]], np.int32)
    return PolyMesh(left=InMemoryMesh(coords, faces), right=InMemoryMesh(coords, faces))


@st.composite
def gifti_bytes(draw, n: int, hemi: str) -> bytes:
    import nibabel as nib

    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    darrays = []
    for _ in range(draw(st.integers(0, 4))):
        shape = draw(st.sampled_from([(n,), (n,), (n + 1,), (n, 3), (2, n), (1,)]))
        dtype = draw(st.sampled_from([np.float32, np.int32, np.uint8]))
        data = (rng.standard_normal(shape) * 10).astype(dtype)
        if dtype in (np.float32, np.float64) and draw(st.integers(0, 5)) == 0:
            data.flat[0] = draw(st.sampled_from([np.nan, np.inf, 1e300]))
        intent = draw(st.sampled_from(["NIFTI_INTENT_TIME_SERIES", "NIFTI_INTENT_NONE", "NIFTI_INTENT_POINTSET"]))
        encoding = draw(st.sampled_from(["GIFTI_ENCODING_B64GZ", "GIFTI_ENCODING_B64BIN", "GIFTI_ENCODING_ASCII"]))
        darrays.append(nib.gifti.GiftiDataArray(data, intent=intent, encoding=encoding))
    meta = {}
    if draw(st.booleans()):
        meta["AnatomicalStructurePrimary"] = draw(st.sampled_from(["CortexLeft", "CortexRight", "Other"]))
    img = nib.gifti.GiftiImage(darrays=darrays, meta=nib.gifti.GiftiMetaData(meta))
    return draw(corrupt(img.to_bytes()))


def test_fuzz_gifti_surface():
    from mmneuro.brain.spaces import SurfaceSpace

    n = 5
    space = SurfaceSpace(_tiny_mesh(n))
    with tempfile.TemporaryDirectory() as d:
        left, right = Path(d) / "sub-01_hemi-L.func.gii", Path(d) / "sub-01_hemi-R.func.gii"

        @FUZZ
        @given(gifti_bytes(n, "L"), gifti_bytes(n, "R"))
        def case(raw_l, raw_r):
            case.seen.append(1)
            left.write_bytes(raw_l)
            right.write_bytes(raw_r)
            out = ours(space.load, {"L": left, "R": right})
            if out is not None:
                assert out.dtype == np.float32 and out.shape[1] == 2 * n and np.isfinite(out).all()

        assert run_counted(case) >= N_CASES


# --------------------------------------------------------------------------- .npy / .npz / .h5 arrays

ARRAY_DTYPES = ["float32", "float64", ">f8", "int16", "uint8", "bool", "complex64", "U3", "S2", "object", "f2",
                "int64", "V4"]


@st.composite
def small_array(draw):
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    dtype = np.dtype(draw(st.sampled_from(ARRAY_DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.standard_normal(shape) * draw(st.sampled_from([1.0, 1e5, 1e40]))
    if dtype.kind == "O":
        arr = np.empty(shape, dtype=object)
        arr[...] = 1
    elif dtype.kind == "V":
        arr = np.zeros(shape, dtype)
    else:
        with np.errstate(all="ignore"):
            arr = values.astype(dtype)
    if dtype.kind == "f" and arr.size and draw(st.integers(0, 4)) == 0:
        arr.flat[0] = np.nan
    if draw(st.integers(0, 4)) == 0:
        arr = np.asfortranarray(arr)
    return arr


H5_KEYS = st.sampled_from(["data", "a/b", "a/b/c", "grp/x", "x y", "ünï", "1", "run.1"])


@st.composite
def array_file(draw):
    kind = draw(st.sampled_from(["npy", "npz", "h5"]))
    buf = io.BytesIO()
    if kind == "npy":
        np.save(buf, draw(small_array()), allow_pickle=True)
        raw = buf.getvalue()
    elif kind == "npz":
        members = draw(st.dictionaries(st.sampled_from(["a", "b", "times", "x/y", "arr_0"]), small_array(),
                                       max_size=3))
        np.savez(buf, **members)
        raw = buf.getvalue()
    else:
        import h5py

        with h5py.File(buf, "w") as f:
            for key in draw(st.lists(H5_KEYS, max_size=3, unique=True)):
                try:
                    arr = draw(small_array())
                    if arr.dtype.kind == "O":
                        f.create_dataset(key, data=np.array(["a", "bc"], dtype=h5py.string_dtype()))
                    else:
                        f.create_dataset(key, data=arr)
                except (ValueError, TypeError):  # a path that collides with a group / dataset already there
                    continue
            if draw(st.booleans()):
                f.create_group("empty_group")
            if draw(st.integers(0, 4)) == 0:
                f.create_dataset("compound", data=np.zeros(3, dtype=[("a", "f4"), ("b", "i2")]))
        raw = buf.getvalue()
    key = draw(st.one_of(st.none(), H5_KEYS, st.sampled_from(["", "/", "/data", "a", "*", "nope", "empty_group"])))
    return kind, draw(corrupt(raw)), key


def test_fuzz_arrays_npy_npz_h5():
    from mmneuro.brain.loaders import load_array
    from mmneuro.datasets.described import h5_key

    with tempfile.TemporaryDirectory() as d:

        @FUZZ
        @given(array_file(), st.booleans())
        def case(spec, check):
            case.seen.append(1)
            kind, raw, key = spec
            path = Path(d) / f"resp.{kind}"
            path.write_bytes(raw)
            out = ours(load_array, path, key, check_finite=check)
            if out is not None:
                assert out.dtype == np.float32 and out.ndim == 2 and out.size
            if kind == "h5" and key:
                ours(h5_key, path, key)

        assert run_counted(case) >= N_CASES


# --------------------------------------------------------------------------- precomputed features (.npz)

@st.composite
def precomputed_npz(draw) -> bytes:
    members = {}
    if draw(st.integers(0, 5)):
        n = draw(st.integers(0, 5))
        members["times"] = draw(st.one_of(st.just(np.arange(n, dtype=np.float64)), small_array()))
    for name in draw(st.lists(st.sampled_from(["layer1", "layer.2", "a/b", "l"]), max_size=3, unique=True)):
        members[name] = draw(small_array())
    if draw(st.booleans()):
        members["pooling"] = draw(st.one_of(st.just(np.array("mean")), small_array()))
    buf = io.BytesIO()
    np.savez(buf, **members)
    return draw(corrupt(buf.getvalue()))


def test_fuzz_precomputed_npz():
    from mmneuro.models.precomputed import load_precomputed

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "run.npz"

        @FUZZ
        @given(precomputed_npz(), st.sampled_from([None, ["layer1"], ["nope"], []]))
        def case(raw, layers):
            case.seen.append(1)
            path.write_bytes(raw)
            out = ours(load_precomputed, path, layers)
            if out is not None:
                for tf in out.values():
                    assert np.isfinite(tf.data).all()

        assert run_counted(case) >= N_CASES


# --------------------------------------------------------------------------- audio and video

def _wav_bytes(n: int, channels: int, sr: int, subtype: str) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    data = np.random.default_rng(n).uniform(-1, 1, (n, channels)).astype(np.float32)
    sf.write(buf, data, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


@st.composite
def wav_case(draw) -> bytes:
    raw = _wav_bytes(draw(st.integers(0, 400)), draw(st.integers(1, 3)), draw(st.sampled_from([8000, 16000, 44100])),
                     draw(st.sampled_from(["PCM_16", "FLOAT", "PCM_U8"])))
    return draw(corrupt(raw))


def test_fuzz_audio_wav():
    from mmneuro.stimuli.audio import read_audio

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.wav"

        @FUZZ
        @given(wav_case(), st.sampled_from([None, 16000, 8000]))
        def case(raw, sample_rate):
            case.seen.append(1)
            path.write_bytes(raw)
            out = ours(read_audio, path, sample_rate)
            if out is not None:
                wav, sr = out
                assert wav.dtype == np.float32 and wav.ndim == 1 and sr > 0

        assert run_counted(case) >= N_CASES


_VIDEO: dict[str, bytes] = {}


def _video_bytes() -> bytes:
    if "mp4" not in _VIDEO:
        from media import write_square_video

        with tempfile.TemporaryDirectory() as d:
            _VIDEO["mp4"] = write_square_video(Path(d) / "v.mp4", 6).read_bytes()
    return _VIDEO["mp4"]


def test_fuzz_video_mp4():
    from mmneuro.stimuli.video import read_frames, read_video_info

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "v.mp4"

        @FUZZ
        @given(st.one_of(st.binary(max_size=300), st.deferred(lambda: corrupt(_video_bytes()))),
               st.lists(st.one_of(st.floats(-1, 2), st.just(math.nan)), max_size=3))
        def case(raw, times):
            case.seen.append(1)
            path.write_bytes(raw)
            ours(read_video_info, path)
            out = ours(read_frames, path, np.asarray(times))
            if out is not None:
                assert out.dtype == np.uint8 and out.shape[0] == len(times)

        assert run_counted(case) >= N_CASES


# --------------------------------------------------------------------------- streamed NIfTI: same numbers, less memory

@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("stored, slope, inter", [("int16", 3.3333333, 0.0), ("int16", 0.01, 100.0),
                                                  ("uint8", 1.0, 0.0), ("float32", 1.0, 0.0), ("float64", 1.0, 0.0),
                                                  ("int32", 2.5, -7.0)])
def test_streamed_nifti_equals_nibabel_float64_cast(tmp_path, suffix, stored, slope, inter):
    """load_nifti_runs (volume by volume, in-mask only) == nibabel's whole float64 array masked, cast to float32."""
    import nibabel as nib

    from mmneuro.brain.loaders import load_nifti_runs

    rng = np.random.default_rng(3)
    shape3 = (6, 5, 4)
    mask = rng.random(shape3) < 0.4
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    data = (rng.standard_normal(shape3 + (9,)) * 40 + 90).astype(stored)
    img = nib.Nifti1Image(data, affine)
    if np.dtype(stored).kind in "iu":
        img.header.set_slope_inter(slope, inter)
    run = tmp_path / f"run{suffix}"
    nib.save(img, run)
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    got = load_nifti_runs([run], tmp_path / "mask.nii.gz")[0]
    direct = np.asarray(nib.load(str(run)).get_fdata(dtype=np.float64))  # float64 all through
    expected = direct[mask].T.astype(np.float32)
    assert got.dtype == np.float32 and got.shape == (9, int(mask.sum()))
    np.testing.assert_array_equal(got, expected)


def test_streamed_nifti_never_holds_the_float64_volume(tmp_path):
    """Peak numpy allocation while loading stays far below the float64 4-D array the old path built."""
    import tracemalloc

    import nibabel as nib

    from mmneuro.brain.loaders import load_nifti_runs

    rng = np.random.default_rng(4)
    shape = (24, 24, 20, 60)
    mask = np.zeros(shape[:3], bool)
    mask[6:18, 6:18, 5:15] = True  # 1440 of 11520 voxels
    img = nib.Nifti1Image((rng.standard_normal(shape) * 100).astype(np.int16), np.eye(4))
    img.header.set_slope_inter(0.37, 5.0)
    nib.save(img, tmp_path / "run.nii.gz")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), np.eye(4)), tmp_path / "mask.nii.gz")
    full_float64 = int(np.prod(shape)) * 8  # 5.5 MB
    tracemalloc.start()
    try:
        y = load_nifti_runs([tmp_path / "run.nii.gz"], tmp_path / "mask.nii.gz")[0]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert y.shape == (60, 1440)
    assert peak < full_float64 / 4, f"peak {peak} bytes vs {full_float64} for the float64 4-D array"
