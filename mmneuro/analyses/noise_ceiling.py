"""Noise ceilings of the held-out data, by the method the dataset names, optionally cached.

``Dataset.ceiling`` picks the method (:data:`METHODS`):

* ``"repeats"``: bias-corrected explainable variance of the repeated test runs
  (:func:`~mmneuro.brain.ceiling.explainable_variance`, then ``ceiling_r``), per subject;
* ``"split-half"``: split-half reliability of the repeated test runs with the
  Spearman-Brown correction (:func:`~mmneuro.brain.ceiling.split_half_reliability`), per subject;
* ``"loo-isc"``: leave-one-out inter-subject correlation (:func:`~mmneuro.brain.ceiling.loo_isc`)
  on the scored rows of the evaluation plan, the rows the model's r is computed on;
* ``"ridge"``: ridge prediction from the other subjects, fold by fold
  (:func:`~mmneuro.brain.ceiling.cross_subject_ceiling`), averaged over folds;
* ``"auto"``: ``"repeats"`` when every test run of a held-out evaluation was presented at
  least twice to every subject, else ``"loo-isc"``.

Ceilings are deterministic functions of the responses, so :func:`noise_ceilings` can keep
them in a folder (``cache``): one ``<method>-<sha256>.npz`` per computation, keyed by the
method and its parameters, the evaluation plan, the subject labels, and the bytes of every
subject's response arrays and valid mask (:func:`ceiling_key`). Files are written
atomically and carry the sha256 of their arrays (``"sha256"``), verified on read; an
unreadable or corrupt one (bad zip, flipped bits, wrong checksum) is recomputed with a
warning that names it. For a feature
cache root, :func:`ceiling_cache_dir` gives the folder to use.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mmneuro.analyses.heldout import evaluation_plan, response_matrix
from mmneuro.analyses.summary import roi_means
from mmneuro.brain.ceiling import (
    DEFAULT_ALPHAS as RIDGE_ALPHAS,
    ceiling_r,
    cross_subject_ceiling,
    explainable_variance,
    loo_isc,
    split_half_reliability,
)
from mmneuro.datasets.base import Dataset, Responses, StimulusRun
from mmneuro.errors import InputError

#: the concrete methods (``Dataset.ceiling`` may also be ``"auto"``)
METHODS = ("repeats", "loo-isc", "split-half", "ridge")
#: methods computed from one subject's own repeats
PER_SUBJECT = ("repeats", "split-half")
#: the ceiling cache's folder inside a feature cache root (a name ``FeatureStore`` never gives a model)
CACHE_FOLDER = ".ceilings"
#: bumped whenever a method's numbers or the file layout change, so old files are not reused
#: (2: files carry a sha256 of their arrays)
CACHE_FORMAT = 2
#: split-half parameters (part of the cache key)
SPLIT_HALF_MAX_SPLITS = 64
SPLIT_HALF_SEED = 0


@dataclass
class Ceiling:
    """Noise ceiling in r units per target and how it was obtained (``method``: one of :data:`METHODS`).

    For repeat-based ceilings (``repeats``, ``split-half``) ``ev`` (n_targets,) keeps the
    single-presentation reliability (bias-corrected explainable variance, or its split-half
    estimate): it is unbiased per target, while ``r`` (a concave function of it) is biased low
    when averaged over noisy targets, so ROI ceilings are computed from the ROI's mean ``ev``.
    Invalid targets are NaN.
    """

    r: np.ndarray
    method: str
    ev: np.ndarray | None = None
    n_repeats: int | None = None

    def roi_means(self, rois: dict[str, np.ndarray]) -> dict[str, float]:
        """Ceiling per ROI: ``ceiling_r(mean ev)`` for repeat-based methods, the mean r otherwise."""
        if self.ev is None:
            return roi_means(self.r, rois)
        return {name: float(ceiling_r(np.array([value]), self.n_repeats)[0]) if np.isfinite(value) else float("nan")
                for name, value in roi_means(self.ev, rois).items()}


def ceiling_cache_dir(feature_cache: str | Path | None) -> Path | None:
    """The ceiling cache inside a feature cache root: ``<root>/.ceilings`` (None for None).

    The feature store lays out ``<root>/<model>/<digest>/`` with the model name passed through
    a sanitiser that never yields a name starting with a dot, so this folder can never be a
    model's; it lives inside the cache root, so ``$MMNEURO_CACHE`` / ``--cache`` move it too.
    """
    return None if feature_cache is None else Path(feature_cache) / CACHE_FOLDER


# --------------------------------------------------------------------------- choosing

def has_repeats(dataset: Dataset, responses: Responses) -> bool:
    """True when the evaluation is held out and every test run was presented at least twice."""
    test_runs = dataset.test_runs if dataset.evaluation == "heldout" else []
    return bool(test_runs) and all(r.name in responses.runs and responses.runs[r.name].shape[0] >= 2
                                   for r in test_runs)


def ceiling_method(dataset: Dataset, everyone: Sequence[Responses]) -> str:
    """The method :func:`noise_ceilings` uses for ``everyone``: ``dataset.ceiling``, with ``"auto"``
    resolved to ``"repeats"`` when every subject has repeated test runs, else ``"loo-isc"``."""
    method = dataset.ceiling
    if method == "auto":
        return "repeats" if everyone and all(has_repeats(dataset, o) for o in everyone) else "loo-isc"
    if method not in METHODS:
        raise InputError(f"dataset {dataset.name!r}: unknown ceiling method {method!r}; "
                         f"expected 'auto' or one of {', '.join(METHODS)}")
    return method


# --------------------------------------------------------------------------- entry points

def noise_ceilings(dataset: Dataset, everyone: Sequence[Responses], cache: str | Path | None = None,
                   method: str | None = None) -> dict[str, Ceiling]:
    """Every subject's ceiling by ``dataset.ceiling`` (or ``method``), keyed by subject label.

    ``everyone``: the subjects' responses (for cross-subject methods, every usable subject of
    the dataset: each subject's ceiling depends on the others). Per-subject methods need no
    other subject. ``cache``: a folder to read ceilings from / write them to (see the module
    docstring); None computes every time.
    """
    everyone = list(everyone)
    if not everyone:
        raise InputError("noise_ceilings: no subjects' responses given")
    method = ceiling_method(dataset, everyone) if method is None else method
    if method not in METHODS:
        raise InputError(f"unknown ceiling method {method!r}; expected one of {', '.join(METHODS)}")
    if method in PER_SUBJECT:
        out = {}
        for o in everyone:
            out.update(_cached(dataset, method, [o], cache))
        return out
    if len(everyone) < 2:
        raise InputError(f"dataset {dataset.name!r}: the {method!r} ceiling compares subjects and needs at least 2, "
                         f"got {len(everyone)}; use a dataset with more subjects or ceiling='repeats' with repeated "
                         f"test runs")
    return _cached(dataset, method, everyone, cache)


def subject_ceilings(dataset: Dataset, responses: Responses, everyone: Callable[[], Sequence[Responses]],
                     cache: str | Path | None = None) -> dict[str, Ceiling]:
    """The ceiling of ``responses``'s subject, keyed by subject label.

    A per-subject method (``"auto"`` with this subject's test runs repeated counts as
    ``"repeats"``) returns just this subject's and never calls ``everyone``; a cross-subject
    method calls ``everyone()`` (every usable subject, this one included) and returns every
    subject's ceiling, so a caller looping over subjects computes them once.
    """
    method = dataset.ceiling
    if method == "auto":
        method = "repeats" if has_repeats(dataset, responses) else "loo-isc"
    if method in PER_SUBJECT:
        return noise_ceilings(dataset, [responses], cache, method)
    out = noise_ceilings(dataset, list(everyone()), cache, method)
    if responses.subject not in out:
        raise InputError(f"subject {responses.subject!r} is not among the subjects whose responses were given "
                         f"for the cross-subject ceiling: {sorted(out)}")
    return out


def noise_ceiling(dataset: Dataset, responses: Responses,
                  others: Callable[[], list[Responses]] | None = None,
                  cache: str | Path | None = None) -> Ceiling:
    """One subject's ceiling by ``dataset.ceiling`` (see :func:`subject_ceilings`).

    ``others`` returns every usable subject's responses (the subject itself included); it is
    only called for cross-subject methods. For many subjects use :func:`noise_ceilings`.
    """
    def everyone() -> list[Responses]:
        if others is None:
            raise InputError(f"dataset {dataset.name!r}: no repeated test run (or a cross-subject ceiling method): "
                             f"the ceiling needs the other subjects' responses")
        return others()

    return subject_ceilings(dataset, responses, everyone, cache)[responses.subject]


# --------------------------------------------------------------------------- the methods

def _test_repeats(dataset: Dataset, responses: Responses, method: str) -> np.ndarray:
    """The subject's repeated test runs side by side in time: (n_repeats, sum n_trs, n_targets)."""
    if not has_repeats(dataset, responses):
        raise InputError(f"dataset {dataset.name!r}, subject {responses.subject}: the {method!r} ceiling needs a "
                         f"held-out evaluation whose every test run was presented at least twice; set the dataset's "
                         f"ceiling to 'loo-isc' (or 'ridge') for single presentations")
    blocks = [responses.runs[r.name] for r in dataset.test_runs]
    counts = {b.shape[0] for b in blocks}
    if len(counts) != 1:
        detail = ", ".join(f"{r.name}: {b.shape[0]}" for r, b in zip(dataset.test_runs, blocks))
        raise InputError(f"subject {responses.subject}: test runs have different numbers of repeats ({detail}); "
                         f"a {method!r} ceiling needs the same number in every test run")
    return np.concatenate(blocks, axis=1)


