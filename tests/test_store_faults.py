"""Faults of the on-disk caches: nothing lost, nothing silent.

* concurrent writers of one feature-store key (a loser whose chunks vanish reuses the winner's
  final arrays; deletions tolerate files already deleted; two real processes racing);
* corrupt arrays (150 flipped sign bits, truncated, garbage) in final layers, chunks and the
  noise-ceiling cache are detected by their checksums, named in a warning and recomputed
  (or named in an InputError where nothing can recompute them);
* a stimulus edited in place with its mtime restored is hashed again, in process and through
  the on-disk index, and that index keeps every entry under concurrent writers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import mmneuro.features.store as store_mod
from mmneuro.errors import InputError
from mmneuro.features.extract import extract_run, stimulus_runs
from mmneuro.features.store import FeatureKey, FeatureStore, file_sha256
from mmneuro.models.base import TimedFeatures
from mmneuro.models.melspec import MelSpecAdapter

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


def write_wav(path: Path, seconds: int, seed: int = 0) -> Path:
    import soundfile as sf

    wav = (0.1 * np.random.default_rng(seed).standard_normal(seconds * SR)).astype(np.float32)
    sf.write(str(path), wav, SR, subtype="FLOAT")
    return path


@pytest.fixture
def wav(tmp_path) -> Path:
    return write_wav(tmp_path / "story.wav", 24)


def run_of(path: Path):
    [run] = stimulus_runs(path, tr=1.0)
    return run


def extract(store, run, **kw):
    kw.setdefault("batch_size", 4)
    kw.setdefault("chunk_windows", 8)
    return extract_run(kw.pop("adapter", None) or MelSpecAdapter(device="cpu"), run, store=store, progress=False, **kw)


def flip_sign_bits(npy: Path, n: int = 150, seed: int = 0) -> None:
    """Flip the sign bit of ``n`` distinct float32 values of a ``.npy`` file, in place."""
    arr = np.load(npy, mmap_mode="r+")
    bits = arr.reshape(-1).view(np.uint32)
    idx = np.random.default_rng(seed).choice(bits.size, size=n, replace=False)
    bits[idx] ^= np.uint32(0x80000000)
    arr.flush()
    del arr, bits


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# --------------------------------------------------------------------------- concurrent writers


class HookedMel(MelSpecAdapter):
    """melspec that runs ``hook`` once, before its ``at``-th forward pass."""

    def __init__(self, hook, at, **kw):
        super().__init__(**kw)
        self.hook, self.at, self.calls = hook, at, 0

    def forward(self, batch, want_attentions=False):
        self.calls += 1
        if self.calls == self.at:
            self.hook()
        return super().forward(batch, want_attentions)


def test_loser_whose_chunks_vanish_reuses_the_winners_arrays(wav, tmp_path):
    """Process B finishes the layer (final array saved, chunks dropped) while A is still computing:
    A must not report 'chunk missing or unreadable' but return the stored array, bit for bit."""
    run = run_of(wav)
    ref = extract(FeatureStore(tmp_path / "ref"), run)["logmel"].data
    store = FeatureStore(tmp_path / "cache")
    winner = {}

    def other_process_finishes():  # A has committed chunk [0, 8); B reuses it, computes the rest, drops all chunks
        winner["out"] = extract(FeatureStore(tmp_path / "cache"), run)

    loser = HookedMel(other_process_finishes, at=4, device="cpu")
    got = extract(store, run, adapter=loser)["logmel"].data
    np.testing.assert_array_equal(winner["out"]["logmel"].data, ref)
    assert got.tobytes() == ref.tobytes()
    [folder] = (tmp_path / "cache" / "melspec").iterdir()
    assert np.load(folder / "logmel.npy").tobytes() == ref.tobytes()
    assert not (folder / "partial").exists() and not list(folder.rglob("*.tmp"))


def test_drop_partial_tolerates_a_tree_deleted_meanwhile(tmp_path, monkeypatch):
    """Two processes dropping the same chunks: the second finds folders already gone."""
    store = FeatureStore(tmp_path)
    k = FeatureKey(model="m", weights="w", pooling="mean", window={}, stimulus="s")
    for tag in ("b1-k2", "b2-k2"):
        for layer in ("a", "b"):
            store.save_chunk(k, tag, layer, 0, 2, np.zeros((2, 3), np.float32))
    part = store.folder(k) / "partial"
    real = shutil.rmtree
    state = {"first": True}

    def rmtree_while_other_process_deletes(path, *a, **kw):
        if state["first"]:
            state["first"] = False
            real(part, ignore_errors=True)  # the other process removed everything just now
        return real(path, *a, **kw)

    monkeypatch.setattr(shutil, "rmtree", rmtree_while_other_process_deletes)
    store.drop_partial(k, "a")  # raised FileNotFoundError
    store.drop_partial(k)
    store.drop_partial(k, "b")
    assert not part.exists()


def _race_module():
    spec = importlib.util.spec_from_file_location("race_extract", ROOT / "benchmarks" / "race_extract.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_two_real_processes_extracting_into_one_cache(tmp_path):
    """The fast version of benchmarks/race_extract.py (3 trials): no crash, no corrupt byte, both correct."""
    lines = []
    counts = _race_module().race(trials=2, n_runs=4, seconds=30, workdir=tmp_path, echo=lines.append)
    print("\n".join(lines))
    assert counts["crashes"] == 0, lines
    assert counts["corrupt"] == 0, lines
    assert counts["both_correct"] == counts["trials"] == 2, lines
    assert counts["leftovers"] == 0, lines
    # small chunks: the processes overlap while both are computing the same layer
    counts = _race_module().race(trials=1, n_runs=2, seconds=30, workdir=tmp_path, echo=lines.append, batch_size=4,
                                 chunk_windows=4)
    print("\n".join(lines))
    assert counts["crashes"] == counts["corrupt"] == counts["leftovers"] == 0, lines
    assert counts["both_correct"] == 1, lines


# --------------------------------------------------------------------------- corrupt arrays


def _final_npy(cache: Path) -> Path:
    [folder] = (cache / "melspec").iterdir()
    return folder / "logmel.npy"


def _corrupt(path: Path, how: str) -> None:
    if how == "flip150":
        flip_sign_bits(path, 150)
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[:-37])
    elif how == "garbage":
        path.write_bytes(b"\x93NUMPY garbage, not an array" * 7)
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["flip150", "truncate", "garbage"])
def test_corrupt_final_array_is_named_and_recomputed(wav, tmp_path, how):
    run = run_of(wav)
    store = FeatureStore(tmp_path / "cache")
    ref = extract(store, run)["logmel"].data.copy()
    npy = _final_npy(tmp_path / "cache")
    _corrupt(npy, how)
    with pytest.warns(RuntimeWarning, match=str(npy).replace("\\", "\\\\")) as rec:
        rep = []
        got = extract(store, run, report=rep)["logmel"].data
    assert "recomput" in str(rec[0].message)
    assert got.tobytes() == ref.tobytes()
    assert rep[0].computed_layers == ["logmel"] and rep[0].computed_windows == len(ref)
    assert np.load(npy).tobytes() == ref.tobytes()  # the file was replaced by the recomputed array
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = []
        again = extract(store, run, report=rep)["logmel"].data  # now read back, silently and correctly
    assert rep[0].cached_layers == ["logmel"] and again.tobytes() == ref.tobytes()


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("how", ["flip150", "truncate", "garbage"])
def test_loading_a_corrupt_array_without_a_model_raises_input_error_naming_it(tmp_path, how, mmap):
    store = FeatureStore(tmp_path)
    k = FeatureKey(model="m", weights="w", pooling="mean", window={}, stimulus="s")
    data = np.random.default_rng(0).standard_normal((40, 32)).astype(np.float32)
    store.save(k, {"l": TimedFeatures(data=data, times=np.arange(40.0), pooling="mean", layer="l")})
    assert store.load(k, ["l"], mmap=mmap)["l"].data.tobytes() == data.tobytes()
    npy = store.folder(k) / "l.npy"
    _corrupt(npy, how)
    with pytest.raises(InputError, match=str(npy).replace("\\", "\\\\")) as err:
        store.load(k, ["l"], mmap=mmap)
    assert "\n" not in str(err.value)


def test_corrupt_chunk_of_an_interrupted_run_is_recomputed(wav, tmp_path):
    run = run_of(wav)
    ref = extract(FeatureStore(tmp_path / "ref"), run)["logmel"].data

    class Interrupt(Exception):
        pass

    def stop():
        raise Interrupt

    store = FeatureStore(tmp_path / "cache")
    with pytest.raises(Interrupt):
        extract(store, run, adapter=HookedMel(stop, at=5, device="cpu"))  # chunks [0, 8) and [8, 16) committed
    chunks = store.partial_chunks(_key_of(store))
    assert len(chunks) == 2
    flip_sign_bits(chunks[0], 150)
    with pytest.warns(RuntimeWarning, match=str(chunks[0]).replace("\\", "\\\\")):
        rep = []
        got = extract(store, run, report=rep)["logmel"].data
    assert got.tobytes() == ref.tobytes()
    assert rep[0].computed_windows >= 8 + 8  # the corrupt chunk and the missing one


def _key_of(store: FeatureStore) -> FeatureKey:
    [folder] = (store.root / "melspec").iterdir()
    d = json.loads((folder / "key.json").read_text())
    d.pop("format", None)
    return FeatureKey(**d)


def _member_data_offset(raw: bytes, zinfo: zipfile.ZipInfo) -> int:
    off = zinfo.header_offset
    n, m = struct.unpack("<HH", raw[off + 26: off + 30])
    return off + 30 + n + m


def test_ceiling_cache_tampered_with_a_valid_zip_crc_is_recomputed(tmp_path):
    """Flip sign bits of the cached ceilings and fix the zip's CRC-32 (as a tool rewriting the
    file would): the arrays' own checksum still catches it."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from test_noise_ceiling_methods import make_dataset
    finally:
        sys.path.pop(0)
    from mmneuro.analyses import noise_ceiling as nc

    ds, everyone = make_dataset(ceiling="loo-isc")
    first = nc.noise_ceilings(ds, everyone, cache=tmp_path)
    (path,) = tmp_path.glob("loo-isc-*.npz")
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        zinfo = z.getinfo("r.npy")
    assert zinfo.compress_type == zipfile.ZIP_STORED
    start = _member_data_offset(bytes(raw), zinfo)
    member = bytearray(raw[start: start + zinfo.compress_size])
    hlen = struct.unpack("<H", member[8:10])[0]
    n_vals = (len(member) - 10 - hlen) // 8
    for i in np.random.default_rng(0).choice(n_vals, size=min(150, n_vals), replace=False):
        member[10 + hlen + 8 * int(i) + 7] ^= 0x80  # sign bit of a little-endian float64
    raw[start: start + len(member)] = member
    crc = zipfile.crc32(bytes(member)) & 0xFFFFFFFF
    raw[zinfo.header_offset + 14: zinfo.header_offset + 18] = struct.pack("<I", crc)
    pos = 0
    while True:  # central directory entry of r.npy
        pos = bytes(raw).find(b"PK\x01\x02", pos)
        assert pos >= 0
        n = struct.unpack("<H", raw[pos + 28: pos + 30])[0]
        if bytes(raw[pos + 46: pos + 46 + n]) == b"r.npy":
            raw[pos + 16: pos + 20] = struct.pack("<I", crc)
            break
        pos += 4
    path.write_bytes(bytes(raw))
    with np.load(path) as f:  # a valid zip whose ceilings are wrong
        assert not np.array_equal(f["r"], np.stack([first[s].r for s in first]), equal_nan=True)
    with pytest.warns(RuntimeWarning, match=path.name):
        again = nc.noise_ceilings(ds, everyone, cache=tmp_path)
    for s in first:
        np.testing.assert_array_equal(again[s].r, first[s].r)


