"""Two real processes extract the same model and stimuli into one fresh feature cache at once.

Each trial starts two ``python benchmarks/race_extract.py --child`` processes (each runs the
loop of :func:`mmneuro.pipeline.extract`, the function behind ``mmneuro extract``), waits until both
have imported everything, releases them together, and checks what they did against a serial
reference extraction into a cache of its own:

* ``crashes``: a process exited non-zero (its last error line is printed);
* ``corrupt``: a process returned an array, or the shared cache holds a final ``.npy`` /
  ``.json``, whose bytes differ from the reference;
* ``both correct``: both exited 0, both returned the reference arrays bit for bit, and the
  cache's final files equal the reference's byte for byte;
* ``leftovers``: chunk folders or temporary files left in the cache after both finished.

The model is the weight-free ``melspec`` baseline on generated noise: a trial takes a few
seconds, most of it importing torch. The mmneuro the children import is the one on
``PYTHONPATH`` (else the installed one), so the same script measures another checkout::

    python benchmarks/race_extract.py --trials 20                      # this checkout
    python benchmarks/race_extract.py --trials 20 --batch-size 4 --chunk-windows 4   # overlap mid-layer
    git worktree add /tmp/base HEAD
    PYTHONPATH=/tmp/base python benchmarks/race_extract.py --trials 20  # HEAD, for a before/after

``--checksum-cost`` also times what verifying a stored layer costs: loading a 3000 x 768
float32 array memory-mapped, with the store's checksum check against a bare ``np.load``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TR = 1.0
SAMPLE_RATE = 16000


def make_stimuli(folder: Path, n_runs: int = 6, seconds: int = 40, seed: int = 0) -> Path:
    """``n_runs`` seeded noise wav files (16 kHz mono), one run each."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n_runs):
        wav = (0.1 * rng.standard_normal(seconds * SAMPLE_RATE)).astype(np.float32)
        sf.write(str(folder / f"run-{i + 1:02d}.wav"), wav, SAMPLE_RATE, subtype="FLOAT")
    return folder


# --------------------------------------------------------------------------- one process


def child(stimuli: str, cache: str, model: str, batch_size: str = "0", chunk_windows: str = "0") -> int:
    """Import, say ready, wait for 'go' on stdin, extract, print the sha256 of every returned array.

    The loop is :func:`mmneuro.pipeline.extract`'s (runs by file stem, the model's layers, one
    ``extract_run`` per run into one store), kept here so the returned arrays can be checked.
    """
    import mmneuro
    from mmneuro.features.extract import extract_run, stimulus_runs
    from mmneuro.features.store import FeatureStore
    from mmneuro.models.registry import get_adapter

    runs = stimulus_runs(stimuli, TR)
    adapter = get_adapter(model, device="cpu")
    store = FeatureStore(cache)
    print(json.dumps({"ready": mmneuro.__file__}), flush=True)
    sys.stdin.readline()
    out = {}
    for run in runs:
        rep: list = []
        got = extract_run(adapter, run, store=store, progress=False, tr=TR, report=rep,
                          batch_size=int(batch_size) or None, chunk_windows=int(chunk_windows) or None)
        out[run.name] = {"computed": rep[0].computed_windows, "reused": rep[0].reused_windows,
                         "sha256": {l: hashlib.sha256(np.ascontiguousarray(tf.data).tobytes()).hexdigest()
                                    for l, tf in got.items()}}
    print(json.dumps({"result": out}), flush=True)
    return 0


# --------------------------------------------------------------------------- the race


def _spawn(stimuli: Path, cache: Path, model: str, env: dict, batch_size: int = 0, chunk_windows: int = 0,
           ) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", str(stimuli), str(cache), model,
                             str(batch_size or 0), str(chunk_windows or 0)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_ready(p: subprocess.Popen) -> str:
    line = p.stdout.readline()
    if not line:
        raise RuntimeError(f"child died before it was ready: {p.stderr.read()[-2000:]}")
    return json.loads(line)["ready"]


def _finish(p: subprocess.Popen, timeout: float) -> tuple[int, dict | None, str]:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return -9, None, "timed out"
    result = None
    for line in out.splitlines():
        if line.startswith("{") and '"result"' in line:
            result = json.loads(line)["result"]
    lines = [l for l in err.strip().splitlines() if l.strip()]
    return p.returncode, result, (lines[-1] if lines else "")


def _final_files(cache: Path) -> dict[str, bytes]:
    """Final arrays and sidecars (relative path -> bytes); chunks, locks and indexes excluded."""
    out = {}
    for p in sorted(cache.rglob("*")):
        rel = p.relative_to(cache)
        if p.is_file() and p.suffix in (".npy", ".json") and "partial" not in rel.parts and rel.parts[0][0] != "." \
                and p.name != "file_hashes.json" and not p.name.startswith("."):
            out[str(rel)] = p.read_bytes()
    return out


def _leftovers(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*")
                  if p.name == "partial" or p.name.endswith(".tmp"))