def _masked(values: np.ndarray | None, responses: Responses) -> np.ndarray | None:
    if values is None or responses.valid is None:
        return values
    return np.where(responses.valid, values, np.nan)


def repeat_ceiling(dataset: Dataset, responses: Responses) -> Ceiling | None:
    """Ceiling from the repeated test runs (bias-corrected explainable variance), or None without repeats."""
    if not has_repeats(dataset, responses):
        return None
    repeats = _test_repeats(dataset, responses, "repeats")
    ev = _masked(explainable_variance(repeats), responses)
    return Ceiling(ceiling_r(ev, repeats.shape[0]), "repeats", ev, repeats.shape[0])


def split_half_ceilings(dataset: Dataset, responses: Responses) -> Ceiling:
    """Ceiling from split halves of the repeated test runs, Spearman-Brown corrected to all repeats."""
    repeats = _test_repeats(dataset, responses, "split-half")
    ev = _masked(split_half_reliability(repeats, SPLIT_HALF_MAX_SPLITS, SPLIT_HALF_SEED), responses)
    return Ceiling(ceiling_r(ev, repeats.shape[0]), "split-half", ev, repeats.shape[0])


def loo_isc_ceilings(dataset: Dataset, everyone: Sequence[Responses]) -> dict[str, Ceiling]:
    """Leave-one-out ISC of each subject against the mean of the others, on the scored rows of the
    evaluation plan (the rows held-out r is computed on; repeats averaged). Invalid targets are NaN."""
    plan = evaluation_plan(dataset)
    series = [response_matrix(o, plan.runs)[plan.scored] for o in everyone]
    r_all = loo_isc(series)
    return {o.subject: Ceiling(_masked(r, o), "loo-isc") for o, r in zip(everyone, r_all)}