# --------------------------------------------------------------------------- stimulus identity


def _edit_in_place_keep_mtime(path: Path) -> None:
    st = path.stat()
    time.sleep(0.05)  # beyond the file system's timestamp granularity (a same-tick edit is undetectable)
    with open(path, "r+b") as f:
        f.seek(st.st_size // 2)
        old = f.read(64)
        f.seek(st.st_size // 2)
        f.write(bytes(b ^ 0x5A for b in old))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    st2 = path.stat()
    assert (st2.st_size, st2.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_stimulus_edited_in_place_with_its_mtime_restored_is_hashed_again(wav, tmp_path, monkeypatch):
    store = FeatureStore(tmp_path / "cache")
    before = store.file_hash(wav)
    assert file_sha256(wav) == before == hashlib.sha256(wav.read_bytes()).hexdigest()
    _edit_in_place_keep_mtime(wav)
    now = hashlib.sha256(wav.read_bytes()).hexdigest()
    assert now != before
    assert file_sha256(wav) == now  # the in-process cache
    monkeypatch.setattr(store_mod, "_HASHES", {})
    assert FeatureStore(tmp_path / "cache").file_hash(wav) == now  # the on-disk index, fresh process


def test_features_of_a_stimulus_edited_in_place_with_its_mtime_restored_are_recomputed(wav, tmp_path):
    run = run_of(wav)
    store = FeatureStore(tmp_path / "cache")
    old = extract(store, run)["logmel"].data.copy()
    _edit_in_place_keep_mtime(wav)
    rep = []
    got = extract(store, run, report=rep)["logmel"].data
    fresh = extract(FeatureStore(tmp_path / "fresh"), run)["logmel"].data
    assert rep[0].computed_layers == ["logmel"]
    assert got.tobytes() == fresh.tobytes() and got.tobytes() != old.tobytes()


INDEX_WRITER = r'''
import sys
from pathlib import Path
from mmneuro.features.store import FeatureStore
root, files = sys.argv[1], sys.argv[2:]
store = FeatureStore(root)
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
for f in files:
    store.file_hash(f)
'''


def test_file_hash_index_keeps_every_entry_under_concurrent_writers(tmp_path):
    n = 120
    groups = []
    for g in range(2):
        d = tmp_path / f"g{g}"
        d.mkdir()
        files = []
        for i in range(n):
            f = d / f"{i:03d}.bin"
            f.write_bytes(f"{g}-{i}".encode())
            files.append(str(f))
        groups.append(files)
    script = tmp_path / "writer.py"
    script.write_text(INDEX_WRITER)
    cache = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, str(script), str(cache), *files], env=_env(), text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for files in groups]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
    index = json.loads((cache / "file_hashes.json").read_text())
    expect = {hashlib.sha256(Path(f).read_bytes()).hexdigest() for files in groups for f in files}
    assert len(expect) == 2 * n
    assert expect <= set(index.values()), f"{len(expect - set(index.values()))} of {2 * n} entries lost"