def race(trials: int = 20, n_runs: int = 6, seconds: int = 40, model: str = "melspec", workdir: Path | None = None,
         timeout: float = 300.0, echo=print, batch_size: int = 0, chunk_windows: int = 0) -> dict:
    """Run ``trials`` two-process races; returns the counts (see the module docstring).

    ``batch_size`` / ``chunk_windows``: passed to ``extract_run`` (0: the defaults of
    ``mmneuro extract``; small chunks make the processes overlap mid-layer).
    """
    opts = dict(batch_size=batch_size, chunk_windows=chunk_windows)
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        stimuli = make_stimuli(tmp / "stimuli", n_runs=n_runs, seconds=seconds)
        ref = _spawn(stimuli, tmp / "reference", model, env, **opts)
        used = _wait_ready(ref)
        ref.stdin.write("go\n")
        ref.stdin.flush()
        rc, ref_result, err = _finish(ref, timeout)
        if rc != 0 or ref_result is None:
            raise RuntimeError(f"the serial reference extraction failed: {err}")
        ref_files = _final_files(tmp / "reference")
        echo(f"mmneuro: {used}; {n_runs} runs x {int(seconds / TR)} windows of {model} (batch {batch_size or 'default'}, "
             f"chunk {chunk_windows or 'default'}); reference: "
             f"{len(ref_files)} final files")
        counts = {"trials": 0, "crashes": 0, "corrupt": 0, "both_correct": 0, "leftovers": 0, "errors": []}
        for t in range(trials):
            cache = tmp / f"race-{t:03d}"
            procs = [_spawn(stimuli, cache, model, env, **opts) for _ in range(2)]
            for p in procs:
                _wait_ready(p)
            for p in procs:  # release both at once
                p.stdin.write("go\n")
                p.stdin.flush()
            t0 = time.perf_counter()
            ends = [_finish(p, timeout) for p in procs]
            wall = time.perf_counter() - t0
            crashed = [e for e in ends if e[0] != 0]
            wrong_returns = sum(
                1 for rc, res, _ in ends if rc == 0 and (res is None or any(
                    res.get(run, {}).get("sha256") != ref_result[run]["sha256"] for run in ref_result)))
            files = _final_files(cache)
            wrong_files = sorted(set(files) ^ set(ref_files)) + sorted(
                k for k in set(files) & set(ref_files) if files[k] != ref_files[k])
            # a crashed process may legitimately leave the cache incomplete; differing bytes are corruption
            corrupt = wrong_returns + sum(1 for k in set(files) & set(ref_files) if files[k] != ref_files[k])
            left = _leftovers(cache)
            ok = not crashed and wrong_returns == 0 and not wrong_files
            counts["trials"] += 1
            counts["crashes"] += len(crashed)
            counts["corrupt"] += corrupt
            counts["both_correct"] += int(ok)
            counts["leftovers"] += int(bool(left))
            for _, _, e in crashed:
                counts["errors"].append(e)
            echo(f"trial {t + 1:3d}: {'ok' if ok else 'FAIL'}  crashes {len(crashed)}  corrupt {corrupt}  "
                 f"leftovers {len(left)}  {wall:5.1f} s" + "".join(f"\n    {e[:300]}" for _, _, e in crashed))
        return counts


# --------------------------------------------------------------------------- checksum cost


def checksum_cost(repeats: int = 20, echo=print) -> dict:
    """Seconds to load a stored (3000, 768) float32 layer memory-mapped, verified vs bare np.load."""
    from mmneuro.features.store import FeatureKey, FeatureStore
    from mmneuro.models.base import TimedFeatures

    with tempfile.TemporaryDirectory() as tmp:
        store = FeatureStore(tmp)
        key = FeatureKey(model="m", weights="w", pooling="mean", window={}, stimulus="s")
        data = np.random.default_rng(0).standard_normal((3000, 768)).astype(np.float32)
        store.save(key, {"l": TimedFeatures(data=data, times=np.arange(3000.0), pooling="mean", layer="l")})
        npy = store.folder(key) / "l.npy"

        def best(f):
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
            return min(ts)

        bare = best(lambda: np.load(npy, mmap_mode="r"))
        bare_read = best(lambda: np.asarray(np.load(npy, mmap_mode="r")).sum())
        store_mmap = best(lambda: store.load(key, ["l"], mmap=True))
        store_full = best(lambda: store.load(key, ["l"]))
    res = {"bare_mmap_s": bare, "bare_mmap_then_read_s": bare_read, "store_load_mmap_s": store_mmap,
           "store_load_s": store_full, "mb": data.nbytes / 1e6}
    echo(f"3000x768 float32 ({res['mb']:.1f} MB), best of {repeats}: np.load mmap {bare * 1e3:.2f} ms; "
         f"np.load mmap + one pass over the data {bare_read * 1e3:.2f} ms; store.load(mmap=True) "
         f"(verifies the checksum) {store_mmap * 1e3:.2f} ms; store.load {store_full * 1e3:.2f} ms")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--runs", type=int, default=6, help="stimulus runs (one store key each)")
    ap.add_argument("--seconds", type=int, default=40, help="seconds (= windows) per run")
    ap.add_argument("--model", default="melspec")
    ap.add_argument("--batch-size", type=int, default=0, help="windows per forward pass (0: the model's)")
    ap.add_argument("--chunk-windows", type=int, default=0, help="windows per committed chunk (0: the default 256)")
    ap.add_argument("--checksum-cost", action="store_true", help="also time the verified memory-mapped load")
    ap.add_argument("--child", nargs=5, metavar=("STIMULI", "CACHE", "MODEL", "BATCH", "CHUNK"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(*args.child)
    if args.checksum_cost:
        checksum_cost()
    c = race(args.trials, args.runs, args.seconds, args.model, batch_size=args.batch_size,
             chunk_windows=args.chunk_windows)
    print(f"trials {c['trials']}  crashes {c['crashes']}  corrupt arrays {c['corrupt']}  "
          f"both correct {c['both_correct']}  trials with leftovers {c['leftovers']}")
    print(json.dumps({k: v for k, v in c.items() if k != "errors"}))
    return 0 if c["crashes"] == 0 and c["corrupt"] == 0 and c["both_correct"] == c["trials"] else 1


if __name__ == "__main__":
    sys.exit(main())
