"""Attention studies: shares by modality and cross-modal blocking on the parity-fixture TVLT; token layout,
rollout maps, accumulation over windows and the blocking statistics on constructed cases and a tiny TVLT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmneuro.analyses.attention import modality_shares
from mmneuro.models.tvlt_model import load_tvlt

FIXTURE = Path(__file__).parent / "fixtures" / "tvlt_parity"


def run(block: bool):
    from safetensors.numpy import load_file

    ref = load_file(str(FIXTURE / "reference.safetensors"))
    model = load_tvlt(FIXTURE / "model")
    with torch.no_grad():
        return model(torch.from_numpy(ref["pixel_values"]), torch.from_numpy(ref["audio_values"]),
                     torch.from_numpy(ref["pixel_mask"]), torch.from_numpy(ref["audio_mask"]),
                     output_attentions=True, block_cross_modal=block)


def test_blocking_leaves_within_modality_rows_unchanged_in_the_first_layer():
    """Layer 1 sees identical inputs, so a blocked video row is the unblocked row restricted to
    video keys and renormalised; the cross-modal share drops from > 0 to exactly 0."""
    full, blocked = run(False), run(True)
    v, a = full.video_slice, full.audio_slice
    f, b = full.attentions[0].numpy(), blocked.attentions[0].numpy()
    ok = full.token_mask.numpy()  # padded keys get no attention in either run
    for sl in (v, a):
        within = f[:, :, sl, sl] * ok[:, None, None, sl]
        expected = within / within.sum(-1, keepdims=True)
        np.testing.assert_allclose(b[:, :, sl, sl], expected, atol=1e-6)
    groups = {"video": np.arange(v.start, v.stop), "audio": np.arange(a.start, a.stop)}
    shares_full, shares_blocked = modality_shares(f, groups), modality_shares(b, groups)
    assert shares_full["video->audio"].min() > 0 and shares_full["audio->video"].min() > 0
    np.testing.assert_array_equal(shares_blocked["video->audio"], 0)
    np.testing.assert_array_equal(shares_blocked["audio->video"], 0)


# ---- token layout, rollout maps, accumulation over windows -------------------------------------

from mmneuro.analyses.attention import (  # noqa: E402
    AttentionAccumulator, attention_rollout, drop_contrast_test, grid_maps, input_relevance,
    relate_to_alignment, run_attention,
)


def tiny_adapter(**kw):
    from mmneuro.models.registry import get_adapter
    from mmneuro.models.tvlt import tiny_config

    return get_adapter("tvlt", weights="random", config=tiny_config(num_hidden_layers=3), device="cpu", **kw)


def test_token_layout_matches_the_encoders_patch_order():
    """Perturb one video patch (frame f, row i, col j) / one spectrogram patch (time t, freq q): only the
    embedding of the token the layout names for that position changes."""
    adapter = tiny_adapter()
    enc, cfg = adapter.model, adapter.config
    rng = np.random.default_rng(0)
    pix = torch.from_numpy(rng.normal(size=(1, adapter.n_frames, 3, 32, 32)).astype(np.float32))
    aud = torch.from_numpy(rng.normal(size=(1, 1, 48, cfg.frequency_length)).astype(np.float32))
    layout = adapter.token_layout(n_audio=(48 // 16) * cfg.freq_patches)
    assert layout["video"].shape == (adapter.n_frames, 2, 2) and layout["audio"].shape == (3, 2)
    nv = layout["video"].size
    with torch.no_grad():
        v0, a0 = enc.embed_video(pix), enc.embed_audio(aud)
        for f, i, j in [(0, 0, 1), (2, 1, 0), (adapter.n_frames - 1, 1, 1)]:
            p = pix.clone()
            p[0, f, :, 16 * i:16 * (i + 1), 16 * j:16 * (j + 1)] += 1.0
            changed = np.flatnonzero((enc.embed_video(p) - v0).abs().amax(-1)[0].numpy() > 0)
            assert changed.tolist() == [layout["video"][f, i, j] - 1]  # embed_video has no CLS
        for t, q in [(0, 1), (2, 0)]:
            a = aud.clone()
            a[0, 0, 16 * t:16 * (t + 1), 16 * q:16 * (q + 1)] += 1.0
            changed = np.flatnonzero((enc.embed_audio(a) - a0).abs().amax(-1)[0].numpy() > 0)
            assert changed.tolist() == [layout["audio"][t, q] - 1 - nv]


def _layout():
    # CLS 0, video tokens 1..4 = 2 frames x (1 x 2) grid, audio tokens 5..8 = 2 time rows x 2 freq patches
    return {"video": np.arange(1, 5).reshape(2, 1, 2), "audio": np.arange(5, 9).reshape(2, 2)}


def test_rollout_maps_on_a_case_known_by_hand():
    n, k = 9, 3  # every query attends only to token 3 = frame 1, column 0
    att = np.zeros((1, 2, n, n))
    att[..., k] = 1.0
    rel = input_relevance(attention_rollout([att], residual=0.0))
    maps = grid_maps(rel, _layout())
    expected_video = np.zeros((1, 2, 1, 2))
    expected_video[0, 1, 0, 0] = 1.0
    np.testing.assert_allclose(maps["video"], expected_video)
    np.testing.assert_allclose(maps["audio"], 0.0)
    # with the residual stream: rollout = 0.5 I + 0.5 A, so relevance = 0.5 / 9 everywhere, + 0.5 on token 3
    rel = input_relevance(attention_rollout([att], residual=0.5))
    hand = np.full(n, 0.5 / n)
    hand[k] += 0.5
    np.testing.assert_allclose(rel[0], hand)
    np.testing.assert_allclose(grid_maps(rel, _layout())["audio"][0], hand[5:9].reshape(2, 2))
    # two layers: 0.5 I + 0.5 A applied twice; A @ A = A (all mass on token 3) -> 0.25 / 9 + 0.75 on token 3
    rel2 = input_relevance(attention_rollout([att, att], residual=0.5))
    hand2 = np.full(n, 0.25 / n)
    hand2[k] += 0.75
    np.testing.assert_allclose(rel2[0], hand2)


def test_accumulated_maps_average_windows_and_skip_padding():
    """Window 1: all 9 tokens real, all attention on token 3. Window 2: the second audio row (tokens 7, 8)
    is padding and all attention goes to token 6. Residual 0: relevance is one-hot per window."""
    n = 9
    w1 = np.zeros((1, 1, n, n))
    w1[..., 3] = 1.0
    w2 = np.zeros((1, 1, n, n))
    w2[..., 6] = 1.0
    valid2 = np.ones((1, n), bool)
    valid2[0, 7:] = False
    groups = {"cls": np.array([0]), "video": np.arange(1, 5), "audio": np.arange(5, 9)}
    acc = AttentionAccumulator(residual=0.0)
    acc.update({"layer-1": w1}, np.ones((1, n), bool), groups, _layout())
    acc.update({"layer-1": w2}, valid2, groups, _layout())
    s = acc.result()
    assert s.n_windows == 2
    video = np.zeros((2, 1, 2))
    video[1, 0, 0] = 0.5  # token 3 in window 1 only, averaged over 2 windows
    np.testing.assert_allclose(s.maps["video"], video)
    # audio: tokens 5, 6 seen in both windows (token 6 = 1 in window 2), tokens 7, 8 only in window 1 (0)
    np.testing.assert_allclose(s.maps["audio"], [[0.0, 0.5], [0.0, 0.0]])
    # shares by hand: video queries (4 + 4 real) give all to video in window 1, all to audio in window 2
    np.testing.assert_allclose(s.shares["layer-1"]["video->video"], [0.5])
    np.testing.assert_allclose(s.shares["layer-1"]["video->audio"], [0.5])
    # audio queries: 4 real in window 1 (all on video), 2 real in window 2 (all on audio) -> 4/6 and 2/6
    np.testing.assert_allclose(s.shares["layer-1"]["audio->video"], [4 / 6])
    np.testing.assert_allclose(s.shares["layer-1"]["audio->audio"], [2 / 6])
    np.testing.assert_allclose(s.entropy["layer-1"]["video"], [0.0])


def test_accumulator_equals_modality_shares_of_the_pooled_batch():
    rng = np.random.default_rng(3)
    raw = rng.random((5, 3, 9, 9))
    att = raw / raw.sum(-1, keepdims=True)
    groups = {"cls": np.array([0]), "video": np.arange(1, 5), "audio": np.arange(5, 9)}
    acc = AttentionAccumulator()
    acc.update({"layer-1": att[:2]}, np.ones((2, 9), bool), groups, _layout())
    acc.update({"layer-1": att[2:]}, np.ones((3, 9), bool), groups, _layout())
    whole = modality_shares(att, groups)
    for key, v in whole.items():
        np.testing.assert_allclose(acc.result().shares["layer-1"][key], v)
    np.testing.assert_allclose(whole["video->video"] + whole["video->audio"] + whole["video->cls"], 1.0)


def test_run_attention_agrees_with_the_encoders_own_attentions(demo):
    """Shares streamed over demo windows equal modality_shares of the encoder called directly on the same
    preprocessed windows; blocked cross-modal attention gives exactly zero cross-modal shares."""
    from mmneuro.features.extract import plan_windows

    adapter = tiny_adapter()
    run_ = demo.runs[0]
    summary = run_attention(adapter, [run_], max_windows=4, batch_size=2)
    assert summary.n_windows == 4 and summary.layers == ["layer-1", "layer-2", "layer-3"]
    plan = plan_windows(adapter, run_)
    idx = np.unique(np.linspace(0, len(plan) - 1, 4).round().astype(int))
    batch = adapter.collate([adapter.preprocess(w) for w in plan.make(idx)])
    with torch.no_grad():
        out = adapter.model(batch["pixel_values"], batch["audio_values"], batch["pixel_mask"], batch["audio_mask"],
                            output_attentions=True)
    groups = {"cls": np.array([0]), "video": np.arange(out.video_slice.start, out.video_slice.stop),
              "audio": np.arange(out.audio_slice.start, out.audio_slice.stop)}
    for i, layer in enumerate(summary.layers):
        direct = modality_shares(out.attentions[i].numpy(), groups)
        for key in ("video->audio", "audio->video", "video->video", "audio->audio"):
            np.testing.assert_allclose(summary.shares[layer][key], direct[key], rtol=1e-5, atol=1e-7)
    f, gh, gw = summary.maps["video"].shape
    assert (f, gh, gw) == (adapter.n_frames, 2, 2) and summary.maps["audio"].shape[1] == 2
    assert np.isfinite(summary.maps["video"]).all() and (summary.maps["video"] > 0).all()
    blocked = run_attention(tiny_adapter(block_cross_modal=True), [run_], max_windows=2)
    for layer in blocked.layers:
        np.testing.assert_array_equal(blocked.shares[layer]["video->audio"], 0)
        np.testing.assert_array_equal(blocked.shares[layer]["audio->video"], 0)


def test_random_configs_and_blocking_key_the_feature_cache_apart():
    plain, blocked = tiny_adapter(), tiny_adapter(block_cross_modal=True)
    other = tiny_adapter(n_frames=4)
    from mmneuro.models.registry import get_adapter
    from mmneuro.models.tvlt import tiny_config

    wider = get_adapter("tvlt", weights="random", config=tiny_config(num_hidden_layers=3, hidden_size=64),
                        device="cpu")
    assert plain.window_params() == other.window_params()  # same architecture, same options
    assert blocked.window_params()["block_cross_modal"] is True and "block_cross_modal" not in plain.window_params()
    assert wider.window_params()["random_config"] != plain.window_params()["random_config"]


# ---- attention vs alignment, and the causal test's statistics ----------------------------------


def test_relate_to_alignment_reports_rank_and_linear_correlation_with_n():
    share = np.array([0.1, 0.3, 0.2, 0.5])
    rel = relate_to_alignment(share, {"up": 2 * share + 1, "down": -share ** 2, "noise": np.array([1, 3, 2, 0.])})
    assert rel["up"]["spearman_rho"] == pytest.approx(1.0) and rel["up"]["pearson_r"] == pytest.approx(1.0)
    assert rel["down"]["spearman_rho"] == pytest.approx(-1.0)
    assert rel["noise"]["pearson_r"] == pytest.approx(np.corrcoef(share, [1, 3, 2, 0])[0, 1])
    assert all(v["n_layers"] == 4 for v in rel.values())
    with pytest.raises(Exception, match=">= 3 layers"):
        relate_to_alignment(share[:2], {"up": share[:2]})


def test_drop_contrast_detects_a_planted_multisensory_drop_with_the_paired_tests_blocks():
    """ROI A loses its prediction when blocked, ROI B keeps it exactly: the A-B contrast is positive and
    significant, its bootstrap interval equals paired_drop_test's interval of A (B's drop is 0 in every
    resample, and both use the same blocks), and the reverse contrast is its mirror."""
    from mmneuro.analyses.removal import paired_drop_test

    rng = np.random.default_rng(0)
    n, v = 120, 40
    signal = np.cumsum(rng.normal(size=(n, 1)), axis=0) + rng.normal(size=(n, v))
    Y = signal + rng.normal(size=(n, v))
    full = signal.copy()
    reduced = full.copy()
    reduced[:, :20] = rng.normal(size=(n, 20))  # A = columns 0..19 lose everything
    rois = {"A": np.arange(v) < 20, "B": np.arange(v) >= 20}
    con = drop_contrast_test(Y, full, reduced, rois, [("A", "B"), ("B", "A")], n_boot=300, block_len=10, seed=4)
    ref = paired_drop_test(Y, full, reduced, rois, n_boot=300, block_len=10, seed=4)["roi"]
    assert ref["B"]["drop"] == 0.0
    assert con["A-B"]["difference"] == pytest.approx(ref["A"]["drop"])
    assert con["A-B"]["ci_low"] == pytest.approx(ref["A"]["ci_low"]) and con["A-B"]["ci_high"] == pytest.approx(
        ref["A"]["ci_high"])
    assert con["A-B"]["difference"] > 0.3 and con["A-B"]["p"] < 0.01
    assert con["B-A"]["difference"] == pytest.approx(-con["A-B"]["difference"]) and con["B-A"]["p"] < 0.01
    # no planted difference: both ROIs lose the same way -> a large p
    same = drop_contrast_test(Y, full, full + 0.0, rois, [("A", "B")], n_boot=200, seed=1)
    assert same["A-B"]["difference"] == 0.0 and same["A-B"]["p"] == 1.0
