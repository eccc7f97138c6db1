"""Bad requests and bad inputs are refused up front, in one line, before any heavy work.

Each test here failed on the code before its check existed (a late traceback, a silent
fallback or a silent wrong result).
"""

from __future__ import annotations

import errno
import warnings

import numpy as np
import pytest

from mmneuro import pipeline
from mmneuro.cli import main
from mmneuro.errors import InputError


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def no_heavy_work(monkeypatch):
    """Fail the test if features are computed or read: the request should be refused before."""

    def heavy(*args, **kwargs):
        raise AssertionError("heavy work started before the request was checked")

    monkeypatch.setattr(pipeline, "model_features", heavy)
    monkeypatch.setattr(pipeline, "precomputed_features", heavy)


def encode_args(demo_root, tmp_path, *extra):
    return ["encode", "--model", "melspec", "--dataset", str(demo_root), "--cache", str(tmp_path / "cache"),
            "--no-progress", *extra]


# --------------------------------------------------------------------------- 7: validate before computing

def test_out_that_is_a_file_is_refused_before_any_work(demo_root, tmp_path, capsys, no_heavy_work):
    out = tmp_path / "results.txt"
    out.write_text("not a folder")
    code, _, err = run_cli(encode_args(demo_root, tmp_path, "--out", str(out)), capsys)
    line = one_line(err)
    assert code == 2 and "--out" in line and str(out) in line and "file" in line


def test_out_under_a_file_is_refused_before_any_work(demo_root, tmp_path, capsys, no_heavy_work):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    out = blocker / "results"
    code, _, err = run_cli(encode_args(demo_root, tmp_path, "--out", str(out)), capsys)
    line = one_line(err)
    assert code == 2 and "--out" in line and str(blocker) in line


def test_out_without_write_permission_is_refused(demo_root, tmp_path, capsys, no_heavy_work, monkeypatch):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(locked) else real_access(p, mode, **kw))
    code, _, err = run_cli(encode_args(demo_root, tmp_path, "--out", str(locked / "results")), capsys)
    line = one_line(err)
    assert code == 2 and "--out" in line and str(locked) in line and "write" in line


def test_cache_that_is_a_file_is_refused(demo_root, tmp_path, capsys, no_heavy_work):
    cache = tmp_path / "cache-file"
    cache.write_text("")
    args = ["encode", "--model", "melspec", "--dataset", str(demo_root), "--cache", str(cache),
            "--out", str(tmp_path / "r"), "--no-progress"]
    code, _, err = run_cli(args, capsys)
    line = one_line(err)
    assert code == 2 and "--cache" in line and str(cache) in line
    code, _, err = run_cli(["extract", "--model", "melspec", "--stimuli", str(demo_root), "--cache", str(cache),
                            "--no-progress"], capsys)
    line = one_line(err)
    assert code == 2 and "--cache" in line and str(cache) in line


@pytest.mark.parametrize("delays, needle", [(["-1"], "-1"), (["1", "80"], "80")])
def test_impossible_delays_are_refused(demo_root, tmp_path, capsys, no_heavy_work, delays, needle):
    code, _, err = run_cli(encode_args(demo_root, tmp_path, "--out", str(tmp_path / "r"), "--delays", *delays),
                           capsys)
    line = one_line(err)
    assert code == 2 and "--delays" in line and needle in line
    if needle == "80":
        assert "test-01" in line and "80 TRs" in line


def test_device_cuda_without_cuda_is_one_line(demo_root, tmp_path, capsys, monkeypatch, no_heavy_work):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run_cli(encode_args(demo_root, tmp_path, "--out", str(tmp_path / "r"), "--device", "cuda"),
                           capsys)
    line = one_line(err)
    assert code == 2 and "CUDA is not available" in line and "--device cpu" in line
    # the adapters check the same, for extract and the studies
    from mmneuro.models.registry import get_adapter

    with pytest.raises(InputError, match="CUDA is not available"):
        get_adapter("melspec", device="cuda:0")
    with pytest.raises(InputError, match="not a torch device"):
        get_adapter("melspec", device="gpu")


@pytest.mark.parametrize("failure", ["offline", "connection"])
def test_download_without_network_is_one_line(demo_root, tmp_path, capsys, monkeypatch, failure):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def snapshot_download(repo_id, *args, **kwargs):
        if kwargs.get("local_files_only") or failure == "offline":
            raise LocalEntryNotFoundError("Cannot find an appropriate cached snapshot folder; check your connection")
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    code, _, err = run_cli(["encode", "--model", "vit", "--dataset", str(demo_root), "--out", str(tmp_path / "r"),
                            "--download", "--no-progress"], capsys)
    line = one_line(err)
    assert code == 2 and "hf download google/vit-base-patch16-224" in line and "--weights" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("code_", [errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES])
