"""Window kinds, deterministic frame selection, audio sample bounds, run edges."""

from __future__ import annotations

import numpy as np
import pytest

from mmneuro.errors import InputError
from mmneuro.stimuli.windows import (
    WindowSpec,
    clip_to_media,
    parse_window,
    sample_bounds,
    select_frames,
    tr_windows,
)


def test_parse_window_kinds_and_errors():
    assert parse_window("clip") == WindowSpec("clip") == parse_window(None)
    spec = parse_window("context:10")
    assert spec.kind == "context" and spec.seconds == 10.0 and spec.label == "context:10"
    assert parse_window(spec.label) == spec and parse_window(spec) is spec
    assert parse_window("context:2.5").label == "context:2.5"
    for bad, msg in [("context:abc", "not a number"), ("ctx:3", "'clip' or 'context:SECONDS'"),
                     ("context:0", "positive"), ("context:-1", "positive"), ("context:nan", "positive")]:
        with pytest.raises(InputError, match=msg):
            parse_window(bad)
    with pytest.raises(InputError, match="takes no length"):
        WindowSpec("clip", 3.0)


def test_context_spans_end_with_the_tr_clip():
    tr = 1.49
    t = (np.arange(6) + 0.5) * tr
    clip = WindowSpec("clip").spans(t, tr)
    np.testing.assert_array_equal(clip, tr_windows(t, tr))
    ctx = parse_window("context:4").spans(t, tr)
    np.testing.assert_array_equal(ctx[:, 1], clip[:, 1])  # nothing after the TR's clip is read
    np.testing.assert_allclose(ctx[:, 0], clip[:, 1] - 4.0)
    # context of one TR is the clip itself
    np.testing.assert_allclose(parse_window(f"context:{tr}").spans(t, tr), clip)
    # the parameters recorded in the store key tell the kinds and lengths apart
    p_clip, p4, p5 = WindowSpec("clip").params(tr), parse_window("context:4").params(tr), parse_window("context:5").params(tr)
    assert p_clip == {"window": "clip", "tr": tr, "edges": "clip-to-media"}
    assert p4["window"] == "context" and p4["seconds"] == 4.0 and p4["anchor"] == "tr-end"
    assert len({str(sorted(p.items())) for p in (p_clip, p4, p5)}) == 3


def test_run_edges_are_clipped_and_empty_windows_named():
    t = (np.arange(5) + 0.5) * 1.0
    spans = parse_window("context:3").spans(t, 1.0)
    clipped = clip_to_media(spans, duration=4.2, times=t, what="video x.mp4")
    # run start: shorter context; run end: the last clip is cut at the end of the media
    np.testing.assert_allclose(clipped, [[0, 1], [0, 2], [0, 3], [1, 4], [2, 4.2]])
    with pytest.raises(InputError, match=r"1 TR window\(s\) lie outside the video x.mp4 \(3.000 s long\): "
                                         r"the first is TR 3 at t=3.500 s"):
        clip_to_media(tr_windows(t[:4], 1.0), duration=3.0, times=t, what="video x.mp4")


def test_select_frames_uniform_and_distinct():
    # 10 fps, window [1, 2) shows frames 10..19; 4 frames at positions floor((j + .5) * 10 / 4)
    idx, nd = select_frames([[1.0, 2.0]], fps=10, n_video_frames=100, n_frames=4)
    np.testing.assert_array_equal(idx, [[11, 13, 16, 18]])
    assert nd.tolist() == [4]
    # many random windows: strictly increasing (distinct) frames, all shown inside the window
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 50, 500)
    spans = np.stack([starts, starts + rng.uniform(0.8, 5.0, 500)], axis=1)
    for n in (1, 2, 8):
        idx, nd = select_frames(spans, fps=10, n_video_frames=1000, n_frames=n)
        assert idx.shape == (500, n) and np.all(nd == n)
        assert np.all(np.diff(idx, axis=1) > 0)
        onset, offset = idx / 10.0, (idx + 1) / 10.0
        assert np.all(offset > spans[:, :1] + 1e-9) and np.all(onset < spans[:, 1:] - 1e-9)


def test_select_frames_tiling_windows_never_share_a_frame():
    tr, fps = 1.0, 10
    t = (np.arange(20) + 0.5) * tr
    idx, _ = select_frames(tr_windows(t, tr), fps=fps, n_video_frames=200, n_frames=10)
    # 10 frames per 1 s window at 10 fps: every frame exactly once, in order
    np.testing.assert_array_equal(idx.ravel(), np.arange(200))


def test_short_windows_repeat_in_place_or_raise():
    # window [0, 0.3) at 10 fps shows 3 frames; the model wants 8
    idx, nd = select_frames([[0.0, 0.3], [1.0, 2.0]], fps=10, n_video_frames=50, n_frames=8)
    assert nd.tolist() == [3, 8]
    row = idx[0]
    assert sorted(set(row.tolist())) == [0, 1, 2]  # every distinct frame is used
    assert np.all(np.diff(row) >= 0)  # repeated in place, time order kept
    counts = np.bincount(row)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 8
    assert len(set(idx[1].tolist())) == 8
    with pytest.raises(InputError, match=r"1 window\(s\) show fewer distinct frames of clip.mp4 than the model's 8: "
                                         r"the first is window 0 \[0.000, 0.300\) s with 3 frame\(s\) at 10 fps"):
        select_frames([[0.0, 0.3], [1.0, 2.0]], fps=10, n_video_frames=50, n_frames=8, short="raise", what="clip.mp4")
    with pytest.raises(InputError, match="shows no frame"):
        select_frames([[6.0, 7.0]], fps=10, n_video_frames=50, n_frames=2)
    with pytest.raises(InputError, match="policy"):
        select_frames([[0.0, 1.0]], fps=10, n_video_frames=50, n_frames=2, short="pad")


def test_sample_bounds_tile_without_gap_or_overlap():
    tr, sr = 1.49, 16000
    t = (np.arange(7) + 0.5) * tr
    b = sample_bounds(tr_windows(t, tr), sr, n_samples=int(7 * tr * sr))
    np.testing.assert_array_equal(b[1:, 0], b[:-1, 1])
    assert b[0, 0] == 0 and b[-1, 1] == int(7 * tr * sr)
    assert set(np.diff(b, axis=1).ravel().tolist()) <= {23840}  # 1.49 s at 16 kHz
    # clipped to the waveform at both ends
    np.testing.assert_array_equal(sample_bounds([[-1.0, 0.5], [9.0, 11.0]], 10, 100), [[0, 5], [90, 100]])
