"""Benchmark mmneuro's RidgeCV against himalaya and scikit-learn on the same data.

Every (case, method) measurement runs in a fresh child process (same interpreter, same
environment, same BLAS thread limit) so that its peak RSS (``os.wait4`` rusage) is its own;
the methods of a case are measured alternately (the order flips every repeat) and the best
time of the repeats is reported. Times cover ``fit`` only, not data generation.

Cases (issue 4):
  A   n=3000 (5 contiguous folds), p=768,  v=20000, 10 alphas, float32: ours vs himalaya
      RidgeCV (numpy backend; default n_targets_batch and the best of a few), scikit-learn
      RidgeCV(alpha_per_target=True) (leave-one-out only: a different CV, timed for scale).
  B   same with p=2000.
  C   same with p=6000 (> n_train): ours (dual path) vs himalaya KernelRidgeCV.
  roofline  achieved GFLOP/s of ours in case A (matrix-product flops counted by
      mmneuro.encoding.solvers.ridge_cv_flops) against a float32 matmul measured in the
      same child process.
  wholebrain  n=10000, p=3072, v=100000, float32: ours only; time and peak RSS (< 8 GB).

Run:  .venv/bin/python benchmarks/ridge.py [--cases A,B,C,wholebrain] [--threads 2]
                                           [--repeats 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CASES = {
    "A": dict(n=3000, p=768, v=20000, folds=5, n_alphas=10),
    "roofline": dict(n=3000, p=768, v=20000, folds=5, n_alphas=10),
    "B": dict(n=3000, p=2000, v=20000, folds=5, n_alphas=10),
    "C": dict(n=3000, p=6000, v=20000, folds=5, n_alphas=10),
    "wholebrain": dict(n=10000, p=3072, v=100000, folds=5, n_alphas=10),
}
QUICK = {
    "A": dict(n=600, p=128, v=2000, folds=5, n_alphas=10),
    "roofline": dict(n=600, p=128, v=2000, folds=5, n_alphas=10),
    "B": dict(n=600, p=400, v=2000, folds=5, n_alphas=10),
    "C": dict(n=600, p=1200, v=2000, folds=5, n_alphas=10),
    "wholebrain": dict(n=2000, p=512, v=20000, folds=5, n_alphas=10),
}
TARGETS = {"A": 2.0, "B": 1.1, "C": 1.0}
ROOFLINE_TARGET = 0.6
WHOLEBRAIN_RSS_GB = 8.0


# ============================================================================ child side
def make_data(n, p, v, seed=0, rank=32):
    """float32 X (n, p) and Y (n, v): low-rank signal with a per-target SNR spread (so
    chosen alphas differ across targets) plus unit noise. Y is filled in row blocks."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p), dtype=np.float32)
    A = rng.standard_normal((p, rank), dtype=np.float32) / np.sqrt(p * rank, dtype=np.float32)
    B = rng.standard_normal((rank, v), dtype=np.float32)
    B *= np.geomspace(0.02, 3.0, v, dtype=np.float32)[rng.permutation(v)] * np.sqrt(rank, dtype=np.float32)
    XA = X @ A
    Y = np.empty((n, v), dtype=np.float32)
    step = max(1, (64 * 2**20) // (4 * v))
    for s in range(0, n, step):
        Y[s:s + step] = XA[s:s + step] @ B
        Y[s:s + step] += rng.standard_normal((min(step, n - s), v), dtype=np.float32)
    return X, Y


def matmul_gflops(m, k, n, repeats=3, cpu=False):
    """Best float32 GFLOP/s of (m, k) @ (k, n): per wall second, or per CPU second of this
    process (``cpu=True``; less sensitive to other processes on a shared machine)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    a @ b
    clock = time.process_time if cpu else time.perf_counter
    best = np.inf
    for _ in range(repeats):
        t0 = clock()
        a @ b
        best = min(best, clock() - t0)
    return 2.0 * m * k * n / best / 1e9


def child(spec: dict) -> None:
    import threadpoolctl

    threadpoolctl.threadpool_limits(limits=spec["threads"])
    method = spec["method"]
    n, p, v = spec["n"], spec["p"], spec["v"]
    X, Y = make_data(n, p, v, seed=spec.get("seed", 0))
    alphas = np.logspace(0, 5, spec["n_alphas"]) if p < n else np.logspace(1, 6, spec["n_alphas"])
    from mmneuro.encoding.cv import contiguous_kfold

    folds = contiguous_kfold(n, spec["folds"])
    out = {"method": method}
    if spec.get("roofline"):
        out["matmul_square_gflops_before"] = matmul_gflops(2048, 2048, 2048)
    if method.startswith("ours"):
        from mmneuro.encoding import RidgeCV

        backend = "torch" if method == "ours_torch" else "numpy"
        if backend == "torch":
            import torch

            torch.set_num_threads(spec["threads"])
        model = RidgeCV(alphas=alphas, cv=folds, scoring="correlation", backend=backend)
        t0, c0 = time.perf_counter(), time.process_time()
        model.fit(X, Y)
        out["time"] = time.perf_counter() - t0
        out["cpu_time"] = time.process_time() - c0
        best = model.alpha_
        out["solver"] = model.solver_
        out["chunk"] = model.n_targets_batch_
        out["route"] = model.route_
        if spec.get("roofline"):
            from mmneuro.encoding.solvers import ridge_cv_flops

            flops = ridge_cv_flops(n, p, v, [len(va) for _, va in folds], alphas.size, model.solver_,
                                   model.route_)
            out["flops"] = flops
            n_val = len(folds[0][1])
            out["matmul_square_gflops_after"] = matmul_gflops(2048, 2048, 2048)
            out["matmul_square_gflops_cpu"] = matmul_gflops(2048, 2048, 2048, cpu=True)
            out["matmul_dominant_gflops"] = matmul_gflops(min(n_val, p), p, model.n_targets_batch_)
        pred_sample = model.predict(X[:50])[:, :500]
    elif method.startswith("himalaya"):
        import warnings

        from himalaya.backend import set_backend
        from himalaya.scoring import correlation_score

        set_backend("numpy")
        nb = None
        if "_nb=" in method:
            nb = int(method.split("_nb=")[1])
        if method.startswith("himalaya_kernel"):
            from himalaya.kernel_ridge import KernelRidgeCV

            model = KernelRidgeCV(alphas=alphas, cv=folds, solver_params=dict(
                score_func=correlation_score, n_targets_batch=nb))
        else:
            from himalaya.ridge import RidgeCV as HRidgeCV

            model = HRidgeCV(alphas=alphas, cv=folds, solver_params=dict(
                score_func=correlation_score, n_targets_batch=nb))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            model.fit(X, Y)
            out["time"] = time.perf_counter() - t0
        best = np.asarray(model.best_alphas_)
        pred_sample = np.asarray(model.predict(X[:50]))[:, :500]
    elif method == "sklearn_loo":
        from sklearn.linear_model import RidgeCV as SkRidgeCV

        model = SkRidgeCV(alphas=alphas, alpha_per_target=True, fit_intercept=False)
        t0 = time.perf_counter()
        model.fit(X, Y)
        out["time"] = time.perf_counter() - t0
        best = np.asarray(model.alpha_)
        pred_sample = model.predict(X[:50])[:, :500]
    else:
        raise SystemExit(f"unknown method {method}")
    np.savez(spec["out"] + ".npz", best=np.asarray(best, dtype=np.float64), pred=pred_sample)
    with open(spec["out"] + ".json", "w") as f:
        json.dump(out, f)


# ============================================================================ parent side
def run_child(spec: dict, tmpdir: str) -> dict:
    spec = dict(spec)
    spec["out"] = os.path.join(tmpdir, f"{spec['case']}_{spec['method']}_{spec['rep']}")
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(spec["threads"])
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                            env=env, cwd=ROOT)
    _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"method": spec["method"], "error": f"exit code {proc.returncode}"}
    with open(spec["out"] + ".json") as f:
        out = json.load(f)
    data = np.load(spec["out"] + ".npz")
    out["best"], out["pred"] = data["best"], data["pred"]
    out["peak_rss_mb"] = rusage.ru_maxrss / 1024.0  # Linux: kilobytes
    return out


def blas_report() -> list[str]:
    import threadpoolctl

    lines = []
    for info in threadpoolctl.threadpool_info():
        lines.append(f"  {info.get('user_api')}: {info.get('internal_api')} {info.get('version')} "
                     f"threads={info.get('num_threads')} arch={info.get('architecture')} "
                     f"({os.path.basename(info.get('filepath', ''))})")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--cases", default="A,B,C,wholebrain",
                    help="comma list of A,B,C,wholebrain,roofline (roofline is also measured "
                         "inside A; 'roofline' alone runs only ours on A's shape)")
    ap.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads per process")
    ap.add_argument("--repeats", type=int, default=2, help="alternating repeats per method")
    ap.add_argument("--himalaya-batches", default="1000,5000",
                    help="n_targets_batch values tried for himalaya besides its default")
    ap.add_argument("--sklearn", action=argparse.BooleanOptionalAction, default=True,
                    help="also time scikit-learn RidgeCV(alpha_per_target=True) in case A")
    ap.add_argument("--torch", action=argparse.BooleanOptionalAction, default=False,
                    help="also time ours with backend='torch' (CPU)")
    ap.add_argument("--quick", action="store_true", help="small shapes (smoke test of the script)")
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    import threadpoolctl

    threadpoolctl.threadpool_limits(limits=args.threads)
    shapes = QUICK if args.quick else CASES
    print("=" * 78)
    print(f"mmneuro ridge benchmark  ({'QUICK shapes' if args.quick else 'issue-4 shapes'})")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, cpus={os.cpu_count()}, "
          f"threads per process={args.threads}, repeats={args.repeats} (alternating)")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r} "
          f"(same environment for every child)")
    print("BLAS (threadpoolctl, this process with the limit applied):")
    print("\n".join(blas_report()))
    print(f"load average at start: {os.getloadavg()}")
    verdicts = []
    nbs = [int(x) for x in args.himalaya_batches.split(",") if x]
    with tempfile.TemporaryDirectory() as tmpdir:
        for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
            shape = shapes[case]
            base = dict(case=case, threads=args.threads, **shape)
            if case in ("wholebrain", "roofline"):
                methods = ["ours"]
            elif case == "C":
                methods = ["ours", "himalaya_kernel"] + [f"himalaya_kernel_nb={nb}" for nb in nbs]
            else:
                methods = ["ours", "himalaya"] + [f"himalaya_nb={nb}" for nb in nbs]
                if case == "A" and args.sklearn:
                    methods.append("sklearn_loo")
            if args.torch and case not in ("wholebrain", "roofline"):
                methods.insert(1, "ours_torch")
            repeats = 1 if case == "wholebrain" else args.repeats
            print("-" * 78)
            print(f"case {case}: n={shape['n']} p={shape['p']} v={shape['v']} "
                  f"folds={shape['folds']} alphas={shape['n_alphas']} float32, correlation; "
                  f"load avg {os.getloadavg()}")
            results: dict[str, list] = {m: [] for m in methods}
            for rep in range(repeats):
                order = methods if rep % 2 == 0 else methods[::-1]
                for m in order:
                    if rep > 0 and (m == "sklearn_loo" or "_nb=" in m):
                        continue  # repeats alternate ours and the default peer; variants once
                    spec = dict(base, method=m, rep=rep, roofline=(case in ("A", "roofline") and m == "ours"))
                    r = run_child(spec, tmpdir)
                    results[m].append(r)
                    msg = (f"  [{rep}] {m:<24s} " + (f"{r['time']:8.2f} s  peak RSS {r['peak_rss_mb']:8.0f} MB"
                                                    if "time" in r else r["error"]))
                    print(msg, flush=True)
            ours = min(results["ours"], key=lambda r: r.get("time", np.inf))
            print(f"  {'method':<24s} {'best s':>8s} {'peak RSS MB':>12s} {'alpha agree':>12s} "
                  f"{'max|dpred|':>11s} {'peer/ours':>10s}")
            best_peer = None
            for m in methods:
                rs = [r for r in results[m] if "time" in r]
                if not rs:
                    print(f"  {m:<24s} failed: {results[m][0].get('error')}")
                    continue
                r = min(rs, key=lambda r: r["time"])
                rss = max(x["peak_rss_mb"] for x in rs)
                agree = float(np.mean(np.isclose(r["best"], ours["best"], rtol=1e-6)))
                dpred = float(np.max(np.abs(r["pred"] - ours["pred"])))
                ratio = r["time"] / ours["time"]
                print(f"  {m:<24s} {r['time']:8.2f} {rss:12.0f} {100 * agree:11.2f}% "
                      f"{dpred:11.2e} {ratio:9.2f}x")
                if m.startswith("himalaya") and (best_peer is None or r["time"] < best_peer[1]):
                    best_peer = (m, r["time"])
            if case == "A" and args.sklearn:
                print("  note: scikit-learn RidgeCV supports per-target alphas only with its "
                      "leave-one-out (GCV) CV, not K-fold: timed for scale, alphas not comparable.")
            if "solver" in ours:
                print(f"  ours: solver={ours['solver']}, route={ours['route']}, "
                      f"targets per chunk={ours['chunk']}")
            if case in TARGETS:
                default_peer = "himalaya_kernel" if case == "C" else "himalaya"
                for label, peer_name in (("default", default_peer), ("best n_targets_batch", best_peer[0])):
                    rs = [r for r in results[peer_name] if "time" in r]
                    ratio = min(r["time"] for r in rs) / ours["time"]
                    ok = ratio >= TARGETS[case]
                    verdicts.append(f"{'PASS' if ok else 'FAIL'} {case}: {ratio:.2f}x vs {peer_name} "
                                    f"({label}), need >= {TARGETS[case]}x")
            if case == "A":
                rss = max(x["peak_rss_mb"] for x in results["ours"] if "time" in x)
                verdicts.append(f"{'PASS' if rss <= 1024 else 'FAIL'} A: ours peak RSS {rss:.0f} MB, need <= 1024 MB")
            if case in ("A", "roofline"):
                f = ours["flops"]
                achieved = f["total"] / ours["time"] / 1e9
                mm = max(ours["matmul_square_gflops_before"], ours["matmul_square_gflops_after"])
                print(f"  roofline: counted {f['total'] / 1e12:.2f} TFLOP (targets {f['targets'] / 1e12:.2f}, "
                      f"gram {f['gram'] / 1e12:.3f}) in {ours['time']:.2f} s = {achieved:.1f} GFLOP/s; "
                      f"float32 matmul 2048^3 in the same process: {mm:.1f} GFLOP/s "
                      f"(dominant shape: {ours['matmul_dominant_gflops']:.1f} GFLOP/s)")
                verdicts.append(f"{'PASS' if achieved / mm >= ROOFLINE_TARGET else 'FAIL'} roofline ({case}): "
                                f"{achieved:.1f} / {mm:.1f} GFLOP/s = {achieved / mm:.2f} of float32 matmul "
                                f"(wall clock), need >= {ROOFLINE_TARGET}")
                if "cpu_time" in ours and "matmul_square_gflops_cpu" in ours:
                    per_cpu = f["total"] / ours["cpu_time"] / 1e9
                    mm_cpu = ours["matmul_square_gflops_cpu"]
                    print(f"  roofline per CPU second of the process: {per_cpu:.1f} GFLOP/cpu-s vs "
                          f"matmul {mm_cpu:.1f} GFLOP/cpu-s = {per_cpu / mm_cpu:.2f} "
                          f"(less sensitive to other load; fit CPU time {ours['cpu_time']:.1f} s)")
                    verdicts.append(f"     roofline ({case}) per CPU second: {per_cpu / mm_cpu:.2f} of float32 matmul")
            if case == "wholebrain":
                rss_gb = ours["peak_rss_mb"] / 1024
                verdicts.append(f"{'PASS' if rss_gb < WHOLEBRAIN_RSS_GB else 'FAIL'} whole brain: "
                                f"{ours['time']:.0f} s, peak RSS {rss_gb:.2f} GB (data: Y "
                                f"{shape['n'] * shape['v'] * 4 / 2**30:.2f} GB float32), need < {WHOLEBRAIN_RSS_GB} GB")
    print("=" * 78)
    print(f"load average at end: {os.getloadavg()}")
    for line in verdicts:
        print(line)


if __name__ == "__main__":
    main()
