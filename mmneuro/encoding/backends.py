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

from mmneuro.errors import InputError

__all__ = ["BACKENDS", "get_backend", "NumpyBackend", "TorchBackend"]

BACKENDS = ("numpy", "torch", "torch_cuda")


class NumpyBackend:
    """numpy / scipy implementation of the backend interface."""

    name = "numpy"

    def asarray(self, a, dtype) -> np.ndarray:
        """Host array -> backend array of ``dtype`` (no copy when already right)."""
        return np.ascontiguousarray(a, dtype=dtype)

    def index(self, idx: np.ndarray) -> np.ndarray:
        return idx

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(a)

    def eigh(self, S):
        """Eigen-decomposition of a symmetric matrix: ``(w ascending, V)``."""
        import scipy.linalg

        try:  # divide and conquer: the fastest LAPACK driver for all eigenpairs
            return scipy.linalg.eigh(S, driver="evd", check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            return scipy.linalg.eigh(S, driver="ev", check_finite=False)

    def qr_r(self, M):
        """R factor of the thin QR of ``M`` (m >= k): ``M.T @ M == R.T @ R``."""
        import scipy.linalg

        return scipy.linalg.qr(M, mode="r", check_finite=False)[0]

    def absmax0(self, a):
        """Column-wise max of ``|a|``."""
        return np.abs(a).max(axis=0)

    def sumsq0(self, a, inplace: bool = False):
        """Column-wise sum of squares (``a`` is overwritten if ``inplace``)."""
        if inplace:
            np.multiply(a, a, out=a)
            return a.sum(axis=0)
        return np.einsum("ij,ij->j", a, a)

    def dot0(self, a, b):
        """Column-wise dot products ``sum_i a[i, j] * b[i, j]``."""
        return np.einsum("ij,ij->j", a, b)

    def zeros(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

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
        return self.torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.device)

    def to_numpy(self, a) -> np.ndarray:
        if isinstance(a, np.ndarray):
            return a
        return a.detach().cpu().numpy()

    def eigh(self, S):
        return self.torch.linalg.eigh(S)

    def qr_r(self, M):
        return self.torch.linalg.qr(M, mode="r")[1]

    def absmax0(self, a):
        return a.abs().amax(0)

    def sumsq0(self, a, inplace: bool = False):
        if inplace:
            a.mul_(a)
            return a.sum(0)
        return (a * a).sum(0)

    def dot0(self, a, b):
        return (a * b).sum(0)

    def zeros(self, shape, dtype):
        return self.torch.zeros(shape, dtype=self._dtype(dtype), device=self.device)

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)


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