@pytest.mark.parametrize("command", ["encode", "extract"])
def test_disk_errors_name_the_path(demo_root, tmp_path, capsys, monkeypatch, code_, command):
    target = tmp_path / "r" / "demo" / "sub-01" / "melspec" / "r_logmel.nii.gz"

    def write_fails(*args, **kwargs):
        raise OSError(code_, "simulated", str(target))

    monkeypatch.setattr(pipeline, command, write_fails)
    if command == "encode":
        args = encode_args(demo_root, tmp_path, "--out", str(tmp_path / "r"))
    else:
        args = ["extract", "--model", "melspec", "--stimuli", str(demo_root), "--cache", str(tmp_path / "c"),
                "--no-progress"]
    code, _, err = run_cli(args, capsys)
    line = one_line(err)
    assert code != 0 and str(target) in line


def test_ctrl_c_is_one_line_and_exit_130(demo_root, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "encode", interrupted)
    code, _, err = run_cli(encode_args(demo_root, tmp_path, "--out", str(tmp_path / "r")), capsys)
    line = one_line(err)
    assert code == 130 and "interrupted" in line and "rerun" in line


@pytest.mark.parametrize("cv", ["5", 1, 0, True, 2.5, None, object()])
def test_ridgecv_refuses_a_bad_cv_naming_it(cv):
    from mmneuro.encoding.ridge import RidgeCV

    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((40, 3)), rng.standard_normal((40, 2))
    with pytest.raises(InputError, match=r"\bcv\b") as info:
        RidgeCV(alphas=[1.0], cv=cv).fit(X, Y)
    assert repr(cv) in str(info.value)


def test_ridgecv_accepts_the_documented_cv_forms():
    from sklearn.model_selection import KFold

    from mmneuro.encoding.ridge import RidgeCV

    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((40, 3)), rng.standard_normal((40, 2))
    folds = [(np.arange(20, 40), np.arange(20)), (np.arange(20), np.arange(20, 40))]
    for cv in (2, np.int64(3), KFold(4), folds, iter(folds)):
        RidgeCV(alphas=[1.0], cv=cv).fit(X, Y)


# --------------------------------------------------------------------------- 8: wrong input accepted silently

def write_features(folder, demo, span=None):
    folder.mkdir(parents=True, exist_ok=True)
    for run in demo.runs:
        t = run.tr_times if span is None or run.name != "train-02" else run.tr_times[run.tr_times <= span]
        np.savez(folder / f"{run.name}.npz", times=t, layer=np.ones((len(t), 2), np.float32))
    return folder


def test_one_features_file_for_a_multi_run_dataset_is_refused(demo, demo_root, tmp_path, capsys):
    path = tmp_path / "feats.npz"
    t = demo.runs[0].tr_times
    np.savez(path, times=t, layer=np.ones((len(t), 2), np.float32))
    code, _, err = run_cli(encode_args(demo_root, tmp_path, "--model", "mine", "--features", str(path), "--out",
                                       str(tmp_path / "r")), capsys)
    line = one_line(err)
    assert code == 2 and str(path) in line and "one per run" in line
    assert all(f"{run.name}.npz" in line for run in demo.runs)


def test_features_that_cover_part_of_a_run_are_refused(demo, tmp_path):
    folder = write_features(tmp_path / "features", demo, span=50.0)
    with pytest.raises(InputError) as info:
        pipeline.precomputed_features(folder, demo)
    msg, t = str(info.value), demo.run("train-02").tr_times
    covered, whole = f"{t[0]:.1f}-{t[t <= 50][-1]:.1f} s", f"{t[0]:.1f}-{t[-1]:.1f} s"
    assert "train-02.npz" in msg and covered in msg and whole in msg and "\n" not in msg


def test_features_covering_every_run_are_accepted(demo, tmp_path):
    folder = write_features(tmp_path / "features", demo)
    by_layer = pipeline.precomputed_features(folder, demo)
    assert {run: a.shape for run, a in by_layer["layer"].items()} == {r.name: (r.n_trs, 2) for r in demo.runs}


