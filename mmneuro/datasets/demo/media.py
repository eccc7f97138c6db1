"""Writers for the demo's files (MP4, WAV, word TSV, gzipped NIfTI, deterministic npz/json)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from mmneuro.datasets.demo.spec import FPS, GZIP_LEVEL, SAMPLE_RATE
from mmneuro.stimuli.words import Words


def write_mp4(path: Path, frames: np.ndarray) -> None:
    """H.264 (yuv420p) MP4 at FPS; frame k has presentation time k / FPS."""
    import av
    from fractions import Fraction

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for k, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = k, Fraction(1, FPS)
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))


def write_wav(path: Path, wav: np.ndarray) -> None:
    import soundfile as sf

    sf.write(str(path), wav, SAMPLE_RATE, subtype="PCM_16")


def write_words_tsv(path: Path, words: Words) -> None:
    lines = ["onset\tduration\tword"]
    for on, off, w in zip(words.onsets, words.offsets, words.words):
        lines.append(f"{on:.4f}\t{off - on:.4f}\t{w}")
    path.write_text("\n".join(lines) + "\n")


def _write_nifti_gz(path: Path, img) -> None:
    # gzip with mtime=0 so identical images give identical bytes
    path.write_bytes(gzip.compress(img.to_bytes(), compresslevel=GZIP_LEVEL, mtime=0))


def _savez(path: Path, **arrays) -> None:
    """Like ``np.savez_compressed`` but with fixed zip timestamps, so equal arrays give equal bytes."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")
