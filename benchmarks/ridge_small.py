"""Time mmneuro's RidgeCV against himalaya's RidgeCV (numpy backend) on one problem.

n=2000 samples, p=500 features, v=5000 targets, 10 alphas, 5 contiguous folds (the same
explicit folds for both), correlation scoring, float64, one process. Prints both times,
the ratio, the agreement of the chosen alphas and predictions, and the BLAS in use.

Run:  .venv/bin/python benchmarks/ridge_small.py  [--n 2000 --p 500 --v 5000 --repeats 1
                                                   --threads 1]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import threadpoolctl


def make_data(n: int, p: int, v: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    W = rng.standard_normal((p, v)) * rng.uniform(0.0, 0.2, size=v)  # varying SNR per target
    Y = X @ W + rng.standard_normal((n, v))
    return X, Y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--p", type=int, default=500)
    ap.add_argument("--v", type=int, default=5000)
    ap.add_argument("--n-alphas", type=int, default=10)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1, help="best-of-N timing")
    ap.add_argument("--threads", type=int, default=None,
                    help="limit BLAS threads (threadpoolctl); default: BLAS default. On a "
                         "shared machine 1 thread gives far steadier timings.")
    args = ap.parse_args()
    if args.threads is not None:
        threadpoolctl.threadpool_limits(limits=args.threads, user_api="blas")

    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV as HimalayaRidgeCV
    from himalaya.scoring import correlation_score

    from mmneuro.encoding import RidgeCV, contiguous_kfold

    set_backend("numpy")
    X, Y = make_data(args.n, args.p, args.v)
    alphas = np.logspace(0, 5, args.n_alphas)
    folds = contiguous_kfold(args.n, args.folds)

    def run_ours():
        return RidgeCV(alphas=alphas, cv=folds, scoring="correlation").fit(X, Y)

    def run_himalaya():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return HimalayaRidgeCV(
                alphas=alphas, cv=folds, solver_params=dict(score_func=correlation_score)
            ).fit(X, Y)

    def best_time(fn):
        best, out = np.inf, None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t0)
        return best, out

    t_ours, ours = best_time(run_ours)
    t_him, him = best_time(run_himalaya)

    agree = np.isclose(ours.alpha_, him.best_alphas_, rtol=1e-6)
    pred_diff = np.max(np.abs(ours.predict(X) - him.predict(X)))
    pred_scale = np.max(np.abs(him.predict(X)))

    print(f"problem: n={args.n} p={args.p} v={args.v} alphas={args.n_alphas} "
          f"folds={args.folds} dtype=float64 scoring=correlation")
    print(f"mmneuro RidgeCV : {t_ours:8.2f} s")
    print(f"himalaya RidgeCV: {t_him:8.2f} s")
    print(f"ratio himalaya/mmneuro: {t_him / t_ours:.2f}x")
    print(f"chosen-alpha agreement: {int(agree.sum())}/{agree.size} targets "
          f"({100.0 * agree.mean():.2f}%)")
    print(f"max |prediction difference| = {pred_diff:.3e} (max |prediction| = {pred_scale:.3e})")
    print("BLAS / threadpools:")
    for info in threadpoolctl.threadpool_info():
        print(f"  {info.get('user_api')}: {info.get('internal_api')} {info.get('version')} "
              f"threads={info.get('num_threads')} arch={info.get('architecture')} "
              f"({info.get('filepath')})")


if __name__ == "__main__":
    main()
