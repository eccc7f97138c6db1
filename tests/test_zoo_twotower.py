"""Two-tower models (CLIP, CLAP) on tiny random configs: tower layers, projections, words."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmneuro.errors import InputError
from mmneuro.models import WindowInput, available_models, get_adapter


def tiny_clip():
    from transformers import CLIPConfig

    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    return CLIPConfig(
        text_config=dict(vocab_size=30522, max_position_embeddings=32, **small),
        vision_config=dict(image_size=32, patch_size=8, **small),
        projection_dim=16,
    )


def tiny_clap():
    from transformers import ClapConfig

    audio = dict(spec_size=64, window_size=4, num_mel_bins=16, patch_embeds_hidden_size=16, depths=[1, 1],
                 num_attention_heads=[2, 2], hidden_size=32, enable_fusion=False, patch_stride=[4, 4], patch_size=4)
    text = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                max_position_embeddings=40)
    return ClapConfig(text_config=text, audio_config=audio, projection_dim=16)


@pytest.fixture(scope="module")
def clip():
    return get_adapter("clip", weights="random", config=tiny_clip(), device="cpu", n_frames=3, attentions=True)


@pytest.fixture(scope="module")
def clap():
    return get_adapter("clap", weights="random", config=tiny_clap(), device="cpu",
                       processor={"feature_size": 16, "max_length_s": 2})


def frames(seed, n=3):
    return np.random.default_rng(seed).integers(0, 256, (n, 40, 48, 3), dtype=np.uint8)


def test_clip_and_clap_are_registered():
    assert {"clip", "clap"} <= set(available_models())


def test_clip_towers_layers_and_projections(clip):
    assert clip.layer_names == [f"vision/layer-{i}" for i in range(3)] + ["vision/projection"] + [
        f"text/layer-{i}" for i in range(3)] + ["text/projection"]
    assert clip.weights.is_random
    windows = [WindowInput(frames=frames(0), text=["a", "dog", "barks"]), WindowInput(frames=frames(1), text=["hi"])]
    batch = clip.collate([clip.preprocess(w) for w in windows])
    with torch.inference_mode():
        out = clip.forward(batch, want_attentions=True)
        pooled = clip.pool(out)
        pv = batch["pixel_values"].reshape(6, 3, 32, 32)
        v = clip.model.vision_model(pixel_values=pv, output_hidden_states=True)
        vproj = clip.model.visual_projection(v.pooler_output).reshape(2, 3, 16).mean(1)
        # the second window alone: no padding, so its text states are the model's plain output
        t = clip.model.text_model(input_ids=batch["input_ids"][1:, : int(batch["attention_mask"][1].sum())],
                                  output_hidden_states=True)
        tproj = clip.model.text_projection(t.pooler_output)
    for i in range(3):
        expect = v.hidden_states[i].reshape(2, 3, 17, 32).mean(2).mean(1).numpy()
        np.testing.assert_allclose(pooled[f"vision/layer-{i}"], expect, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(pooled[f"text/layer-{i}"][1], t.hidden_states[i][0].mean(0).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pooled["vision/projection"], vproj.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pooled["text/projection"][1], tproj[0].numpy(), rtol=1e-4, atol=1e-5)
    assert pooled["vision/projection"].shape == (2, 16) and pooled["text/layer-2"].shape == (2, 32)
    # attentions of both towers, rows sum to one
    assert out.attentions["vision/layer-1"].shape == (2, 3, 2, 17, 17)
    a = out.attentions["text/layer-2"]
    assert a.shape[:2] == (2, 2) and a.shape[2] == a.shape[3] == batch["input_ids"].shape[1]
    torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:3]))


def test_text_layers_need_words(clip):
    batch = clip.collate([clip.preprocess(WindowInput(frames=frames(2)))])
    with torch.inference_mode():
        out = clip.forward(batch)
    assert clip.pool(out, layers=["vision/layer-1"])["vision/layer-1"].shape == (1, 32)
    with pytest.raises(InputError, match="words of each window"):
        clip.pool(out)
    vision_only = get_adapter("clip", weights="random", config=tiny_clip(), device="cpu", towers=("vision",))
    assert all(l.startswith("vision/") for l in vision_only.layer_names)
    # long narration: the earliest words are dropped to fit the 32-token text tower
    item = clip.preprocess(WindowInput(frames=frames(3), text=[f"w{i}" for i in range(60)]))
    assert len(item["input_ids"]) <= 32
    assert clip.tokenizer.decode(item["input_ids"]).split()[-2:] == ["w59", "[SEP]"]


def test_clap_audio_matches_feature_extractor_and_towers(clap):
    from transformers import ClapFeatureExtractor

    assert clap.sample_rate == 48000 and clap.input_kind == "waveform"
    assert clap.layer_names[:4] == ["audio/layer-0", "audio/layer-1", "audio/layer-2", "audio/projection"]
    t = np.arange(48000) / 48000
    wav = (0.3 * np.sin(2 * np.pi * 800 * t)).astype(np.float32)
    item = clap.preprocess(WindowInput(waveform=wav, sample_rate=48000, text=["a", "tone"]))
    ref = ClapFeatureExtractor(feature_size=16, max_length_s=2, truncation="rand_trunc")(
        wav, sampling_rate=48000, return_tensors="pt")["input_features"][0]
    torch.testing.assert_close(item["input_features"], ref)
    with torch.inference_mode():
        pooled = clap.pool(clap.forward(clap.collate([item])))
        a = clap.model.audio_model(input_features=ref[None], output_hidden_states=True)
        proj = F.normalize(clap.model.audio_projection(a.pooler_output), dim=-1)
    assert len(a.hidden_states) == 3
    for i, h in enumerate(a.hidden_states):
        np.testing.assert_allclose(pooled[f"audio/layer-{i}"][0], h[0].mean((1, 2)).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pooled["audio/projection"][0], proj[0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(pooled["text/projection"][0]), 1.0, rtol=1e-5)
    with pytest.raises(InputError, match="longer than CLAP"):
        clap.preprocess(WindowInput(waveform=np.zeros(3 * 48000, np.float32), sample_rate=48000))


def test_sensory_towers_run_through_the_driver(tmp_path):
    import av
    import soundfile as sf

    from mmneuro.datasets.base import StimulusRun
    from mmneuro.features.extract import extract_run

    with av.open(str(tmp_path / "v.mp4"), "w") as out:
        s = out.add_stream("mpeg4", rate=6)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for i in range(12):
            img = np.full((32, 32, 3), 20 + 20 * i, dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    t = np.arange(2 * 48000) / 48000
    sf.write(str(tmp_path / "a.wav"), (0.3 * np.sin(2 * np.pi * (400 + 600 * (t > 1)) * t)).astype(np.float32), 48000)
    run = StimulusRun(name="r", tr_times=np.array([0.5, 1.5]), video=tmp_path / "v.mp4", audio=tmp_path / "a.wav")
    clip = get_adapter("clip", weights="random", config=tiny_clip(), device="cpu", n_frames=2, towers=("vision",))
    feats = extract_run(clip, run, progress=False)
    assert list(feats) == clip.layer_names and feats["vision/projection"].data.shape == (2, 16)
    assert np.abs(np.diff(feats["vision/layer-2"].data, axis=0)).max() > 1e-4
    clap = get_adapter("clap", weights="random", config=tiny_clap(), device="cpu", towers=("audio",),
                       processor={"feature_size": 16, "max_length_s": 2})
    feats = extract_run(clap, run, progress=False)
    assert feats["audio/layer-2"].data.shape == (2, 32) and feats["audio/projection"].data.shape == (2, 16)
    assert np.abs(np.diff(feats["audio/projection"].data, axis=0)).max() > 1e-4
    both = get_adapter("clip", weights="random", config=tiny_clip(), device="cpu", n_frames=2)
    with pytest.raises(InputError, match="words of each window"):
        extract_run(both, run, progress=False)
