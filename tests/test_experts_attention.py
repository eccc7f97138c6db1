"""Expert-collapse metrics on planted routers, and attention shares computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mmneuro.analyses.attention import attention_entropy, attention_rollout, modality_shares
from mmneuro.analyses.experts import expert_usage, usage_by_modality


def test_collapse_index_separates_a_collapsed_router_from_a_balanced_one():
    rng = np.random.default_rng(0)
    balanced = rng.normal(0, 1, size=(4000, 8))
    collapsed = rng.normal(0, 1, size=(4000, 8))
    collapsed[:, 3] += 8.0  # one expert wins almost every token
    b, c = expert_usage(balanced), expert_usage(collapsed)
    assert b.collapse_index < 0.02 and c.collapse_index > 0.8
    assert c.top1_share > 0.99 and b.top1_share < 0.2
    assert c.load_imbalance == pytest.approx(8.0, rel=0.02) and b.load_imbalance < 1.2
    assert c.routing_entropy < 0.1 < 1.5 < b.routing_entropy
    np.testing.assert_allclose(b.utilisation.sum(), 1.0)


def test_usage_matches_hand_counts():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0], [5.0, 4.0, 0.0]])
    u = expert_usage(logits, top_k=1)
    np.testing.assert_allclose(u.utilisation, [0.5, 0.25, 0.25])
    assert u.top1_share == 0.5 and u.load_imbalance == pytest.approx(0.5 / (1 / 3))
    u2 = expert_usage(logits, top_k=2)
    # top-2 sets (ties go to the lower index): {0,1}, {1,0}, {2,0}, {0,1}
    np.testing.assert_allclose(u2.utilisation, [1.0, 0.75, 0.25])


def test_usage_by_modality_splits_tokens_and_drops_padding():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(10, 4))
    logits[:5, 0] += 10  # video tokens all go to expert 0
    tags = np.array(["video"] * 5 + ["text"] * 3 + ["pad"] * 2)
    out = usage_by_modality(logits, tags)
    assert set(out) == {"all", "video", "text"}
    assert out["video"].n_tokens == 5 and out["text"].n_tokens == 3 and out["all"].n_tokens == 8
    assert out["video"].top1_share == 1.0 and out["video"].utilisation[0] == 1.0


def test_cross_modal_share_equals_hand_computation():
    rng = np.random.default_rng(2)
    raw = rng.random((2, 3, 5, 5))
    att = raw / raw.sum(-1, keepdims=True)
    video, audio = np.array([0, 1]), np.array([2, 3, 4])
    shares = modality_shares(att, {"video": video, "audio": audio})
    for h in range(3):
        by_hand = np.mean([att[b, h, q, 2:].sum() for b in range(2) for q in (0, 1)])
        assert shares["video->audio"][h] == pytest.approx(by_hand)
    np.testing.assert_allclose(shares["video->video"] + shares["video->audio"], 1.0)
    np.testing.assert_allclose(shares["audio->video"] + shares["audio->audio"], 1.0)


def test_entropy_and_rollout_limits():
    n = 6
    uniform = np.full((1, 2, n, n), 1 / n)
    np.testing.assert_allclose(attention_entropy(uniform), np.log(n))
    identity = np.broadcast_to(np.eye(n), (1, 2, n, n))
    np.testing.assert_allclose(attention_entropy(identity), 0.0)
    np.testing.assert_allclose(attention_rollout([identity, identity])[0], np.eye(n))
    roll = attention_rollout([uniform] * 3, residual=0.0)
    np.testing.assert_allclose(roll[0], np.full((n, n), 1 / n))
    np.testing.assert_allclose(attention_rollout([uniform] * 4)[0].sum(-1), 1.0)
