"""Extraction with clip/context windows, streamed decoding, the prefetching pipeline and chunked commits."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch

from strict_json import read_json
from mmneuro.datasets.base import StimulusRun
from mmneuro.errors import InputError
from mmneuro.features.extract import MediaRun, extract_run, plan_windows, stimulus_runs
from mmneuro.features.store import FeatureStore
from mmneuro.models.base import ModelAdapter, ModelOutput, WeightsInfo
from mmneuro.models.melspec import MelSpecAdapter
from mmneuro.stimuli import video as video_mod
from mmneuro.stimuli.video import iter_frames, read_frames

from test_extract import GRAYS, Probe, make_audio, make_video


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    return {"video": make_video(d / "clip.mp4"), "audio": make_audio(d / "clip.wav")}


def run6(media, **kw):
    return StimulusRun("run-1", np.arange(6) + 0.5, video=media["video"], audio=media["audio"], **kw)


class WaveProbe(ModelAdapter):
    """Waveform in; records each window's length and ``current_samples``; layer "rms"."""

    name = "waveprobe"
    modalities = ("audio",)
    input_kind = "waveform"
    version = "wp-1"

    def __init__(self):
        self.layer_names = ["rms"]
        self.weights = WeightsInfo("none", None, "waveprobe")
        self.sample_rate = 16000
        self.seen = []

    def preprocess(self, sample):
        self.seen.append((len(sample.waveform), getattr(sample, "current_samples", None)))
        return {"r": torch.tensor([float(np.sqrt(np.mean(sample.waveform ** 2)))])}

    def collate(self, items):
        return {"r": torch.stack([it["r"] for it in items])}

    def forward(self, batch, want_attentions=False):
        return ModelOutput(hidden={"rms": batch["r"].unsqueeze(1)}, token_groups={"all": slice(None)})


# ---- streaming decode -----------------------------------------------------------------


def test_iter_frames_matches_read_frames_and_needs_sorted_times(media):
    rng = np.random.default_rng(1)
    times = np.sort(rng.uniform(0, 6.0, 40))
    times[5] = times[4]  # repeats allowed
    streamed = np.stack(list(iter_frames(media["video"], times)))
    np.testing.assert_array_equal(streamed, read_frames(media["video"], times))
    with pytest.raises(InputError, match=r"non-decreasing; times\[2\]=1.000000 s < times\[1\]=2.000000 s"):
        iter_frames(media["video"], [0.5, 2.0, 1.0])
    with pytest.raises(InputError, match="after the end of the video"):
        list(iter_frames(media["video"], [0.5, 7.0]))


def test_the_video_is_opened_once_per_run_whatever_the_chunking(media, monkeypatch):
    opened = []
    real_open = video_mod._open
    monkeypatch.setattr(video_mod, "_open", lambda p: (opened.append(p), real_open(p))[1])
    probe = Probe(n_frames=3)
    out = extract_run(probe, run6(media), batch_size=1, chunk_windows=1, progress=False)
    np.testing.assert_allclose(out["brightness"].data[:, 0], GRAYS, atol=4)
    assert len(opened) == 2  # stream facts once (planning) + one sequential decode of the whole run
    assert probe.calls == 6


# ---- window kinds -----------------------------------------------------------------------


def test_context_windows_read_the_preceding_seconds(media):
    probe = Probe(n_frames=3)
    out = extract_run(probe, run6(media), window="context:3", progress=False)["brightness"].data[:, 0]
    # TR i reads [i - 2, i + 1): its own second and the two before (fewer at the run start)
    for i in range(6):
        lo = max(0, i - 2)
        if i >= 2:  # 30 distinct frames, 3 taken at 5, 15, 25: one per second
            assert out[i] == pytest.approx(np.mean(GRAYS[lo : i + 1]), abs=4)
    assert out[0] == pytest.approx(GRAYS[0], abs=4)
    clip = extract_run(Probe(n_frames=3), run6(media), progress=False)["brightness"].data[:, 0]
    assert abs(out[4] - clip[4]) > 30  # the context changes the features


def test_context_audio_windows_carry_the_current_tr(media):
    wp = WaveProbe()
    extract_run(wp, run6(media), window="context:3", progress=False)
    lengths, current = zip(*wp.seen)
    assert list(lengths) == [16000, 32000, 48000, 48000, 48000, 48000]  # shorter at the run start, never padded
    assert list(current) == [16000] * 6  # the last TR's worth of samples is the TR's own clip
    wp = WaveProbe()
    extract_run(wp, run6(media), progress=False)
    assert [s for s, _ in wp.seen] == [16000] * 6 and all(c is None for _, c in wp.seen)
    # the tone in second 2 reaches TRs 2..4 through a 3 s context and only TR 2 through clips
    mel = MelSpecAdapter(device="cpu")
    ctx = extract_run(mel, run6(media), window="context:3", progress=False)["logmel"].data.max(axis=1)
    assert set(np.argsort(ctx)[-3:].tolist()) == {2, 3, 4}


