"""The model zoo: video (VideoMAE, ViViT), audio (AST, wav2vec2, Whisper), GPT-2 and the
Qwen3-VL mixture of experts, each on a tiny random-weight config, offline.

References are independent of the adapters: the transformers models run directly, the HF
feature extractors instantiated from their default parameters, forward hooks on the MoE
gate, HF's own video patchify.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from media import write_square_video

from mmneuro.datasets.base import StimulusRun
from mmneuro.errors import InputError
from mmneuro.features.extract import extract_run
from mmneuro.models import WindowInput, available_models, get_adapter
from mmneuro.models.audio import (
    ContextWindowInput,
    context_window_inputs,
    kaldi_fbank,
    whisper_logmel,
)

SR = 16000
TR = 1.0


# ---- tiny configs ----------------------------------------------------------------------


def tiny(name):
    import transformers as tf

    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    if name == "videomae":
        return tf.VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, **small)
    if name == "vivit":
        return tf.VivitConfig(image_size=32, num_frames=4, tubelet_size=[2, 8, 8], **small)
    if name == "ast":
        return tf.ASTConfig(num_mel_bins=32, max_length=120, patch_size=16, frequency_stride=10, time_stride=10, **small)
    if name == "wav2vec2":
        return tf.Wav2Vec2Config(
            conv_dim=(8, 8, 8), conv_kernel=(10, 4, 4), conv_stride=(5, 8, 8), num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2, vocab_size=10, **small,
        )
    if name == "whisper":
        return tf.WhisperConfig(
            num_mel_bins=16, d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
            decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64, max_source_positions=100,
            max_target_positions=8,
        )
    if name == "gpt2":
        return tf.GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=128, vocab_size=30522)
    if name == "qwen3-vl-moe":
        return tf.Qwen3VLMoeConfig(
            text_config=dict(
                vocab_size=30600, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                num_key_value_heads=2, head_dim=16, moe_intermediate_size=16, num_experts=4, num_experts_per_tok=2,
                mlp_only_layers=[1],
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3],
                                 "mrope_interleaved": True},
            ),
            vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=8,
                               out_hidden_size=32, num_position_embeddings=16, deepstack_visual_indexes=[0]),
            video_token_id=30590, vision_start_token_id=30591, vision_end_token_id=30592, image_token_id=30593,
        )
    raise KeyError(name)


DIMS = {"videomae": 32, "vivit": 32, "ast": 32, "wav2vec2": 32, "whisper": 32, "gpt2": 32, "qwen3-vl-moe": 32}
N_LAYERS = {"videomae": 3, "vivit": 3, "ast": 3, "wav2vec2": 3, "whisper": 3, "gpt2": 3, "qwen3-vl-moe": 4}
EXTRA = {"qwen3-vl-moe": {"image_size": 32, "n_frames": 4}}


def adapter(name, **kw):
    return get_adapter(name, weights="random", seed=0, config=tiny(name), device="cpu", **EXTRA.get(name, {}), **kw)


# ---- media -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """4 s of video (a moving bright square), audio (a tone whose pitch changes each second), words."""
    import soundfile as sf

    d = tmp_path_factory.mktemp("zoo")
    write_square_video(d / "v.mp4", 32)
    t = np.arange(4 * SR) / SR
    wav = 0.3 * np.sin(2 * np.pi * (300 + 400 * np.floor(t)) * t)
    sf.write(str(d / "a.wav"), wav.astype(np.float32), SR)
    words = "the quick brown fox jumped over the unbelievably lazy dog".split()
    lines = ["onset\tduration\tword"] + [f"{0.35 * i:.3f}\t0.3\t{w}" for i, w in enumerate(words)]
    (d / "w.tsv").write_text("\n".join(lines) + "\n")
    return StimulusRun(name="zoo", tr_times=np.arange(4) * TR + TR / 2, video=d / "v.mp4", audio=d / "a.wav",
                       words=d / "w.tsv")


# ---- every registered zoo model runs through the driver -----------------------------------


def test_registry_lists_the_zoo():
    assert {"videomae", "vivit", "ast", "wav2vec2", "whisper", "gpt2", "qwen3-vl-moe"} <= set(available_models())


@pytest.mark.parametrize("name", ["videomae", "vivit", "ast", "wav2vec2", "whisper", "gpt2", "qwen3-vl-moe"])
def test_extract_run_every_layer(name, run):
    a = adapter(name)
    assert a.weights.is_random and a.weights.identity == "random-seed0"
    assert len(a.layer_names) == N_LAYERS[name]
    feats = extract_run(a, run, progress=False, batch_size=3)
    assert list(feats) == a.layer_names
    n = 10 if name == "gpt2" else 4
    for layer, tf in feats.items():
        assert tf.data.shape == (n, DIMS[name]), (layer, tf.data.shape)
        assert np.isfinite(tf.data).all()
        assert tf.weights == "random-seed0"
        # the stimulus changes from window to window, so must the features
        assert np.ptp(tf.data, axis=0).max() > 1e-4
    expect_times = np.arange(10) * 0.35 + 0.15 if name == "gpt2" else run.tr_times
    np.testing.assert_allclose(feats[a.layer_names[0]].times, expect_times)


@pytest.mark.parametrize("name", ["videomae", "vivit", "ast", "wav2vec2", "whisper", "gpt2", "qwen3-vl-moe"])
def test_attentions_are_returned(name):
    a = adapter(name, attentions=True)
    rng = np.random.default_rng(0)
    w = WindowInput(
        frames=rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8),
        waveform=rng.standard_normal(SR).astype(np.float32) * 0.1,
        sample_rate=SR,
        text=["a", "small", "test"],
        target_word_span=(2, 3),
    )
    batch = a.collate([a.preprocess(w)])
    with torch.inference_mode():
        out = a.forward(batch, want_attentions=True)
    assert out.attentions is not None and len(out.attentions) == N_LAYERS[name] - 1
    for att in out.attentions.values():
        assert att.ndim == 4 and att.shape[0] == 1 and att.shape[1] == 2 and att.shape[2] == att.shape[3] > 1
        torch.testing.assert_close(att.sum(-1), torch.ones(att.shape[:3]), atol=1e-4, rtol=1e-4)


# ---- video -----------------------------------------------------------------------------


@pytest.mark.parametrize("name,n_tokens", [("videomae", 32), ("vivit", 33)])
def test_video_pooling_is_mean_over_clip_tokens(name, n_tokens):
    a = adapter(name)
    rng = np.random.default_rng(1)
    clips = [rng.integers(0, 256, (4, 48, 40, 3), dtype=np.uint8) for _ in range(2)]
    batch = a.collate([a.preprocess(WindowInput(frames=c)) for c in clips])
    assert batch["pixel_values"].shape == (2, 4, 3, 32, 32)
    with torch.inference_mode():
        pooled = a.pool(a.forward(batch))
        direct = a.model(pixel_values=batch["pixel_values"], output_hidden_states=True).hidden_states
    for i, layer in enumerate(a.layer_names):
        assert direct[i].shape[1] == n_tokens
        np.testing.assert_allclose(pooled[layer], direct[i].mean(1).numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="exactly 4 frames"):
        a.preprocess(WindowInput(frames=clips[0][:3]))


def test_video_frames_are_cropped_and_scaled_like_the_processors():
    # a 40x32 frame, left half black, right half white: shortest edge 32 -> crop 32 centre
    f = np.zeros((4, 32, 40, 3), dtype=np.uint8)
    f[:, :, 20:] = 255
    mae = adapter("videomae").preprocess(WindowInput(frames=f))["pixel_values"]
    # ImageNet mean/std of the videomae checkpoint: white red channel = (1 - .485) / .229
    np.testing.assert_allclose(mae[0, 0, 0, -1].item(), (1 - 0.485) / 0.229, rtol=1e-5)
    np.testing.assert_allclose(mae[0, 0, 0, 0].item(), -0.485 / 0.229, rtol=1e-5)
    assert mae[0, 0, 0, 15].item() < 0 < mae[0, 0, 0, 16].item()  # the edge is centred after the crop
    viv = adapter("vivit").preprocess(WindowInput(frames=f))["pixel_values"]
    # ViViT: x / 127.5 - 1 then (x - .5) / .5 -> white 1, black -3
    np.testing.assert_allclose(viv[0, :, 0, -1].numpy(), 1.0, atol=1e-5)
    np.testing.assert_allclose(viv[0, :, 0, 0].numpy(), -3.0, atol=1e-5)


# ---- audio features match the HF feature extractors -------------------------------------------


def tone(seconds, freqs=(440.0, 3000.0), amps=(0.3, 0.05)):
    t = np.arange(int(seconds * SR)) / SR
    return sum(a * np.sin(2 * np.pi * f * t) for f, a in zip(freqs, amps)).astype(np.float32)


def test_kaldi_fbank_matches_ast_feature_extractor():
    from transformers import ASTFeatureExtractor

    x = tone(1.3)
    fe = ASTFeatureExtractor(num_mel_bins=64, max_length=200, do_normalize=False)
    ref = fe(x, sampling_rate=SR, return_tensors="np")["input_values"][0]
    mine = kaldi_fbank(torch.from_numpy(x), SR, 64).numpy()
    assert mine.shape == (1 + (len(x) - 400) // 160, 64)
    np.testing.assert_allclose(mine, ref[: len(mine)], atol=2e-3)
    # a pure 1 kHz tone peaks in the band whose centre is nearest on the Kaldi mel scale
    mel = lambda f: 1127 * np.log1p(f / 700)  # noqa: E731
    centres = np.linspace(mel(20), mel(8000), 66)[1:-1]
    pure = kaldi_fbank(torch.from_numpy(tone(0.5, (1000.0,), (0.3,))), SR, 64).numpy()
    assert int(np.argmax(pure.mean(0))) == int(np.argmin(np.abs(centres - mel(1000))))


def test_ast_adapter_input_matches_extractor_and_pools_real_patches():
    from transformers import ASTFeatureExtractor

    a = adapter("ast")
    x = tone(0.6)
    item = a.preprocess(WindowInput(waveform=x, sample_rate=SR))
    ref = ASTFeatureExtractor(num_mel_bins=32, max_length=120)(x, sampling_rate=SR, return_tensors="pt")["input_values"]
    torch.testing.assert_close(item["input_values"], ref[0], atol=1e-3, rtol=0)
    n_real = 1 + (len(x) - 400) // 160  # 58 frames of 120
    assert int(item["n_real"]) == n_real
    with torch.inference_mode():
        pooled = a.pool(a.forward(a.collate([item])))
        hs = a.model(input_values=ref, output_hidden_states=True).hidden_states
    # tokens: cls, dist, then 2 frequency rows x 11 time columns (start 0, 10, ..., 100)
    t_real = [j for j in range(11) if 10 * j < n_real]
    keep = [0, 1] + [2 + f * 11 + j for f in range(2) for j in t_real]
    assert hs[0].shape[1] == 2 + 22 and len(keep) == 2 + 2 * 6
    for i, layer in enumerate(a.layer_names):
        np.testing.assert_allclose(pooled[layer][0], hs[i][0, keep].mean(0).numpy(), rtol=1e-4, atol=1e-4)


def test_whisper_logmel_matches_feature_extractor():
    from transformers import WhisperFeatureExtractor

    x = tone(1.3)
    for n_mels in (80, 16):
        fe = WhisperFeatureExtractor(feature_size=n_mels, chunk_length=2)
        ref = fe(x, sampling_rate=SR, return_tensors="np")["input_features"][0]
        mine = whisper_logmel(torch.from_numpy(x), 2 * SR, n_mels).numpy()
        assert mine.shape == ref.shape == (n_mels, 200)
        np.testing.assert_allclose(mine, ref, atol=1e-4)
    with pytest.raises(InputError, match="at most 32000"):
        whisper_logmel(torch.zeros(40000), 2 * SR)


def test_wav2vec2_input_is_normalised_like_the_extractor():
    from transformers import Wav2Vec2FeatureExtractor

    a = adapter("wav2vec2")
    x = tone(0.5) + 0.2
    ref = Wav2Vec2FeatureExtractor(do_normalize=True)(x, sampling_rate=SR, return_tensors="np")["input_values"][0]
    mine = a.preprocess(WindowInput(waveform=x, sample_rate=SR))["input_values"].numpy()
    np.testing.assert_allclose(mine, ref, atol=1e-5)
    with pytest.raises(InputError, match="16000 Hz"):
        a.preprocess(WindowInput(waveform=x, sample_rate=8000))


def test_wav2vec2_windows_of_different_lengths_match_their_own_runs():
    a = adapter("wav2vec2")
    rng = np.random.default_rng(2)
    short, long_ = rng.standard_normal(8000).astype(np.float32), rng.standard_normal(16000).astype(np.float32)
    run_ = lambda ws: a.pool(a.forward(a.collate([a.preprocess(WindowInput(waveform=w, sample_rate=SR)) for w in ws])))  # noqa: E731
    with torch.inference_mode():
        both, alone = run_([short, long_]), run_([short])
    for layer in a.layer_names:
        np.testing.assert_allclose(both[layer][0], alone[layer][0], rtol=1e-5, atol=1e-5)


# ---- causal context -----------------------------------------------------------------------


def test_context_windows_end_at_the_tr_end():
    wav = np.arange(10 * SR, dtype=np.float32)  # each sample's value is its index
    wins = context_window_inputs(wav, SR, np.array([0.5, 4.5, 9.5]), 1.0, context=3.0)
    # TR 0: [0, 1) s, no context available yet; TR 1: [2, 5) s with current [4, 5)
    assert wins[0].waveform[0] == 0 and len(wins[0].waveform) == SR and wins[0].current_samples == SR
    assert wins[1].waveform[0] == 2 * SR and wins[1].waveform[-1] == 5 * SR - 1 and wins[1].current_samples == SR
    assert len(wins[2].waveform) == 3 * SR and wins[2].waveform[-1] == 10 * SR - 1
    with pytest.raises(InputError, match="at least one TR"):
        context_window_inputs(wav, SR, np.array([0.5]), 1.0, context=0.5)


@pytest.mark.parametrize("name", ["wav2vec2", "whisper"])
def test_causal_context_pools_only_the_current_tr(name):
    a = adapter(name, context=1.5)
    assert a.window_params() == {"sample_rate": SR, "context": 1.5, "random_config": a.random_config_digest()}
    # context: 1 s of loud 2 kHz tone; current TR: 0.5 s of quiet noise
    ctx = tone(1.0, freqs=(2000.0,), amps=(0.5,))
    cur = 0.01 * np.random.default_rng(3).standard_normal(SR // 2).astype(np.float32)
    w = ContextWindowInput(waveform=np.concatenate([ctx, cur]), sample_rate=SR, current_samples=len(cur))
    with pytest.raises(InputError, match="current_samples"):
        a.preprocess(WindowInput(waveform=w.waveform, sample_rate=SR))
    batch = a.collate([a.preprocess(w)])
    with torch.inference_mode():
        out = a.forward(batch)
        pooled, window = a.pool(out, "mean"), a.pool(out, "mean:window")
        key = "input_values" if name == "wav2vec2" else "input_features"
        hs = a.model(**{key: batch[key]}, output_hidden_states=True).hidden_states
    # 20 ms model frames (hop 320 samples): frames centred in the last 0.5 s
    if name == "wav2vec2":
        n = hs[0].shape[1]
        assert n == 1 + (1.5 * SR - 145) // 320
        centres = np.arange(n) * 320 + 145 / 2
    else:
        centres = np.arange(hs[0].shape[1]) * 320.0
    cur_idx = np.nonzero((centres >= SR) & (centres < 1.5 * SR))[0]
    win_idx = np.nonzero(centres < 1.5 * SR)[0]
    assert 24 <= len(cur_idx) <= 26 and len(win_idx) in (74, 75)
    for i, layer in enumerate(a.layer_names):
        np.testing.assert_allclose(pooled[layer][0], hs[i][0, cur_idx].mean(0).numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(window[layer][0], hs[i][0, win_idx].mean(0).numpy(), rtol=1e-4, atol=1e-4)
        assert np.abs(pooled[layer] - window[layer]).max() > 1e-3
    assert a.pooling_label() == "mean-current-tr,context1.5s"


def test_ast_has_no_causal_context():
    with pytest.raises(InputError, match="not AST"):
        adapter("ast", context=2.0)


# ---- GPT-2 ---------------------------------------------------------------------------------


def test_gpt2_word_vector_is_mean_of_subtokens_with_left_context():
    a = adapter("gpt2", n_context=3)
    words = ["a", "fox", "saw", "unbelievably", "loud", "things"]
    item = a.preprocess(WindowInput(text=words[:4], target_word_span=(3, 4)))
    other = a.preprocess(WindowInput(text=words[2:6], target_word_span=(3, 4)))
    with torch.inference_mode():
        pooled = a.pool(a.forward(a.collate([item, other])))
    # independent: the plain token ids of the 4-word text; the target's pieces are its own tokens
    ids = a.tokenizer(" ".join(words[:4]), return_tensors="pt")["input_ids"]
    pieces = a.tokenizer("unbelievably", add_special_tokens=False)["input_ids"]
    assert len(pieces) >= 2
    pos = [i for i in range(ids.shape[1] - len(pieces) + 1) if ids[0, i : i + len(pieces)].tolist() == pieces]
    sel = list(range(pos[0], pos[0] + len(pieces)))
    with torch.inference_mode():
        hs = a.model(input_ids=ids, output_hidden_states=True).hidden_states
    assert len(hs) == 3 and a.layer_names == ["layer-0", "layer-1", "layer-2"]
    for i, layer in enumerate(a.layer_names):
        np.testing.assert_allclose(pooled[layer][0], hs[i][0, sel].mean(0).numpy(), rtol=1e-4, atol=1e-4)
    assert a.tokenizer.model_input_names == ["input_ids", "attention_mask"]


# ---- mixture of experts -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def moe():
    return adapter("qwen3-vl-moe")


def test_moe_patches_follow_the_hf_video_processor_order(moe):
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import (
        Qwen3VLVideoProcessor,
    )

    frames = np.random.default_rng(4).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    item = moe.preprocess(WindowInput(frames=frames))
    pixels = moe.transform(frames)  # same size: no resampling
    ref, gt, gh, gw = Qwen3VLVideoProcessor.__new__(Qwen3VLVideoProcessor).patchify(pixels[None], 8, 2, 2)
    torch.testing.assert_close(item["pixel_values_videos"], ref[0])
    assert item["video_grid_thw"].tolist() == [gt, gh, gw] == [2, 4, 4]


def test_moe_router_logits_per_token_with_modality_tags(moe):
    rng = np.random.default_rng(5)
    words = ["hello", "brain", "world"]
    windows = [
        WindowInput(frames=rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), text=words),
        WindowInput(frames=rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)),
    ]
    items = [moe.preprocess(w) for w in windows]
    batch = moe.collate(items)
    # independent reference: capture each sparse block's input and apply its gate weight
    lm = moe.model.language_model
    captured = {}
    hooks = [
        layer.mlp.register_forward_pre_hook(lambda mod, args, i=i: captured.__setitem__(i, args[0].detach().clone()))
        for i, layer in enumerate(lm.layers)
        if hasattr(layer.mlp, "gate")
    ]
    try:
        with torch.inference_mode():
            out = moe.forward(batch)
    finally:
        for h in hooks:
            h.remove()
    assert moe.moe_layers == ["layer-1", "layer-3"]  # layer index 1 is dense (mlp_only_layers)
    assert set(out.router_logits) == {"layer-1", "layer-3"} and sorted(captured) == [0, 2]
    # token count: per temporal step "<t seconds>" + start + 4 video tokens + end, then the words
    stamp = lambda t: len(moe.tokenizer(f"<{t:.1f} seconds>", add_special_tokens=False)["input_ids"])  # noqa: E731
    n_words = len(moe.tokenizer(" hello brain world", add_special_tokens=False)["input_ids"])
    n0 = stamp(0.25) + stamp(1.25) + 2 * (1 + 4 + 1) + n_words
    n1 = n0 - n_words
    assert [len(it["input_ids"]) for it in items] == [n0, n1]
    tags = out.router_token_modality
    assert tags.shape == (2, n0)
    assert (tags[0] == "video").sum() == 8 and (tags[0] == "text").sum() == n_words
    assert (tags[1] == "video").sum() == 8 and (tags[1] == "text").sum() == 0 and (tags[1] == "pad").sum() == n_words
    assert list(tags[0, -n_words:]) == ["text"] * n_words
    for j, layer in zip([0, 2], ["layer-1", "layer-3"]):
        logits = out.router_logits[layer]
        assert logits.shape == (2, n0, 4)
        with torch.no_grad():
            ref = torch.softmax(captured[j] @ lm.layers[j].mlp.gate.weight.T, dim=-1)
        torch.testing.assert_close(torch.softmax(logits, -1), ref, rtol=1e-5, atol=1e-6)
    # hidden states: embeddings + 3 blocks, each (B, T, D); pooling by modality works
    assert [tuple(out.hidden[l].shape) for l in moe.layer_names] == [(2, n0, 32)] * 4
    with pytest.raises(InputError, match="no tokens"):
        moe.pool(out, "mean:text")  # the second window has no words
    video = moe.pool(out, "mean:video")
    vid_mask = torch.from_numpy(tags == "video")
    np.testing.assert_allclose(video["layer-2"][1], out.hidden["layer-2"][1, vid_mask[1]].mean(0).numpy(), rtol=1e-5)


def test_moe_padding_does_not_change_a_window(moe):
    rng = np.random.default_rng(6)
    f = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    long_ = WindowInput(frames=rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), text="one two three four".split())
    with torch.inference_mode():
        alone = moe.pool(moe.forward(moe.collate([moe.preprocess(WindowInput(frames=f))])))
        both = moe.pool(moe.forward(moe.collate([moe.preprocess(WindowInput(frames=f)), moe.preprocess(long_)])))
    for layer in moe.layer_names:
        np.testing.assert_allclose(both[layer][0], alone[layer][0], rtol=1e-4, atol=1e-4)


def test_context_adapter_through_the_driver(run):
    a = adapter("wav2vec2", context=2.0)
    assert a.default_window == "context:2" and adapter("wav2vec2").default_window == "clip"
    feats = extract_run(a, run, progress=False)
    # TR 2 ([2, 3) s) read with its 1 s of context equals the adapter fed the same context window by hand
    import soundfile as sf

    wav, _ = sf.read(str(run.audio), dtype="float32")
    wins = context_window_inputs(wav, SR, run.tr_times, TR, context=2.0)
    assert len(wins[2].waveform) == 2 * SR and wins[2].current_samples == SR
    with torch.inference_mode():
        direct = a.pool(a.forward(a.collate([a.preprocess(wins[2])])))
    for layer in a.layer_names:
        np.testing.assert_allclose(feats[layer].data[2], direct[layer][0], rtol=1e-4, atol=1e-5)
    plain = extract_run(adapter("wav2vec2"), run, progress=False)
    assert np.abs(plain["layer-2"].data[2] - feats["layer-2"].data[2]).max() > 1e-4


@pytest.mark.parametrize("name", ["videomae", "wav2vec2"])
def test_random_config_joins_the_cache_key(name):
    """Two random architectures of one model never share cached features; one architecture
    built twice does (the digest is of the config, not of the object)."""
    base = adapter(name).window_params()
    assert base == adapter(name).window_params() and len(base["random_config"]) == 16
    wider = tiny(name)
    wider.num_hidden_layers += 1
    other = get_adapter(name, weights="random", seed=0, config=wider, device="cpu", **EXTRA.get(name, {}))
    assert other.window_params()["random_config"] != base["random_config"]
    assert {k: v for k, v in other.window_params().items() if k != "random_config"} == \
        {k: v for k, v in base.items() if k != "random_config"}
