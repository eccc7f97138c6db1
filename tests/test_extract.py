"""The extraction driver: windows per input kind, batching, the store, errors.

Media are made in tmp_path with PyAV/soundfile; models are tiny random configs, small
probe adapters, the weight-free mel spectrogram, and the packaged MiniLM.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from mmneuro.datasets.base import StimulusRun
from mmneuro.errors import InputError
from mmneuro.features.extract import TimedFeatures, extract_run
from mmneuro.features.store import FeatureStore
from mmneuro.models import get_adapter
from mmneuro.models.base import ModelAdapter, ModelOutput, WeightsInfo
from mmneuro.models.melspec import MelSpecAdapter

GRAYS = [20, 70, 120, 170, 220, 250]  # frame brightness during second 0, 1, 2, ...


def make_video(path, seconds=6, fps=10, size=32):
    """Each second of video is one flat gray level (GRAYS[second])."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"}
        for i in range(seconds * fps):
            img = np.full((size, size, 3), GRAYS[i // fps], dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_audio(path, seconds=6, sr=16000, loud_second=2):
    """Quiet noise everywhere, a loud 1 kHz tone during one second."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    x = 1e-3 * rng.standard_normal(seconds * sr)
    t = np.arange(sr) / sr
    x[loud_second * sr : (loud_second + 1) * sr] += 0.5 * np.sin(2 * np.pi * 1000 * t)
    sf.write(str(path), x.astype(np.float32), sr)
    return path


def make_words(path, words, step=0.4):
    lines = ["onset\tduration\tword"] + [f"{i * step:.3f}\t{step * 0.5:.3f}\t{w}" for i, w in enumerate(words)]
    path.write_text("\n".join(lines) + "\n")
    return path


class Probe(ModelAdapter):
    """Frames in; layer "brightness" = mean pixel value of each frame; counts forward calls."""

    name = "probe"
    modalities = ("video",)
    input_kind = "frames"
    version = "probe-1"

    def __init__(self, n_frames=3, fail_at=None):
        self.n_frames = n_frames
        self.layer_names = ["brightness", "double"]
        self.weights = WeightsInfo("random", None, "random-seed0")
        self.calls = 0
        self.seen = 0
        self.fail_at = fail_at

    def preprocess(self, sample):
        self.seen += 1
        if self.fail_at is not None and self.seen > self.fail_at:
            raise InputError("probe: bad window")
        assert sample.frames.shape[0] == self.n_frames
        return {"b": torch.from_numpy(sample.frames.reshape(self.n_frames, -1).mean(axis=1))}

    def collate(self, items):
        return {"b": torch.stack([it["b"] for it in items])}

    def forward(self, batch, want_attentions=False):
        self.calls += 1
        b = batch["b"].float().unsqueeze(-1)  # (B, frames, 1)
        return ModelOutput(hidden={"brightness": b, "double": 2 * b}, token_groups={"all": slice(None)})


class CountingMel(MelSpecAdapter):
    calls = 0

    def forward(self, batch, want_attentions=False):
        self.calls += 1
        return super().forward(batch, want_attentions)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    return {"video": make_video(d / "clip.mp4"), "audio": make_audio(d / "clip.wav")}


def tr_run(media, n=6, tr=1.0, **kw):
    return StimulusRun("run-1", (np.arange(n) + 0.5) * tr, video=media["video"], audio=media["audio"], **kw)


# ---- TR windows ------------------------------------------------------------------------


def test_frame_windows_sample_inside_each_tr(media):
    probe = Probe(n_frames=3)
    run = tr_run(media)
    out = extract_run(probe, run, batch_size=4, progress=False)
    f = out["brightness"]
    assert isinstance(f, TimedFeatures)
    assert f.data.shape == (6, 1)
    np.testing.assert_array_equal(f.times, run.tr_times)
    # TR i covers second i of the video, which is GRAYS[i] throughout (codec error is a few levels)
    np.testing.assert_allclose(f.data[:, 0], GRAYS, atol=4)
    np.testing.assert_allclose(out["double"].data, 2 * f.data)
    assert probe.calls == 2  # 6 windows in batches of 4
    assert f.model == "probe" and f.weights == "random-seed0" and f.pooling == "mean"


def test_windows_outside_the_media_fail_loudly(media):
    run = StimulusRun("long", (np.arange(9) + 0.5) * 1.0, video=media["video"])
    with pytest.raises(InputError, match=r"3 TR window\(s\) lie outside the video .*TR 6 at t=6.500"):
        extract_run(Probe(), run, progress=False)
    with pytest.raises(InputError, match="no video file"):
        extract_run(Probe(), StimulusRun("novideo", np.arange(3.0) + 0.5), progress=False)


def test_background_errors_surface(media):
    with pytest.raises(InputError, match="probe: bad window"):
        extract_run(Probe(fail_at=3), tr_run(media), batch_size=2, progress=False)


def test_audio_windows_follow_the_tr_grid(media):
    mel = CountingMel(device="cpu")
    run = tr_run(media)
    out = extract_run(mel, run, batch_size=4, progress=False)
    f = out["logmel"]
    assert f.data.shape == (6, 32)
    np.testing.assert_array_equal(f.times, run.tr_times)
    peak = f.data.max(axis=1)
    assert int(np.argmax(peak)) == 2  # the tone fills TR 2's window [2, 3) s only
    assert peak[2] > peak[[0, 1, 3, 4, 5]].max() + 10  # and does not leak into the neighbours
    assert f.pooling == "mean-time" and f.weights.startswith("melspec:")


# ---- the store -------------------------------------------------------------------------


def test_store_second_run_does_not_forward(media, tmp_path):
    store = FeatureStore(tmp_path / "cache")
    run = tr_run(media)
    mel = CountingMel(device="cpu")
    first = extract_run(mel, run, store=store, batch_size=4, progress=False)
    n_first = mel.calls
    assert n_first == 2
    second = extract_run(mel, run, store=store, batch_size=4, progress=False)
    assert mel.calls == n_first  # read back, not recomputed
    np.testing.assert_array_equal(first["logmel"].data, second["logmel"].data)
    np.testing.assert_array_equal(first["logmel"].times, second["logmel"].times)
    # a different TR grid is a different key
    other = StimulusRun("run-1", np.arange(5) + 1.0, audio=media["audio"])
    extract_run(mel, other, store=store, progress=False)
    assert mel.calls > n_first


def test_store_computes_only_missing_layers(media, tmp_path):
    store = FeatureStore(tmp_path / "cache")
    run = tr_run(media)
    probe = Probe()
    a = extract_run(probe, run, layers=["double"], store=store, progress=False)
    assert list(a) == ["double"] and probe.calls == 1
    folder = next((tmp_path / "cache" / "probe").iterdir())
    assert sorted(p.name for p in folder.glob("*.npy")) == ["double.npy"]
    mtime = (folder / "double.npy").stat().st_mtime_ns
    both = extract_run(probe, run, layers=["brightness", "double"], store=store, progress=False)
    assert probe.calls == 2  # one pass for the missing layer
    assert (folder / "double.npy").stat().st_mtime_ns == mtime  # the stored layer was not rewritten
    np.testing.assert_array_equal(both["double"].data, a["double"].data)
    assert list(both) == ["brightness", "double"]
    extract_run(probe, run, layers=["brightness"], store=store, progress=False)
    assert probe.calls == 2


def test_tiny_vit_end_to_end(media, tmp_path):
    from transformers import ViTConfig

    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    image_size=32, patch_size=8)
    vit = get_adapter("vit", weights="random", config=cfg, n_frames=2, device="cpu")
    run = tr_run(media)
    out = extract_run(vit, run, layers=["layer-2", "embeddings"], store=FeatureStore(tmp_path), progress=False)
    assert list(out) == ["layer-2", "embeddings"]
    for f in out.values():
        assert f.data.shape == (6, 32) and f.pooling == "mean-tokens,mean-frames"
        assert f.is_random and f.weights == "random-seed0"
        np.testing.assert_array_equal(f.times, run.tr_times)
    # flat frames of different gray levels give different vectors per TR
    assert np.linalg.norm(np.diff(out["layer-2"].data, axis=0), axis=1).min() > 0
    with pytest.raises(InputError, match="has no layers"):
        extract_run(vit, run, layers=["layer-9"], progress=False)


# ---- words -----------------------------------------------------------------------------


def test_words_one_sample_per_word_with_context(tmp_path):
    words = "once upon a time there lived an unbelievably curious fox near the river".split()
    path = make_words(tmp_path / "words.tsv", words)
    run = StimulusRun("story", np.arange(3) * 2.0 + 1.0, words=path)
    minilm = get_adapter("minilm", device="cpu", n_context=3)
    out = extract_run(minilm, run, layers=["layer-0", "layer-6"], batch_size=5, progress=False)
    f = out["layer-6"]
    assert f.data.shape == (len(words), 384)
    np.testing.assert_allclose(f.times, np.arange(len(words)) * 0.4 + 0.1)  # midpoints
    assert f.pooling == "word-mean"
    # word 7 ("unbelievably") sees only words 4..7; compute that independently
    ctx = words[4:8]
    enc = minilm.tokenizer(ctx, is_split_into_words=True, return_tensors="pt")
    sel = torch.tensor([w == 3 for w in enc.word_ids()])
    with torch.inference_mode():
        hs = minilm.model(**enc, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(f.data[7], hs[6][0, sel].mean(0).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["layer-0"].data[7], hs[0][0, sel].mean(0).numpy(), rtol=1e-4, atol=1e-4)
    # a different context length is a different feature: word 7's vector changes
    wide = extract_run(get_adapter("minilm", device="cpu", n_context=20), run, layers=["layer-6"], progress=False)
    assert not np.allclose(wide["layer-6"].data[7], f.data[7], atol=1e-3)
    np.testing.assert_allclose(wide["layer-6"].data[2], f.data[2], rtol=1e-4, atol=1e-4)  # same context at word 2
    with pytest.raises(InputError, match="no words file"):
        extract_run(minilm, StimulusRun("x", np.arange(3.0)), progress=False)
