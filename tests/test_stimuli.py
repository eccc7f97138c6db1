"""Stimulus readers: video frames, audio, timed words, TR windows."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from mmneuro.errors import InputError
from mmneuro.stimuli.audio import read_audio
from mmneuro.stimuli.video import VideoInfo, read_frames, read_video_info
from mmneuro.stimuli.windows import context_windows, tr_windows, uniform_frame_times
from mmneuro.stimuli.words import Words, read_textgrid_tier, read_words

ALICE_TEXTGRID = Path(
    "/work/shared/data/alice-brennan2016/stimulus/DownTheRabbitHoleFinal_exp120_pad_1.TextGrid"
)

# ----------------------------------------------------------------------------- video

N_FRAMES, FPS, W, H = 20, 10, 48, 32
LEVELS = 20 + 10 * np.arange(N_FRAMES)  # frame k is flat grey at LEVELS[k]


@pytest.fixture(scope="module")
def grey_video(tmp_path_factory) -> Path:
    import av

    path = tmp_path_factory.mktemp("video") / "grey.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"crf": "10"}
        for k, level in enumerate(LEVELS):
            img = np.full((H, W, 3), level, dtype=np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = k, Fraction(1, FPS)
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    return path


def _frame_index(frames: np.ndarray) -> np.ndarray:
    """Which grey level each decoded frame shows."""
    means = frames.reshape(len(frames), -1).mean(axis=1)
    return np.abs(means[:, None] - LEVELS[None]).argmin(axis=1)


def test_read_video_info(grey_video):
    info = read_video_info(grey_video)
    assert isinstance(info, VideoInfo)
    assert info.fps == pytest.approx(FPS)
    assert info.n_frames == N_FRAMES
    assert (info.width, info.height) == (W, H)
    assert info.duration == pytest.approx(N_FRAMES / FPS)


def test_read_frames_returns_frame_on_screen(grey_video):
    # unsorted, repeated, on frame boundaries, just before boundaries, and the very end
    times = np.array([0.31, 0.0, 0.1, 0.0999, 0.05, 1.95, 0.31, 2.0, 1.0, 0.7 - 1e-4])
    frames = read_frames(grey_video, times)
    assert frames.shape == (len(times), H, W, 3)
    assert frames.dtype == np.uint8
    expected = np.minimum(np.floor(times * FPS + 1e-9).astype(int), N_FRAMES - 1)
    np.testing.assert_array_equal(_frame_index(frames), expected)


def test_read_frames_all_frames_in_order(grey_video):
    frames = read_frames(grey_video, (np.arange(N_FRAMES) + 0.5) / FPS)
    np.testing.assert_array_equal(_frame_index(frames), np.arange(N_FRAMES))
    # decoded grey levels are close to what was encoded
    assert np.abs(frames.reshape(N_FRAMES, -1).mean(axis=1) - LEVELS).max() < 3


def test_read_frames_empty_times(grey_video):
    assert read_frames(grey_video, np.array([])).shape == (0, H, W, 3)


@pytest.mark.parametrize("bad", [[-0.5], [2.5], [np.nan], [[0.1]]])
def test_read_frames_rejects_bad_times(grey_video, bad):
    with pytest.raises(InputError, match="grey.mp4"):
        read_frames(grey_video, np.array(bad))


def test_video_missing_and_corrupt(tmp_path):
    missing = tmp_path / "nothere.mp4"
    with pytest.raises(InputError, match="nothere.mp4"):
        read_video_info(missing)
    with pytest.raises(InputError, match="nothere.mp4"):
        read_frames(missing, np.array([0.0]))
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="broken.mp4"):
        read_video_info(corrupt)
    with pytest.raises(InputError, match="broken.mp4"):
        read_frames(corrupt, np.array([0.0]))


# ----------------------------------------------------------------------------- audio


def _write_wav(path, data, sr, subtype="PCM_16"):
    import soundfile as sf

    sf.write(str(path), data, sr, subtype=subtype)


def test_read_audio_mono_int16_exact(tmp_path):
    pcm = np.random.default_rng(1).integers(-20000, 20000, 1000).astype(np.int16)
    _write_wav(tmp_path / "a.wav", pcm, 16000)
    wav, sr = read_audio(tmp_path / "a.wav")
    assert sr == 16000 and wav.dtype == np.float32 and wav.shape == (1000,)
    np.testing.assert_array_equal(wav, pcm / np.float32(32768))


def test_read_audio_stereo_resampled(tmp_path):
    sr0, f = 8000, 440.0
    t = np.arange(sr0) / sr0  # 1 s
    sine = np.sin(2 * np.pi * f * t)
    _write_wav(tmp_path / "s.wav", np.stack([0.8 * sine, 0.4 * sine], axis=1), sr0, "FLOAT")
    with pytest.warns(UserWarning, match="8000 Hz, below the 16000 Hz"):
        wav, sr = read_audio(tmp_path / "s.wav", sample_rate=16000)
    assert sr == 16000 and wav.shape == (16000,) and wav.dtype == np.float32
    spec = np.abs(np.fft.rfft(wav))
    assert np.fft.rfftfreq(len(wav), 1 / sr)[spec.argmax()] == pytest.approx(f, abs=1.0)
    # channels are averaged: amplitude (0.8 + 0.4) / 2 away from the edges
    assert np.abs(wav[2000:-2000]).max() == pytest.approx(0.6, abs=0.01)


def test_read_audio_downsample_length(tmp_path):
    _write_wav(tmp_path / "c.wav", np.zeros(44100), 44100)
    wav, sr = read_audio(tmp_path / "c.wav", sample_rate=16000)
    assert sr == 16000 and wav.shape == (16000,)
    wav, sr = read_audio(tmp_path / "c.wav")
    assert sr == 44100 and wav.shape == (44100,)


def test_read_audio_errors(tmp_path):
    with pytest.raises(InputError, match="gone.wav"):
        read_audio(tmp_path / "gone.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF....WAVEjunkjunkjunk" * 10)
    with pytest.raises(InputError, match="junk.wav"):
        read_audio(tmp_path / "junk.wav")
    _write_wav(tmp_path / "ok.wav", np.zeros(100), 16000)
    with pytest.raises(InputError, match="sample_rate"):
        read_audio(tmp_path / "ok.wav", sample_rate=0)


# ----------------------------------------------------------------------------- words


def test_words_dataclass():
    w = Words(np.array([0.0, 1.0]), np.array([0.5, 2.0]), ["a", "b"])
    assert len(w) == 2
    np.testing.assert_allclose(w.midpoints, [0.25, 1.5])
    with pytest.raises(InputError):
        Words(np.array([0.0]), np.array([0.5, 1.0]), ["a"])
    with pytest.raises(InputError, match="ends"):
        Words(np.array([1.0]), np.array([0.5]), ["a"])


def test_read_words_tsv(tmp_path):
    p = tmp_path / "w.tsv"
    p.write_text("word\tonset\tduration\textra\nhello\t0.5\t0.25\tx\nsp\t0.75\t0.1\tx\n\t0.9\t0.1\tx\nworld\t1.0\t0.5\tx\n")
    w = read_words(p)
    assert w.words == ["hello", "world"]
    np.testing.assert_allclose(w.onsets, [0.5, 1.0])
    np.testing.assert_allclose(w.offsets, [0.75, 1.5])


def test_read_words_tsv_errors(tmp_path):
    p = tmp_path / "bad.tsv"
    p.write_text("onset\tword\n0.1\thi\n")
    with pytest.raises(InputError, match="duration"):
        read_words(p)
    p.write_text("onset\tduration\tword\n0.1\t0.2\thi\nzero\t0.2\tyo\n")
    with pytest.raises(InputError, match="line 3"):
        read_words(p)
    with pytest.raises(InputError, match="nope.tsv"):
        read_words(tmp_path / "nope.tsv")


@pytest.mark.parametrize("secret", [
    "hunter2:x:0:0:hunter2:/hunter2:/bin/zsh\n",                  # not a header: the header error
    "onset\tduration\tword\nhunter2:x:0\t0:hunter2\t/bin/zsh\n",  # a row that is not numbers
])
def test_words_file_symlinked_elsewhere_is_never_echoed(tmp_path, secret):
    """Issue 10, defect 1: a words file symlinked to a system file printed that file's first line."""
    target = tmp_path / "system" / "passwd"
    target.parent.mkdir()
    target.write_text(secret)
    link = tmp_path / "words.tsv"
    link.symlink_to(target)
    with pytest.raises(InputError) as err:
        read_words(link)
    msg = str(err.value)
    assert "words.tsv" in msg and "line" in msg and "hunter2" not in msg and "zsh" not in msg


