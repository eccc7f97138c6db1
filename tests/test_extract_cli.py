"""`mmneuro extract` fills the cache with the keys `encode` reads: encode after extract never runs the model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mmneuro import pipeline
from mmneuro.cli import main
from mmneuro.models.melspec import MelSpecAdapter


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _no_forward(monkeypatch):
    def boom(self, batch, want_attentions=False):
        raise AssertionError("the model ran: encode did not find the features `extract` stored")

    monkeypatch.setattr(MelSpecAdapter, "forward", boom)


@pytest.mark.parametrize("window", [None, "context:3"])
def test_encode_after_extract_reads_the_cache_only(demo_root, tmp_path, capsys, monkeypatch, window):
    cache = tmp_path / "cache"
    args = ["extract", "--model", "melspec", "--stimuli", str(demo_root), "--cache", str(cache), "--no-progress"]
    code, out, err = run_cli(args + (["--window", window] if window else []), capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[-1] == str(cache)
    rows = {l.split()[0]: l.split() for l in lines[1:-1]}
    assert set(rows) == {"train-01", "train-02", "train-03", "train-04", "test-01"}
    assert rows["train-01"][1] == "110" and rows["train-01"][2] == "110"  # windows, computed
    assert len(list((cache / "melspec").iterdir())) == 5  # one key per run
    # a second extract computes nothing
    code, out, _ = run_cli(args + (["--window", window] if window else []), capsys)
    assert code == 0 and all(l.split()[2] == "0" for l in out.strip().splitlines()[1:-1])

    _no_forward(monkeypatch)
    [res] = pipeline.encode(model="melspec", subject=1, dataset=demo_root, out=None, cache=cache, progress=False,
                            echo=None, window=window)
    assert np.isfinite(res.summary["layers"]["logmel"]["mean_r"])
    # the other window kind is a different key: encode must compute it, and here cannot
    with pytest.raises(AssertionError, match="the model ran"):
        pipeline.encode(model="melspec", subject=1, dataset=demo_root, out=None, cache=cache, progress=False,
                        echo=None, window="context:5" if window else "context:3")


def test_extract_demo_by_name_and_files(demo_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MMNEURO_DEMO", str(demo_root))
    cache = tmp_path / "cache"
    code, out, err = run_cli(["extract", "--model", "melspec", "--stimuli", "demo", "--cache", str(cache),
                              "--no-progress", "--tr", "2.0"], capsys)
    assert code == 2 and "TR 1.49" in err and "--tr 2.0" in err
    # stimulus files: runs by stem on a (i + 0.5) * tr grid
    stim = tmp_path / "stim"
    stim.mkdir()
    shutil.copy(demo_root / "stimuli" / "test-01.wav", stim / "story.wav")
    code, out, err = run_cli(["extract", "--model", "melspec", "--stimuli", str(stim), "--cache", str(cache),
                              "--no-progress"], capsys)
    assert code == 2 and "run 'story' has no TR times" in err and "--tr SECONDS" in err
    code, out, err = run_cli(["extract", "--model", "melspec", "--stimuli", str(stim / "story.wav"), "--tr", "2",
                              "--cache", str(cache), "--no-progress"], capsys)
    assert code == 0, err
    row = out.strip().splitlines()[1].split()
    assert row[0] == "story" and row[1] == str(int(80 * 1.49 // 2))  # whole 2 s TRs in the 119.2 s of audio
