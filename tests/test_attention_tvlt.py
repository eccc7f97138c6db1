"""Attention studies on the parity-fixture TVLT: shares by modality and cross-modal blocking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