def test_adapter_default_window_and_word_models(media, tmp_path):
    probe = Probe(n_frames=2)
    probe.default_window = "context:2"
    plan = plan_windows(probe, run6(media))
    assert plan.params["window"] == "context" and plan.params["seconds"] == 2.0
    assert plan_windows(probe, run6(media), window="clip").params["window"] == "clip"
    words = tmp_path / "w.tsv"
    words.write_text("onset\tduration\tword\n0.1\t0.2\thello\n0.5\t0.2\tworld\n")
    from mmneuro.models import get_adapter

    minilm = get_adapter("minilm", device="cpu")
    with pytest.raises(InputError, match="reads words .* window 'context:3' applies to frame and audio models only"):
        plan_windows(minilm, StimulusRun("s", np.arange(2.0), words=words), window="context:3")


def test_short_windows_are_counted_and_recorded(media, tmp_path):
    store = FeatureStore(tmp_path / "cache")
    probe = Probe(n_frames=12)  # 1 s clips at 10 fps show 10 frames
    out = extract_run(probe, run6(media), store=store, progress=False)
    np.testing.assert_allclose(out["brightness"].data[:, 0], GRAYS, atol=4)
    side = json.loads(next((tmp_path / "cache" / "probe").glob("*/brightness.json")).read_text())
    assert side["windows"]["short_windows"] == 6 and side["windows"]["n_distinct_frames"] == [10] * 6
    assert side["key"]["window"]["short"] == "repeat" and side["key"]["window"]["frame_select"] == "uniform-distinct"
    with pytest.raises(InputError, match=r"6 window\(s\) show fewer distinct frames .* than the model's 12"):
        extract_run(Probe(n_frames=12), run6(media), short="raise", progress=False)


def test_window_kind_is_part_of_the_key(media, tmp_path):
    store = FeatureStore(tmp_path / "cache")
    reports = []
    for w in ("clip", "context:3", "context:4", "clip"):
        extract_run(Probe(), run6(media), store=store, window=w, progress=False, report=reports)
    keys = [r.key for r in reports]
    assert len(set(keys[:3])) == 3 and keys[3] == keys[0]
    assert reports[3].computed_windows == 0 and reports[3].cached_layers == ["brightness", "double"]
    kj = read_json(store.root / "probe" / keys[1] / "key.json")
    assert kj["window"]["window"] == "context" and kj["window"]["seconds"] == 3.0


# ---- the pipeline -----------------------------------------------------------------------


class Slow(Probe):
    """Preprocessing and forward take wall time (sleep) and record their threads."""

    def __init__(self, prep_s, fwd_s, **kw):
        super().__init__(**kw)
        self.prep_s, self.fwd_s, self.threads = prep_s, fwd_s, set()

    def preprocess(self, sample):
        self.threads.add(threading.current_thread().name)
        time.sleep(self.prep_s)
        return super().preprocess(sample)

    def forward(self, batch, want_attentions=False):
        time.sleep(self.fwd_s)
        return super().forward(batch, want_attentions)


def test_decoding_overlaps_the_model(media):
    slow = Slow(prep_s=0.08, fwd_s=0.1)
    run = StimulusRun("r", np.arange(6) + 0.5, video=media["video"])
    rep = []
    t0 = time.perf_counter()
    extract_run(slow, run, batch_size=1, workers=1, progress=False, report=rep)
    elapsed = time.perf_counter() - t0
    assert threading.main_thread().name not in slow.threads  # preprocessing ran in worker threads
    # serial work would take 6 * (0.08 + 0.1) = 1.08 s; pipelined ~ 0.08 + 6 * 0.1
    assert elapsed < 0.95, elapsed
    assert rep[0].wait_s < 0.3  # the model waited only for the first batch


def test_failures_stop_the_worker_threads(media):
    class Boom(Probe):
        def forward(self, batch, want_attentions=False):
            raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError, match="model exploded"):
        extract_run(Boom(), run6(media), batch_size=1, progress=False)
    time.sleep(0.2)
    assert not [t for t in threading.enumerate() if t.name.startswith("mmneuro-")]


# ---- chunked commits and resume (in process; tests/test_resume.py kills a real process) -----------