def cross_subject_ceilings(dataset: Dataset, everyone: Sequence[Responses]) -> dict[str, Ceiling]:
    """r of predicting each subject's held-out data from the other subjects' by ridge, per target.

    Follows the dataset's evaluation folds (averaged over folds); invalid targets are NaN.
    """
    plan = evaluation_plan(dataset)
    series = [response_matrix(o, plan.runs) for o in everyone]
    per_fold = np.stack([cross_subject_ceiling([y[train] for y in series], [y[test] for y in series])
                         for train, test in plan.folds])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN targets stay NaN
        r_all = np.nanmean(per_fold, axis=0)
    return {o.subject: Ceiling(_masked(r, o), "ridge") for o, r in zip(everyone, r_all)}


def compute_ceilings(dataset: Dataset, method: str, everyone: Sequence[Responses]) -> dict[str, Ceiling]:
    """``method``'s ceilings of ``everyone``, computed (no cache)."""
    if method == "repeats":
        out = {}
        for o in everyone:
            ceiling = repeat_ceiling(dataset, o)
            if ceiling is None:
                _test_repeats(dataset, o, "repeats")  # raises, saying what to do
            out[o.subject] = ceiling
        return out
    if method == "split-half":
        return {o.subject: split_half_ceilings(dataset, o) for o in everyone}
    if method == "loo-isc":
        return loo_isc_ceilings(dataset, everyone)
    if method == "ridge":
        return cross_subject_ceilings(dataset, everyone)
    raise InputError(f"unknown ceiling method {method!r}; expected one of {', '.join(METHODS)}")


# --------------------------------------------------------------------------- the cache

def _method_params(method: str) -> str:
    if method == "ridge":
        return "alphas=" + ",".join(repr(float(a)) for a in RIDGE_ALPHAS)
    if method == "split-half":
        return f"max_splits={SPLIT_HALF_MAX_SPLITS},seed={SPLIT_HALF_SEED},zscore=True"
    if method == "repeats":
        return "bias_correction=True,zscore=True"
    return ""


def _runs_used(dataset: Dataset, method: str) -> tuple[list[StimulusRun], list[np.ndarray]]:
    """The runs a method reads and the index arrays that say how (folds, scored rows)."""
    if method in PER_SUBJECT:
        return list(dataset.test_runs), []
    plan = evaluation_plan(dataset)
    return plan.runs, [a for fold in plan.folds for a in fold] + [plan.scored]


