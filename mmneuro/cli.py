"""The ``mmneuro`` command: parses arguments and calls :mod:`mmneuro.pipeline`; no logic of its own."""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from mmneuro.errors import InputError, MMNeuroError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmneuro", description="Multimodal brain encoding.")
    sub = parser.add_subparsers(dest="command", required=True)

    enc = sub.add_parser("encode", help="extract a model's layers, fit ridge encoders, score held-out data")
    enc.add_argument("--model", required=True, help="registry name (see `mmneuro models`)")
    enc.add_argument("--subject", default="1", help="subject label or number, or 'all'")
    enc.add_argument("--dataset", default="demo", help="'demo' (data/demo), 'alice', or a dataset folder")
    enc.add_argument("--layers", nargs="+", help="layer names or indices (default: all)")
    enc.add_argument("--weights", help="HUB_ID, local folder, or 'random' (labelled in every output)")
    enc.add_argument("--features", help="precomputed features: an .npz (times + one array per layer) "
                                        "or a folder of <run>.npz")
    enc.add_argument("--window", help="'clip' (default for frame/audio models) or 'context:SECONDS'; "
                                      "the same cache keys as `mmneuro extract`")
    enc.add_argument("--backend", default="numpy", choices=["numpy", "torch", "torch_cuda"],
                     help="ridge backend (torch_cuda keeps data on the host and sends target chunks to the GPU)")
    enc.add_argument("--download", action="store_true", help="allow fetching weights from the model hub")
    enc.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    enc.add_argument("--delays", nargs="+", type=int, help="FIR delays in TRs (default: the dataset's)")
    enc.add_argument("--feature-detrend", choices=["dataset", "none", "0", "1", "2", "3"], default="dataset",
                     help="polynomial order removed from each run's features (default: the dataset's recipe)")
    enc.add_argument("--cache", type=Path, help="feature cache folder (default: $MMNEURO_CACHE or "
                                                 "~/.cache/mmneuro/features)")
    enc.add_argument("--out", type=Path, default=Path("results"), help="results folder (default: results)")
    enc.add_argument("--seed", type=int, default=0)
    enc.add_argument("--no-progress", action="store_true")

    ext = sub.add_parser("extract", help="extract a model's layers for stimuli or a dataset into the feature cache")
    ext.add_argument("--model", required=True, help="registry name (see `mmneuro models`)")
    ext.add_argument("--stimuli", required=True, help="a video/audio/words file, a folder of them (runs by file stem), "
                                                      "or a dataset ('demo', 'alice', a dataset folder: all its runs)")
    ext.add_argument("--layers", nargs="+", help="layer names or indices (default: all)")
    ext.add_argument("--window", help="'clip' (the clip spanning each TR) or 'context:SECONDS' (the SECONDS ending "
                                      "with each TR's clip); default: the model's, else clip")
    ext.add_argument("--tr", type=float, help="TR in seconds: the sample grid for stimulus files (a dataset has its own)")
    ext.add_argument("--weights", help="HUB_ID, local folder, or 'random' (labelled in every output)")
    ext.add_argument("--download", action="store_true", help="allow fetching weights from the model hub")
    ext.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    ext.add_argument("--batch-size", type=int, help="windows per forward pass (default: the model's)")
    ext.add_argument("--cache", type=Path, help="feature cache folder (default: $MMNEURO_CACHE or "
                                                 "~/.cache/mmneuro/features)")
    ext.add_argument("--seed", type=int, default=0)
    ext.add_argument("--no-progress", action="store_true")

    data = sub.add_parser("datasets", help="generate or inspect datasets")
    data_sub = data.add_subparsers(dest="dataset_command", required=True)
    demo = data_sub.add_parser("demo", help="generate the embedded demo dataset")
    demo.add_argument("--out", type=Path, default=Path("data/demo"))
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--overwrite", action="store_true")
    info = data_sub.add_parser("info", help="describe a dataset ('demo', 'alice', a folder or a description file)")
    info.add_argument("dataset")
    init = data_sub.add_parser("init", help="scan a folder (BIDS/fMRIPrep, Algonauts 2025, Movie10, arrays) and "
                                            "write its description, mmneuro.toml")
    init.add_argument("path", type=Path, help="the dataset folder")
    init.add_argument("--tr", type=float, help="TR in seconds (needed for plain arrays; BIDS sidecars give it)")
    init.add_argument("--space", help="fMRIPrep output space to use (e.g. MNI152NLin2009cAsym, fsaverage5)")
    init.add_argument("--name", help="dataset name used in result paths (default: the folder's name)")
    init.add_argument("--overwrite", action="store_true", help="replace an existing mmneuro.toml")
    check = data_sub.add_parser("check", help="validate a described dataset without fitting: files, lengths, TR, "
                                              "stimulus coverage")
    check.add_argument("dataset", help="a folder holding mmneuro.toml, a description file, or a known name")

    sub.add_parser("models", help="list the registered models")

    from mmneuro.ablate import STUDIES, study_module

    abl = sub.add_parser("ablate", help="attribution studies: why a model aligns with a region")
    abl_sub = abl.add_subparsers(dest="study", required=True)
    for name, summary in STUDIES.items():
        study_module(name).add_arguments(abl_sub.add_parser(name, help=summary))
    return parser