def test_chunks_are_committed_and_an_interrupted_run_resumes(media, tmp_path):
    run = StimulusRun("r", np.arange(6) + 0.5, video=media["video"])
    ref = extract_run(Probe(), run, store=FeatureStore(tmp_path / "ref"), batch_size=1, chunk_windows=2,
                      progress=False)

    class Crash(Probe):
        def forward(self, batch, want_attentions=False):
            if self.calls == 3:  # windows 0-2 done: chunk [0, 2) committed, chunk [2, 4) half done
                raise KeyboardInterrupt
            return super().forward(batch, want_attentions)

    store = FeatureStore(tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        extract_run(Crash(), run, store=store, batch_size=1, chunk_windows=2, progress=False)
    folder = next((tmp_path / "cache" / "probe").iterdir())
    assert sorted(p.name for p in (folder / "partial" / "b1-k2" / "brightness").iterdir()) == ["00000000-00000002.npy"]
    assert not list(folder.glob("*.npy"))  # no final entry from the interrupted run
    probe, rep = Probe(), []
    out = extract_run(probe, run, store=store, batch_size=1, chunk_windows=2, progress=False, report=rep)
    assert rep[0].computed_windows == 4 and rep[0].reused_windows == 2 and probe.calls == 4
    for layer in ("brightness", "double"):
        np.testing.assert_array_equal(out[layer].data, ref[layer].data)
    assert not (folder / "partial").exists()  # chunks are dropped once the layers are assembled


def test_stimulus_files_become_runs(media, tmp_path):
    import shutil

    d = tmp_path / "stim"
    d.mkdir()
    shutil.copy(media["video"], d / "a.mp4")
    shutil.copy(media["audio"], d / "a.wav")
    shutil.copy(media["audio"], d / "b.wav")
    (d / "notes.md").write_text("ignored")
    runs = stimulus_runs(d, tr=1.5)
    assert [r.name for r in runs] == ["a", "b"]
    assert runs[0].video.name == "a.mp4" and runs[0].audio.name == "a.wav" and runs[1].video is None
    np.testing.assert_allclose(runs[0].tr_times, [0.75, 2.25, 3.75, 5.25])  # whole TRs inside 6 s
    assert isinstance(runs[0], MediaRun) and runs[0].n_trs == 4
    with pytest.raises(InputError, match="no such file or folder"):
        stimulus_runs(tmp_path / "nope")
    with pytest.raises(InputError, match="not a stimulus file"):
        stimulus_runs(d / "notes.md")


# ---- words heard inside frame/audio windows ---------------------------------------------------


class WordWaveProbe(WaveProbe):
    """A waveform adapter that also reads text (no ``wants_words`` attribute: "text" in modalities)."""

    modalities = ("audio", "text")
    preprocess_workers = 1  # windows recorded in order

    def preprocess(self, sample):
        self.seen.append(list(sample.text))
        return super().preprocess(sample)


def test_audio_windows_carry_the_words_whose_midpoints_they_hold(media, tmp_path):
    from test_extract import make_words

    # step 0.4 s, duration 0.2 s: midpoints 0.1, 0.5, 0.9, 1.3, ..., 4.5 s (12 words)
    words = [f"w{i}" for i in range(12)]
    run = run6(media, words=make_words(tmp_path / "w.tsv", words))
    probe = WordWaveProbe()
    extract_run(probe, run, progress=False, batch_size=4)
    mids = np.arange(12) * 0.4 + 0.1
    expect = [[w for w, m in zip(words, mids) if i <= m < i + 1] for i in range(6)]
    assert probe.seen[::2] == expect and expect[5] == [] and sum(map(len, expect)) == 12
    # context windows hear the words of the whole span; the words file keys the store
    probe = WordWaveProbe()
    extract_run(probe, run, window="context:2", progress=False, batch_size=4)
    assert probe.seen[2 * 2] == expect[1] + expect[2]
    store = FeatureStore(tmp_path / "store")
    rep: list = []
    extract_run(WordWaveProbe(), run, store=store, progress=False, report=rep)
    other = run6(media, words=make_words(tmp_path / "w2.tsv", words[::-1]))
    extract_run(WordWaveProbe(), other, store=store, progress=False, report=rep)
    assert rep[1].key != rep[0].key and rep[1].computed_layers == ["rms"]
    # an explicit wants_words=False wins over the modalities; a missing words file is an error
    quiet = WordWaveProbe()
    quiet.wants_words = False
    assert plan_windows(quiet, run).window_words is None
    with pytest.raises(InputError, match="run 'run-1' has no words file, but model 'waveprobe' reads the words"):
        plan_windows(WordWaveProbe(), run6(media))
