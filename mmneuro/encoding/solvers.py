"""The ridge cross-validation core: per-target alphas, one decomposition per fold, targets
in chunks, any backend. Arrays in, arrays out.

Notation: ``X`` is ``(n, p)``, ``Y`` is ``(n, v)``; a fold has ``n_tr`` training and
``n_val`` validation samples; ``A`` alphas; targets are processed ``c`` at a time.

Primal path (``p <= n_tr``)
---------------------------
Per fold, ONE eigen-decomposition of the ``p x p`` Gram matrix ``Xtr^T Xtr = V diag(lam) V^T``
(cheaper than an SVD of ``Xtr`` when ``n >> p``, and the same shrinkage: ``lam = s**2``).
The training fit for penalty ``alpha`` is ``B = V diag(1 / (lam + alpha)) Z`` with
``Z = V^T Xtr^T Ytr``; ``Xtr^T Ytr`` is ``X^T Y - Xval^T Yval`` (``X^T Y`` computed once per
chunk). The centred validation design projected once, ``M = (Xval - mean) V``, is reused
for every alpha (the "Huth" projection trick): the centred validation predictions are
``M diag(d_alpha) Z``. For the scores only three column statistics are needed:

* ``cross = sum_t Pc * Yc``  = ``D @ (M^T Yc  *  Z)`` -- one small product for all alphas;
* ``mean(P)``                = ``(D * (mean(Xval) V)) @ Z`` -- idem;
* ``ss = sum_t Pc**2``        = ``||M_eff diag(d_alpha) Z||^2`` per alpha -- the dominant cost,
  one ``(n_eff, k) @ (k, c)`` product per alpha, where ``M_eff`` is ``M`` or, if
  ``n_val > k``, the ``k x k`` R factor of ``M`` (same column norms, fewer rows).

so predictions are never materialised for more than one alpha and one chunk. Cost per fold
about ``n p^2 + p^3 + n_val p v + p^2 v + A min(n_val, p) p v``.

Operators route: when every fold has ``n_val <= k`` and the ``A`` per-alpha validation
operators ``H[a] = M diag(d_a) V^T`` (``n_val x p``) of all folds fit in ``2 * max_memory``,
they are formed once per fold and the centred predictions are ``H[a] @ (Xtr^T Ytr)``: the
per-chunk rotation ``V^T (.)`` (``p^2 v``) and ``M^T Yc`` disappear, and the cross term
is a column-wise dot product of each alpha's predictions with ``Yc``. Cost per fold
``n_val p v + A n_val p v`` for the targets. (The "basis" route above is used otherwise,
e.g. at whole-brain scale where the operators would not fit.)

Implementation notes (what keeps the matrix products near the BLAS roofline): the fold
decompositions run side by side, one per BLAS thread, each single-threaded (LAPACK's
eigensolver scales poorly over threads); a column block of ``Y`` in the working dtype is handed to BLAS
in place (no copy); the inner loops write into preallocated buffers (no large temporary
per alpha); contiguous validation folds are slices (views), not gathers.

Dual (kernel) path (``p > n_tr``)
---------------------------------
Per fold, one eigen-decomposition of the ``n_tr x n_tr`` kernel ``Xtr Xtr^T = U diag(lam) U^T``;
``Z = U^T Ytr``, ``M = (Xval - mean) Xtr^T U``; everything else is identical with
``k = n_tr`` (operators ``H[a] = M diag(d_a) U^T`` act on ``Ytr`` directly).

Scores
------
``correlation``: Pearson r of prediction and target within the validation fold.
``r2``: ``1 - SSE / SST`` with the validation-fold mean as the reference (as himalaya's
``r2_score``). A fold where the target is constant (up to rounding) scores 0; for
correlation a fold where the prediction is constant (all-zero or constant features) also
scores 0. Scores are accumulated in float64 and averaged over folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["solve_ridge_cv", "ridge_cv_flops", "targets_per_chunk"]

#: Mean CV scores within this absolute distance of the best count as a tie; ties go to
#: the largest alpha (the most regularised model).
TIE_TOL = 1e-10

#: Multiple of machine epsilon below which a column's spread counts as rounding noise.
_CONST_EPS = 64.0


@dataclass
class _Fold:
    """Target-independent pieces of one fold (all on the backend, dtype of the solve)."""

    train: object  # backend index array
    val: object
    n_tr: int
    n_val: int
    basis: object  # V (p, k) [primal] or U (n_tr, k) [dual]
    D: object  # (A, k) shrinkage 1 / (lam + alpha)
    D_host: np.ndarray  # (A, k) float64
    M: object  # (n_val, k) centred validation design in the eigenbasis
    M_eff: object  # (min(n_val, k), k)
    Dm0: object  # (A, k): D * (mean of validation design in the basis, minus train mean)
    x_tr_mean: object | None  # (p,) training mean (fit_intercept) or None
    XvT: object | None  # (p, n_val) validation design, transposed (primal) or None
    H: object | None = None  # (A, n_val, p|n_tr): M diag(d_a) basis^T, when it fits
    H0: object | None = None  # (A, p|n_tr): Dm0 @ basis^T


def _shrinkage(lam: np.ndarray, alphas: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """``(lam, D)`` with ``D[a, j] = 1 / (lam_j + alpha_a)``.

    Eigenvalues within rounding of zero (``lam_j <= k * eps * max(lam)``, negatives
    included) are set to 0 and their directions get ``D = 0`` for every alpha: in exact
    arithmetic they carry no signal (``X v_j = 0``, resp. ``X^T u_j = 0``), and in floating
    point they only carry rounding noise that ``1 / alpha`` would amplify. With ``alpha = 0``
    this is the minimum-norm least-squares solution.
    """
    lam = np.asarray(lam, dtype=np.float64).copy()
    top = lam.max(initial=0.0)
    null = lam <= top * lam.size * eps
    lam[null] = 0.0
    den = lam[None, :] + alphas[:, None]
    D = np.divide(1.0, den, out=np.zeros_like(den), where=(den > 0) & ~null[None, :])
    return lam, D


def targets_per_chunk(max_memory: float, n: int, p: int, k: int, n_val_max: int,
                      n_alphas: int, itemsize: int, dual: bool) -> int:
    """Targets per chunk so that the chunk's working arrays fit in ``max_memory`` bytes.

    Per target the solver holds about ``2n + 2 n_val + 2p + 4k + 2 min(n_val, k)``
    values of the working dtype (plus ``2 n_tr`` on the dual path) and ``8 A`` float64
    score statistics.
    """
    n_eff = min(n_val_max, k)
    per = itemsize * (2 * n + 2 * n_val_max + 2 * p + 4 * k + 2 * n_eff + (2 * n if dual else 0))
    per += 8 * 8 * n_alphas
    return max(1, int(max_memory // per))


def ridge_cv_flops(n: int, p: int, v: int, val_sizes, n_alphas: int, solver: str,
                   route: str = "basis") -> dict:
    """Floating-point operations of the matrix products of :func:`solve_ridge_cv`.

    Counts ``2 m k n`` per ``(m, k) @ (k, n)`` product (multiply + add) for the
    target-dependent products (they dominate at scale) and, separately, the target-independent
    ones (Gram or kernel, projections, per-alpha operators). Eigen-decompositions, QR and
    elementwise passes are not counted. ``route`` is the solver's ``"basis"`` or
    ``"operators"`` route (see :func:`solve_ridge_cv`).

    Returns
    -------
    dict with ``"targets"``, ``"gram"`` (target-independent) and ``"total"``.
    """
    tgt = 0.0
    gram = 0.0
    for n_val in val_sizes:
        n_tr = n - n_val
        k = p if solver == "primal" else n_tr
        dim = p if solver == "primal" else n_tr  # rows of the operand (R or Ytr)
        n_eff = min(n_val, k)
        if solver == "primal":
            gram += 2.0 * n_tr * p * p + 2.0 * n_val * p * p  # Gram + M = Xv V
            tgt += 2.0 * n_val * p * v  # Xv^T Yv
        else:
            gram += 2.0 * n_tr * n_tr * p + 2.0 * n_val * n_tr * p + 2.0 * n_val * n_tr * n_tr
        if route == "operators":
            gram += n_alphas * 2.0 * n_val * k * dim  # H[a] = M diag(d_a) basis^T
            tgt += n_alphas * 2.0 * n_val * dim * v  # H[a] @ operand
            tgt += 2.0 * n_alphas * dim * v  # mean of the predictions
        else:
            tgt += 2.0 * k * dim * v  # Z = basis^T operand
            tgt += 2.0 * n_val * k * v  # A = M^T Yc
            tgt += 2.0 * 2 * n_alphas * k * v  # cross and mean for all alphas
            tgt += n_alphas * 2.0 * n_eff * k * v  # the per-alpha norms
    if solver == "primal":
        gram += 2.0 * n * p * p
        tgt += 2.0 * n * p * v + 2.0 * 2 * p * p * v  # X^T Y; refit V^T (.), V (.)
    else:
        gram += 2.0 * n * n * p
        tgt += 2.0 * 2 * n * n * v + 2.0 * n * p * v  # refit U^T Y, U (.), X^T (.)
    return {"targets": tgt, "gram": gram, "total": tgt + gram}


#: Largest Gram matrix decomposed side by side with others (single-threaded each). Measured
#: on 2 cores, float32: p = 768 about 2x faster side by side; n_tr = 2400 10 % slower (the
#: eigensolver's memory-bound reductions then compete for bandwidth instead of caches).
SIDE_BY_SIDE_MAX_DIM = 1024


def _eigh_width(bk, side, p: int, dual: bool, dtype, max_memory: float) -> int:
    """How many Gram matrices to decompose side by side: the backend's parallel width for
    matrices up to :data:`SIDE_BY_SIDE_MAX_DIM`, bounded so that they fit in ``max_memory``."""
    size = max(k for _, k in side) if dual else p
    if size > SIDE_BY_SIDE_MAX_DIM:
        return 1
    fit = int(max_memory // max(1, size * size * np.dtype(dtype).itemsize))
    return max(1, min(bk.eigh_width(), fit))


def select_alphas(mean_scores: np.ndarray, alphas: np.ndarray, per_target: bool) -> np.ndarray:
    """Index of the chosen alpha for every target; ties (within TIE_TOL) -> largest alpha."""
    n_targets = mean_scores.shape[1]
    if not per_target:
        mean_scores = mean_scores.mean(axis=1, keepdims=True)
    best = mean_scores.max(axis=0)
    near = mean_scores >= best[None, :] - TIE_TOL
    by_size = np.argsort(-alphas, kind="stable")  # largest alpha first
    first = np.argmax(near[by_size], axis=0)  # first (largest) alpha within the tie band
    return np.broadcast_to(by_size[first], (n_targets,)).copy()


def _scores(scoring: str, eps: float, n_val: int, cross, ss, pbar, sst, yv_mean,
            yv_const) -> np.ndarray:
    """Validation scores (A, c) in float64 from the column statistics (host arrays)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if scoring == "correlation":
            ss = np.maximum(ss, 0.0)
            r = cross / np.sqrt(sst[None, :] * ss)
            spread = np.sqrt(ss / n_val)
            level = np.sqrt(pbar * pbar + ss / n_val)
            bad = (spread <= _CONST_EPS * eps * level) | yv_const[None, :] | ~np.isfinite(r)
            r = np.clip(r, -1.0, 1.0)
        else:
            sse = sst[None, :] - 2.0 * cross + ss + n_val * (yv_mean[None, :] - pbar) ** 2
            r = 1.0 - sse / sst[None, :]
            bad = yv_const[None, :] | ~np.isfinite(r)
    r[bad] = 0.0
    return r


