"""Words inside frame/audio windows: CLIP/CLAP text towers and the MoE's text tokens through
``extract_run`` on a tiny synthetic run (mp4 + 48 kHz wav + words TSV), tiny random configs."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmneuro.datasets.base import StimulusRun
from mmneuro.errors import InputError
from mmneuro.features.extract import extract_run, plan_windows
from mmneuro.features.store import FeatureStore
from mmneuro.models import WindowInput, get_adapter

from test_zoo import tiny
from test_zoo_twotower import tiny_clap, tiny_clip

# (word, onset, duration); TR windows [0, 1), [1, 2), [2, 3), [3, 4)
WORDS_A = [("a", 0.10, 0.2), ("dog", 0.35, 0.2), ("barks", 0.80, 0.6), ("the", 2.10, 0.2), ("cat", 2.40, 0.3)]
WORDS_B = [("a", 0.10, 0.2), ("fish", 0.35, 0.2), ("barks", 0.80, 0.6), ("the", 2.10, 0.2), ("cat", 2.40, 0.3)]
# "barks" starts in TR 0 but its midpoint (1.1 s) is in TR 1; TR 3 hears nothing
PER_TR_A = [["a", "dog"], ["barks"], ["the", "cat"], []]
PER_TR_B = [["a", "fish"], ["barks"], ["the", "cat"], []]


def write_words(path, rows):
    lines = ["onset\tduration\tword"] + [f"{on:.3f}\t{d:.3f}\t{w}" for w, on, d in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    import av
    import soundfile as sf

    d = tmp_path_factory.mktemp("words")
    with av.open(str(d / "v.mp4"), "w") as out:
        s = out.add_stream("mpeg4", rate=8)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for i in range(32):
            img = np.full((32, 32, 3), 20 + 7 * i, dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    t = np.arange(4 * 48000) / 48000
    sf.write(str(d / "a.wav"), (0.3 * np.sin(2 * np.pi * (300 + 200 * np.floor(t)) * t)).astype(np.float32), 48000)
    return {"video": d / "v.mp4", "audio": d / "a.wav", "A": write_words(d / "a.tsv", WORDS_A),
            "B": write_words(d / "b.tsv", WORDS_B)}


def run_with(media, words="A", name="r"):
    return StimulusRun(name=name, tr_times=np.arange(4) + 0.5, video=media["video"], audio=media["audio"],
                       words=media[words] if words else None)


def direct_text(model, tokenizer, words, normalise=False):
    """layer -> (dim,) mean over tokens of the text tower run alone on ``words``; + the projection."""
    ids = tokenizer(" ".join(words), return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.text_model(input_ids=ids, output_hidden_states=True)
        proj = model.text_projection(out.pooler_output)[0]
    res = {f"text/layer-{i}": h[0].mean(0).numpy() for i, h in enumerate(out.hidden_states)}
    res["text/projection"] = (F.normalize(proj, dim=0) if normalise else proj).numpy()
    return res


def test_plans_give_each_window_the_words_whose_midpoints_it_holds(media):
    clip = get_adapter("clip", weights="random", config=tiny_clip(), device="cpu", n_frames=2)
    plan = plan_windows(clip, run_with(media))
    assert plan.window_words == PER_TR_A
    assert [w.text for w in plan.make(range(4))] == PER_TR_A
    assert plan.params["words"] == "midpoint-in-window" and media["A"] in plan.files
    # a context window hears every word whose midpoint lies in the 2 s ending at its TR's end
    ctx = plan_windows(clip, run_with(media), window="context:2")
    assert ctx.window_words == [["a", "dog"], ["a", "dog", "barks"], ["barks", "the", "cat"], ["the", "cat"]]
    # no text tower, no words: the plan (and its store key) is unchanged by the words file
    vision = get_adapter("clip", weights="random", config=tiny_clip(), device="cpu", n_frames=2, towers=("vision",))
    vplan = plan_windows(vision, run_with(media))
    assert vplan.window_words is None and "words" not in vplan.params and media["A"] not in vplan.files
    assert plan_windows(vision, run_with(media, words=None)).params == vplan.params
    with pytest.raises(InputError, match="run 'silent' has no words file, but model 'clip' reads the words"):
        plan_windows(clip, run_with(media, words=None, name="silent"))


@pytest.mark.parametrize("kind", ["clip", "clap"])
def test_text_tower_reads_the_window_words(media, kind):
    if kind == "clip":
        a = get_adapter("clip", weights="random", config=tiny_clip(), device="cpu", n_frames=2)
    else:
        a = get_adapter("clap", weights="random", config=tiny_clap(), device="cpu",
                        processor={"feature_size": 16, "max_length_s": 2})
    assert a.wants_words and a.input_kind == ("frames" if kind == "clip" else "waveform")
    fa = extract_run(a, run_with(media, "A"), progress=False, batch_size=3)
    fb = extract_run(a, run_with(media, "B"), progress=False, batch_size=3)
    assert list(fa) == a.layer_names
    sensory = [l for l in a.layer_names if not l.startswith("text/")]
    text = [l for l in a.layer_names if l.startswith("text/")]
    for l in sensory:  # the words never reach the sensory tower
        np.testing.assert_array_equal(fa[l].data, fb[l].data)
    for l in text:  # only TR 0's words differ ("dog" -> "fish")
        assert np.abs(fa[l].data[0] - fb[l].data[0]).max() > 1e-4, l
        np.testing.assert_array_equal(fa[l].data[1:], fb[l].data[1:])
    for feats, per_tr in ((fa, PER_TR_A), (fb, PER_TR_B)):
        for t, words in enumerate(per_tr):
            ref = direct_text(a.model, a.tokenizer, words, normalise=kind == "clap")
            for l in text:
                np.testing.assert_allclose(feats[l].data[t], ref[l], rtol=1e-4, atol=1e-5, err_msg=f"{l} TR {t}")


def test_moe_reads_the_window_words(media):
    moe = get_adapter("qwen3-vl-moe", weights="random", config=tiny("qwen3-vl-moe"), device="cpu", image_size=32,
                      n_frames=4)
    assert moe.wants_words and moe.modalities == ("video", "text")
    fa = extract_run(moe, run_with(media, "A"), progress=False, batch_size=4)
    fb = extract_run(moe, run_with(media, "B"), progress=False, batch_size=4)
    # the direct run: the same frames, the words given by hand
    frames = [w.frames for w in plan_windows(moe, run_with(media, "A")).make(range(4))]
    for feats, per_tr in ((fa, PER_TR_A), (fb, PER_TR_B)):
        batch = moe.collate([moe.preprocess(WindowInput(frames=f, text=w)) for f, w in zip(frames, per_tr)])
        with torch.inference_mode():
            ref = moe.pool(moe.forward(batch))
        for l in moe.layer_names:
            np.testing.assert_allclose(feats[l].data, ref[l], rtol=1e-4, atol=1e-5, err_msg=l)
    last = moe.layer_names[-1]
    assert np.abs(fa[last].data[0] - fb[last].data[0]).max() > 1e-4
    np.testing.assert_allclose(fa[last].data[1:], fb[last].data[1:], rtol=1e-5, atol=1e-6)
    # without words the window is frames only: TR 3 (silent) is unchanged, TR 0 is not
    silent = get_adapter("qwen3-vl-moe", weights="random", config=tiny("qwen3-vl-moe"), device="cpu", image_size=32,
                         n_frames=4, words=False)
    assert not silent.wants_words and silent.modalities == ("video",)
    fs = extract_run(silent, run_with(media, None), progress=False, batch_size=4)
    np.testing.assert_allclose(fs[last].data[3], fa[last].data[3], rtol=1e-4, atol=1e-5)
    assert np.abs(fs[last].data[0] - fa[last].data[0]).max() > 1e-4
    with pytest.raises(InputError, match="run 'silent' has no words file"):
        extract_run(moe, run_with(media, None, name="silent"), progress=False)


def test_store_never_reuses_features_computed_without_these_words(media, tmp_path):
    store = FeatureStore(tmp_path / "store")
    clip = get_adapter("clip", weights="random", config=tiny_clip(), device="cpu", n_frames=2)
    rep: list = []
    fa = extract_run(clip, run_with(media, "A"), store=store, progress=False, report=rep)
    again = extract_run(clip, run_with(media, "A"), store=store, progress=False, report=rep)
    fb = extract_run(clip, run_with(media, "B"), store=store, progress=False, report=rep)
    assert rep[0].computed_layers == clip.layer_names and rep[1].cached_layers == clip.layer_names
    assert rep[2].computed_layers == clip.layer_names and rep[2].key != rep[0].key  # other words, other key
    np.testing.assert_array_equal(again["text/layer-1"].data, fa["text/layer-1"].data)
    assert np.abs(fb["text/layer-1"].data[0] - fa["text/layer-1"].data[0]).max() > 1e-4
    # the same MoE with and without words: different keys, nothing reused
    kw = dict(weights="random", config=tiny("qwen3-vl-moe"), device="cpu", image_size=32, n_frames=4)
    extract_run(get_adapter("qwen3-vl-moe", words=False, **kw), run_with(media, "A"), store=store, progress=False,
                report=rep, layers=["layer-1"])
    extract_run(get_adapter("qwen3-vl-moe", **kw), run_with(media, "A"), store=store, progress=False, report=rep,
                layers=["layer-1"])
    assert rep[3].key != rep[4].key and rep[4].computed_layers == ["layer-1"] and rep[4].cached_layers == []
    assert rep[4].window["words"] == "midpoint-in-window" and rep[3].window["words"] == "none"