def test_window_with_features_is_refused(demo, demo_root, tmp_path, capsys, no_heavy_work):
    folder = write_features(tmp_path / "features", demo)
    code, _, err = run_cli(encode_args(demo_root, tmp_path, "--model", "mine", "--features", str(folder),
                                       "--window", "context:4", "--out", str(tmp_path / "r")), capsys)
    line = one_line(err)
    assert code == 2 and "--window" in line and "--features" in line


def test_low_sample_rate_audio_is_upsampled_with_a_warning(tmp_path):
    import soundfile as sf

    from mmneuro.stimuli.audio import read_audio

    path = tmp_path / "phone.wav"
    sf.write(str(path), 0.1 * np.random.default_rng(0).standard_normal(8000).astype(np.float32), 8000)
    with pytest.warns(UserWarning) as record:
        wav, sr = read_audio(path, sample_rate=16000)
    msg = str(record[0].message)
    assert sr == 16000 and len(wav) == 16000
    assert str(path) in msg and "8000 Hz" in msg and "16000 Hz" in msg
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_audio(path, sample_rate=4000)  # downsampling loses nothing the model could use: no warning
        read_audio(path)


def test_antiphase_stereo_is_refused(tmp_path):
    import soundfile as sf

    from mmneuro.stimuli.audio import read_audio

    x = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    path = tmp_path / "antiphase.wav"
    sf.write(str(path), np.stack([x, -x], axis=1).astype(np.float32), 16000)
    with pytest.raises(InputError, match="antiphase.wav") as info:
        read_audio(path)
    assert "channel" in str(info.value)
    # ordinary stereo (correlated or one silent channel) is still averaged
    for right in (x, 0 * x, np.roll(x, 7)):
        sf.write(str(path), np.stack([x, right], axis=1).astype(np.float32), 16000)
        read_audio(path)
    sf.write(str(path), np.zeros((100, 2), np.float32), 16000)
    read_audio(path)  # silence stays silence


def test_unsorted_word_onsets_are_refused(tmp_path):
    from mmneuro.stimuli.words import read_words

    tsv = tmp_path / "words.tsv"
    tsv.write_text("onset\tduration\tword\n1.0\t0.2\tthe\n\n2.0\t0.3\trabbit\n1.5\t0.2\tran\n")
    with pytest.raises(InputError, match=r"words.tsv.*line 5") as info:
        read_words(tsv)
    assert "1.5" in str(info.value) and "2" in str(info.value)

    grid = tmp_path / "words.TextGrid"
    intervals = [(0.0, 1.0, ""), (1.0, 1.5, "alice"), (0.5, 0.9, "was")]
    body = "".join(f'        intervals [{i}]:\n            xmin = {a}\n            xmax = {b}\n'
                   f'            text = "{w}"\n' for i, (a, b, w) in enumerate(intervals, 1))
    grid.write_text('File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = 2\ntiers? <exists>\n'
                    'size = 1\nitem []:\n    item [1]:\n        class = "IntervalTier"\n        name = "words"\n'
                    f'        xmin = 0\n        xmax = 2\n        intervals: size = 3\n{body}')
    with pytest.raises(InputError, match=r"words.TextGrid.*intervals \[3\]"):
        read_words(grid)

    transcript = tmp_path / "transcript.tsv"
    transcript.write_text("text_per_tr\twords_per_tr\tonsets_per_tr\tdurations_per_tr\n"
                          "a b\t['a', 'b']\t[0.2, 0.9]\t[0.3, 0.3]\n"
                          "c\t['c']\t[0.5]\t[0.2]\n")
    with pytest.raises(InputError, match=r"transcript.tsv.*line 3"):
        read_words(transcript)


def test_sorted_words_with_ties_are_accepted(tmp_path):
    from mmneuro.stimuli.words import read_words

    tsv = tmp_path / "words.tsv"
    tsv.write_text("onset\tduration\tword\n1.0\t0.2\tthe\n1.0\t0.3\trabbit\n1.5\t0.2\tran\n")
    assert read_words(tsv).words == ["the", "rabbit", "ran"]


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_mmneuro_alice_pointing_nowhere_is_an_error(tmp_path, monkeypatch, kind):
    from mmneuro.datasets.alice import resolve_alice_root
    from mmneuro.datasets.catalog import open_dataset

    where = tmp_path / "no-alice-here"
    if kind == "empty":
        where.mkdir()
    monkeypatch.setenv("MMNEURO_ALICE", str(where))
    for call in (resolve_alice_root, lambda: open_dataset("alice")):
        with pytest.raises(InputError) as info:
            call()
        msg = str(info.value)
        assert "MMNEURO_ALICE" in msg and str(where) in msg and "\n" not in msg
