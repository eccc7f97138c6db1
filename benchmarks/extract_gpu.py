"""Extraction throughput on a GPU: mmneuro's pipeline against a bare bf16 loop, per batch size.

A base-size model with random weights (default ViT-B/16, 768x12 @224 px; ``--model videomae``
for VideoMAE-base when that adapter is registered) reads a synthetic 128x128, 10 fps H.264
video (the demo's format), ``--frames`` frames per 1.49 s TR window. For each batch size:

- bare: the pre-decoded, preprocessed batches sit in pinned host memory; the loop copies
  each to the GPU (non_blocking) and runs the model under ``torch.inference_mode`` and bf16
  autocast with ``output_hidden_states=True``, synchronising at the end;
- mmneuro: ``extract_run`` into a fresh feature store (streamed decoding, preprocessing in
  ``--workers`` threads, pinned batches, bf16 autocast, pooling of every layer, chunk commits).

Prints windows/s for both, the ratio mmneuro / bare time, how long the model waited for
decoded batches, and decode-only / decode+preprocess throughput on this host.
One short run (about 2-4 minutes on an H200 including the synthetic video).

Run:  python benchmarks/extract_gpu.py [--batches 16 32 64 --windows 384 --workers 8]
      python benchmarks/extract_gpu.py --device cpu --tiny --windows 24 --batches 4   (smoke test)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract_overhead import make_video  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vit", choices=["vit", "videomae"])
    ap.add_argument("--windows", type=int, default=384)
    ap.add_argument("--frames", type=int, default=4, help="frames per window (ViT; VideoMAE uses its 16)")
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--workers", type=int, default=8, help="mmneuro preprocessing threads")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="a tiny config (smoke test on CPU)")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mmneuro.features.extract import MediaRun, extract_run, plan_windows
    from mmneuro.features.store import FeatureStore
    from mmneuro.models import get_adapter

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    tr = 1.49
    tmp = Path(tempfile.mkdtemp(prefix="mmneuro-gpu-bench-"))
    t0 = time.perf_counter()
    video = make_video(tmp / "bench.mp4", args.windows * tr + 0.5)
    print(f"synthetic video: {args.windows * tr:.0f} s in {time.perf_counter() - t0:.1f} s")
    run = MediaRun("bench", (np.arange(args.windows) + 0.5) * tr, video=video)

    if args.model == "vit":
        from transformers import ViTConfig

        cfg = ViTConfig() if not args.tiny else ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                          intermediate_size=64, image_size=32, patch_size=8)
        adapter = get_adapter("vit", weights="random", config=cfg, n_frames=args.frames, device=device)

        def call(pv):
            return adapter.model(pixel_values=pv.reshape(-1, *pv.shape[2:]), output_hidden_states=True)
    else:
        opts = {}
        if args.tiny:
            from transformers import VideoMAEConfig

            opts["config"] = VideoMAEConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                            intermediate_size=64, image_size=32, patch_size=8, num_frames=4,
                                            tubelet_size=2)
        adapter = get_adapter("videomae", weights="random", device=device, **opts)

        def call(pv):
            return adapter.model(pixel_values=pv, output_hidden_states=True)

    n_params = sum(p.numel() for p in adapter.model.parameters())
    print(f"model: {args.model} random weights, {n_params / 1e6:.1f} M parameters, {adapter.n_frames} frames/window, "
          f"device {device} ({torch.cuda.get_device_name(device) if cuda else 'cpu'}), bf16 autocast {cuda}")
    print(f"host: {os.cpu_count()} cpus, torch threads {torch.get_num_threads()}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, preprocessing workers {args.workers}")

    plan = plan_windows(adapter, run, tr=tr)
    t0 = time.perf_counter()
    windows = list(plan.stream())
    t_dec = time.perf_counter() - t0
    t0 = time.perf_counter()
    items = [adapter.preprocess(w) for w in windows]
    t_prep = time.perf_counter() - t0
    print(f"decode only {len(windows) / t_dec:.0f} windows/s; preprocess (1 thread) {len(windows) / t_prep:.0f} windows/s")

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    print(f"{'batch':>5s} {'bare win/s':>10s} {'mmneuro win/s':>13s} {'ratio':>6s} {'model waited s':>14s}")
    for bs in args.batches:
        batches = [adapter.collate(items[i : i + bs]) for i in range(0, len(items), bs)]
        if cuda:
            batches = [{k: v.pin_memory() for k, v in b.items()} for b in batches]

        def bare() -> float:
            sync()
            t = time.perf_counter()
            with torch.inference_mode(), autocast:
                for b in batches:
                    call(b["pixel_values"].to(device, non_blocking=True))
            sync()
            return time.perf_counter() - t

        bare()  # warm-up: kernels, allocator
        t_bare = min(bare() for _ in range(2))
        rep = []
        extract_run(adapter, run, store=FeatureStore(tmp / f"warm{bs}"), batch_size=bs, tr=tr, progress=False,
                    workers=args.workers)
        sync()
        t = time.perf_counter()
        extract_run(adapter, run, store=FeatureStore(tmp / f"store{bs}"), batch_size=bs, tr=tr, progress=False,
                    workers=args.workers, report=rep)
        sync()
        t_ours = time.perf_counter() - t
        n = len(windows)
        print(f"{bs:5d} {n / t_bare:10.1f} {n / t_ours:13.1f} {t_ours / t_bare:6.3f} {rep[0].wait_s:14.2f}")
        batches = None  # free host memory before the next batch size
    print("ratio = mmneuro time / bare time (target <= 1.15); 'model waited' is time the model thread spent "
          "waiting for decoded batches (large => decoding/preprocessing bound: raise --workers)")


if __name__ == "__main__":
    main()
