"""TVLT: parity with transformers 4.57.6, checkpoint loading, the adapter, cross-modal blocking.

The reference numbers in tests/fixtures/tvlt_parity were made by the original TvltModel,
TvltImageProcessor and TvltFeatureExtractor (see tests/fixtures/make_tvlt_parity.py for
the command). Tolerances: model tensors <= 1e-5 max abs (measured: 0 with attentions
returned, ~2e-6 on the fused-attention path); processor outputs <= 1e-6 max abs
(measured: 0, the PIL resize and the STFT are reproduced bit for bit).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from strict_json import read_json
from mmneuro.errors import InputError, WeightsUnavailableError
from mmneuro.models.base import WindowInput
from mmneuro.models.tvlt import DEFAULT_HUB_ID, TVLTAdapter
from mmneuro.models.tvlt_model import TvltConfig, TvltEncoder, load_tvlt, read_tvlt_state_dict, save_tvlt
from mmneuro.models.tvlt_processing import (
    TvltProcessorConfig,
    pad_audio,
    pil_bilinear_resize,
    preprocess_frames,
    preprocess_waveform,
)
from mmneuro.models.weights import resolve_weights

FIXTURE = Path(__file__).parent / "fixtures" / "tvlt_parity"
MODEL_DIR = FIXTURE / "model"
ATOL = 1e-5
PROC_ATOL = 1e-6


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(FIXTURE / "reference.safetensors"))


@pytest.fixture(scope="module")
def model() -> TvltEncoder:
    return load_tvlt(MODEL_DIR)


@pytest.fixture(scope="module")
def adapter() -> TVLTAdapter:
    """Truncates long audio like the original processor (clip b is longer than the tiny model's 0.74 s)."""
    return TVLTAdapter.from_weights(resolve_weights(str(MODEL_DIR), DEFAULT_HUB_ID), device="cpu", truncate_audio=True)


def _run(model, ref, **kw):
    with torch.no_grad():
        return model(
            torch.from_numpy(ref["pixel_values"]),
            torch.from_numpy(ref["audio_values"]),
            torch.from_numpy(ref["pixel_mask"]),
            torch.from_numpy(ref["audio_mask"]),
            **kw,
        )


def _maxabs(a, b) -> float:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    assert a.shape == np.asarray(b).shape
    return float(np.abs(a - b).max())


def _wave(ref, c):
    return ref[f"wave_{c}"].astype(np.float32) / 32768


# ---- parity with the original ------------------------------------------------------------


@pytest.mark.parametrize("attentions", [True, False], ids=["eager", "fused"])
def test_model_reproduces_every_reference_tensor(model, ref, attentions):
    out = _run(model, ref, output_attentions=attentions)
    assert len(out.hidden_states) == 3
    for i, h in enumerate(out.hidden_states):
        assert _maxabs(h, ref[f"hidden_states.{i}"]) <= ATOL, f"hidden_states.{i}"
    assert _maxabs(out.last_hidden_state, ref["last_hidden_state"]) <= ATOL
    if attentions:
        assert len(out.attentions) == 2
        for i, a in enumerate(out.attentions):
            assert _maxabs(a, ref[f"attentions.{i}"]) <= ATOL, f"attentions.{i}"
    else:
        assert out.attentions is None
    assert (out.n_video, out.n_audio) == (8, 8)
    # clip a's last audio patch row (2 tokens) is padding
    assert out.token_mask.tolist()[0] == [True] * 15 + [False] * 2
    assert bool(out.token_mask[1].all())


def test_processing_matches_reference(ref, model):
    cfg = TvltProcessorConfig.from_folder(MODEL_DIR, model.config)
    assert (cfg.size, cfg.num_frames, cfg.feature_size, cfg.spectrogram_length, cfg.hop_length) == (32, 3, 32, 64, 512)
    values, masks = [], []
    for i, c in enumerate("ab"):
        pv, pm = preprocess_frames(ref[f"frames_{c}"], cfg)
        assert _maxabs(pv, ref["pixel_values"][i]) <= PROC_ATOL
        np.testing.assert_array_equal(pm, ref["pixel_mask"][i])
        av, am = preprocess_waveform(_wave(ref, c), cfg)
        values.append(av)
        masks.append(am)
    # clip a: 19845 samples -> 38 frames -> 3 patch rows (48 frames); clip b: 86 frames cut to 64
    assert [v.shape[1] for v in values] == [48, 64]
    av, am = pad_audio(values, masks)
    assert _maxabs(av, ref["audio_values"]) <= PROC_ATOL
    np.testing.assert_array_equal(am, ref["audio_mask"])


@torch.no_grad()
def test_processing_edge_cases_match_reference(ref, model):
    cfg = TvltProcessorConfig.from_folder(MODEL_DIR, model.config)
    for case, hw in (("up", (20, 30)), ("wide", (32, 40)), ("tall", (45, 32))):
        frames = ref[f"frames_{case}"]
        assert frames.shape[1:3] == hw
        pv, _ = preprocess_frames(frames, cfg)
        assert _maxabs(pv, ref[f"pixel_values_{case}"]) <= PROC_ATOL, case
    av, am = preprocess_waveform(ref["wave_short"].astype(np.float32) / 32768, cfg)
    assert av.shape == (1, 16, 32)  # 700 samples -> 1 frame, padded to one patch row
    assert _maxabs(av, ref["audio_values_short"]) <= PROC_ATOL
    np.testing.assert_array_equal(am, ref["audio_mask_short"])


@torch.no_grad()
def test_adapter_end_to_end_matches_reference(adapter, ref):
    """Raw frames + waveforms -> our preprocess/collate/forward -> the original's hidden states."""
    items = [
        adapter.preprocess(WindowInput(frames=ref[f"frames_{c}"], waveform=_wave(ref, c), sample_rate=44100))
        for c in "ab"
    ]
    batch = adapter.collate(items)
    out = adapter.forward(batch, want_attentions=True)
    assert list(out.hidden) == ["embeddings", "layer-1", "layer-2"]
    for i, name in enumerate(out.hidden):
        assert _maxabs(out.hidden[name], ref[f"hidden_states.{i}"]) <= ATOL
    for i, name in enumerate(["layer-1", "layer-2"]):
        assert _maxabs(out.attentions[name], ref[f"attentions.{i}"]) <= ATOL


def test_pil_resize_is_exact_on_upscale_and_identity():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(pil_bilinear_resize(img, (5, 7)), img)
    # 1 -> 2 pixel upscaling of a constant row stays constant; a ramp stays monotone
    flat = np.full((4, 4, 3), 77, dtype=np.uint8)
    assert (pil_bilinear_resize(flat, (9, 11)) == 77).all()
    ramp = np.repeat(np.arange(0, 256, 32, dtype=np.uint8)[None, :, None], 3, axis=2)
    up = pil_bilinear_resize(ramp, (1, 20))[0, :, 0].astype(int)
    assert (np.diff(up) >= 0).all() and up[0] == 0 and up[-1] == 224


# ---- checkpoint folders ------------------------------------------------------------------


def test_hf_download_layout_loads_with_identity(ref, tmp_path):
    folder = tmp_path / "tvlt-download"
    shutil.copytree(MODEL_DIR, folder)
    resolved = resolve_weights(str(folder), DEFAULT_HUB_ID, model="tvlt")
    assert resolved.kind == "path" and resolved.identity.startswith("sha256:")
    a = TVLTAdapter.from_weights(resolved, device="cpu")
    assert a.weights.identity == resolved.identity and not a.weights.is_random
    out = _run(a.model, ref)
    assert _maxabs(out.hidden_states[-1], ref["hidden_states.2"]) <= ATOL


def test_pretraining_checkpoint_with_tvlt_prefix_as_bin(ref, tmp_path):
    """TvltForPreTraining checkpoints keep the encoder under ``tvlt.`` next to decoder heads."""
    from safetensors.torch import load_file

    sd = load_file(str(MODEL_DIR / "model.safetensors"))
    full = {f"tvlt.{k}": v for k, v in sd.items()}
    full["pixel_decoder.decoder_norm.weight"] = torch.ones(16)
    full["matching_head.cls.weight"] = torch.zeros(1, 32)
    folder = tmp_path / "pretraining"
    folder.mkdir()
    shutil.copy(MODEL_DIR / "config.json", folder / "config.json")
    torch.save(full, folder / "pytorch_model.bin")
    assert set(read_tvlt_state_dict(folder)) == set(sd)
    out = _run(load_tvlt(folder), ref, output_attentions=True)
    for i, h in enumerate(out.hidden_states):
        assert _maxabs(h, ref[f"hidden_states.{i}"]) <= ATOL


def test_checkpoint_mismatches_are_named(tmp_path):
    from safetensors.torch import load_file, save_file

    sd = load_file(str(MODEL_DIR / "model.safetensors"))
    folder = tmp_path / "broken"
    folder.mkdir()
    shutil.copy(MODEL_DIR / "config.json", folder / "config.json")
    missing = {k: v for k, v in sd.items() if k != "encoder.layer.1.output.dense.weight"}
    save_file(missing, str(folder / "model.safetensors"))
    with pytest.raises(InputError, match="encoder.layer.1.output.dense.weight"):
        load_tvlt(folder)
    save_file({**sd, "encoder.layer.0.attention.attention.rotary": torch.zeros(2)}, str(folder / "model.safetensors"))
    with pytest.raises(InputError, match="rotary"):
        load_tvlt(folder)
    cfg = read_json(MODEL_DIR / "config.json")
    cfg["hidden_size"] = 64
    (folder / "config.json").write_text(json.dumps(cfg))
    save_file(sd, str(folder / "model.safetensors"))
    with pytest.raises(InputError, match="wrong shape"):
        load_tvlt(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(WeightsUnavailableError, match="pytorch_model.bin"):
        load_tvlt(folder)


def test_save_writes_the_original_layout(model, tmp_path):
    from safetensors.torch import load_file

    save_tvlt(model, tmp_path / "saved")
    original = load_file(str(MODEL_DIR / "model.safetensors"))
    saved = load_file(str(tmp_path / "saved" / "model.safetensors"))
    assert set(saved) == set(original)
    for k in original:
        assert torch.equal(saved[k], original[k]), k
    cfg = read_json(tmp_path / "saved" / "config.json")
    assert cfg["model_type"] == "tvlt" and cfg["num_frames"] == 3 and cfg["decoder_hidden_size"] == 16


# ---- random weights and the registry ------------------------------------------------------

TINY = dict(
    image_size=32, spectrogram_length=64, frequency_length=32, num_frames=2, hidden_size=16,
    num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
)


def test_random_weights_are_seeded_and_labelled():
    from mmneuro.models import get_adapter

    a = get_adapter("tvlt", weights="random", seed=3, device="cpu", config=TINY)
    b = get_adapter("tvlt", weights="random", seed=3, device="cpu", config=TvltConfig(**TINY))
    c = get_adapter("tvlt", weights="random", seed=4, device="cpu", config=TINY)
    assert a.weights.is_random and "RANDOM" in a.weights.label() and a.weights.identity == "random-seed3"
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["video_pos"], sc["video_pos"])
    assert float(sa["video_pos"].std()) > 0.01  # position embeddings are drawn, not left at zero
    assert (a.input_kind, a.modalities, a.n_frames, a.sample_rate) == ("frames+waveform", ("video", "audio"), 2, 44100)
    assert a.layer_names == ["embeddings", "layer-1", "layer-2"]
    assert a.poolings == ("mean", "mean:video", "mean:audio")


def test_random_default_architecture_is_tvlt_base():
    a = TVLTAdapter.from_weights(resolve_weights("random", DEFAULT_HUB_ID, seed=0), device="cpu")
    assert a.layer_names[-1] == "layer-12" and len(a.layer_names) == 13
    assert (a.n_frames, a.processor.size, a.processor.feature_size, a.processor.hop_length) == (8, 224, 128, 512)
    n_params = sum(p.numel() for p in a.model.parameters())
    assert 85e6 < n_params < 90e6  # ViT-B sized encoder with two patch embeddings


def test_registry_default_is_tvlt_base_and_missing_weights_say_what_to_do(tmp_path, monkeypatch):
    from mmneuro.models import available_models, get_adapter

    assert "tvlt" in available_models()
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(WeightsUnavailableError, match="ZinengTang/tvlt-base"):
        get_adapter("tvlt")


# ---- the adapter -------------------------------------------------------------------------


@torch.no_grad()
def test_padding_does_not_change_real_tokens(adapter, ref):
    alone = adapter.forward(adapter.collate([
        adapter.preprocess(WindowInput(frames=ref["frames_a"], waveform=_wave(ref, "a"), sample_rate=44100))
    ]))
    both = adapter.forward(adapter.collate([
        adapter.preprocess(WindowInput(frames=ref[f"frames_{c}"], waveform=_wave(ref, c), sample_rate=44100))
        for c in "ab"
    ]))
    n = alone.hidden["layer-2"].shape[1]
    assert n == 15 and both.hidden["layer-2"].shape[1] == 17
    for layer in adapter.layer_names:
        assert _maxabs(both.hidden[layer][:1, :n], alone.hidden[layer].numpy()) <= ATOL  # float32 rounding
    # pooled features ignore padding: the batch-of-two row 0 equals the lone clip
    for how in adapter.poolings:
        p1, p2 = adapter.pool(alone, how), adapter.pool(both, how)
        assert np.abs(p2["layer-2"][0] - p1["layer-2"][0]).max() <= ATOL
    # and "mean:audio" is the mean over exactly clip a's 6 real audio tokens
    manual = both.hidden["layer-1"][0, 9:15].mean(0).numpy()
    assert np.abs(adapter.pool(both, "mean:audio")["layer-1"][0] - manual).max() <= 1e-6
    manual_all = both.hidden["layer-1"][0, :15].mean(0).numpy()
    assert np.abs(adapter.pool(both, "mean")["layer-1"][0] - manual_all).max() <= 1e-6


def test_bad_windows_raise_input_errors(adapter, ref):
    frames, wave = ref["frames_a"], _wave(ref, "a")
    with pytest.raises(InputError, match="44100 Hz"):
        adapter.preprocess(WindowInput(frames=frames, waveform=wave, sample_rate=16000))
    with pytest.raises(InputError, match="audio"):
        adapter.preprocess(WindowInput(frames=frames, sample_rate=44100))
    with pytest.raises(InputError, match="frames"):
        adapter.preprocess(WindowInput(waveform=wave, sample_rate=44100))
    with pytest.raises(InputError, match="1..3 frames"):
        adapter.preprocess(WindowInput(frames=np.concatenate([frames, frames]), waveform=wave, sample_rate=44100))
    with pytest.raises(InputError, match="uint8"):
        adapter.preprocess(WindowInput(frames=frames.astype(np.float32), waveform=wave, sample_rate=44100))
    with pytest.raises(InputError, match="at least one hop"):
        adapter.preprocess(WindowInput(frames=frames, waveform=wave[:300], sample_rate=44100))
    strict = TVLTAdapter(adapter.model, adapter.weights, adapter.processor, device="cpu")
    with pytest.raises(InputError, match="at most 0.74 s of audio"):  # 64 frames * 512 / 44100
        strict.preprocess(WindowInput(frames=frames, waveform=_wave(ref, "b"), sample_rate=44100))
    assert strict.preprocess(WindowInput(frames=frames, waveform=wave, sample_rate=44100))["audio_values"].shape[1] == 48
    with pytest.raises(InputError, match="n_frames"):
        TVLTAdapter(adapter.model, adapter.weights, adapter.processor, n_frames=4)


# ---- blocking cross-modal attention --------------------------------------------------------


def test_block_cross_modal(ref, model):
    blocked = _run(model, ref, output_attentions=True, block_cross_modal=True)
    v, a = blocked.video_slice, blocked.audio_slice
    for att in blocked.attentions:
        assert float(att[:, :, v, a].abs().max()) == 0.0  # video queries never read audio keys
        assert float(att[:, :, a, v].abs().max()) == 0.0  # audio queries never read video keys
        assert float(att[:, :, 1:, 0].abs().max()) == 0.0  # nobody reads CLS (it could carry both)
        assert float(att[:, :, 0, v].sum(-1).min()) > 0.01  # CLS still reads the video
        assert float(att[:, :, 0, a].sum(-1).min()) > 0.01  # ... and the audio
        torch.testing.assert_close(att.sum(-1), torch.ones_like(att.sum(-1)))
    # change only the audio: video token states stay the same at every depth (fused and eager)
    other = dict(ref)
    other["audio_values"] = np.flip(ref["audio_values"], axis=2).copy()
    for attn in (True, False):
        b1 = _run(model, ref, output_attentions=attn, block_cross_modal=True)
        b2 = _run(model, other, output_attentions=attn, block_cross_modal=True)
        for h1, h2 in zip(b1.hidden_states[1:], b2.hidden_states[1:]):
            assert torch.equal(h1[:, v], h2[:, v])
            assert not torch.equal(h1[:, a], h2[:, a])
    # without blocking the same audio change reaches the video tokens in layer 1
    u1, u2 = _run(model, ref), _run(model, other)
    assert float((u1.hidden_states[1][:, v] - u2.hidden_states[1][:, v]).abs().max()) > 1e-3
    # and changing only the video leaves blocked audio states alone
    other_v = dict(ref)
    other_v["pixel_values"] = -ref["pixel_values"]
    b3 = _run(model, other_v, block_cross_modal=True)
    b1 = _run(model, ref, block_cross_modal=True)
    for h1, h3 in zip(b1.hidden_states[1:], b3.hidden_states[1:]):
        assert torch.equal(h1[:, a], h3[:, a])


def test_options_that_change_numbers_are_part_of_the_cache_key(adapter):
    plain = TVLTAdapter(adapter.model, adapter.weights, adapter.processor, device="cpu")
    blocked = TVLTAdapter(adapter.model, adapter.weights, adapter.processor, block_cross_modal=True, device="cpu")
    assert plain.window_params() == {"n_frames": 3, "sample_rate": 44100}
    assert blocked.window_params()["block_cross_modal"] is True
    assert blocked.describe()["block_cross_modal"] is True
    assert adapter.window_params()["truncate_audio"] is True


# ---- through the extraction driver ----------------------------------------------------------


def _make_video(path, seconds=4, fps=10, h=40, w=48):
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "1"}
        for i in range(seconds * fps):
            img = np.full((h, w, 3), 30 + 50 * (i // fps), dtype=np.uint8)
            img[:, (i * 3) % w :] = rng.integers(0, 256, 3, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _make_audio(path, seconds=4, sr=22050, freq=440.0):
    import soundfile as sf

    t = np.arange(seconds * sr) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.2 * t) * t) + 0.01 * np.random.default_rng(0).standard_normal(len(t))
    sf.write(str(path), x.astype(np.float32), sr)
    return path


def test_extract_run_feeds_frames_and_audio(tmp_path):
    from mmneuro.datasets.base import StimulusRun
    from mmneuro.features.extract import extract_run

    model = load_tvlt(MODEL_DIR)
    weights = resolve_weights(str(MODEL_DIR), DEFAULT_HUB_ID)
    video = _make_video(tmp_path / "clip.mp4")
    trs = np.array([1.0, 1.5, 2.0, 2.5])  # 0.5 s windows: within the tiny model's 0.74 s of audio
    run_a = StimulusRun("run-1", trs, video=video, audio=_make_audio(tmp_path / "a.wav"))
    run_b = StimulusRun("run-1", trs, video=video, audio=_make_audio(tmp_path / "b.wav", freq=2000.0))

    plain = TVLTAdapter(model, weights.info, device="cpu")
    feats = {how: extract_run(plain, run_a, progress=False, pooling=how) for how in plain.poolings}
    for how, fs in feats.items():
        assert set(fs) == set(plain.layer_names)
        for tf in fs.values():
            assert tf.data.shape == (4, 32) and np.isfinite(tf.data).all()
            np.testing.assert_array_equal(tf.times, trs)
    # windows differ over time (the video brightens every second)
    assert np.abs(np.diff(feats["mean:video"]["embeddings"].data, axis=0)).max() > 1e-3
    # the audio reaches the model: a different sound changes the audio tokens' embeddings
    other = extract_run(plain, run_b, progress=False, pooling="mean:audio", layers=["embeddings"])
    assert np.abs(other["embeddings"].data - feats["mean:audio"]["embeddings"].data).max() > 1e-3

    blocked = TVLTAdapter(model, weights.info, block_cross_modal=True, device="cpu")
    va = extract_run(blocked, run_a, progress=False, pooling="mean:video")
    vb = extract_run(blocked, run_b, progress=False, pooling="mean:video")
    for layer in blocked.layer_names:
        np.testing.assert_array_equal(va[layer].data, vb[layer].data)
    ua = extract_run(plain, run_b, progress=False, pooling="mean:video", layers=["layer-1"])
    assert np.abs(ua["layer-1"].data - feats["mean:video"]["layer-1"].data).max() > 1e-4
