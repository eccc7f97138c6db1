"""The encode pipeline: stimuli -> features -> TR alignment -> ridge per layer -> scores on held-out data.

The CLI and the notebooks call these functions; nothing here parses arguments.

Shapes: feature arrays are ``(n_trs, n_features)`` per run, responses ``(n_repeats, n_trs,
n_targets)`` per run; a score vector is ``(n_targets,)``.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from mmneuro.analyses.heldout import DEFAULT_ALPHAS, LayerFit, fit_evaluate
from mmneuro.analyses.noise_ceiling import Ceiling, ceiling_cache_dir, subject_ceilings
from mmneuro.analyses.summary import summarize
from mmneuro.datasets.base import Dataset, Responses, StimulusRun
from mmneuro.errors import InputError
from mmneuro.features.align import lanczos_resample
from mmneuro.provenance import Timings, provenance
from mmneuro.results import ResultFolder, check_component, config_digest, result_dir, safe_path, write_json

DEFAULT_CACHE = Path(os.environ.get("MMNEURO_CACHE", Path.home() / ".cache" / "mmneuro" / "features"))


# --------------------------------------------------------------------------- datasets

def load_dataset(spec: str | Path | Dataset) -> Dataset:
    """A dataset through its description: ``"demo"``, a known name (``"alice"``), a folder holding
    ``mmneuro.toml`` or a description file (see :mod:`mmneuro.datasets.catalog`)."""
    from mmneuro.datasets.catalog import open_dataset

    return open_dataset(spec)


def resolve_subjects(dataset: Dataset, subject: str | int) -> list[str]:
    """``"all"`` -> every usable subject; ``1``, ``"01"`` or ``"sub-01"`` -> ``["01"]``; error listing the
    choices otherwise. Every subject's files are checked first (headers only: a cross-subject ceiling reads
    them all), so a missing file or a wrong length stops the run before anything is computed or written."""
    dataset.preflight()
    if str(subject) == "all":
        return list(dataset.subjects)
    text = str(subject).removeprefix("sub-")
    for label in dataset.subjects:
        if label == text or (text.isdigit() and label.isdigit() and int(label) == int(text)):
            return [label]
    raise InputError(f"subject {text!r} is not in dataset {dataset.name!r}; usable subjects: "
                     f"{', '.join(dataset.subjects)}" + (f" ({'; '.join(dataset.notes)})" if dataset.notes else ""))


# --------------------------------------------------------------------------- features

def model_features(model: str, dataset: Dataset, layers: Sequence[str] | None = None, weights: str | None = None,
                   allow_download: bool = False, device: str | None = None, cache: Path | None = DEFAULT_CACHE,
                   seed: int = 0, progress: bool = True,
                   model_options: dict[str, Any] | None = None,
                   window: str | None = None) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Extract (or read from the cache) a model's layers for every run, aligned to the run's TRs.

    ``model_options`` go to the adapter (e.g. ``n_frames``, ``n_context``, ``config`` for random
    weights); ``window``: ``"clip"`` or ``"context:SECONDS"`` (default: the adapter's, else clip).
    The names in :data:`EVENT_MODELS` read each run's events TSV instead of a model (one column per
    trial type; ``oversampling`` may be given in ``model_options``).
    Returns ``({layer: {run: (n_trs, n_features) float32}}, weights_info)``.
    """
    from mmneuro.features.extract import extract_run
    from mmneuro.features.store import FeatureStore
    from mmneuro.models.registry import get_adapter

    if model in EVENT_MODELS:
        return event_model_features(model, dataset, cache, model_options)
    adapter = get_adapter(model, weights=weights, device=device, allow_download=allow_download, seed=seed,
                          **(model_options or {}))
    chosen = select_layers(adapter.layer_names, layers)
    store = FeatureStore(cache) if cache is not None else None
    by_layer: dict[str, dict[str, np.ndarray]] = {layer: {} for layer in chosen}
    for run in dataset.runs:
        timed = extract_run(adapter, run, layers=chosen, store=store, device=device, progress=progress, window=window)
        for layer in chosen:
            by_layer[layer][run.name] = to_tr_grid(timed[layer].data, timed[layer].times, run, dataset.tr)
    return by_layer, weights_record(adapter.weights)


#: Event regressors as a model: ``events`` = the fraction of each TR an event of each type covers
#: (with the dataset's FIR delays: a finite impulse response model), ``events-hrf`` = the same
#: convolved with the canonical HRF (delays ``(0,)`` by default: the HRF already holds the lag).
EVENT_MODELS = {"events": "boxcar", "events-hrf": "hrf"}