def _textgrid(tiers: list[tuple[str, str, list[tuple[float, float, str]]]]) -> str:
    lines = [
        'File type = "ooTextFile"',
        'Object class = "TextGrid"',
        "",
        "xmin = 0",
        "xmax = 3",
        "tiers? <exists>",
        f"size = {len(tiers)}",
        "item []:",
    ]
    for i, (cls, name, items) in enumerate(tiers, start=1):
        lines += [f"    item [{i}]:", f'        class = "{cls}"', f'        name = "{name}"', "        xmin = 0", "        xmax = 3"]
        if cls == "IntervalTier":
            lines.append(f"        intervals: size = {len(items)}")
            for j, (a, b, text) in enumerate(items, start=1):
                lines += [f"        intervals [{j}]:", f"            xmin = {a}", f"            xmax = {b}", f'            text = "{text}"']
        else:
            lines.append(f"        points: size = {len(items)}")
            for j, (a, _, text) in enumerate(items, start=1):
                lines += [f"        points [{j}]:", f"            number = {a}", f'            mark = "{text}"']
    return "\n".join(lines) + "\n"


def test_read_textgrid_picks_word_tier(tmp_path):
    p = tmp_path / "x.TextGrid"
    p.write_text(
        _textgrid(
            [
                ("IntervalTier", "phone", [(0, 1, "AH"), (1, 3, "B")]),
                ("IntervalTier", "word", [(0, 0.5, "sil"), (0.5, 1.2, 'say ""hi""'), (1.2, 1.4, "sp"), (1.4, 3, "there")]),
            ]
        )
    )
    tier = read_textgrid_tier(p)
    assert tier["name"] == "word" and len(tier["text"]) == 4
    w = read_words(p)
    assert w.words == ['say "hi"', "there"]
    np.testing.assert_allclose(w.onsets, [0.5, 1.4])
    np.testing.assert_allclose(w.offsets, [1.2, 3.0])
    assert read_textgrid_tier(p, tier="phone")["text"] == ["AH", "B"]
    with pytest.raises(InputError, match="no interval tier named"):
        read_textgrid_tier(p, tier="syllable")


