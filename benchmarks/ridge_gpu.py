"""GPU benchmark: mmneuro RidgeCV(backend="torch_cuda") vs himalaya (torch_cuda backend).

One short script for a lent GPU machine (about 3-5 minutes on one H200): the issue-4 cases
scaled up, same float32 data and folds for both, data generated on the host; ours keeps
X and Y on the host and streams chunks of Y to the GPU (max_memory), himalaya receives the
arrays and moves them itself. Each case: a small warm-up fit of both (CUDA context,
cuBLAS/cuSOLVER handles), then ours and himalaya alternately (``--repeats``), best time.

Cases (``--cases``):
  G1  n=10000 (5 folds), p=2048,  v=100000, 10 alphas: primal path vs himalaya RidgeCV
  G2  n=10000 (5 folds), p=12000, v=50000,  10 alphas: dual path vs himalaya KernelRidgeCV
  G3  n=3000  (5 folds), p=768,   v=20000,  10 alphas: case A of benchmarks/ridge.py

Prints wall time, peak GPU memory (torch.cuda.max_memory_allocated), chosen-alpha
agreement, the ratio himalaya/ours, and the device and library versions.

Run on the device:  python benchmarks/ridge_gpu.py [--cases G1,G2,G3] [--repeats 2]
Smoke test without a GPU (tiny shapes, torch CPU for both):  ... --cpu-smoke
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ridge import make_data  # noqa: E402  (same data recipe as the CPU benchmark)

CASES = {
    "G1": dict(n=10000, p=2048, v=100000, kernel=False),
    "G2": dict(n=10000, p=12000, v=50000, kernel=True),
    "G3": dict(n=3000, p=768, v=20000, kernel=False),
}
SMOKE = {
    "G1": dict(n=400, p=64, v=1000, kernel=False),
    "G2": dict(n=300, p=600, v=500, kernel=True),
    "G3": dict(n=300, p=48, v=800, kernel=False),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="G1,G2,G3")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--max-memory", default="8GB", help="ours: GPU working memory per chunk")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on torch CPU (no GPU)")
    args = ap.parse_args()

    import torch
    from himalaya.backend import set_backend
    from himalaya.kernel_ridge import KernelRidgeCV as HKernelRidgeCV
    from himalaya.ridge import RidgeCV as HRidgeCV
    from himalaya.scoring import correlation_score

    from mmneuro.encoding import RidgeCV, contiguous_kfold

    if args.cpu_smoke:
        ours_backend, him_backend, shapes = "torch", "torch", SMOKE
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run on a GPU machine, or pass --cpu-smoke")
        ours_backend, him_backend, shapes = "torch_cuda", "torch_cuda", CASES
    set_backend(him_backend)
    cuda = ours_backend == "torch_cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def peak_reset():
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_gb():
        return torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")

    print("=" * 78)
    dev = torch.cuda.get_device_name(0) if cuda else "CPU (smoke test)"
    import himalaya

    print(f"device: {dev}; torch {torch.__version__}, himalaya {himalaya.__version__}, "
          f"numpy {np.__version__}; ours backend={ours_backend}, himalaya backend={him_backend}")

    def fit_ours(X, Y, alphas, folds):
        m = RidgeCV(alphas=alphas, cv=folds, backend=ours_backend, max_memory=args.max_memory)
        sync()
        t0 = time.perf_counter()
        m.fit(X, Y)
        sync()
        return time.perf_counter() - t0, np.asarray(m.alpha_), m

    def fit_him(X, Y, alphas, folds, kernel):
        cls = HKernelRidgeCV if kernel else HRidgeCV
        m = cls(alphas=alphas, cv=folds, solver_params=dict(score_func=correlation_score))
        sync()
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(X, Y)
        sync()
        best = m.best_alphas_
        best = best.cpu().numpy() if hasattr(best, "cpu") else np.asarray(best)
        return time.perf_counter() - t0, best, m

    verdicts = []
    # warm-up on a tiny problem (CUDA context, library handles)
    Xw, Yw = make_data(200, 32, 100, seed=9)
    fw = contiguous_kfold(200, 5)
    fit_ours(Xw, Yw, np.logspace(0, 5, 10), fw)
    fit_him(Xw, Yw, np.logspace(0, 5, 10), fw, False)
    fit_him(Xw, Yw, np.logspace(0, 5, 10), fw, True)
    for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
        s = shapes[case]
        t0 = time.perf_counter()
        X, Y = make_data(s["n"], s["p"], s["v"], seed=0)
        alphas = np.logspace(0, 5, 10) if not s["kernel"] else np.logspace(1, 6, 10)
        folds = contiguous_kfold(s["n"], 5)
        print("-" * 78)
        print(f"case {case}: n={s['n']} p={s['p']} v={s['v']} folds=5 alphas=10 float32 "
              f"(data made in {time.perf_counter() - t0:.1f} s)")
        t_ours, t_him, mem_ours, mem_him = [], [], 0.0, 0.0
        best_ours = best_him = None
        for rep in range(args.repeats):
            for who in (("ours", "him") if rep % 2 == 0 else ("him", "ours")):
                peak_reset()
                if who == "ours":
                    t, best_ours, m = fit_ours(X, Y, alphas, folds)
                    t_ours.append(t)
                    mem_ours = max(mem_ours, peak_gb())
                    solver = m.solver_
                    del m
                else:
                    try:
                        t, best_him, m = fit_him(X, Y, alphas, folds, s["kernel"])
                    except RuntimeError as exc:  # e.g. CUDA out of memory
                        print(f"  himalaya failed: {str(exc).splitlines()[0]}")
                        t = float("nan")
                        m = None
                    t_him.append(t)
                    mem_him = max(mem_him, peak_gb())
                    del m
                print(f"  [{rep}] {who:<9s} {t:8.2f} s   peak GPU memory {peak_gb():6.2f} GB", flush=True)
        to, th = min(t_ours), np.nanmin(t_him) if np.any(np.isfinite(t_him)) else float("nan")
        agree = float(np.mean(np.isclose(best_ours, best_him))) if best_him is not None else float("nan")
        peer = "KernelRidgeCV" if s["kernel"] else "RidgeCV"
        print(f"  ours ({solver}) {to:.2f} s, peak {mem_ours:.2f} GB | himalaya {peer} {th:.2f} s, "
              f"peak {mem_him:.2f} GB | ratio himalaya/ours {th / to:.2f}x | alpha agreement "
              f"{100 * agree:.2f}%")
        verdicts.append(f"{case}: {th / to:.2f}x vs himalaya {peer} ({him_backend}), "
                        f"alpha agreement {100 * agree:.2f}%")
        del X, Y
    print("=" * 78)
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