def event_model_features(model: str, dataset: Dataset, cache: Path | None,
                         model_options: dict[str, Any] | None = None) -> tuple[dict[str, dict[str, np.ndarray]],
                                                                               dict[str, Any]]:
    """``{kind: {run: (n_trs, n_types)}}`` from every run's events TSV (cached like model features)."""
    from mmneuro.features.events import dataset_trial_types, event_features
    from mmneuro.features.store import FeatureStore

    missing = [r.name for r in dataset.runs if r.events is None]
    if missing:
        raise InputError(f"--model {model}: runs {missing} of dataset {dataset.name!r} have no events file "
                         f"(runs.<name>.events in its description)")
    kind = EVENT_MODELS[model]
    options = dict(model_options or {})
    by_run = event_features(dataset.runs, dataset.tr, kind, FeatureStore(cache) if cache is not None else None,
                            oversampling=int(options.get("oversampling", 15)))
    types = dataset_trial_types(dataset.runs)
    return {kind: by_run}, {"kind": "events", "location": None, "identity": f"events-{kind}", "is_random": False,
                            "trial_types": types}


def extract(model: str, stimuli: str | Path | Dataset, layers: Sequence[str] | None = None, weights: str | None = None,
            window: str | None = None, tr: float | None = None, allow_download: bool = False, device: str | None = None,
            cache: Path = DEFAULT_CACHE, seed: int = 0, progress: bool = True,
            model_options: dict[str, Any] | None = None, batch_size: int | None = None) -> list[Any]:
    """Fill the feature cache for every run of ``stimuli``, with the keys ``encode`` later reads.

    ``stimuli``: a dataset (``"demo"``, ``"alice"``, a dataset folder or a :class:`Dataset`: its
    runs and TR grid, exactly as :func:`model_features` extracts them) or a stimulus file /
    folder of files (runs by file stem, TR grid ``(i + 0.5) * tr``). Returns one
    :class:`~mmneuro.features.extract.RunReport` per run.
    """
    from mmneuro.datasets.catalog import KNOWN, is_dataset
    from mmneuro.features.extract import extract_run, stimulus_runs
    from mmneuro.features.store import FeatureStore
    from mmneuro.models.registry import get_adapter

    spec = Path(str(stimuli)) if not isinstance(stimuli, Dataset) else None
    if isinstance(stimuli, Dataset) or str(stimuli) in ("demo", *KNOWN) or is_dataset(spec):
        ds = stimuli if isinstance(stimuli, Dataset) else load_dataset(stimuli)
        if tr is not None and abs(float(tr) - ds.tr) > 1e-9:
            raise InputError(f"dataset {ds.name!r} has TR {ds.tr} s; --tr {tr} contradicts it (omit --tr)")
        runs, tr = ds.runs, None  # as model_features: the TR is inferred from each run's tr_times
    else:
        runs = stimulus_runs(spec, tr)
    adapter = get_adapter(model, weights=weights, device=device, allow_download=allow_download, seed=seed,
                          **(model_options or {}))
    chosen = select_layers(adapter.layer_names, layers)
    store = FeatureStore(cache)
    reports: list[Any] = []
    for run in runs:
        extract_run(adapter, run, layers=chosen, store=store, device=device, progress=progress, window=window, tr=tr,
                    batch_size=batch_size, report=reports)
    return reports


