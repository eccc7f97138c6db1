"""Array backends for the ridge solver: ``numpy`` and ``torch`` (CPU or CUDA).

The solver core (:mod:`mmneuro.encoding.solvers`) is written once, with operators that
numpy arrays and torch tensors share (``@``, ``*``, ``-``, ``.T``, ``.sum(0)``,
``.mean(0)``, integer-array indexing); everything else goes through the few methods of a
backend object below. Data stay on the host as numpy arrays; the solver moves ``X`` once
and ``Y`` one chunk of targets at a time to the backend (for ``torch_cuda``: to the GPU),
and brings back only per-chunk scores and coefficients.

Backend names
-------------
``"numpy"``
    numpy + scipy LAPACK (OpenBLAS or whatever numpy links).
``"torch"``
    torch on the CPU (its own BLAS, MKL in the x86 wheels). torch is imported lazily.
``"torch_cuda"``
    torch on the current CUDA device; raises :class:`~mmneuro.errors.InputError` if
    ``torch.cuda.is_available()`` is False.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from mmneuro.errors import InputError

__all__ = ["BACKENDS", "get_backend", "NumpyBackend", "TorchBackend"]

BACKENDS = ("numpy", "torch", "torch_cuda")


class NumpyBackend:
    """numpy / scipy implementation of the backend interface."""

    name = "numpy"

    def asarray(self, a, dtype) -> np.ndarray:
        """Host array -> backend array of ``dtype`` (no copy when already right)."""
        return np.ascontiguousarray(a, dtype=dtype)

    def index(self, idx: np.ndarray):
        """Row selector for ``idx``: a slice (a view, no copy) when ``idx`` is a contiguous
        ascending range, else the integer array."""
        sl = as_slice(idx)
        return sl if sl is not None else np.asarray(idx)

    def index_array(self, idx: np.ndarray) -> np.ndarray:
        """``idx`` as an integer array for gathers (never a slice)."""
        return np.asarray(idx)

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(a)

    def eigh(self, S):
        """Eigen-decomposition of a symmetric matrix: ``(w ascending, V)``."""
        try:  # divide and conquer: the fastest LAPACK driver for all eigenpairs
            return scipy.linalg.eigh(S, driver="evd", check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            return scipy.linalg.eigh(S, driver="ev", check_finite=False)

    def eigh_width(self) -> int:
        """How many decompositions :meth:`eigh_many` runs side by side: the BLAS threads."""
        from threadpoolctl import threadpool_info

        blas = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
        return max(1, min(blas) if blas else 1)

    def eigh_many(self, mats: list) -> list:
        """:meth:`eigh` of several matrices. LAPACK's symmetric eigensolver is mostly
        memory-bound level-2 work that scales poorly over BLAS threads, so with ``t`` BLAS
        threads the matrices are decomposed ``t`` at a time, one single-threaded BLAS each
        (about 2x faster on 2 cores at p ~ 1000)."""
        width = min(len(mats), self.eigh_width())
        if width < 2:
            return [self.eigh(S) for S in mats]
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(width) as pool:
            return list(pool.map(self.eigh, mats))

    def qr_r(self, M):
        """R factor of the thin QR of ``M`` (m >= k): ``M.T @ M == R.T @ R``."""
        return scipy.linalg.qr(M, mode="r", check_finite=False)[0]

    def sumsq0(self, a):
        """Column-wise sum of squares."""
        return np.einsum("ij,ij->j", a, a)

    def dot0(self, a, b):
        """Column-wise dot products ``sum_i a[i, j] * b[i, j]``."""
        return np.einsum("ij,ij->j", a, b)

    def zeros(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def empty(self, size: int, dtype):
        """A flat work buffer; :func:`view2d` cuts contiguous 2-D views out of it."""
        return np.empty(size, dtype=dtype)

    def matmul(self, a, b, out):
        """``a @ b`` written into ``out`` (no allocation)."""
        return np.matmul(a, b, out=out)

    def subtract(self, a, b, out):
        """``a - b`` written into ``out``."""
        return np.subtract(a, b, out=out)

    def synchronize(self) -> None:
        pass


class TorchBackend:
    """torch implementation (``device`` is ``"cpu"`` or ``"cuda"``)."""

    def __init__(self, device: str = "cpu"):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.name = "torch" if self.device.type == "cpu" else "torch_cuda"

    def _dtype(self, dtype):
        return {np.dtype(np.float32): self.torch.float32,
                np.dtype(np.float64): self.torch.float64}[np.dtype(dtype)]

    def asarray(self, a, dtype):
        if isinstance(a, self.torch.Tensor):
            return a.to(device=self.device, dtype=self._dtype(dtype))
        host = self.torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))
        return host.to(self.device)

    def index(self, idx: np.ndarray):
        sl = as_slice(idx)
        return sl if sl is not None else self.index_array(idx)

    def index_array(self, idx: np.ndarray):
        return self.torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.device)

    def to_numpy(self, a) -> np.ndarray:
        if isinstance(a, np.ndarray):
            return a
        return a.detach().cpu().numpy()

    def eigh(self, S):
        return self.torch.linalg.eigh(S)

    def eigh_width(self) -> int:
        return 1

    def eigh_many(self, mats: list) -> list:
        return [self.eigh(S) for S in mats]

    def qr_r(self, M):
        return self.torch.linalg.qr(M, mode="r")[1]

    def sumsq0(self, a):
        return self.torch.linalg.vector_norm(a, dim=0).square()

    def dot0(self, a, b):
        return (a * b).sum(0)

    def zeros(self, shape, dtype):
        return self.torch.zeros(shape, dtype=self._dtype(dtype), device=self.device)

    def empty(self, size: int, dtype):
        return self.torch.empty(size, dtype=self._dtype(dtype), device=self.device)

    def matmul(self, a, b, out):
        return self.torch.matmul(a, b, out=out)

    def subtract(self, a, b, out):
        return self.torch.sub(a, b, out=out)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)


def as_slice(idx) -> slice | None:
    """``slice(start, stop)`` if ``idx`` is a non-empty contiguous ascending integer range."""
    idx = np.asarray(idx)
    if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
        return None
    start = int(idx[0])
    if start < 0 or not np.array_equal(idx, np.arange(start, start + idx.size)):
        return None
    return slice(start, start + idx.size)


def view2d(buf, rows: int, cols: int):
    """A C-contiguous ``(rows, cols)`` view of the first ``rows * cols`` items of ``buf``."""
    return buf[: rows * cols].reshape(rows, cols)


def get_backend(name: str):
    """Backend object for ``name`` in :data:`BACKENDS`.

    Raises
    ------
    InputError
        For an unknown name, if torch is not installed, or ``"torch_cuda"`` without a GPU.
    """
    if name == "numpy":
        return NumpyBackend()
    if name not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}; got {name!r}.")
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of mmneuro
        raise InputError(f"backend={name!r} needs torch; install it or use backend='numpy'.") from None
    if name == "torch_cuda":
        if not torch.cuda.is_available():
            raise InputError(
                "backend='torch_cuda' but torch.cuda.is_available() is False on this machine; "
                "use backend='torch' (CPU) or 'numpy'."
            )
        return TorchBackend("cuda")
    return TorchBackend("cpu")
