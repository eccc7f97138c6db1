"""Cross-validation splits that respect time: contiguous folds and leave-runs-out.

fMRI samples are autocorrelated, so folds are blocks of consecutive samples (never shuffled),
or whole runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sklearn.model_selection import BaseCrossValidator

from mmneuro.errors import InputError

__all__ = ["contiguous_kfold", "LeaveRunsOut", "ChunkedBootstrap"]


def _check_n_splits(n_splits, n_items: int, what: str) -> int:
    if isinstance(n_splits, (bool, np.bool_)) or not isinstance(n_splits, (int, np.integer)):
        raise InputError(f"n_splits must be an integer >= 2; got {n_splits!r}.")
    n_splits = int(n_splits)
    if n_splits < 2:
        raise InputError(f"n_splits must be >= 2 for cross-validation; got n_splits={n_splits}.")
    if n_splits > n_items:
        raise InputError(
            f"Cannot make n_splits={n_splits} folds from {what}={n_items}; "
            f"use at most {n_items} folds or provide more data."
        )
    return n_splits


def contiguous_kfold(n_samples: int, n_splits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds of consecutive samples, in order, without shuffling.

    Fold ``k`` validates on one contiguous block and trains on everything else. Block sizes
    differ by at most one; the first ``n_samples % n_splits`` blocks get the extra sample
    (the same folds as ``sklearn.model_selection.KFold(n_splits, shuffle=False)``).

    Parameters
    ----------
    n_samples : int
        Number of samples (time points).
    n_splits : int
        Number of folds, ``2 <= n_splits <= n_samples``.

    Returns
    -------
    folds : list of ``(train_idx, val_idx)`` int64 arrays, ``n_splits`` long.

    Raises
    ------
    InputError
        If ``n_splits < 2`` or ``n_splits > n_samples`` (message names both numbers).
    """
    if isinstance(n_samples, (bool, np.bool_)) or not isinstance(n_samples, (int, np.integer)):
        raise InputError(f"n_samples must be a non-negative integer; got {n_samples!r}.")
    n_samples = int(n_samples)
    if n_samples < 0:
        raise InputError(f"n_samples must be >= 0; got n_samples={n_samples}.")
    n_splits = _check_n_splits(n_splits, n_samples, "n_samples")
    sizes = np.full(n_splits, n_samples // n_splits, dtype=np.int64)
    sizes[: n_samples % n_splits] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    idx = np.arange(n_samples, dtype=np.int64)
    folds = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        val = idx[start:stop]
        train = np.concatenate([idx[:start], idx[stop:]])
        folds.append((train, val))
    return folds


class LeaveRunsOut(BaseCrossValidator):
    """Hold out whole runs: no validation sample shares a run with a training sample.

    ``groups`` gives the run label of every sample (any hashable, sortable labels, e.g. run
    numbers). Runs are ordered by their first appearance in ``groups``.

    Parameters
    ----------
    n_splits : int or None
        ``None`` (default): leave-one-run-out, one fold per run. An integer ``K``: the runs
        (in order of first appearance) are split into ``K`` consecutive blocks whose sizes
        differ by at most one run, and each fold holds out one block. ``K`` must not exceed
        the number of runs.

    Examples
    --------
    >>> import numpy as np
    >>> runs = np.repeat([0, 1, 2], 4)
    >>> [val.tolist() for _, val in LeaveRunsOut().split(np.zeros((12, 1)), groups=runs)]
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    """

    def __init__(self, n_splits: int | None = None):
        self.n_splits = n_splits

    @staticmethod
    def _runs(groups, n_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return (per-sample run index in order of first appearance, n_runs-long labels)."""
        if groups is None:
            raise InputError(
                "LeaveRunsOut needs `groups`: the run label of every sample "
                "(e.g. np.repeat(run_ids, run_lengths))."
            )
        groups = np.asarray(groups)
        if groups.ndim != 1:
            raise InputError(f"groups must be 1-D (one run label per sample); got shape {groups.shape}.")
        if n_samples is not None and groups.shape[0] != n_samples:
            raise InputError(
                f"groups has {groups.shape[0]} labels but X has {n_samples} samples; "
                "give one run label per sample."
            )
        labels, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # runs in order of first appearance
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        return rank[inverse.reshape(-1)], labels[order]

    def _blocks(self, n_runs: int) -> list[np.ndarray]:
        if self.n_splits is None:
            if n_runs < 2:
                raise InputError(
                    f"Leave-runs-out cross-validation needs at least 2 runs; groups has {n_runs}."
                )
            return [np.array([r]) for r in range(n_runs)]
        k = _check_n_splits(self.n_splits, n_runs, "n_runs")
        return [fold for _, fold in contiguous_kfold(n_runs, k)]

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of folds: ``n_splits`` if set, else the number of distinct runs in ``groups``."""
        if self.n_splits is not None:
            return int(self.n_splits)
        run_idx, labels = self._runs(groups)
        return len(self._blocks(labels.size))

    def _iter_test_masks(self, X=None, y=None, groups=None) -> Iterator[np.ndarray]:
        n_samples = None if X is None else len(X)
        run_idx, labels = self._runs(groups, n_samples)
        for block in self._blocks(labels.size):
            yield np.isin(run_idx, block)

    def split(self, X, y=None, groups=None):
        """Yield ``(train_idx, val_idx)`` int arrays, one pair per fold.

        Parameters
        ----------
        X : array of shape (n_samples, ...)
            Only its length is used.
        y : ignored
        groups : array of shape (n_samples,)
            Run label of every sample.
        """
        n = len(X)
        idx = np.arange(n, dtype=np.int64)
        for mask in self._iter_test_masks(X, y, groups):
            yield idx[~mask], idx[mask]


class ChunkedBootstrap(BaseCrossValidator):
    """Huth-lab style bootstrap CV: hold out random chunks of consecutive samples.

    Each of ``nboots`` splits cuts the samples into consecutive chunks of ``chunklen``
    samples (a last, shorter remainder is never held out), shuffles the chunks and holds out
    the first ``nchunks`` of them; everything else trains. This is the resampling of
    ``bootstrap_ridge`` in the Huth lab's ``ridge.py`` (same parameter names), with numpy's
    seeded generator instead of Python's ``random``: the same ``random_state`` gives the
    same splits. Held-out chunks keep temporal autocorrelation out of the validation set
    better than single samples. Scores are averaged over the ``nboots`` splits, as Huth
    averages the bootstrap correlation matrices.

    Parameters
    ----------
    nboots : int, default 15
        Number of random splits (>= 1).
    chunklen : int, default 40
        Length of a held-out chunk, in samples (TRs).
    nchunks : int, default 20
        Chunks held out per split; ``nchunks * chunklen`` must leave at least one training
        sample.
    random_state : int or None, default 0
        Seed of ``numpy.random.default_rng``; ``None`` draws fresh entropy (not reproducible).

    Examples
    --------
    >>> cv = ChunkedBootstrap(nboots=2, chunklen=3, nchunks=2, random_state=0)
    >>> [val.size for _, val in cv.split(np.zeros((20, 1)))]
    [6, 6]
    """

    def __init__(self, nboots: int = 15, chunklen: int = 40, nchunks: int = 20,
                 random_state=0):
        self.nboots = nboots
        self.chunklen = chunklen
        self.nchunks = nchunks
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return int(self.nboots)

    def _check(self, n_samples: int) -> tuple[int, int, int]:
        vals = []
        for name in ("nboots", "chunklen", "nchunks"):
            val = getattr(self, name)
            if isinstance(val, (bool, np.bool_)) or not isinstance(val, (int, np.integer)) or val < 1:
                raise InputError(f"ChunkedBootstrap: {name} must be a positive integer; got {val!r}.")
            vals.append(int(val))
        nboots, chunklen, nchunks = vals
        n_full = n_samples // chunklen
        if nchunks > n_full or nchunks * chunklen >= n_samples:
            raise InputError(
                f"ChunkedBootstrap: cannot hold out nchunks={nchunks} chunks of chunklen={chunklen} "
                f"from n_samples={n_samples} ({n_full} whole chunks) and keep training samples; "
                "use fewer or shorter chunks."
            )
        return nboots, chunklen, nchunks

    def _iter_test_masks(self, X=None, y=None, groups=None) -> Iterator[np.ndarray]:
        n = len(X)
        nboots, chunklen, nchunks = self._check(n)
        rng = np.random.default_rng(self.random_state)
        n_full = n // chunklen
        for _ in range(nboots):
            held = rng.permutation(n_full)[:nchunks]
            mask = np.zeros(n, dtype=bool)
            for c in np.sort(held):
                mask[c * chunklen:(c + 1) * chunklen] = True
            yield mask

    def split(self, X, y=None, groups=None):
        """Yield ``(train_idx, val_idx)`` int arrays, ``nboots`` pairs (``groups`` ignored)."""
        n = len(X)
        idx = np.arange(n, dtype=np.int64)
        for mask in self._iter_test_masks(X, y, groups):
            yield idx[~mask], idx[mask]