def test_read_textgrid_first_interval_tier_utf16(tmp_path):
    p = tmp_path / "y.TextGrid"
    text = _textgrid(
        [
            ("TextTier", "events", [(0.3, None, "beep")]),
            ("IntervalTier", "lexical", [(0, 1, "<sil>"), (1, 2, "café")]),
        ]
    )
    p.write_bytes(text.encode("utf-16"))
    w = read_words(p)
    assert w.words == ["café"]
    np.testing.assert_allclose([w.onsets[0], w.offsets[0]], [1.0, 2.0])


def test_read_textgrid_without_interval_tier(tmp_path):
    p = tmp_path / "z.TextGrid"
    p.write_text(_textgrid([("TextTier", "events", [(0.3, None, "beep")])]))
    with pytest.raises(InputError, match="no interval tier"):
        read_words(p)


@pytest.mark.skipif(not ALICE_TEXTGRID.is_file(), reason=f"real TextGrid not present at {ALICE_TEXTGRID}")
def test_read_real_alice_textgrid():
    tier = read_textgrid_tier(ALICE_TEXTGRID)
    assert tier["name"] == "word"
    assert len(tier["text"]) == 2423
    w = read_words(ALICE_TEXTGRID)
    assert w.words[0] == "Alice"
    assert w.onsets[0] == pytest.approx(20.0589, abs=1e-4)
    n_silence = sum(t.strip() in {"", "sp", "sil", "<sil>", "SIL"} for t in tier["text"])
    assert n_silence > 0 and len(w) == 2423 - n_silence
    assert np.all(np.diff(w.onsets) > 0) and np.all(w.offsets > w.onsets)


# ----------------------------------------------------------------------------- windows


def test_tr_windows_tile_the_run():
    tr = 1.49
    t = (np.arange(5) + 0.5) * tr
    win = tr_windows(t, tr)
    assert win.shape == (5, 2)
    np.testing.assert_allclose(win[:, 0], np.arange(5) * tr)
    np.testing.assert_allclose(win[:, 1], (np.arange(5) + 1) * tr)
    with pytest.raises(InputError):
        tr_windows(t, 0.0)
    with pytest.raises(InputError):
        tr_windows(t[:, None], tr)


def test_uniform_frame_times():
    ft = uniform_frame_times(2.0, 3.0, 4)
    np.testing.assert_allclose(ft, [2.125, 2.375, 2.625, 2.875])
    ft = uniform_frame_times(0.0, 1.49, 8)
    assert len(np.unique(ft)) == 8 and ft.min() > 0.0 and ft.max() < 1.49
    np.testing.assert_allclose(np.diff(ft), 1.49 / 8)
    with pytest.raises(InputError):
        uniform_frame_times(0.0, 1.0, 0)
    with pytest.raises(InputError):
        uniform_frame_times(1.0, 1.0, 3)


def test_context_windows_end_where_the_tr_clip_ends():
    from mmneuro.stimuli.windows import clip_to_media, parse_window, words_in_windows

    t = np.array([0.75, 2.25, 3.75, 10.5])  # TR 1.5 s
    win = context_windows(t, 3.0, tr=1.5)
    # the 3 s ending at the end of each TR's clip: [t + 0.75 - 3, t + 0.75)
    np.testing.assert_allclose(win, [[-1.5, 1.5], [0.0, 3.0], [1.5, 4.5], [8.25, 11.25]])
    np.testing.assert_allclose(win, parse_window("context:3").spans(t, 1.5))
    np.testing.assert_allclose(context_windows(t, 1.5, tr=1.5), tr_windows(t, 1.5))  # context:<tr> == clip
    assert np.all(win[:, 1] == tr_windows(t, 1.5)[:, 1])  # never past the TR's clip
    # run start: clipped to the media, shorter, never padded
    np.testing.assert_allclose(clip_to_media(win, 12.0)[:, 0], [0.0, 0.0, 1.5, 8.25])
    with pytest.raises(InputError):
        context_windows(t, -1.0, tr=1.5)
    with pytest.raises(InputError):
        context_windows(t, 3.0, tr=0.0)
    with pytest.raises(TypeError):
        context_windows(t, 3.0)  # the TR is required: the window ends where its clip ends
    # words by midpoint, half-open spans, file order kept
    got = words_in_windows([0.2, 1.5, 0.9, 3.0, 7.0], [[0.0, 1.5], [1.5, 3.0], [4.0, 5.0]])
    assert [g.tolist() for g in got] == [[0, 2], [1], []]
