"""Two real `mmneuro encode` processes writing the same results at the same moment.

Each trial starts two processes on one small described dataset (3 subjects, 2 runs, planted
signal, precomputed features), same options, same `--out`, same cache, released together. A
trial survives when both exit 0, every visible result is complete (marker, strict JSON) and
equal to a serial reference run, and no hidden leftover remains.

Run: python benchmarks/race_encode.py [--trials 20]
Before/after: cd /tmp && PYTHONPATH=<checkout of older code> python <repo>/benchmarks/race_encode.py (run
outside the repo, or the processes import the repo's mmneuro from the working directory).
Prints: trials, crashes, incomplete or wrong results, leftovers, survived.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_TRS, N_TARGETS, SUBJECTS = 80, 16, ("01", "02", "03")

DESCRIPTION = """\
name = "race"
tr = 1.0
first_tr_time = 0.5

[[runs]]
name = "train"
split = "train"
responses = ["responses/sub-{subject}_train.npy"]

[[runs]]
name = "test"
split = "test"
responses = ["responses/sub-{subject}_test.npy"]

[targets]
kind = "parcels"
names_file = "regions.txt"

[rois]
per_target = true

[evaluation]
scheme = "heldout"

[recipe]
delays = [0, 1]
"""


def write_study(root: Path, seed: int = 0) -> Path:
    """A described dataset plus ``features/<run>.npz``; returns the features folder."""
    rng = np.random.default_rng(seed)
    (root / "responses").mkdir(parents=True)
    (root / "features").mkdir()
    weights = rng.standard_normal((4, N_TARGETS)) * (np.arange(N_TARGETS) % 2)
    for run in ("train", "test"):
        x = rng.standard_normal((N_TRS, 4)).astype(np.float32)
        np.savez(root / "features" / f"{run}.npz", times=0.5 + np.arange(N_TRS), layer=x)
        for s in SUBJECTS:
            y = x @ weights + rng.standard_normal((N_TRS, N_TARGETS))
            np.save(root / "responses" / f"sub-{s}_{run}.npy", y.astype(np.float32))
    (root / "regions.txt").write_text("\n".join(f"region{j}" for j in range(N_TARGETS)) + "\n")
    (root / "mmneuro.toml").write_text(DESCRIPTION)
    return root / "features"


def command(root: Path, out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "mmneuro.cli", "encode", "--dataset", str(root), "--model", "planted",
            "--features", str(root / "features"), "--subject", "all", "--out", str(out), "--cache", str(cache),
            "--no-progress"]


def visible_results(out: Path) -> dict[str, dict]:
    """``{relative folder: scores}`` of every visible result; raises on an incomplete one or a leftover."""
    import mmneuro

    read_marker = None  # code from before result markers (a baseline run)
    if (Path(mmneuro.__file__).parent / "results.py").is_file():
        from mmneuro.results import read_marker
    found = {}
    for parent in sorted(p for p in (out / "race").iterdir()):
        for folder in parent.iterdir():
            if folder.name.startswith("."):
                raise AssertionError(f"leftover {folder}")
            files = ("scores.json", "figure.png") + (("provenance.json",) if read_marker else ())  # baseline groups had none
            if not all((folder / f).is_file() for f in files) or (read_marker and read_marker(folder) is None):
                raise AssertionError(f"incomplete {folder}")
            text = (folder / "scores.json").read_text()
            try:
                scores = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
            except ValueError:  # bare NaN: not JSON (a baseline wrote it); compared leniently, counted apart
                scores = json.loads(text)
                found.setdefault("_invalid_json", []).append(f"{parent.name}/{folder.name}")
            found[f"{parent.name}/{folder.name}"] = scores.get("layers")
    return found


def trial(root: Path, work: Path, reference: dict) -> str:
    """One race; returns 'survived', 'crash: ...', 'wrong: ...' or 'leftover: ...'."""
    out, cache = work / "out", work / "cache"
    env = dict(os.environ, HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    procs = [subprocess.Popen(command(root, out, cache), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        if p.returncode != 0:
            return f"crash: exit {p.returncode}: {err.strip().splitlines()[-1] if err.strip() else ''}"
    try:
        got = visible_results(out)
    except AssertionError as err:
        return f"{str(err).split()[0]}: {err}"
    invalid = got.pop("_invalid_json", None)
    reference = {k: v for k, v in reference.items() if k != "_invalid_json"}
    if json.dumps(got, sort_keys=True) != json.dumps(reference, sort_keys=True):  # NaN-safe comparison
        return "wrong: results differ from the serial run"
    if invalid:
        return f"invalid json: bare NaN in {invalid}"
    return "survived"


def run(trials: int, echo=print) -> dict[str, int]:
    tmp = Path(tempfile.mkdtemp(prefix="race-encode-"))
    try:
        root = tmp / "study"
        write_study(root)
        ref = tmp / "reference"
        subprocess.run(command(root, ref / "out", ref / "cache"), check=True, capture_output=True,
                       env=dict(os.environ, HF_HUB_OFFLINE="1", MPLBACKEND="Agg"))
        reference = visible_results(ref / "out")
        counts = {"survived": 0, "crash": 0, "wrong": 0, "incomplete": 0, "leftover": 0, "invalid json": 0}
        start = time.perf_counter()
        for k in range(trials):
            outcome = trial(root, tmp / f"trial-{k}", reference)
            counts[outcome.split(":")[0]] += 1
            if outcome != "survived":
                echo(f"  trial {k}: {outcome}")
        counts["seconds"] = round(time.perf_counter() - start, 1)
        return counts
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    counts = run(args.trials)
    print(f"encode races: {args.trials} trials of 2 processes (3 subjects + group each), {counts['seconds']} s")
    print(f"  survived {counts['survived']}, crashed {counts['crash']}, wrong {counts['wrong']}, "
          f"incomplete {counts['incomplete']}, leftovers {counts['leftover']}, invalid JSON {counts['invalid json']}")


if __name__ == "__main__":
    main()