def precomputed_features(path: str | Path, dataset: Dataset,
                         layers: Sequence[str] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Features from ``--features``: a folder of ``<run>.npz``, one per run (or one ``.npz`` for a dataset
    of one run).

    Each file holds ``times`` (n,) on its run's stimulus clock and one (n, p) array per layer. Raises
    InputError for a single file given to a dataset of several runs (it would be reused for every run,
    the test runs included), a missing run file, or a file whose ``times`` do not cover its run's TR
    times (within one TR at each end): the uncovered TRs would silently get no features.
    """
    from mmneuro.models.precomputed import load_precomputed

    path = Path(path)
    names = [run.name for run in dataset.runs]
    if path.is_file() and len(names) > 1:
        raise InputError(f"--features {path} is one file but dataset {dataset.name!r} has {len(names)} runs; give a "
                         f"folder of <run>.npz, one per run: {', '.join(n + '.npz' for n in names)}")
    files = {run.name: (path / f"{run.name}.npz" if path.is_dir() else path) for run in dataset.runs}
    missing = [str(f) for f in files.values() if not f.exists()]
    if missing:
        raise InputError(f"precomputed features missing: {', '.join(missing)} (a folder needs one <run>.npz per run: "
                         f"{', '.join(r.name for r in dataset.runs)})")
    loaded = {name: load_precomputed(f) for name, f in files.items()}
    for run in dataset.runs:
        times = next(iter(loaded[run.name].values())).times
        if times.size == 0:
            raise InputError(f"--features {files[run.name]}: no rows ('times' is empty); run {run.name} needs "
                             f"features for its {run.n_trs} TRs")
        lo, hi = float(np.min(times)), float(np.max(times))
        first, last = float(run.tr_times[0]), float(run.tr_times[-1])
        if lo > first + dataset.tr or hi < last - dataset.tr:
            raise InputError(f"--features {files[run.name]}: its times cover {lo:.1f}-{hi:.1f} s but run {run.name} "
                             f"has TRs at {first:.1f}-{last:.1f} s (TR {dataset.tr:g} s); give features for the whole "
                             f"run (event-like features: add rows of zeros where nothing happens)")
    chosen = select_layers(list(next(iter(loaded.values()))), layers)
    return {layer: {run.name: to_tr_grid(loaded[run.name][layer].data, loaded[run.name][layer].times, run, dataset.tr)
                    for run in dataset.runs} for layer in chosen}


def select_layers(available: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    """Layers by name (``layer-3``) or index (``3``: position in ``available``); all when ``wanted`` is None."""
    if not wanted:
        return list(available)
    chosen = []
    for w in wanted:
        if w in available:
            chosen.append(w)
        elif re.fullmatch(r"-?\d+", str(w)) and -len(available) <= int(w) < len(available):
            chosen.append(available[int(w)])
        else:
            raise InputError(f"layer {w!r} not found; available layers: {', '.join(available)}")
    return chosen


def to_tr_grid(data: np.ndarray, times: np.ndarray, run: StimulusRun, tr: float) -> np.ndarray:
    """Features sampled at ``times`` -> one row per TR of ``run`` (Lanczos, cutoff 1/TR, window 3).

    Features already sampled at the run's TR times are returned unchanged. Only samples
    within the run's stimulus time (plus a Lanczos window) contribute.
    """
    data = np.asarray(data, dtype=np.float32)
    times = np.asarray(times, dtype=np.float64)
    if data.shape[0] != times.shape[0]:
        raise InputError(f"run {run.name}: features have {data.shape[0]} rows but {times.shape[0]} sample times")
    if times.shape == run.tr_times.shape and np.allclose(times, run.tr_times, atol=1e-6):
        return data
    return lanczos_resample(data, times, run.tr_times, window=3).astype(np.float32)


def weights_record(weights: Any) -> dict[str, Any]:
    """A JSON-able description of an adapter's weights."""
    fields = ("kind", "location", "identity", "is_random")
    return {f: (str(getattr(weights, f)) if f == "location" else getattr(weights, f)) for f in fields
            if hasattr(weights, f)}


def format_table(summary: dict[str, Any], title: str) -> str:
    """A short text table: one row per layer, mean r and per-ROI r (the best
    :data:`~mmneuro.plotting.tables.MAX_ROIS_SHOWN` ROIs when there are more), best layer marked with ``*``."""
    from mmneuro.plotting.tables import shown_rois

    every = list(next(iter(summary["layers"].values()))["roi_r"])
    rois = shown_rois({k: v["roi_r"] for k, v in summary["layers"].items()})
    if len(rois) < len(every):
        title += f" [best {len(rois)} of {len(every)} ROIs shown; scores.json has all]"
    head = ["layer", "mean r"] + rois
    rows = []
    for layer, entry in summary["layers"].items():
        mark = "*" if layer == summary["best_layer"] else " "
        rows.append([layer + mark, f"{entry['mean_r']:.3f}"] + [f"{entry['roi_r'][k]:.3f}" for k in rois])
    rows.append(["ceiling", ""] + [f"{summary['ceiling']['roi_mean'][k]:.3f}" for k in rois])
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([title, line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


# --------------------------------------------------------------------------- writing

def model_label(model: str, weights: dict[str, Any] | None) -> str:
    """Folder/label for a model; random weights are part of the name so no output hides them."""
    return f"{model}_random-weights" if weights and weights.get("is_random") else model


@dataclass
class EncodeResult:
    """What :func:`encode` produced for one subject."""

    dataset: str
    subject: str
    model: str
    layers: list[str]
    fits: dict[str, LayerFit]
    ceiling: Ceiling
    summary: dict[str, Any]
    weights: dict[str, Any] | None
    out_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """Digest of the config (subject excluded): names the result folders of one run."""
        return config_digest(self.config)


def write_result(result: EncodeResult, dataset: Dataset, out_dir: Path, config: dict[str, Any],
                 command: list[str] | None, seed: int) -> Path:
    """scores.json, per-layer r maps (NIfTI or .npy), figure.png and provenance.json, atomically
    (the folder's marker records ``result.config``; ``config``, with the subject, goes to provenance)."""

    from mmneuro.plotting.figures import encode_figure

    with ResultFolder(out_dir, "encode", result.config) as tmp:
        scores = dict(result.summary, dataset=result.dataset, subject=result.subject, model=result.model,
                      weights=result.weights, random_weights=bool(result.weights and result.weights.get("is_random")))
        write_json(tmp / "scores.json", scores)
        for layer in result.layers:
            write_map(result.fits[layer].r, dataset, tmp / f"r_{layer}")
        write_map(result.ceiling.r, dataset, tmp / "ceiling_r")
        best = result.summary["best_layer"]
        fig = encode_figure(result.summary, dataset.space, result.fits[best].r,
                            title=f"{result.dataset} sub-{result.subject} {model_label(result.model, result.weights)}")
        write_figure_and_provenance(tmp, fig, provenance(command, config, result.weights, seed, result.timings))
    return out_dir


def write_figure_and_provenance(folder: Path, fig: Any, record: dict[str, Any]) -> None:
    """``figure.png`` (the figure is closed after saving) and ``provenance.json`` of a result folder."""
    import matplotlib.pyplot as plt

    fig.savefig(folder / "figure.png", dpi=110)
    plt.close(fig)
    write_json(folder / "provenance.json", record)


def write_map(values: np.ndarray, dataset: Dataset, stem: Path) -> list[Path]:
    """Per-target values -> files of the dataset's target space (``stem.nii.gz``, ``stem_hemi-L|R.func.gii``,
    ``stem.npy`` + ``stem.tsv`` for parcels); ``stem.npy`` for a subset of targets. Returns the paths."""
    if dataset.space is None:
        path = Path(str(stem) + ".npy")
        np.save(path, np.asarray(values, dtype=np.float32))
        return [path]
    return dataset.space.write(values, stem)


# --------------------------------------------------------------------------- the face

def check_request(dataset: Dataset | None = None, *, out: str | Path | None = None, cache: str | Path | None = None,
                  delays: Sequence[int] | None = None, device: str | None = None, features: str | Path | None = None,
                  window: str | None = None, backend: str | None = None) -> None:
    """Refuse, with one-line InputErrors, what would otherwise fail only after the work: an ``out`` or
    ``cache`` that is a file, lies under a file or cannot be written (checked by a probe file in the
    nearest existing folder, so it holds for root too; nothing is created); delays that are negative or
    not shorter than the shortest run of ``dataset``; a device or backend this machine lacks;
    ``window`` together with ``features`` (precomputed features bring their own sample times)."""
    import tempfile

    def writable(path: str | Path, option: str) -> None:
        wanted = Path(path).expanduser()
        probe = wanted
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            where = "is a file" if probe == wanted else f"lies under {probe}, which is a file"
            raise InputError(f"{option} {wanted} {where}, not a folder; give a folder (it is created if missing)")
        try:
            if not os.access(probe, os.W_OK | os.X_OK):
                raise PermissionError(f"no write permission in {probe}")
            fd, name = tempfile.mkstemp(prefix=".mmneuro-write-check-", dir=probe)
            os.close(fd)
            os.unlink(name)
        except OSError as err:
            raise InputError(f"{option} {wanted}: cannot write in {probe} ({err.strerror or err}); choose a folder "
                             f"you can write, or fix its permissions") from None

    if out is not None:
        writable(out, "--out")
    if cache is not None:
        writable(cache, "--cache")
    if features is not None and window is not None:
        raise InputError(f"--window {window} applies to features a model extracts; --features {features} brings its "
                         f"own sample times: drop --window, or drop --features to extract with --window")
    if delays is not None:
        bad = [d for d in delays if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0]
        if bad:
            raise InputError(f"--delays {' '.join(map(str, delays))}: delays are whole TRs >= 0 (the response lags "
                             f"the stimulus); {bad[0]!r} is not")
        if dataset is not None and dataset.runs and len(delays):
            shortest = min(dataset.runs, key=lambda r: r.n_trs)
            if max(delays) >= shortest.n_trs:
                raise InputError(f"--delays {' '.join(map(str, delays))}: delay {max(delays)} TRs is not shorter than "
                                 f"run {shortest.name} ({shortest.n_trs} TRs) of dataset {dataset.name!r}; use delays "
                                 f"below {shortest.n_trs} (typically 2-8 s worth of TRs)")
    if device is not None:
        from mmneuro.models.registry import check_device

        check_device(device)
    if backend == "torch_cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError("--backend torch_cuda: CUDA is not available here; use --backend torch (CPU) or numpy")


def encode(model: str, subject: str | int = 1, dataset: str | Path | Dataset = "demo",
           layers: Sequence[str] | None = None, weights: str | None = None, features: str | Path | None = None,
           out: str | Path | None = "results", allow_download: bool = False, device: str | None = None,
           cache: Path | None = DEFAULT_CACHE, alphas: np.ndarray = DEFAULT_ALPHAS,
           delays: Sequence[int] | None = None, feature_detrend: int | None | str = "dataset",
           backend: str = "numpy",
           seed: int = 0, progress: bool = True, model_options: dict[str, Any] | None = None,
           command: list[str] | None = None, echo: Callable[[str], None] | None = print,
           window: str | None = None) -> list[EncodeResult]:
    """Extract, align, fit every requested layer and score held-out data for one or all subjects.

    Writes ``out/<dataset>/sub-<label>/<model>-<digest>/`` per subject (and
    ``out/<dataset>/group/<model>-<digest>/`` when several subjects are encoded) unless ``out`` is
    None; ``digest`` hashes the full config (:func:`encoding_config`), so runs with other options
    never overwrite each other. Each subject's responses are released once it is written.
    Returns one result per subject.
    """
    timings = Timings()
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    check_request(ds, out=out, cache=cache, delays=delays, device=device, features=features, window=window,
                  backend=backend)
    subjects = resolve_subjects(ds, subject)
    if out is not None:  # every label that becomes a path is checked before any work
        for label in subjects:
            safe_path(out, ds.name, f"sub-{label}")
    if delays is None and EVENT_MODELS.get(model) == "hrf":
        delays = (0,)
    with timings("features"):
        if features is not None:
            by_layer = precomputed_features(features, ds, layers)
            weights_info = {"kind": "precomputed", "location": str(features), "identity": None, "is_random": False}
        else:
            by_layer, weights_info = model_features(model, ds, layers, weights, allow_download, device, cache,
                                                    seed, progress, model_options, window=window)
    chosen = list(by_layer)
    if out is not None:
        for layer in chosen:  # layer names become file names
            check_component(layer, "a result file")
    config = encoding_config(ds, model, chosen, weights, weights_info, features, window, model_options, delays,
                             alphas, feature_detrend, backend, seed)
    loaded: dict[str, Responses] = {}
    ceilings: dict[str, Ceiling] = {}

    def responses_of(label: str) -> Responses:
        return loaded[label] if label in loaded else ds.load_responses(label)

    def all_responses() -> list[Responses]:
        loaded.update({s: responses_of(s) for s in ds.subjects})
        return [loaded[s] for s in ds.subjects]

    results = []
    for label in subjects:
        resp = loaded[label] = responses_of(label)  # kept while the ceiling may ask for every subject
        with timings("ridge"):
            fits = {layer: fit_evaluate(ds, by_layer[layer], resp, delays, alphas, feature_detrend=feature_detrend,
                                        backend=backend)
                    for layer in tqdm(chosen, desc=f"sub-{label} ridge", unit="layer", disable=not progress)}
        with timings("ceiling"):
            if label not in ceilings:  # per the dataset's ceiling method; cached beside the features
                ceilings.update(subject_ceilings(ds, resp, all_responses,
                                                 cache=ceiling_cache_dir(cache) if cache is not None else None))
            loaded.clear()  # this subject is done and every ceiling asked for is known: keep no one's responses
            ceil = ceilings[label]
        del resp
        summary = summarize(chosen, fits, ceil, ds)
        result = EncodeResult(ds.name, label, model, chosen, fits, ceil, summary, weights_info,
                              timings=dict(timings.seconds), config=config)
        if out is not None:
            folder = result_dir(out, (ds.name, f"sub-{label}"), model_label(model, weights_info), config)
            result.out_dir = write_result(result, ds, folder, dict(config, subject=label), command, seed)
        if echo is not None:
            tag = " [RANDOM WEIGHTS]" if weights_info.get("is_random") else ""
            echo(format_table(summary, f"\n{ds.name} sub-{label} {model}{tag} (held-out Pearson r)"))
        results.append(result)
    if out is not None and len(results) > 1:
        write_group(results, ds, result_dir(out, (ds.name, "group"), model_label(model, weights_info), config),
                    echo, command, seed)
    return results


def encoding_config(ds: Dataset, model: str, layers: Sequence[str], weights: str | None,
                    weights_info: dict[str, Any], features: str | Path | None, window: str | None,
                    model_options: dict[str, Any] | None, delays: Sequence[int] | None, alphas: np.ndarray,
                    feature_detrend: int | None | str, backend: str, seed: int) -> dict[str, Any]:
    """Everything that determines an encoding result except the subject; its digest names the result folders."""
    return {"dataset": ds.name, "dataset_root": str(ds.root), "model": model, "layers": list(layers),
            "weights": weights, "weights_identity": weights_info.get("identity"),
            "features": str(features) if features else None, "window": window,
            "model_options": dict(model_options or {}), "delays": [int(d) for d in (delays or ds.delays)],
            "alphas": [float(a) for a in alphas],
            "feature_detrend": ds.feature_detrend if feature_detrend == "dataset" else feature_detrend,
            "evaluation": ds.evaluation, "backend": backend, "seed": int(seed)}


def group_summary(results: Sequence[EncodeResult]) -> dict[str, Any]:
    """Mean and standard error over subjects of each layer's ROI r; refuses results of different configs."""
    digests = {r.digest for r in results}
    if len(digests) > 1:
        raise InputError(f"a group summary needs results of one config; got {len(digests)} configs "
                         f"({', '.join(sorted(digests))}): rerun the subjects with the same options")
    layers = results[0].layers
    rois = list(results[0].summary["layers"][layers[0]]["roi_r"])
    out: dict[str, Any] = {"subjects": [r.subject for r in results], "config_digest": results[0].digest,
                           "layers": {}}
    for layer in layers:
        table = np.array([[r.summary["layers"][layer]["roi_r"][k] for k in rois] for r in results])
        n = np.sum(np.isfinite(table), axis=0)
        with warnings.catch_warnings():  # an ROI without a finite r in any subject: NaN (null in JSON)
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, sem = np.nanmean(table, axis=0), np.nanstd(table, axis=0, ddof=1) / np.sqrt(n)
        out["layers"][layer] = {
            "roi_r_mean": dict(zip(rois, mean.tolist())),
            "roi_r_sem": dict(zip(rois, sem.tolist())),
            "n_subjects": dict(zip(rois, n.tolist())),
        }
    return out


def write_group(results: Sequence[EncodeResult], dataset: Dataset, out_dir: Path,
                echo: Callable[[str], None] | None, command: list[str] | None = None, seed: int = 0) -> Path:
    """``group/<model>-<digest>/``: scores.json with the across-subject means, figure.png, provenance.json."""
    from mmneuro.plotting.figures import group_figure

    summary = group_summary(results)
    config = results[0].config
    with ResultFolder(out_dir, "encode-group", config) as tmp:
        write_json(tmp / "scores.json", summary)
        fig = group_figure(summary, f"{dataset.name} {model_label(results[0].model, results[0].weights)}")
        record = provenance(command, dict(config, subjects=summary["subjects"]), results[0].weights, seed,
                            results[-1].timings)
        write_figure_and_provenance(tmp, fig, record)
    if echo is not None:
        from mmneuro.plotting.tables import shown_rois

        rois = shown_rois({k: v["roi_r_mean"] for k, v in summary["layers"].items()})
        lines = [f"\n{dataset.name} group of {len(results)} subjects (mean held-out r)",
                 "layer".rjust(10) + "".join(k.rjust(8) for k in rois)]
        for layer, entry in summary["layers"].items():
            lines.append(layer.rjust(10) + "".join(f"{entry['roi_r_mean'][k]:8.3f}" for k in rois))
        echo("\n".join(lines))
    return out_dir


def main_out_dir(results: Sequence[EncodeResult]) -> Path | None:
    """The folder to print last: the group folder for several subjects, else the subject's."""
    if not results or results[0].out_dir is None:
        return None
    return results[0].out_dir.parent.parent / "group" / results[0].out_dir.name if len(results) > 1 \
        else results[0].out_dir
