"""The encoding engine: both solver paths and both backends against himalaya and closed
forms, float32, memory-bounded chunks, degenerate input, Huth-style bootstrap CV."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from himalaya.backend import set_backend
from himalaya.kernel_ridge import KernelRidgeCV as HimalayaKernelRidgeCV
from himalaya.ridge import RidgeCV as HimalayaRidgeCV
from himalaya.scoring import correlation_score as him_correlation
from himalaya.scoring import r2_score as him_r2
from sklearn.metrics import r2_score as sk_r2

from mmneuro.encoding import ChunkedBootstrap, RidgeCV, contiguous_kfold
from mmneuro.encoding.ridge import parse_memory
from mmneuro.encoding.solvers import ridge_cv_flops, targets_per_chunk
from mmneuro.errors import InputError

set_backend("numpy")

ALPHAS = np.logspace(-1, 4, 12)
HIM_SCORE = {"correlation": him_correlation, "r2": him_r2}
BACKENDS = ["numpy", "torch"]


def make_data(n, p, t, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    W = rng.standard_normal((p, t)) * np.geomspace(0.01, 1.0, t)
    Y = X @ W + rng.standard_normal((n, t)) * 2.0
    return X.astype(dtype), Y.astype(dtype)


def himalaya_fit(X, Y, folds, scoring, fit_intercept=False, kernel=False):
    cls = HimalayaKernelRidgeCV if kernel else HimalayaRidgeCV
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(alphas=ALPHAS, cv=folds, fit_intercept=fit_intercept,
                   solver_params=dict(score_func=HIM_SCORE[scoring])).fit(X, Y)


# ----------------------------------------------------------------------------- vs himalaya
# route "operators" with the default budget; a tiny budget forces the "basis" route
ROUTES = {"operators": None, "basis": 3000}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("scoring", ["correlation", "r2"])
@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("route", list(ROUTES))
def test_every_backend_and_path_matches_himalaya(backend, solver, scoring, fit_intercept, route):
    n, p = (120, 30) if solver == "primal" else (48, 150)  # the path "auto" would take
    X, Y = make_data(n, p, 40, seed=21)
    if fit_intercept:
        X, Y = X + 3.0, Y - 5.0
    folds = contiguous_kfold(n, 4)
    ours = RidgeCV(alphas=ALPHAS, cv=folds, scoring=scoring, fit_intercept=fit_intercept,
                   dtype="float64", backend=backend, solver="auto",
                   max_memory=ROUTES[route]).fit(X, Y)
    assert (ours.solver_, ours.route_) == (solver, route)
    him = himalaya_fit(X, Y, folds, scoring, fit_intercept, kernel=solver == "dual")
    assert np.unique(ours.alpha_).size >= 3  # the comparison must discriminate
    np.testing.assert_allclose(ours.alpha_, him.best_alphas_, rtol=1e-4)
    P_him = np.asarray(him.predict(X))
    np.testing.assert_allclose(ours.predict(X), P_him, rtol=1e-4, atol=1e-8 * np.abs(P_him).max())
    np.testing.assert_allclose(ours.best_score_, him.cv_scores_.ravel(), atol=1e-8)


@pytest.mark.parametrize("scoring", ["correlation", "r2"])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_both_routes_and_the_qr_reduction_agree(scoring, fit_intercept):
    """Validation folds larger than p (QR-reduced norms on the basis route) and the
    operators route give the same scores."""
    X, Y = make_data(200, 12, 30, seed=35)
    X, Y = X + 2.0, Y + 1.0
    kw = dict(alphas=ALPHAS, cv=2, dtype="float64", scoring=scoring, fit_intercept=fit_intercept)
    ops = RidgeCV(**kw).fit(X, Y)
    basis = RidgeCV(max_memory=30_000, **kw).fit(X, Y)  # n_val=100 > p=12: operators not used
    assert (ops.route_, basis.route_) == ("basis", "basis")  # n_val > k forces the basis route
    small = RidgeCV(n_targets_batch=30, max_memory=10**9, **kw).fit(X[:60, :], Y[:60])
    assert small.route_ == "basis"  # n_val = 30 > p = 12 again
    kw["cv"] = 10  # n_val = 20 > 12 still; use p = 40 to get operators
    X2, Y2 = make_data(200, 40, 30, seed=36)
    a = RidgeCV(**kw).fit(X2, Y2)
    b = RidgeCV(max_memory=3000, **kw).fit(X2, Y2)
    assert (a.route_, b.route_) == ("operators", "basis")
    np.testing.assert_array_equal(a.alpha_, b.alpha_)
    np.testing.assert_allclose(a.cv_scores_, b.cv_scores_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.predict(X2), b.predict(X2), rtol=1e-9, atol=1e-12)
    # the QR-reduced basis route equals direct fold fits
    tr, va = contiguous_kfold(200, 2)[0]
    expected = []
    for al in ALPHAS:
        xm = X[tr].mean(0) if fit_intercept else 0.0
        ym = Y[tr].mean(0) if fit_intercept else 0.0
        B = np.linalg.solve((X[tr] - xm).T @ (X[tr] - xm) + al * np.eye(12), (X[tr] - xm).T @ (Y[tr] - ym))
        P = (X[va] - xm) @ B + ym
        expected.append([np.corrcoef(Y[va, j], P[:, j])[0, 1] if scoring == "correlation"
                         else sk_r2(Y[va, j], P[:, j]) for j in range(30)])
    one = RidgeCV(**dict(kw, cv=[(tr, va)])).fit(X, Y)
    np.testing.assert_allclose(one.cv_scores_, np.array(expected), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("shape", [(100, 20), (30, 90)], ids=["n>p", "p>n"])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_primal_and_dual_give_the_same_model(shape, fit_intercept):
    X, Y = make_data(*shape, 15, seed=22)
    X = X + 1.0
    kw = dict(alphas=ALPHAS, cv=3, dtype="float64", fit_intercept=fit_intercept)
    primal = RidgeCV(solver="primal", **kw).fit(X, Y)
    dual = RidgeCV(solver="dual", **kw).fit(X, Y)
    assert (primal.solver_, dual.solver_) == ("primal", "dual")
    np.testing.assert_array_equal(primal.alpha_, dual.alpha_)
    np.testing.assert_allclose(primal.cv_scores_, dual.cv_scores_, atol=1e-9)
    np.testing.assert_allclose(primal.predict(X), dual.predict(X), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_agrees_with_himalaya_float32(backend):
    X, Y = make_data(200, 40, 300, seed=23, dtype=np.float32)
    folds = contiguous_kfold(200, 5)
    ours = RidgeCV(alphas=ALPHAS, cv=folds, backend=backend).fit(X, Y)  # float32 default
    him = himalaya_fit(X, Y, folds, "correlation")
    assert ours.coef_.dtype == np.float32
    same = np.isclose(ours.alpha_, him.best_alphas_)
    assert same.mean() >= 0.98, same.mean()
    # where alphas differ it is a near tie: the scores of the two alphas agree to 1e-5
    np.testing.assert_allclose(ours.best_score_, him.cv_scores_, atol=1e-5)
    P, P_him = ours.predict(X), him.predict(X)
    np.testing.assert_allclose(P[:, same], P_him[:, same], rtol=1e-3, atol=1e-4 * np.abs(P_him).max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scoring", ["correlation", "r2"])
def test_cv_scores_equal_direct_fold_fits_with_intercept(backend, scoring):
    """Dual path, intercept: every fold refit from scratch (train means) and scored."""
    X, Y = make_data(40, 70, 4, seed=24)
    X, Y = X * 2 + 1.5, Y + 7.0
    folds = contiguous_kfold(40, 4)
    model = RidgeCV(alphas=ALPHAS[:5], cv=folds, scoring=scoring, fit_intercept=True,
                    dtype="float64", backend=backend).fit(X, Y)
    assert model.solver_ == "dual"
    expected = np.zeros((5, 4))
    for a_i, a in enumerate(ALPHAS[:5]):
        for tr, va in folds:
            xm, ym = X[tr].mean(0), Y[tr].mean(0)
            B = np.linalg.solve((X[tr] - xm).T @ (X[tr] - xm) + a * np.eye(70), (X[tr] - xm).T @ (Y[tr] - ym))
            P = (X[va] - xm) @ B + ym
            for j in range(4):
                expected[a_i, j] += (np.corrcoef(Y[va, j], P[:, j])[0, 1] if scoring == "correlation"
                                     else sk_r2(Y[va, j], P[:, j]))
    np.testing.assert_allclose(model.cv_scores_, expected / 4, rtol=1e-8, atol=1e-12)


# ----------------------------------------------------------------------------- closed form
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(80, 20), (15, 60)], ids=["primal", "dual"])
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-9), ("float32", 1e-4)])
def test_fixed_alpha_equals_closed_form(backend, shape, dtype, rtol):
    X, Y = make_data(*shape, 6, seed=25)
    a = 7.5
    model = RidgeCV(alphas=[a], cv=3, dtype=dtype, backend=backend).fit(X, Y)
    expected = np.linalg.solve(X.T @ X + a * np.eye(shape[1]), X.T @ Y)
    assert model.coef_.dtype == np.dtype(dtype)
    np.testing.assert_allclose(model.coef_, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


# ----------------------------------------------------------------------------- chunks / memory
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_chunked_equals_unchunked(dtype, solver):
    X, Y = make_data(100, 30, 64, seed=26)
    kw = dict(alphas=ALPHAS, cv=4, dtype=dtype, solver=solver)
    full = RidgeCV(n_targets_batch=64, **kw).fit(X, Y)
    assert full.n_targets_batch_ == 64
    assert np.unique(full.alpha_).size >= 3
    tol = 1e-5 if dtype == "float32" else 1e-12
    for nb in (5, 31):
        chunked = RidgeCV(n_targets_batch=nb, **kw).fit(X, Y)
        np.testing.assert_array_equal(chunked.alpha_, full.alpha_)
        np.testing.assert_allclose(chunked.cv_scores_, full.cv_scores_, rtol=tol, atol=tol)
        np.testing.assert_allclose(chunked.predict(X), full.predict(X), rtol=tol,
                                   atol=tol * np.abs(full.predict(X)).max())


def test_max_memory_sets_the_chunk_size():
    X, Y = make_data(100, 30, 64, seed=27)
    big = RidgeCV(alphas=ALPHAS, cv=4, max_memory="1GiB").fit(X, Y)
    small = RidgeCV(alphas=ALPHAS, cv=4, max_memory=40_000).fit(X, Y)
    assert big.n_targets_batch_ == 64
    per_target = 40_000 // targets_per_chunk(40_000, 100, 30, 30, 25, 12, 4, False)
    assert small.n_targets_batch_ == targets_per_chunk(40_000, 100, 30, 30, 25, 12, 4, False)
    assert 1 < small.n_targets_batch_ < 64 and per_target > 0
    np.testing.assert_array_equal(small.alpha_, big.alpha_)
    # the budget shrinks the chunks in proportion
    assert targets_per_chunk(2e6, 1000, 50, 50, 200, 10, 4, False) == 2 * targets_per_chunk(
        1e6, 1000, 50, 50, 200, 10, 4, False)


@pytest.mark.parametrize("text,expected", [("512MB", 512 * 10**6), ("2GiB", 2 * 2**30),
                                           ("1.5 GB", 1_500_000_000), (1e6, 10**6), ("300", 300)])
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


def test_float64_y_and_memmap_y_read_chunkwise_and_left_untouched(tmp_path):
    X, Y = make_data(60, 10, 20, seed=28)
    Y += 100.0
    Y_before = Y.copy()
    mm = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.float32, shape=Y.shape)
    mm[:] = Y
    mm.flush()
    kw = dict(alphas=ALPHAS, cv=3, fit_intercept=True, n_targets_batch=7)
    from64 = RidgeCV(**kw).fit(X, Y)  # float64 y, float32 solve: cast per chunk
    np.testing.assert_array_equal(Y, Y_before)  # never written to, not even when centring
    from32 = RidgeCV(**kw).fit(X, Y.astype(np.float32))
    frommm = RidgeCV(**kw).fit(X, np.load(tmp_path / "y.npy", mmap_mode="r"))
    np.testing.assert_array_equal(from64.alpha_, from32.alpha_)
    np.testing.assert_array_equal(frommm.coef_, from32.coef_)
    np.testing.assert_array_equal(frommm.intercept_, from32.intercept_)


def test_flop_count_of_primal_and_dual():
    f = ridge_cv_flops(100, 10, 7, [20] * 5, 3, "primal")
    # per fold: Xv^T Yv + V^T R + M^T Yc + cross & mean + per-alpha norms; then X^T Y + refit
    per_fold = 2 * 20 * 10 * 7 + 2 * 10 * 10 * 7 + 2 * 20 * 10 * 7 + 4 * 3 * 10 * 7 + 3 * 2 * 10 * 10 * 7
    assert f["targets"] == 5 * per_fold + 2 * 100 * 10 * 7 + 4 * 10 * 10 * 7
    d = ridge_cv_flops(100, 300, 7, [20] * 5, 3, "dual")
    assert d["targets"] > 0 and d["total"] == d["targets"] + d["gram"]
    o = ridge_cv_flops(100, 10, 7, [20] * 5, 3, "primal", route="operators")
    per_fold = 2 * 20 * 10 * 7 + 3 * 2 * 20 * 10 * 7 + 2 * 3 * 10 * 7  # Xv^T Yv, H[a] @ R, means
    assert o["targets"] == 5 * per_fold + 2 * 100 * 10 * 7 + 4 * 10 * 10 * 7


# ----------------------------------------------------------------------------- degenerate
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("solver", ["primal", "dual"])
@pytest.mark.parametrize("scoring", ["correlation", "r2"])
def test_degenerate_targets_in_float32(backend, solver, scoring):
    """Constant target; target constant in one validation fold: scores 0 there, no NaN."""
    X, Y = make_data(60, 12, 4, seed=29)
    folds = contiguous_kfold(60, 3)
    Y[:, 1] = 0.1
    Y[folds[1][1], 2] = -3.0
    model = RidgeCV(alphas=ALPHAS, cv=folds, scoring=scoring, backend=backend, solver=solver).fit(X, Y)
    assert np.all(np.isfinite(model.cv_scores_)) and np.all(np.isfinite(model.coef_))
    np.testing.assert_array_equal(model.cv_scores_[:, 1], 0.0)
    assert model.alpha_[1] == ALPHAS.max()
    ref = RidgeCV(alphas=ALPHAS, cv=folds, scoring=scoring, dtype="float64").fit(X, Y)
    np.testing.assert_allclose(model.cv_scores_, ref.cv_scores_, atol=2e-5)


@pytest.mark.parametrize("solver", ["primal", "dual"])
def test_duplicated_and_zero_features(solver):
    X, Y = make_data(80, 8, 5, seed=30)
    Xd = np.hstack([X, X[:, :3], np.zeros((80, 2))])  # duplicates and all-zero columns
    model = RidgeCV(alphas=[0.0, 5.0], cv=4, dtype="float64", solver=solver).fit(Xd, Y)
    assert np.all(np.isfinite(model.cv_scores_))
    for j in range(5):
        a = model.alpha_[j]
        if a > 0:
            b = np.linalg.solve(Xd.T @ Xd + a * np.eye(13), Xd.T @ Y[:, j])
        else:  # minimum-norm least squares
            b = np.linalg.lstsq(Xd, Y[:, j], rcond=None)[0]
        np.testing.assert_allclose(model.coef_[:, j], b, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(model.coef_[-2:], 0.0)
    # duplicated columns share their weight equally
    np.testing.assert_allclose(model.coef_[:3], model.coef_[8:11], rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scoring", ["correlation", "r2"])
def test_all_zero_features_float32(backend, scoring):
    Y = np.random.default_rng(31).standard_normal((50, 4))
    model = RidgeCV(alphas=[0.0, 1.0, 10.0], cv=5, scoring=scoring, backend=backend).fit(np.zeros((50, 6)), Y)
    np.testing.assert_array_equal(model.coef_, 0.0)
    np.testing.assert_array_equal(model.alpha_, 10.0)
    assert np.all(np.isfinite(model.cv_scores_))
    if scoring == "correlation":
        np.testing.assert_array_equal(model.cv_scores_, 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_p_much_larger_than_n_float32(backend):
    X, Y = make_data(24, 3000, 3, seed=32)
    model = RidgeCV(alphas=[0.5, 50.0, 5000.0], cv=4, backend=backend).fit(X, Y)
    assert model.solver_ == "dual"
    for j in range(3):
        b = X.T @ np.linalg.solve(X @ X.T + model.alpha_[j] * np.eye(24), Y[:, j])
        np.testing.assert_allclose(model.coef_[:, j], b, rtol=1e-3, atol=1e-4 * np.abs(b).max())


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("params,match", [
    (dict(backend="jax"), r"backend must be one of"),
    (dict(solver="svd"), r"solver must be one of"),
    (dict(max_memory="lots"), r"max_memory='lots' is not a size"),
    (dict(max_memory=0), r"at least 1 byte"),
])
def test_engine_parameter_errors(params, match):
    X, Y = make_data(30, 4, 2)
    with pytest.raises(InputError, match=match):
        RidgeCV(**params).fit(X, Y)


def test_torch_cuda_without_gpu_says_so():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    X, Y = make_data(30, 4, 2)
    with pytest.raises(InputError, match=r"torch_cuda.*is_available\(\) is False"):
        RidgeCV(backend="torch_cuda").fit(X, Y)


# ----------------------------------------------------------------------------- bootstrap / Huth
def test_chunked_bootstrap_splits():
    X = np.zeros((103, 1))
    cv = ChunkedBootstrap(nboots=6, chunklen=10, nchunks=3, random_state=4)
    splits = list(cv.split(X))
    assert len(splits) == cv.get_n_splits() == 6
    for tr, va in splits:
        assert va.size == 30 and tr.size == 73
        assert sorted(np.r_[tr, va].tolist()) == list(range(103))
        starts = va[::10]
        assert np.all(starts % 10 == 0) and np.all(va < 100)  # whole, aligned chunks only
        np.testing.assert_array_equal(va.reshape(3, 10), starts[:, None] + np.arange(10))
    again = list(ChunkedBootstrap(nboots=6, chunklen=10, nchunks=3, random_state=4).split(X))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again))  # seeded
    other = list(ChunkedBootstrap(nboots=6, chunklen=10, nchunks=3, random_state=5).split(X))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(splits, other))
    assert len({tuple(va[::10]) for _, va in splits}) > 1  # boots differ
    with pytest.raises(InputError, match=r"nchunks=11 chunks of chunklen=10 from n_samples=103"):
        list(ChunkedBootstrap(nboots=1, chunklen=10, nchunks=11).split(X))


def test_ridgecv_with_bootstrap_equals_explicit_folds():
    X, Y = make_data(120, 10, 8, seed=33)
    cv = ChunkedBootstrap(nboots=5, chunklen=8, nchunks=4, random_state=1)
    a = RidgeCV(alphas=ALPHAS, cv=cv, dtype="float64").fit(X, Y)
    b = RidgeCV(alphas=ALPHAS, cv=list(cv.split(X)), dtype="float64").fit(X, Y)
    assert a.n_splits_ == 5
    np.testing.assert_array_equal(a.cv_scores_, b.cv_scores_)


def test_huth_alpha_convention():
    """Huth's ridge_corr shrinks singular values by s / (s**2 + a**2): a == sqrt(alpha)."""
    X, Y = make_data(90, 12, 5, seed=34)
    folds = contiguous_kfold(90, 3)
    huth_a = np.logspace(0, 2, 6)
    ours = RidgeCV(alphas=huth_a**2, cv=folds, dtype="float64").fit(X, Y)
    corr = np.zeros((6, 5))
    for tr, va in folds:  # Huth-style: SVD of the training design, Huth's shrinkage
        U, s, Vt = np.linalg.svd(X[tr], full_matrices=False)
        for i, a in enumerate(huth_a):
            P = X[va] @ Vt.T @ np.diag(s / (s**2 + a**2)) @ U.T @ Y[tr]
            corr[i] += [np.corrcoef(P[:, j], Y[va, j])[0, 1] for j in range(5)]
    np.testing.assert_allclose(ours.cv_scores_, corr / 3, rtol=1e-9)
