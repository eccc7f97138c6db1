"""The on-disk feature store: keys, atomic per-layer files, partial reads, file hashes."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from strict_json import read_json
from mmneuro.features.extract import TimedFeatures
from mmneuro.features.store import FeatureKey, FeatureStore, file_sha256


def feats(layer, n=6, p=4, seed=0, pooling="mean"):
    rng = np.random.default_rng(seed)
    return TimedFeatures(
        data=rng.standard_normal((n, p)).astype(np.float32),
        times=np.arange(n) * 1.5 + 0.1,  # not exactly representable sums: checks exact float roundtrip
        pooling=pooling,
        layer=layer,
        model="m",
        weights="random-seed0",
    )


def key(**kw):
    base = dict(model="m", weights="random-seed0", pooling="mean", window={"tr": 1.5, "n_frames": 4}, stimulus="abc")
    base.update(kw)
    return FeatureKey(**base)


def test_roundtrip_is_exact(tmp_path):
    store = FeatureStore(tmp_path)
    k = key()
    f = {"a": feats("a", seed=1), "b": feats("b", seed=2, p=7)}
    assert store.missing(k, ["a", "b"]) == ["a", "b"]
    store.save(k, f)
    assert store.has(k, "a") and store.has(k, "b") and not store.has(k, "c")
    assert store.missing(k, ["a", "c"]) == ["c"]
    got = store.load(k, ["b", "a"])
    assert list(got) == ["b", "a"]
    for name in "ab":
        np.testing.assert_array_equal(got[name].data, f[name].data)
        assert got[name].data.dtype == np.float32
        np.testing.assert_array_equal(got[name].times, f[name].times)  # bit-exact
        assert got[name].pooling == "mean" and got[name].layer == name and got[name].weights == "random-seed0"
    assert sorted(store.layers(k)) == ["a", "b"]
    # no temporary files left behind
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    with pytest.raises(KeyError, match="'c'"):
        store.load(k, ["c"])


def test_load_reads_only_requested_layers(tmp_path, monkeypatch):
    store = FeatureStore(tmp_path)
    k = key()
    store.save(k, {l: feats(l) for l in ("a", "b", "c")})
    # corrupt b and c: a partial load must not touch them
    folder = store.folder(k)
    (folder / "b.npy").write_bytes(b"garbage")
    (folder / "c.json").write_text("{not json")
    opened = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda f, *a, **kw: (opened.append(str(f)), real_load(f, *a, **kw))[1])
    got = store.load(k, ["a"])
    assert list(got) == ["a"]
    assert len(opened) == 1 and opened[0].endswith("a.npy")
    with pytest.raises(Exception):
        store.load(k, ["b"])


def test_every_key_field_separates_entries(tmp_path):
    store = FeatureStore(tmp_path)
    k = key()
    store.save(k, {"a": feats("a")})
    variants = [
        key(model="m2"),
        key(weights="hub:x@1"),
        key(pooling="cls"),
        key(window={"tr": 2.0, "n_frames": 4}),
        key(stimulus="abd"),
        key(version="2"),
    ]
    for v in variants:
        assert v.digest != k.digest
        assert not store.has(v, "a")
    # same content, dict order irrelevant
    assert key(window={"n_frames": 4, "tr": 1.5}).digest == k.digest
    side = read_json(store.folder(k) / "a.json")
    assert side["key"]["window"] == {"n_frames": 4, "tr": 1.5}
    assert side["shape"] == [6, 4]


def test_interrupted_write_is_not_visible(tmp_path):
    store = FeatureStore(tmp_path)
    k = key()
    store.save(k, {"a": feats("a")})
    (store.folder(k) / "a.json").unlink()  # as if the process died between .npy and .json
    assert not store.has(k, "a")
    assert store.missing(k, ["a"]) == ["a"]


def test_file_hash_is_sha256_and_follows_changes(tmp_path):
    store = FeatureStore(tmp_path / "store")
    f = tmp_path / "stim.bin"
    f.write_bytes(b"hello")
    assert store.file_hash(f) == hashlib.sha256(b"hello").hexdigest() == file_sha256(f)
    f.write_bytes(b"hello world")
    os.utime(f, ns=(1, 10**18))
    assert store.file_hash(f) == hashlib.sha256(b"hello world").hexdigest()
    index = read_json(tmp_path / "store" / "file_hashes.json")
    assert hashlib.sha256(b"hello world").hexdigest() in index.values()
    k1 = store.key(model="m", weights="w", pooling="mean", window={}, stimulus_files=[f])
    assert k1.stimulus == hashlib.sha256(b"hello world").hexdigest()


def test_file_hash_index_persists_across_store_instances(tmp_path, monkeypatch):
    import mmneuro.features.store as store_mod

    f = tmp_path / "stim.bin"
    f.write_bytes(b"abc" * 1000)
    expect = FeatureStore(tmp_path / "store").file_hash(f)

    def boom(path):
        raise AssertionError("file was hashed again")

    monkeypatch.setattr(store_mod, "file_sha256", boom)
    assert FeatureStore(tmp_path / "store").file_hash(f) == expect  # a fresh instance reads the index
    with pytest.raises(AssertionError, match="hashed again"):
        FeatureStore(tmp_path / "other-store").file_hash(f)


def test_chunks_roundtrip_and_reject_partial_files(tmp_path):
    store = FeatureStore(tmp_path)
    k = key()
    a = np.arange(8, dtype=np.float32).reshape(4, 2)
    b = -np.arange(4, dtype=np.float32).reshape(2, 2)
    assert not store.has_chunk(k, "b2-k4", "x", 0, 4)
    store.save_chunk(k, "b2-k4", "x", 0, 4, a)
    store.save_chunk(k, "b2-k4", "x", 4, 6, b)
    assert store.has_chunk(k, "b2-k4", "x", 0, 4, width=2) and not store.has_chunk(k, "b2-k4", "x", 0, 4, width=3)
    assert not store.has_chunk(k, "b1-k4", "x", 0, 4)  # another batching is another tag
    np.testing.assert_array_equal(store.load_chunks(k, "b2-k4", "x", [(0, 4), (4, 6)]), np.concatenate([a, b]))
    with pytest.raises(Exception, match="rows"):
        store.save_chunk(k, "b2-k4", "x", 6, 8, a)
    # a truncated chunk file (not possible through save_chunk) counts as absent
    path = store.partial_chunks(k)[0]
    path.write_bytes(path.read_bytes()[:-5])
    assert not store.has_chunk(k, "b2-k4", "x", 0, 4)
    # dropping a layer's chunks removes the partial folder when nothing else is left
    store.drop_partial(k, "x")
    assert store.partial_chunks(k) == [] and not (store.folder(k) / "partial").exists()


def test_sweep_removes_temp_files_of_dead_writers_only(tmp_path):
    import subprocess
    import sys

    store = FeatureStore(tmp_path)
    k = key()
    store.save(k, {"a": feats("a")})
    store.save_chunk(k, "b1-k1", "a", 0, 1, np.zeros((1, 4), np.float32))  # stale chunk of a stored layer
    store.save_chunk(k, "b1-k1", "b", 0, 1, np.zeros((1, 4), np.float32))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    folder = store.folder(k)
    stale = folder / f".a.npy.{dead_pid}.abcd1234.tmp"
    live = folder / f".b.npy.{os.getpid()}.abcd1234.tmp"
    stale.write_bytes(b"half")
    live.write_bytes(b"being written")
    assert store.sweep(k) == 1
    assert not stale.exists() and live.exists()
    assert [p.parent.name for p in store.partial_chunks(k)] == ["b"]  # chunks of the stored layer dropped


def test_load_can_memory_map(tmp_path):
    store = FeatureStore(tmp_path)
    k = key()
    f = feats("a")
    store.save(k, {"a": f}, info={"n_windows": 6})
    got = store.load(k, ["a"], mmap=True)["a"]
    assert not got.data.flags.owndata and not got.data.flags.writeable  # a read-only view of the mapped file
    np.testing.assert_array_equal(got.data, f.data)
    assert read_json(store.folder(k) / "a.json")["windows"] == {"n_windows": 6}
