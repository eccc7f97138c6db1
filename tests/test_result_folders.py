"""Result folders: nothing written outside --out, nothing foreign replaced, configs never mixed, no
leftovers, and a kill at any write step leaves the old or the new complete result."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from mmneuro import pipeline
from mmneuro.datasets.base import Dataset
from mmneuro.errors import InputError
from mmneuro.results import MARKER, ResultFolder, latest_result, read_marker, recover, results_named
from strict_json import read_json

N_TRS, N_TARGETS = 60, 12


def tiny_study(root: Path, subjects=("01", "02"), seed: int = 0) -> tuple[Dataset, Path]:
    """Two runs (one held out), a planted linear response in half the targets, features as <run>.npz."""
    rng = np.random.default_rng(seed)
    feats = {run: rng.standard_normal((N_TRS, 3)) for run in ("run-1", "run-2")}
    weights = rng.standard_normal((3, N_TARGETS)) * (np.arange(N_TARGETS) < N_TARGETS // 2)
    arrays = {s: {run: x @ weights + rng.standard_normal((N_TRS, N_TARGETS)) for run, x in feats.items()}
              for s in subjects}
    ds = Dataset.from_arrays(arrays, tr=1.0, test_runs=["run-2"], name="tiny",
                             rois={"planted": np.arange(N_TARGETS) < N_TARGETS // 2,
                                   "empty": np.zeros(N_TARGETS, bool)})
    folder = root / "features"
    folder.mkdir(parents=True)
    for run in ds.runs:
        np.savez(folder / f"{run.name}.npz", times=run.tr_times, layer=feats[run.name].astype(np.float32))
    return ds, folder


def encode(ds: Dataset, features: Path, out: Path, **kw):
    return pipeline.encode("planted", subject=kw.pop("subject", "all"), dataset=ds, features=features, out=out,
                           cache=None, progress=False, echo=None, delays=kw.pop("delays", (0,)), **kw)


def test_crafted_subject_label_cannot_write_outside_out(tmp_path):
    ds, features = tiny_study(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    ds.subjects = ["01/../../../../" + str(victim).lstrip("/"), "02"]  # as if read from a crafted dataset's metadata
    out = tmp_path / "out"
    with pytest.raises(InputError, match="cannot name a result folder"):
        encode(ds, features, out)
    assert (victim / "precious.txt").read_text() == "keep me" and sorted(victim.iterdir()) == [victim / "precious.txt"]
    assert not out.exists()


def test_crafted_layer_name_is_refused(tmp_path):
    ds, features = tiny_study(tmp_path)
    for run in ds.runs:
        np.savez(features / f"{run.name}.npz", times=run.tr_times, **{"..": np.ones((N_TRS, 2), np.float32)})
    with pytest.raises(InputError, match="cannot name a result file"):
        encode(ds, features, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_foreign_folder_under_out_is_refused_and_kept(tmp_path, capsys):
    ds, features = tiny_study(tmp_path)
    out = tmp_path / "out"
    first = encode(ds, features, out, subject="1")[0].out_dir
    # someone else's folder at exactly the place the next run writes (same config -> same name)
    import shutil
    shutil.rmtree(first)
    first.mkdir()
    (first / "notes.txt").write_text("not mmneuro's")
    with pytest.raises(InputError, match="was not written by mmneuro"):
        encode(ds, features, out, subject="1")
    assert (first / "notes.txt").read_text() == "not mmneuro's" and [p.name for p in first.iterdir()] == ["notes.txt"]
    # a folder with the pre-digest name (what the report found deleted) is not touched either
    old_style = out / "tiny" / "sub-01" / "planted"
    old_style.mkdir()
    (old_style / "mine.txt").write_text("x")
    shutil.rmtree(first)
    encode(ds, features, out, subject="1")
    assert (old_style / "mine.txt").read_text() == "x"


def test_other_options_write_other_folders_and_groups_do_not_mix(tmp_path):
    ds, features = tiny_study(tmp_path)
    out = tmp_path / "out"
    a = encode(ds, features, out, delays=(0,))
    b = encode(ds, features, out, delays=(0, 1))
    assert a[0].out_dir != b[0].out_dir and a[0].out_dir.is_dir() and b[0].out_dir.is_dir()
    assert len(results_named(out / "tiny" / "group", "planted")) == 2
    encode(ds, features, out, delays=(0,))  # the same options again replace their own result
    assert len(results_named(out / "tiny" / "sub-01", "planted")) == 2
    for folder in (a[0].out_dir, pipeline.main_out_dir(a)):
        marker = read_marker(folder)
        assert marker["digest"] == folder.name.rsplit("-", 1)[1] and marker["config"]["delays"] == [0]
    group = pipeline.main_out_dir(b)
    assert read_json(group / "provenance.json")["config"]["subjects"] == ["01", "02"]
    with pytest.raises(InputError, match="one config"):
        pipeline.group_summary([a[0], b[1]])


def test_scores_json_is_strict_json_with_nan_as_null(tmp_path):
    ds, features = tiny_study(tmp_path)
    res = encode(ds, features, tmp_path / "out", subject="1")[0]
    scores = read_json(res.out_dir / "scores.json")  # a bare NaN would fail here
    assert scores["layers"]["layer"]["roi_r"]["empty"] is None
    assert scores["layers"]["layer"]["roi_r"]["planted"] > 0.5


def _leftover(parent: Path, name: str, kind: str, pid: int, complete: bool, written: float = 1.0) -> Path:
    from mmneuro.results import _HOST, write_json

    p = parent / f".{name}.{kind}-{_HOST}-{pid}-abcd1234"
    p.mkdir(parents=True)
    (p / "scores.json").write_text("{}")
    if complete:
        write_json(p / MARKER, {"digest": "x", "written": written})
    return p


def _dead_pid() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_leftovers_of_dead_processes_are_recovered_or_removed(tmp_path):
    dead, parent = _dead_pid(), tmp_path / "sub-01"
    # killed between the two renames of a swap: no visible result, a complete old and a complete new
    old = _leftover(parent, "m-1", "old", dead, True, written=1.0)
    new = _leftover(parent, "m-1", "partial", dead, True, written=2.0)
    # killed while writing: an incomplete partial beside a visible result
    (parent / "m-2").mkdir()
    half = _leftover(parent, "m-2", "partial", dead, False)
    alive = _leftover(parent, "m-3", "partial", os.getpid(), False)  # a writer still running
    done = recover(parent)
    assert (parent / "m-1" / MARKER).is_file() and read_marker(parent / "m-1")["written"] == 2.0
    assert not old.exists() and not new.exists() and not half.exists() and alive.exists()
    assert len(done) == 3 and any("restored" in line for line in done)


def test_concurrent_publishers_both_end_complete(tmp_path):
    final = tmp_path / "r-1"
    with ResultFolder(final, "test", {"a": 1}) as first:
        (first / "x.txt").write_text("first")
        with ResultFolder(final, "test", {"a": 1}) as second:  # a second writer publishes in the meantime
            (second / "x.txt").write_text("second")
    assert (final / "x.txt").read_text() == "first" and read_marker(final) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r-1"]


# --------------------------------------------------------------------------- fault injection

def _write_step(event: str, args: tuple, out: str) -> str | None:
    """A short name for an audit event that changes something under ``out``, else None."""
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        return f"write {Path(str(path)).name}" if writing and str(path).startswith(out) else None
    if event in ("os.rename", "os.replace", "mmneuro.results.exchange"):
        if str(args[0]).startswith(out) or str(args[1]).startswith(out):
            return f"{event.rsplit('.', 1)[-1]} {Path(str(args[0])).name[:24]} -> {Path(str(args[1])).name[:24]}"
    if event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree") and str(args[0]).startswith(out):
        return f"{event} {Path(str(args[0])).name[:30]}"
    return None


def _run_killed_at(step: int, ds: Dataset, features: Path, out: Path, log: Path) -> int:
    """Fork; the child runs encode and SIGKILLs itself at write step ``step`` (0: never). Returns its status."""
    pid = os.fork()
    if pid == 0:
        try:
            seen = []

            def hook(event: str, args: tuple) -> None:
                name = _write_step(event, args, str(out))
                if name is not None:
                    seen.append(name)
                    if len(seen) == step:
                        os.kill(os.getpid(), signal.SIGKILL)

            sys.addaudithook(hook)
            encode(ds, features, out)
            log.write_text("\n".join(seen))
            os._exit(0)
        except BaseException:
            os._exit(3)
    return os.waitpid(pid, 0)[1]


def _visible(out: Path) -> dict[str, str | None]:
    """run id of each visible result (None when it is not complete)."""
    state = {}
    for parent in ("sub-01", "sub-02", "group"):
        found = [p for p in (out / "tiny" / parent).iterdir() if not p.name.startswith(".")]
        assert len(found) == 1, found
        folder, marker = found[0], read_marker(found[0])
        complete = marker is not None and all((folder / f).is_file() for f in ("scores.json", "provenance.json",
                                                                                "figure.png"))
        if complete:
            read_json(folder / "scores.json")
        state[parent] = marker["run_id"] if complete else None
    return state


def test_killed_at_every_write_step_old_or_new_result_and_rerun_recovers(tmp_path, capsys, monkeypatch):
    import matplotlib.pyplot as plt

    from mmneuro.plotting import figures

    # the figures' content does not matter here, their write steps do: blank figures keep 70 runs fast
    monkeypatch.setattr(figures, "encode_figure", lambda *a, **k: plt.figure(figsize=(1, 1)))
    monkeypatch.setattr(figures, "group_figure", lambda *a, **k: plt.figure(figsize=(1, 1)))
    ds, features = tiny_study(tmp_path)
    out, log = tmp_path / "out", tmp_path / "steps.txt"
    assert _run_killed_at(0, ds, features, out, log) == 0  # the old result
    assert _run_killed_at(0, ds, features, out, log) == 0  # a rerun replacing it: the steps to interrupt
    steps = log.read_text().splitlines()
    assert len(steps) > 20 and any("exchange" in s for s in steps)
    with capsys.disabled():
        print(f"\n{len(steps)} write steps of `encode --subject all` (2 subjects + group):")
        print("\n".join(f"  {k + 1:2d} {s}" for k, s in enumerate(steps)))
    state = _visible(out)
    for k in range(1, len(steps) + 1):
        status = _run_killed_at(k, ds, features, out, log)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (k, steps[k - 1])
        after = _visible(out)
        assert all(v is not None for v in after.values()), (k, steps[k - 1], after)  # old or new, always complete
        # results published before step k are new, the rest old
        assert _run_killed_at(0, ds, features, out, log) == 0  # the rerun completes
        state = _visible(out)
        hidden = [p for parent in ("sub-01", "sub-02", "group") for p in (out / "tiny" / parent).iterdir()
                  if p.name.startswith(".")]
        assert not hidden, (k, steps[k - 1], hidden)  # the rerun cleaned the dead process's leftovers
    assert latest_result(out / "tiny" / "group", "planted").is_dir() and all(state.values())


def test_two_encode_processes_racing_into_one_out():
    """The fast version of benchmarks/race_encode.py (20 trials there): both processes end correct."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "race_encode.py"
    spec = importlib.util.spec_from_file_location("race_encode", path)
    race = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(race)
    problems: list[str] = []
    counts = race.run(2, echo=problems.append)
    assert counts["survived"] == 2, problems


def test_each_subjects_responses_are_released_before_the_next_is_loaded(tmp_path):
    """Defect 10: `--subject all` kept every subject's responses until the end."""
    import gc
    import weakref

    ds, features = tiny_study(tmp_path, subjects=("01", "02", "03"))
    alive: dict[str, list[weakref.ref]] = {}
    still_held: list[tuple[str, list[str]]] = []
    load = ds.load_responses

    def tracked(label):
        gc.collect()
        still_held.append((label, sorted(s for s, refs in alive.items() if s != label and any(r() is not None for r in refs))))
        resp = load(label)
        alive[label] = [weakref.ref(a) for a in resp.runs.values()]
        return resp

    ds.load_responses = tracked
    encode(ds, features, tmp_path / "out")
    # the ceiling needs every subject once (sub-01's turn); after that, one subject at a time
    loads = [label for label, _ in still_held]
    assert loads[:3] == ["01", "02", "03"] and loads[3:] == ["02", "03"]
    assert [held for label, held in still_held[3:]] == [[], []]