def solve_ridge_cv(X: np.ndarray, Y: np.ndarray, folds, alphas: np.ndarray, *,
                   scoring: str = "correlation", fit_intercept: bool = False,
                   alpha_per_target: bool = True, dtype=np.float32, backend=None,
                   solver: str = "auto", chunk_size: int | None = None,
                   max_memory: float = 256 * 2**20) -> dict:
    """K-fold ridge CV with one alpha per target, then a refit on all samples.

    Parameters
    ----------
    X : ndarray (n, p), finite; cast to ``dtype``.
    Y : ndarray (n, v), finite, any float dtype; read one chunk of columns at a time and
        cast per chunk (``Y`` itself is never copied whole, so it may be a memmap).
    folds : list of (train_idx, val_idx) int arrays.
    alphas : ndarray (A,), >= 0.
    scoring : "correlation" | "r2".
    fit_intercept : centre with training means per fold (and full means for the refit).
    alpha_per_target : False -> one alpha for all targets (best mean score over targets).
    dtype : float32 or float64 working precision (scores always float64).
    backend : a backend object from :func:`mmneuro.encoding.backends.get_backend`.
    solver : "auto" (primal if ``p <= mean n_tr`` else dual), "primal" or "dual".
    chunk_size : targets per chunk; None -> from ``max_memory``.
    max_memory : bytes of working memory for one chunk of targets (see
        :func:`targets_per_chunk`); the fold decompositions (``folds * (k^2 + 2 n_val k)``
        values) come on top.

    Returns
    -------
    dict with ``best_idx`` (v,), ``cv_scores`` (A, v) float64, ``coef`` (p, v) dtype,
    ``intercept`` (v,) dtype, ``solver``, ``chunk_size`` and ``route``.
    """
    from mmneuro.encoding.backends import NumpyBackend, view2d

    bk = NumpyBackend() if backend is None else backend
    dtype = np.dtype(dtype)
    eps = float(np.finfo(dtype).eps)
    n, p = X.shape
    v = Y.shape[1]
    alphas = np.asarray(alphas, dtype=np.float64)
    n_alphas = alphas.size
    n_tr_mean = float(np.mean([len(tr) for tr, _ in folds]))
    if solver == "auto":
        solver = "primal" if p <= n_tr_mean else "dual"
    dual = solver == "dual"

    # ---- data on the backend; with an intercept, shift by the full means first (exactly
    # equivalent, and it keeps the per-fold rank-one corrections small)
    Xh = np.asarray(X, dtype=dtype)
    x_shift = Xh.mean(axis=0, dtype=np.float64).astype(dtype) if fit_intercept else None
    if fit_intercept:
        Xh = Xh - x_shift
    Xb = bk.asarray(Xh, dtype)
    del Xh

    # ---- target-independent work: one decomposition per fold (+ one on all samples for
    # the refit), computed a few at a time side by side (see ``eigh_many``)
    splits = [(bk.index(train), bk.index(val)) for train, val in folds]

    def train_rows(tr_i):
        """Training design of a fold, centred with its own means if fit_intercept."""
        Xtr = Xb[tr_i]
        if not fit_intercept:
            return Xtr, None
        x_tr_mean = Xtr.mean(0)
        return Xtr - x_tr_mean, x_tr_mean

    def gram(tr_i):
        Xtr = train_rows(tr_i)[0] if tr_i is not None else Xb  # None: all samples, uncentred
        return Xtr @ Xtr.T if dual else Xtr.T @ Xtr

    side = [(tr_i, len(train)) for (tr_i, _), (train, _) in zip(splits, folds)] + [(None, n)]
    decomps = []
    for s in range(0, len(side), width := _eigh_width(bk, side, p, dual, dtype, max_memory)):
        decomps += bk.eigh_many([gram(tr_i) for tr_i, _ in side[s:s + width]])

    prepared: list[_Fold] = []
    for (tr_i, va_i), (train, val), (lam, basis) in zip(splits, folds, decomps):
        Xtr, x_tr_mean = train_rows(tr_i)
        Xv = Xb[va_i]
        xv_mean = Xv.mean(0)
        Xv_c = Xv - xv_mean
        off = xv_mean - x_tr_mean if fit_intercept else xv_mean
        if dual:
            M = (Xv_c @ Xtr.T) @ basis
            m0 = (off @ Xtr.T) @ basis
        else:
            M = Xv_c @ basis
            m0 = off @ basis
        del Xtr, Xv, Xv_c
        _, D_host = _shrinkage(bk.to_numpy(lam), alphas, eps)
        D = bk.asarray(D_host, dtype)
        k = D_host.shape[1]
        M_eff = M if len(val) <= k else bk.qr_r(M)
        prepared.append(_Fold(tr_i, va_i, len(train), len(val), basis, D, D_host, M, M_eff,
                              D * m0[None, :], x_tr_mean, None if dual else Xb[va_i].T))
    lam_f, basis_f = decomps[-1]
    _, Dfull_host = _shrinkage(bk.to_numpy(lam_f), alphas, eps)
    k_max = max(f.D_host.shape[1] for f in prepared)
    n_val_max = max(f.n_val for f in prepared)
    if chunk_size is None:
        chunk_size = targets_per_chunk(max_memory, n, p, max(k_max, Dfull_host.shape[1]),
                                       n_val_max, n_alphas, dtype.itemsize, dual)
    chunk_size = int(min(max(1, chunk_size), v))

    # Per-alpha validation operators H[a] = M diag(d_a) basis^T, (n_val, p) or (n_val, n_tr):
    # the centred validation predictions are then H[a] @ (Xtr^T Ytr) (primal) or
    # H[a] @ Ytr (dual), which saves the per-chunk rotation into the eigenbasis (p^2 or
    # n_tr^2 per target and fold) and the cross-product M^T Yc. Used when every fold has
    # n_val <= k (else the QR-reduced M_eff is cheaper) and all operators fit in
    # 2 * max_memory; otherwise the eigenbasis route (Z = basis^T (.)) is taken.
    h_bytes = sum(n_alphas * f.n_val * f.basis.shape[0] * dtype.itemsize for f in prepared)
    if all(f.n_val <= f.D_host.shape[1] for f in prepared) and h_bytes <= 2 * max_memory:
        for f in prepared:
            BT = f.basis.T
            f.H = bk.zeros((n_alphas, f.n_val, BT.shape[1]), dtype)
            for a in range(n_alphas):
                bk.matmul(f.M * f.D[a][None, :], BT, out=f.H[a])
            f.H0 = f.Dm0 @ BT
            f.M = f.M_eff = f.Dm0 = f.basis = None  # not needed on this route
    route = "operators" if prepared[0].H is not None else "basis"

    cv_scores = np.zeros((n_alphas, v), dtype=np.float64)
    coef = np.empty((p, v), dtype=dtype)
    y_shift_all = np.zeros(v, dtype=dtype)
    chunks = [slice(s, min(s + chunk_size, v)) for s in range(0, v, chunk_size)]

    def load(b):
        Yh = Y[:, b]  # a view of Y (maybe a memmap): never write to it
        if isinstance(bk, NumpyBackend) and Yh.dtype == dtype and not fit_intercept:
            return Yh  # BLAS reads a column block in place (leading dimension v): no copy
        Yh = np.ascontiguousarray(Yh, dtype=dtype)
        if fit_intercept:
            y_shift = Yh.mean(axis=0, dtype=np.float64).astype(dtype)
            Yh = Yh - y_shift
            y_shift_all[b] = y_shift
        return bk.asarray(Yh, dtype)

    intercept = np.zeros(v, dtype=dtype)

    Dfull_T = bk.asarray(Dfull_host.T, dtype)  # (k, A)

    def refit(b, Yb, XtY, best):
        Dsel = Dfull_T[:, bk.index_array(best)]  # (k, c): column j scaled by d(alpha_j)
        if dual:
            Zf = basis_f.T @ Yb
            Zf *= Dsel
            coef[:, b] = bk.to_numpy(Xb.T @ (basis_f @ Zf))
        else:
            Zf = basis_f.T @ XtY
            Zf *= Dsel
            if isinstance(bk, NumpyBackend):
                bk.matmul(basis_f, Zf, out=coef[:, b])
            else:
                coef[:, b] = bk.to_numpy(basis_f @ Zf)
        if fit_intercept:  # intercept = mean(y) - mean(x) @ coef, per chunk
            intercept[b] = (y_shift_all[b].astype(np.float64)
                            - x_shift.astype(np.float64) @ coef[:, b].astype(np.float64))

    # work buffers reused by every chunk and fold (no large allocation in the inner loops)
    R_buf = None if dual else bk.empty(p * chunk_size, dtype)
    P_buf = bk.empty(n_val_max * chunk_size, dtype)
    Yc_buf = bk.empty(n_val_max * chunk_size, dtype)

    for b in chunks:
        c = b.stop - b.start
        Yb = load(b)
        XtY = None if dual else Xb.T @ Yb
        y_sum = Yb.sum(0) if fit_intercept else None
        score_sum = np.zeros((n_alphas, c), dtype=np.float64)
        for f in prepared:
            Yv = Yb[f.val]  # a view when the fold is a contiguous block
            yv_mean = Yv.mean(0)
            Yv_c = bk.subtract(Yv, yv_mean, out=view2d(Yc_buf, f.n_val, c))
            sst = bk.sumsq0(Yv_c)
            sst_h = bk.to_numpy(sst).astype(np.float64)
            yv_mean_h = bk.to_numpy(yv_mean).astype(np.float64)
            # constant in this fold: centred RMS within rounding of the raw RMS
            yv_const = sst_h <= (_CONST_EPS * eps) ** 2 * (sst_h + f.n_val * yv_mean_h ** 2)
            y_tr_mean = (y_sum - Yv.sum(0)) / f.n_tr if fit_intercept else None
            if dual:
                Ytr = Yb[f.train]
                if fit_intercept:
                    Ytr = Ytr - y_tr_mean
                operand = Ytr  # Z = U^T Ytr
                del Ytr
            else:
                R = view2d(R_buf, p, c)  # Xtr^T Ytr = X^T Y - Xval^T Yval
                bk.matmul(f.XvT, Yv, out=R)
                bk.subtract(XtY, R, out=R)
                if fit_intercept:
                    R -= f.n_tr * (f.x_tr_mean[:, None] * y_tr_mean[None, :])
                operand = R  # Z = V^T R
                del R
            del Yv
            ss = np.empty_like(score_sum)
            if f.H is not None:
                # per-alpha validation operators: Pc = H[a] @ operand, no rotation needed
                cross = np.empty_like(score_sum)
                Pc = view2d(P_buf, f.n_val, c)
                for a in range(n_alphas):
                    bk.matmul(f.H[a], operand, out=Pc)
                    cross[a] = bk.to_numpy(bk.dot0(Pc, Yv_c))
                    ss[a] = bk.to_numpy(bk.sumsq0(Pc))
                pbar = f.H0 @ operand
            else:
                Z = f.basis.T @ operand
                A = f.M.T @ Yv_c
                A *= Z
                cross = f.D @ A
                del A
                pbar = f.Dm0 @ Z
                Pc = view2d(P_buf, f.M_eff.shape[0], c)
                for a in range(n_alphas):
                    bk.matmul(f.M_eff * f.D[a][None, :], Z, out=Pc)
                    ss[a] = bk.to_numpy(bk.sumsq0(Pc))
                del Z
            del operand, Yv_c
            if fit_intercept:
                pbar = pbar + y_tr_mean[None, :]
            score_sum += _scores(
                scoring, eps, f.n_val,
                bk.to_numpy(cross).astype(np.float64), ss.astype(np.float64),
                bk.to_numpy(pbar).astype(np.float64), sst_h, yv_mean_h, yv_const,
            )
        cv_scores[:, b] = score_sum / len(prepared)
        if alpha_per_target:
            best = select_alphas(cv_scores[:, b], alphas, True)
            refit(b, Yb, XtY, best)
        del Yb, XtY

    best_idx = select_alphas(cv_scores, alphas, bool(alpha_per_target))
    if not alpha_per_target:  # the shared alpha is known only now: second pass
        for b in chunks:
            Yb = load(b)
            XtY = None if dual else Xb.T @ Yb
            refit(b, Yb, XtY, best_idx[b])
            del Yb, XtY

    return {"best_idx": best_idx, "cv_scores": cv_scores, "coef": coef,
            "intercept": intercept, "solver": solver, "chunk_size": chunk_size, "route": route}