def run_encode(args: argparse.Namespace) -> None:
    from mmneuro import pipeline

    kwargs = {} if args.cache is None else {"cache": args.cache}
    results = pipeline.encode(
        model=args.model, subject=args.subject, dataset=args.dataset, layers=args.layers, weights=args.weights,
        features=args.features, out=args.out, allow_download=args.download, device=args.device,
        delays=args.delays, seed=args.seed, feature_detrend=parse_detrend(args.feature_detrend), window=args.window,
        backend=args.backend,
        progress=not args.no_progress, command=sys.argv, **kwargs)
    print(pipeline.main_out_dir(results))


def run_extract(args: argparse.Namespace) -> None:
    from mmneuro import pipeline

    kwargs = {} if args.cache is None else {"cache": args.cache}
    pipeline.check_request(cache=kwargs.get("cache", pipeline.DEFAULT_CACHE), device=args.device)
    reports = pipeline.extract(
        model=args.model, stimuli=args.stimuli, layers=args.layers, weights=args.weights, window=args.window, tr=args.tr,
        allow_download=args.download, device=args.device, seed=args.seed, progress=not args.no_progress,
        batch_size=args.batch_size, **kwargs)
    print(f"{'run':16s} {'windows':>7s} {'computed':>8s} {'reused':>6s} {'layers':>6s} {'cached':>6s} {'s':>7s} {'win/s':>7s}")
    for r in reports:
        print(f"{r.run:16s} {r.n_windows:7d} {r.computed_windows:8d} {r.reused_windows:6d} {len(r.computed_layers):6d} "
              f"{len(r.cached_layers):6d} {r.seconds:7.1f} {r.windows_per_s:7.1f}")
    print(kwargs.get("cache", pipeline.DEFAULT_CACHE))


def parse_detrend(text: str) -> int | None | str:
    return None if text == "none" else text if text == "dataset" else int(text)


def run_datasets(args: argparse.Namespace) -> None:
    if args.dataset_command == "demo":
        from mmneuro.datasets.demo import generate_demo

        print(generate_demo(args.out, seed=args.seed, overwrite=args.overwrite, progress=True))
        return
    if args.dataset_command == "init":
        from mmneuro.datasets.scan import init_dataset

        path, desc, guesses = init_dataset(args.path, tr=args.tr, space=args.space, name=args.name,
                                           overwrite=args.overwrite)
        print(f"wrote {path} ({desc.format} layout, {len(desc.runs)} runs); what was guessed:")
        for line in guesses:
            print(f"  - {line}")
        print(f"edit it if a guess is wrong, then run `mmneuro datasets check {args.path}`")
        return
    if args.dataset_command == "check":
        from mmneuro.datasets.check import check_dataset

        report = check_dataset(args.dataset)
        for line in report.facts:
            print(f"  ok: {line}")
        for line in report.problems:
            print(f"  problem: {line}")
        if not report.ok:
            raise InputError(f"{len(report.problems)} problem(s) in dataset {args.dataset}")
        print(f"{args.dataset}: no problem found")
        return
    from mmneuro.pipeline import load_dataset

    ds = load_dataset(args.dataset)
    names = list(ds.rois)
    shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
    print(f"{ds.name}: {len(ds.subjects)} subjects, TR {ds.tr} s, evaluation {ds.evaluation}, ceiling {ds.ceiling}, "
          f"{ds.space.n_targets if ds.space is not None else '?'} {ds.space.kind if ds.space is not None else ''} "
          f"targets, {len(names)} ROIs ({shown})")
    for run in ds.runs:
        print(f"  {run.name:10s} {run.split:5s} {run.n_trs:4d} TRs")
    for note in ds.notes:
        print(f"  note: {note}")


def run_models() -> None:
    from mmneuro.models.registry import available_models

    from mmneuro.pipeline import EVENT_MODELS

    for name in available_models():
        print(name)
    for name, kind in EVENT_MODELS.items():
        print(f"{name}  (events TSV of each run, {kind})")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "encode":
            run_encode(args)
        elif args.command == "extract":
            run_extract(args)
        elif args.command == "datasets":
            run_datasets(args)
        elif args.command == "ablate":
            from mmneuro import pipeline
            from mmneuro.ablate import study_module

            pipeline.check_request(out=getattr(args, "out", None), cache=getattr(args, "cache", None),
                                   device=getattr(args, "device", None), delays=getattr(args, "delays", None))
            print(study_module(args.study).run(args))
        else:
            run_models()
    except MMNeuroError as err:
        print(f"mmneuro: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmneuro: interrupted; finished results are kept, rerun to resume", file=sys.stderr)
        return 130
    except OSError as err:
        if err.errno not in DISK_ERRORS:
            raise
        print(f"mmneuro: error: {disk_error_message(err)}", file=sys.stderr)
        return 1
    return 0


#: Errors of the disk or filesystem under a path (not of mmneuro's input): one line naming the path.
DISK_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free space there, or point --out / --cache at another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota, or point --out / --cache elsewhere"),
    errno.EFBIG: ("file too large for its filesystem", "point --out / --cache at a filesystem that allows "
                                                       "larger files"),
    errno.EROFS: ("read-only filesystem", "point --out / --cache at a writable folder"),
    errno.EACCES: ("permission denied", "fix the permissions, or point --out / --cache at a folder you can write"),
}


def disk_error_message(err: OSError) -> str:
    """One line for a disk/filesystem error: what happened, on which path, what to do."""
    what, todo = DISK_ERRORS[err.errno]
    where = err.filename if err.filename is not None else "(path not reported by the system)"
    if err.filename2 is not None:
        where = f"{where} -> {err.filename2}"
    return f"{what} at {where}; {todo}"


if __name__ == "__main__":
    sys.exit(main())
