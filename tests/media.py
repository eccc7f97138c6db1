"""Small synthetic stimulus files shared by tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_square_video(path: Path, n_frames: int, fps: int = 8) -> Path:
    """A 40x32 mpeg4 video of a bright square moving one pixel right per frame."""
    import av

    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt, s.options = 40, 32, "yuv420p", {"qscale": "1"}
        for i in range(n_frames):
            img = np.full((32, 40, 3), 30, dtype=np.uint8)
            img[4:14, i : i + 8] = 230
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return Path(path)