def ceiling_key(dataset: Dataset, method: str, everyone: Sequence[Responses]) -> str:
    """sha256 (hex) of everything ``method``'s ceilings of ``everyone`` depend on.

    Hashed: the cache format, the method and its parameters, the runs it reads (names, TR
    counts) and the evaluation plan's folds and scored rows as index bytes, and per subject
    its label, its valid mask and, per run, the response array's dtype, shape and bytes.
    """
    runs, indices = _runs_used(dataset, method)
    h = hashlib.sha256()

    def put(text: str) -> None:
        data = text.encode()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)

    def put_array(a: np.ndarray) -> None:
        a = np.ascontiguousarray(a)
        put(f"{a.dtype.str}{a.shape}")
        h.update(memoryview(a).cast("B"))

    put(f"mmneuro-ceiling/{CACHE_FORMAT}")
    put(method)
    put(_method_params(method))
    put(";".join(f"{r.name}:{r.n_trs}" for r in runs))
    put(str(len(indices)))
    for a in indices:
        put_array(np.asarray(a, dtype=np.int64))
    for o in everyone:
        put(str(o.subject))
        if o.valid is None:
            put("valid:None")
        else:
            put_array(np.asarray(o.valid, dtype=bool))
        for r in runs:
            if r.name not in o.runs:
                put(f"run {r.name}: missing")
                continue
            put(r.name)
            put_array(o.runs[r.name])
    return h.hexdigest()


def _arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """sha256 of a cache file's arrays (name, dtype, shape and bytes of each, by name; ``sha256`` itself excluded)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name == "sha256":
            continue
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


def _to_arrays(digest: str, method: str, ceilings: dict[str, Ceiling]) -> dict[str, np.ndarray]:
    subjects = list(ceilings)
    arrays = {"key": np.array(digest), "method": np.array(method), "format": np.array(CACHE_FORMAT),
              "subjects": np.array(subjects, dtype=str),
              "r": np.stack([np.asarray(ceilings[s].r, dtype=np.float64) for s in subjects])}
    if all(ceilings[s].ev is not None for s in subjects):
        arrays["ev"] = np.stack([np.asarray(ceilings[s].ev, dtype=np.float64) for s in subjects])
        arrays["n_repeats"] = np.array([int(ceilings[s].n_repeats) for s in subjects])
    arrays["sha256"] = np.array(_arrays_sha256(arrays))
    return arrays


def _from_file(path: Path, digest: str, method: str, subjects: list[str], n_targets: int) -> dict[str, Ceiling]:
    with np.load(path, allow_pickle=False) as f:
        stored = {k: f[k] for k in f.files}
    if "sha256" not in stored or str(stored["sha256"]) != _arrays_sha256(stored):
        raise ValueError("its arrays do not match the sha256 written with them (corrupt file)")
    if str(stored["key"]) != digest or str(stored["method"]) != method or int(stored["format"]) != CACHE_FORMAT:
        raise ValueError("its key, method or format does not match the file name")
    if list(stored["subjects"]) != subjects or stored["r"].shape != (len(subjects), n_targets):
        raise ValueError(f"it holds subjects {list(stored['subjects'])} with r of shape {stored['r'].shape}, "
                         f"expected {subjects} and {(len(subjects), n_targets)}")
    ev = stored.get("ev")
    n_rep = stored.get("n_repeats")
    return {s: Ceiling(stored["r"][i], method, None if ev is None else ev[i],
                       None if n_rep is None else int(n_rep[i])) for i, s in enumerate(subjects)}


def _write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _cached(dataset: Dataset, method: str, everyone: list[Responses], cache: str | Path | None) -> dict[str, Ceiling]:
    if cache is None:
        return compute_ceilings(dataset, method, everyone)
    subjects = [str(o.subject) for o in everyone]
    if len(set(subjects)) != len(subjects):
        raise InputError(f"noise_ceilings: subject labels repeat: {subjects}")
    digest = ceiling_key(dataset, method, everyone)
    path = Path(cache) / f"{method}-{digest}.npz"
    if path.is_file():
        try:
            return _from_file(path, digest, method, subjects, everyone[0].n_targets)
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
            warnings.warn(f"noise-ceiling cache file {path} is unreadable ({type(err).__name__}: {err}); "
                          f"recomputing and replacing it", RuntimeWarning, stacklevel=3)
    out = compute_ceilings(dataset, method, everyone)
    try:
        _write_atomic(path, _to_arrays(digest, method, out))
    except OSError as err:
        warnings.warn(f"noise-ceiling cache: could not write {path} ({err}); the ceilings were computed but "
                      f"not stored", RuntimeWarning, stacklevel=3)
    return out
