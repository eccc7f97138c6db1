"""Kill a real extraction process midway (SIGKILL) and resume it: no corrupt or partial entries,
and the resumed store equals an uninterrupted one bitwise."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest


N_WINDOWS, CHUNK, BATCH = 24, 4, 2

SCRIPT = r'''
import json, os, sys, time
from pathlib import Path
import numpy as np
import torch
torch.set_num_threads(1)
from transformers import ViTConfig
from mmneuro.features.extract import MediaRun, extract_run
from mmneuro.features.store import FeatureStore
from mmneuro.models import get_adapter

video, delay, caches = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]


def vit():
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    image_size=32, patch_size=8)
    a = get_adapter("vit", weights="random", config=cfg, n_frames=2, device="cpu")
    if delay:
        fwd = a.forward
        a.forward = lambda batch, want_attentions=False: (time.sleep(delay), fwd(batch, want_attentions))[1]
    return a


out = []
for cache in caches:
    rep = []
    run = MediaRun("run-1", (np.arange(%d) + 0.5) * 1.0, video=video)
    extract_run(vit(), run, store=FeatureStore(cache), batch_size=%d, chunk_windows=%d, workers=1,
                progress=False, report=rep)
    out.append({"computed": rep[0].computed_windows, "reused": rep[0].reused_windows, "folder": rep[0].folder})
print(json.dumps(out))
''' % (N_WINDOWS, BATCH, CHUNK)


def make_video(path, seconds, fps=10, size=32):
    """Seeded random frames, so every window's features differ."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(seconds * fps):
            img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _complete_chunks(cache: Path, layers) -> set[str]:
    sets = [{p.name for p in cache.rglob(f"partial/*/{l}/*.npy")} for l in layers]
    return set.intersection(*sets) if sets else set()


def test_sigkill_midway_then_resume_equals_uninterrupted(tmp_path):
    video = make_video(tmp_path / "v.mp4", seconds=N_WINDOWS, size=32)
    script = tmp_path / "extract.py"
    script.write_text(SCRIPT)
    cache, ref = tmp_path / "cache", tmp_path / "ref"
    layers = ["embeddings", "layer-1", "layer-2"]

    # 1. a slow extraction (0.25 s per batch of 2 windows), killed once 2 chunks are committed
    proc = subprocess.Popen([sys.executable, str(script), str(video), "0.25", str(cache)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_complete_chunks(cache, layers)) < 2:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"extraction ended/stalled before 2 chunks: rc={proc.returncode} {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = _complete_chunks(cache, layers)
    assert 2 <= len(done) < N_WINDOWS // CHUNK  # killed midway

    # no final entries, and every chunk on disk is whole and readable
    [folder] = list((cache / "vit").iterdir())
    assert [p.name for p in folder.glob("*.json")] == ["key.json"] and not list(folder.glob("*.npy"))
    chunks = [p for p in folder.rglob("*.npy") if not p.name.startswith(".")]
    assert chunks
    for p in chunks:
        a, b = (int(x) for x in p.stem.split("-"))
        arr = np.load(p)
        assert arr.shape == (b - a, 32) and arr.dtype == np.float32 and np.isfinite(arr).all()

    # 2. rerun (no delay) into the killed store, then an uninterrupted extraction into a fresh one
    res = subprocess.run([sys.executable, str(script), str(video), "0", str(cache), str(ref)], env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    resumed, fresh = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"killed with {len(done)} complete chunks; resumed: {resumed}")
    assert resumed["reused"] >= len(done) * CHUNK  # completed chunks were not recomputed
    assert resumed["computed"] + resumed["reused"] == N_WINDOWS and resumed["computed"] <= N_WINDOWS - 2 * CHUNK
    assert fresh["computed"] == N_WINDOWS and fresh["reused"] == 0

    # 3. the resumed store equals the uninterrupted one, file for file, byte for byte
    f1, f2 = Path(resumed["folder"]), Path(fresh["folder"])
    assert f1.name == f2.name  # the same key
    names = sorted(p.name for p in f1.iterdir())
    assert names == sorted(p.name for p in f2.iterdir()) == sorted(
        ["key.json"] + [f"{l}.npy" for l in layers] + [f"{l}.json" for l in layers])
    for name in names:
        assert (f1 / name).read_bytes() == (f2 / name).read_bytes(), name
    assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]  # the killed writer's temp file is gone
