"""Two-tower models (CLIP, CLAP, X-CLIP) on tiny random configs: tower layers, projections, words."""

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


def test_clip_text_tower_pools_a_token_the_tokenizer_emits(clip):
    from transformers import CLIPModel

    from mmneuro.models.twotower import TwoTowerAdapter

    # random weights + the MiniLM stand-in: the tower pools [SEP], so the projection reads every word
    assert clip.config.text_config.eos_token_id == clip.tokenizer.sep_token_id
    batch = clip.collate([clip.preprocess(WindowInput(frames=frames(4), text=["a", w])) for w in ("dog", "fish")])
    with torch.inference_mode():
        proj = clip.pool(clip.forward(batch), layers=["text/projection"])["text/projection"]
    assert np.abs(proj[0] - proj[1]).max() > 1e-4
    # CLIP's own end id (49407) with a tokenizer that never emits it would pool the first token: refused
    with pytest.raises(InputError, match="never emits it"):
        TwoTowerAdapter(CLIPModel(tiny_clip()), "clip", clip.tokenizer, clip.weights, device="cpu")


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
    assert both.wants_words and not clip.wants_words and clip.modalities == ("video",)
    with pytest.raises(InputError, match="run 'r' has no words file, but model 'clip' reads the words"):
        extract_run(both, run, progress=False)


# ---- X-CLIP ------------------------------------------------------------------------------------


def tiny_xclip():
    from transformers import XCLIPConfig

    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    return XCLIPConfig(
        text_config=dict(vocab_size=30522, max_position_embeddings=32, **small),
        vision_config=dict(image_size=32, patch_size=8, num_frames=3, mit_hidden_size=16, mit_intermediate_size=32,
                           mit_num_attention_heads=2, **small),
        projection_dim=16, prompt_layers=1, prompt_num_attention_heads=2,
    )


@pytest.fixture(scope="module")
def xclip():
    return get_adapter("xclip", weights="random", config=tiny_xclip(), device="cpu", attentions=True)


def test_xclip_layers_match_a_direct_xclip_model_run(xclip):
    assert "xclip" in available_models()
    assert xclip.n_frames == 3 and xclip.weights.is_random and xclip.wants_words
    assert xclip.layer_names == [f"vision/layer-{i}" for i in range(3)] + ["vision/projection", "vision/mit"] + [
        f"text/layer-{i}" for i in range(3)] + ["text/projection", "text/prompted"]
    texts = [["a", "dog", "barks", "loudly"], ["hi"]]
    windows = [WindowInput(frames=frames(10 + i), text=t) for i, t in enumerate(texts)]
    batch = xclip.collate([xclip.preprocess(w) for w in windows])
    assert batch["pixel_values"].shape == (2, 3, 3, 32, 32)
    m = xclip.model
    with torch.inference_mode():
        out = xclip.forward(batch, want_attentions=True)
        pooled = xclip.pool(out)
        for i in range(2):
            n = int(batch["attention_mask"][i].sum())
            ids, pv = batch["input_ids"][i : i + 1, :n], batch["pixel_values"][i : i + 1]
            o = m(input_ids=ids, pixel_values=pv, output_hidden_states=True)
            vh = o.vision_model_output.hidden_states
            for k in range(3):
                expect = vh[k].reshape(3, 17, 32).mean(1).mean(0)
                np.testing.assert_allclose(pooled[f"vision/layer-{k}"][i], expect.numpy(), rtol=1e-4, atol=1e-5)
                th = o.text_model_output.hidden_states[k][0].mean(0)
                np.testing.assert_allclose(pooled[f"text/layer-{k}"][i], th.numpy(), rtol=1e-4, atol=1e-5)
            per_frame = m.visual_projection(o.vision_model_output.pooler_output)  # (3, 16): the MIT input
            np.testing.assert_allclose(pooled["vision/projection"][i], per_frame.mean(0).numpy(), rtol=1e-4, atol=1e-5)
            video = m.get_video_features(pixel_values=pv).pooler_output[0]
            np.testing.assert_allclose(pooled["vision/mit"][i], video.numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(F.normalize(torch.from_numpy(pooled["vision/mit"][i]), dim=0).numpy(),
                                       o.video_embeds[0].numpy(), rtol=1e-4, atol=1e-5)
            text = m.get_text_features(input_ids=ids).pooler_output[0]
            np.testing.assert_allclose(pooled["text/projection"][i], text.numpy(), rtol=1e-4, atol=1e-5)
            # the video-specific prompt: XCLIPModel's text_embeds for this window's own video (L2-normalised there)
            np.testing.assert_allclose(F.normalize(torch.from_numpy(pooled["text/prompted"][i]), dim=0).numpy(),
                                       o.text_embeds[0, 0].numpy(), rtol=1e-4, atol=1e-5)
    assert pooled["text/prompted"].shape == (2, 16) and pooled["vision/layer-1"].shape == (2, 32)
    assert np.abs(pooled["text/prompted"] - pooled["text/projection"]).max() > 1e-4
    # attentions: cross-frame vision blocks (17 tokens + the message token), causal text blocks
    assert set(out.attentions) == {"vision/layer-1", "vision/layer-2", "text/layer-1", "text/layer-2"}
    assert out.attentions["vision/layer-1"].shape == (2, 3, 2, 18, 18)
    a = out.attentions["text/layer-2"]
    assert a.shape == (2, 2, batch["input_ids"].shape[1], batch["input_ids"].shape[1])
    torch.testing.assert_close(out.attentions["vision/layer-2"].sum(-1), torch.ones(2, 3, 2, 18))
    torch.testing.assert_close(a[0].sum(-1), torch.ones(2, a.shape[2]))


def test_xclip_prompt_depends_on_the_video_and_frame_count_is_fixed(xclip):
    words = ["a", "red", "ball"]
    batch = xclip.collate([xclip.preprocess(WindowInput(frames=frames(s), text=words)) for s in (20, 21)])
    with torch.inference_mode():
        pooled = xclip.pool(xclip.forward(batch))
    np.testing.assert_allclose(pooled["text/projection"][0], pooled["text/projection"][1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled["text/layer-2"][0], pooled["text/layer-2"][1], rtol=1e-5, atol=1e-6)
    assert np.abs(pooled["text/prompted"][0] - pooled["text/prompted"][1]).max() > 1e-5
    with pytest.raises(InputError, match="exactly 3 frames"):
        get_adapter("xclip", weights="random", config=tiny_xclip(), device="cpu", n_frames=4)
    with pytest.raises(InputError, match="reads 3 frames per window; got 2"):
        xclip.preprocess(WindowInput(frames=frames(0, n=2), text=words))
    text_only = get_adapter("xclip", weights="random", config=tiny_xclip(), device="cpu", towers=("text",))
    assert text_only.layer_names[-1] == "text/projection" and text_only.modalities == ("text",)
    vision_only = get_adapter("xclip", weights="random", config=tiny_xclip(), device="cpu", towers=("vision",))
    assert not vision_only.wants_words and vision_only.layer_names[-1] == "vision/mit"
