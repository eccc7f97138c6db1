"""On-disk cache of layer activations, one file per (key, layer).

A :class:`FeatureKey` names everything that determines the numbers: model name, weights
identity, adapter version, pooling, window parameters (TR, frames per window, context
words, ...) and the sha256 of the stimulus file(s). Its digest names a folder::

    root/<model>/<digest>/key.json           the key, for humans
    root/<model>/<digest>/<layer>.npy        (n, p) float32
    root/<model>/<digest>/<layer>.json       key, layer, pooling, shape, sample times

Every file is written to a temporary name in the same folder (``.<name>.<pid>.<rand>.tmp``)
and moved into place with ``os.replace``, the ``.npy`` before its ``.json``: a layer counts
as stored only when its ``.json`` exists, so an interrupted write is never read back.
``load`` opens only the requested layers' files (optionally memory-mapped).

Integrity: every array carries the sha256 of its data bytes (C order), final layers in
their ``.json`` sidecar (``"checksum": "sha256:<hex>"``, with shape and dtype, and
``"times_checksum"`` for the sample times), chunks in a trailer after the array data (below). Reads verify it: :meth:`FeatureStore.load` raises an
:class:`~mmneuro.errors.InputError` naming a corrupt (flipped bits, truncated, garbage)
file, :meth:`FeatureStore.load_valid` warns with its name, discards it and reports the layer
as missing, so ``extract_run`` recomputes it. With ``mmap=True`` the check reads the mapped
file once when it is loaded (sha256 at ~1.7 GB/s: a 3000 x 768 float32 layer, 9.2 MB, loads
in ~6 ms instead of ~0.1 ms for a bare ``np.load(mmap_mode="r")``; its pages then sit in the
OS cache for the reads that follow; ``benchmarks/race_extract.py --checksum-cost`` times it).

Partial progress of an extraction lives beside the final arrays, one file per layer and
chunk of consecutive windows::

    root/<model>/<digest>/partial/<tag>/<layer>/<start>-<stop>.npy   (stop - start, p) float32

``tag`` names the batching (``b<batch>-k<chunk>``) so a resumed extraction recomputes
exactly the batches an uninterrupted one would (bitwise-equal results). Chunk files are
atomic too: a killed extraction loses at most the chunk it was computing. A chunk is a
plain ``.npy`` followed by ``\nmmneuro-sha256:<hex>\n`` (``np.load`` ignores the trailer),
so the array and its checksum are replaced together. Once a layer's final array is
assembled its chunks are deleted; temporary files of dead writers are swept by
:meth:`FeatureStore.sweep`.

Concurrent writers (two ``mmneuro extract`` of the same stimuli into one cache) are safe:
each key has a lock file ``root/.locks/<model>-<digest>.lock`` (``fcntl.flock``, released
when its process dies). Writing a chunk and reading a final array take it shared;
assembling a layer from its chunks, saving final arrays and deleting chunks take it
exclusive, so chunks never vanish under a reader. A process that finds a layer already
assembled by another uses that array (the same bytes it would have computed); deletions
tolerate files already deleted. The stimulus-hash index ``root/file_hashes.json`` is
updated under ``root/.locks/file_hashes.lock``, so concurrent writers keep every entry.

Stimulus identity: a file's sha256 is cached (in process and in the index) under its path,
size, mtime, inode, device and ctime; editing a file changes its ctime even when its
mtime is set back (``os.utime``), so edited stimuli are hashed again (an edit within the
file system's timestamp granularity of the previous hash cannot be seen).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import threading
import tokenize
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from mmneuro.errors import InputError
from mmneuro.models.base import TimedFeatures

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None  # type: ignore[assignment]

#: bumped when the files change: 2 = arrays carry sha256 checksums (format-1 entries are other keys)
FORMAT = 2

#: the folder of lock files inside the store root (a name ``_safe`` never gives a model)
LOCKS = ".locks"

_HASHES: dict[tuple, str] = {}
_LOCK = threading.Lock()

_TRAILER_TAG = b"\nmmneuro-sha256:"
_TRAILER_LEN = len(_TRAILER_TAG) + 64 + 1


def _stat_id(p: Path, st: os.stat_result) -> tuple:
    """What identifies a file's bytes without reading them: size, mtime, inode, device, ctime.

    ctime cannot be set by a user: writing a file and setting its mtime back both move it.
    """
    return (str(p), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, st.st_ctime_ns)


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes, cached per process by (path, size, mtime, inode, device, ctime)."""
    p = Path(path).resolve()
    for _ in range(3):
        k = _stat_id(p, p.stat())
        with _LOCK:
            if k in _HASHES:
                return _HASHES[k]
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        digest = h.hexdigest()
        if _stat_id(p, p.stat()) == k:  # unchanged while it was read
            with _LOCK:
                _HASHES[k] = digest
            return digest
    raise InputError(f"stimulus file {p} changed while it was being hashed (3 tries); wait until whatever writes it "
                     f"is done and run again")


def array_sha256(data: np.ndarray) -> str:
    """``"sha256:<hex>"`` of an array's data bytes in C order (a memory-mapped array is read once)."""
    a = np.ascontiguousarray(data)
    return "sha256:" + hashlib.sha256(memoryview(a).cast("B")).hexdigest()


_HELD = threading.local()  # per thread: lock path -> "sh" / "ex"


@contextlib.contextmanager
def _flock(path: Path, exclusive: bool) -> Iterator[None]:
    """Hold ``fcntl.flock`` on ``path`` (created on demand) shared or exclusive.

    Re-entrant within a thread (an exclusive hold covers nested shared/exclusive requests);
    released when the block ends or the process dies. A lock file that cannot be created
    (a read-only cache) means nobody can write there: the block runs unlocked.
    """
    held = _HELD.__dict__.setdefault("modes", {})
    k = str(path)
    mode = held.get(k)
    if mode is not None:
        if exclusive and mode != "ex":
            raise RuntimeError(f"store lock {path} is held shared by this thread; cannot take it exclusive")
        yield
        return
    fd = None
    if fcntl is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                fd = None
    if fd is None:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        held[k] = "ex" if exclusive else "sh"
        try:
            yield
        finally:
            del held[k]
    finally:
        os.close(fd)  # releases the lock


class CorruptChunks(InputError):
    """Chunks of a layer that are missing or fail verification: ``bounds`` lists them all as
    ``(start, stop)``, ``corrupt`` maps the paths of the ones present but bad to why."""

    def __init__(self, message: str, bounds: list[tuple[int, int]], corrupt: dict[str, str]):
        super().__init__(message)
        self.bounds = bounds
        self.corrupt = corrupt


@dataclass
class FeatureKey:
    """Everything that determines a set of pooled layer activations.

    Attributes
    ----------
    model : registry name.
    weights : weights identity (``"random-seed0"``, ``"hub:<id>@<commit>"``...).
    pooling : pooling label as recorded with the features.
    window : window parameters (json-able dict: ``tr``, ``n_frames``, ``n_context``...).
    stimulus : sha256 digest(s) of the stimulus file(s) read, joined with ``+``.
    version : adapter version (bumped when an adapter's numbers change).
    """

    model: str
    weights: str
    pooling: str
    window: dict[str, Any] = field(default_factory=dict)
    stimulus: str = ""
    version: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["format"] = FORMAT
        return json.loads(json.dumps(d, sort_keys=True))  # normalise (tuples -> lists, ...)

    @property
    def digest(self) -> str:
        blob = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _safe(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    if s != name or s.startswith("."):
        s = s.lstrip(".") + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return s or "_"


_TMP = re.compile(r"^\..*\.(\d+)\.[^.]+\.tmp$")


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class FeatureStore:
    """A folder of cached features keyed by :class:`FeatureKey` and layer.

    Parameters
    ----------
    root : the store's folder (created on first write).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ---- keys -----------------------------------------------------------------------
    def file_hash(self, path: str | Path) -> str:
        """sha256 of a stimulus file; cached in memory and in ``root/file_hashes.json``.

        Index entries are keyed by path, size, mtime, inode, device and ctime (see
        :func:`file_sha256`); the index is rewritten under a lock, so concurrent writers keep
        every entry.
        """
        p = Path(path).resolve()
        ident = _stat_id(p, p.stat())
        entry = "|".join(str(v) for v in ident)
        index_path = self.root / "file_hashes.json"
        index = self._read_index(index_path)
        if entry in index:
            return index[entry]
        digest = file_sha256(p)
        if _stat_id(p, p.stat()) != ident:  # changed meanwhile: the digest is right, the entry would not be
            return digest
        prefix = f"{p}|"
        with _flock(self.root / LOCKS / "file_hashes.lock", exclusive=True):
            index = self._read_index(index_path)
            for old in [e for e in index if e.startswith(prefix) and re.fullmatch(r"[0-9|]+", e[len(prefix):])]:
                del index[old]  # earlier versions of this file
            index[entry] = digest
            _atomic_write(index_path, lambda f: f.write(json.dumps(index, indent=0, sort_keys=True).encode()))
        return digest

    def key(
        self,
        *,
        model: str,
        weights: str,
        pooling: str,
        window: Mapping[str, Any],
        stimulus_files: Iterable[str | Path],
        version: str = "",
    ) -> FeatureKey:
        """Build a key, hashing the stimulus files."""
        stim = "+".join(self.file_hash(p) for p in stimulus_files)
        return FeatureKey(model=model, weights=weights, pooling=pooling, window=dict(window), stimulus=stim, version=version)

    def folder(self, key: FeatureKey) -> Path:
        return self.root / _safe(key.model) / key.digest

    def _paths(self, key: FeatureKey, layer: str) -> tuple[Path, Path]:
        base = self.folder(key) / _safe(layer)
        return base.with_name(base.name + ".npy"), base.with_name(base.name + ".json")

    def lock(self, key: FeatureKey, exclusive: bool = True):
        """Context manager holding ``key``'s lock (``fcntl.flock`` on ``root/.locks/...``).

        Exclusive: assembling, saving and dropping; shared: writing chunks, reading arrays.
        Re-entrant within a thread; released if the process dies.
        """
        return _flock(self.root / LOCKS / f"{_safe(key.model)}-{key.digest}.lock", exclusive)

    # ---- queries --------------------------------------------------------------------
    def has(self, key: FeatureKey, layer: str) -> bool:
        """Whether ``layer`` is stored (its files exist; :meth:`load` verifies their bytes)."""
        npy, meta = self._paths(key, layer)
        return meta.is_file() and npy.is_file()

    def missing(self, key: FeatureKey, layers: Iterable[str]) -> list[str]:
        """The layers of ``layers`` not stored under ``key``, in the given order."""
        return [l for l in layers if not self.has(key, l)]

    def layers(self, key: FeatureKey) -> list[str]:
        """Layers stored under ``key``."""
        folder = self.folder(key)
        if not folder.is_dir():
            return []
        out = []
        for meta in sorted(folder.glob("*.json")):
            if meta.name == "key.json":
                continue
            d = self._read_json(meta)
            if isinstance(d, dict) and "layer" in d and self.has(key, d["layer"]):
                out.append(d["layer"])
        return out

    # ---- io -------------------------------------------------------------------------
    def save(self, key: FeatureKey, features: Mapping[str, TimedFeatures], info: Mapping[str, Any] | None = None) -> None:
        """Write each layer's features atomically (``.npy`` then its ``.json`` sidecar, with the checksum).

        ``info``: json-able facts about the windows (e.g. how many repeated frames),
        recorded in each sidecar under ``"windows"``.
        """
        folder = self.folder(key)
        kd = key.as_dict()
        with self.lock(key, exclusive=True):
            key_json = folder / "key.json"
            if not key_json.is_file():
                _atomic_write(key_json, lambda f: f.write(json.dumps(kd, indent=1, sort_keys=True).encode()))
            for layer, tf in features.items():
                if tf.layer != layer:
                    raise InputError(f"features stored under layer {layer!r} say they are layer {tf.layer!r}")
                data = np.ascontiguousarray(tf.data, dtype=np.float32)
                npy, meta = self._paths(key, layer)
                _atomic_write(npy, lambda f: np.save(f, data, allow_pickle=False))
                sidecar = {
                    "key": kd,
                    "layer": layer,
                    "pooling": tf.pooling,
                    "model": tf.model,
                    "weights": tf.weights,
                    "shape": list(data.shape),
                    "dtype": "float32",
                    "checksum": array_sha256(data),
                    "times": [float(t) for t in tf.times],
                    "times_checksum": array_sha256(np.asarray(tf.times, dtype=np.float64)),
                }
                if info is not None:
                    sidecar["windows"] = dict(info)
                _atomic_write(meta, lambda f: f.write(json.dumps(sidecar).encode()))

    def _read_layer(self, key: FeatureKey, layer: str, mmap: bool) -> TimedFeatures:
        """Read and verify one stored layer; :class:`InputError` naming the bad file, KeyError if absent."""
        npy, meta = self._paths(key, layer)
        if not (meta.is_file() and npy.is_file()):
            raise KeyError(f"layer {layer!r} is not stored under {self.folder(key)}")
        side = self._read_json(meta)
        if not isinstance(side, dict) or side.get("key") != key.as_dict() or side.get("layer") != layer:
            raise _Corrupt(meta, "it is unreadable or does not belong to this key/layer")
        if not isinstance(side.get("checksum"), str) or not isinstance(side.get("shape"), list):
            raise _Corrupt(meta, "it records no checksum or shape")
        try:
            data = np.load(npy, allow_pickle=False, mmap_mode="r" if mmap else None)
        except FileNotFoundError:
            raise KeyError(f"layer {layer!r} is not stored under {self.folder(key)}") from None
        except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:
            raise _Corrupt(npy, f"unreadable ({type(exc).__name__})") from exc
        if list(data.shape) != side["shape"] or data.dtype != np.float32 or data.ndim != 2:
            raise _Corrupt(npy, f"it holds {data.dtype} of shape {data.shape}, its sidecar says float32 {side['shape']}")
        if array_sha256(data) != side["checksum"]:
            raise _Corrupt(npy, "its sha256 differs from the one recorded when it was written (flipped bits?)")
        try:
            times = np.asarray(side["times"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise _Corrupt(meta, f"its sample times are unreadable: {exc}") from exc
        if times.shape != (data.shape[0],) or array_sha256(times) != side.get("times_checksum"):
            raise _Corrupt(meta, "its sample times do not match the checksum written with them")
        return TimedFeatures(
            data=data,
            times=times,
            pooling=side["pooling"],
            layer=layer,
            model=side.get("model", ""),
            weights=side.get("weights", ""),
        )

    def load(self, key: FeatureKey, layers: Iterable[str], mmap: bool = False) -> dict[str, TimedFeatures]:
        """Read the requested layers only (``mmap``: memory-map them), each verified against its checksum.

        KeyError for a layer not stored; :class:`~mmneuro.errors.InputError` naming the file
        for a corrupt one (use :meth:`load_valid` to have corrupt layers discarded instead).
        """
        out = {}
        with self.lock(key, exclusive=False):
            for layer in layers:
                try:
                    out[layer] = self._read_layer(key, layer, mmap)
                except _Corrupt as c:
                    npy, meta = self._paths(key, layer)
                    raise InputError(f"feature store file {c.path} is corrupt ({c.why}); delete {npy.name} and "
                                     f"{meta.name} in {npy.parent} and run again to recompute layer {layer!r}") from None
        return out

    def load_valid(self, key: FeatureKey, layers: Iterable[str], mmap: bool = False,
                   ) -> tuple[dict[str, TimedFeatures], list[str]]:
        """Like :meth:`load`, but a corrupt layer is named in a RuntimeWarning, discarded and returned as missing.

        Returns ``(layer -> features, layers to recompute)``; layers not stored count as missing.
        """
        layers = list(layers)
        out: dict[str, TimedFeatures] = {}
        bad: dict[str, _Corrupt] = {}
        with self.lock(key, exclusive=False):
            for layer in layers:
                try:
                    out[layer] = self._read_layer(key, layer, mmap)
                except KeyError:
                    pass
                except _Corrupt as c:
                    bad[layer] = c
        for layer, c in bad.items():
            with self.lock(key, exclusive=True):
                try:  # again under the exclusive lock: another process may have replaced it meanwhile
                    out[layer] = self._read_layer(key, layer, mmap)
                    continue
                except KeyError:
                    continue
                except _Corrupt:
                    pass
                warnings.warn(f"feature store file {c.path} is corrupt ({c.why}); discarding it and recomputing "
                              f"layer {layer!r}", RuntimeWarning, stacklevel=2)
                npy, meta = self._paths(key, layer)
                meta.unlink(missing_ok=True)  # the sidecar first: the layer stops counting as stored
                npy.unlink(missing_ok=True)
        return {l: out[l] for l in layers if l in out}, [l for l in layers if l not in out]

    # ---- partial progress (chunks) ----------------------------------------------------
    def _chunk_path(self, key: FeatureKey, tag: str, layer: str, start: int, stop: int) -> Path:
        return self.folder(key) / "partial" / _safe(tag) / _safe(layer) / f"{int(start):08d}-{int(stop):08d}.npy"

    def has_chunk(self, key: FeatureKey, tag: str, layer: str, start: int, stop: int, width: int | None = None) -> bool:
        """Whether windows ``[start, stop)`` of ``layer`` are stored as a complete chunk.

        Reads only the ``.npy`` header and the trailer: the chunk must be 2-D float32 with
        ``stop - start`` rows (and ``width`` columns when given), exactly as long as its
        header says plus a checksum trailer; anything else is treated as absent. The
        checksum itself is verified when the chunks are read (:meth:`load_chunks`).
        """
        path = self._chunk_path(key, tag, layer, start, stop)
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:  # np.save writes 1.0 (2.0 for huge headers) for these arrays
                    return False
                offset = f.tell()
                size = os.fstat(f.fileno()).st_size
                nbytes = int(np.prod(shape)) * dtype.itemsize
                if size != offset + nbytes + _TRAILER_LEN:
                    return False
                f.seek(offset + nbytes)
                trailer = f.read(_TRAILER_LEN)
        except (ValueError, OSError, EOFError, SyntaxError, TypeError):
            return False
        return (not fortran and len(shape) == 2 and dtype == np.float32 and shape[0] == stop - start
                and (width is None or shape[1] == width) and trailer.startswith(_TRAILER_TAG))

    def save_chunk(self, key: FeatureKey, tag: str, layer: str, start: int, stop: int, data: np.ndarray) -> None:
        """Atomically store ``data`` ((stop - start, p) float32) as windows ``[start, stop)`` of ``layer``."""
        data = np.ascontiguousarray(data, dtype=np.float32)
        if data.ndim != 2 or data.shape[0] != stop - start:
            raise InputError(f"chunk [{start}, {stop}) of layer {layer!r} needs {stop - start} rows; got shape {data.shape}")
        trailer = _TRAILER_TAG + array_sha256(data).split(":", 1)[1].encode() + b"\n"

        def write(f):
            np.save(f, data, allow_pickle=False)
            f.write(trailer)

        with self.lock(key, exclusive=False):
            key_json = self.folder(key) / "key.json"
            if not key_json.is_file():
                kd = key.as_dict()
                _atomic_write(key_json, lambda f: f.write(json.dumps(kd, indent=1, sort_keys=True).encode()))
            _atomic_write(self._chunk_path(key, tag, layer, start, stop), write)

    def _read_chunk(self, path: Path, rows: int) -> np.ndarray:
        """One chunk, verified; :class:`_Corrupt` naming it, FileNotFoundError if absent."""
        raw = path.read_bytes()
        if len(raw) < _TRAILER_LEN or not raw[-_TRAILER_LEN:].startswith(_TRAILER_TAG):
            raise _Corrupt(path, "it has no checksum trailer (truncated?)")
        want = "sha256:" + raw[-_TRAILER_LEN + len(_TRAILER_TAG): -1].decode("ascii", "replace")
        try:
            arr = np.load(io.BytesIO(raw[:-_TRAILER_LEN]), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise _Corrupt(path, f"unreadable: {exc}") from exc
        if arr.ndim != 2 or arr.dtype != np.float32 or arr.shape[0] != rows:
            raise _Corrupt(path, f"it holds {arr.dtype} of shape {arr.shape}; expected float32 with {rows} rows")
        if array_sha256(arr) != want:
            raise _Corrupt(path, "its sha256 differs from the one written with it (flipped bits?)")
        return arr

    def load_chunks(self, key: FeatureKey, tag: str, layer: str, bounds: Iterable[tuple[int, int]]) -> np.ndarray:
        """Concatenate the chunks ``bounds`` (consecutive ``(start, stop)``) of ``layer``: (n, p) float32.

        Each chunk is verified against its checksum. Raises :class:`CorruptChunks` (an
        InputError naming the first bad file) listing every missing or corrupt chunk.
        """
        parts, bad, corrupt = [], [], {}
        with self.lock(key, exclusive=False):
            for a, b in bounds:
                path = self._chunk_path(key, tag, layer, a, b)
                try:
                    parts.append(self._read_chunk(path, b - a))
                except FileNotFoundError:
                    bad.append((a, b))
                except _Corrupt as c:
                    bad.append((a, b))
                    corrupt[str(path)] = c.why
        if bad:
            first = self._chunk_path(key, tag, layer, *bad[0])
            why = corrupt.get(str(first), "missing")
            raise CorruptChunks(f"feature store chunk {first} is missing or corrupt ({why}; {len(bad)} bad chunk(s) "
                                f"of layer {layer!r}); run the extraction again to recompute them", bad, corrupt)
        widths = {p.shape[1] for p in parts}
        if len(widths) > 1:
            raise InputError(f"feature store chunks of layer {layer!r} under {self.folder(key)} have different widths "
                             f"{sorted(widths)}; delete {self.folder(key) / 'partial'} and run again")
        return np.concatenate(parts, axis=0).astype(np.float32, copy=False)

    def drop_chunks(self, key: FeatureKey, tag: str, layer: str, bounds: Iterable[tuple[int, int]]) -> None:
        """Delete the chunks ``bounds`` of ``layer`` (absent ones are ignored)."""
        with self.lock(key, exclusive=True):
            for a, b in bounds:
                self._chunk_path(key, tag, layer, a, b).unlink(missing_ok=True)

    def drop_partial(self, key: FeatureKey, layer: str | None = None) -> None:
        """Delete the chunks of ``layer`` under every tag (all layers when None); files already gone are fine."""
        part = self.folder(key) / "partial"
        with self.lock(key, exclusive=True):
            if layer is None:
                shutil.rmtree(part, ignore_errors=True)
                return
            try:
                tags = list(part.iterdir())
            except (FileNotFoundError, NotADirectoryError):
                return
            for tag_dir in tags:
                shutil.rmtree(tag_dir / _safe(layer), ignore_errors=True)
                _rmdir_if_empty(tag_dir)
            _rmdir_if_empty(part)

    def partial_chunks(self, key: FeatureKey) -> list[Path]:
        """Every chunk file stored under ``key`` (any tag, any layer)."""
        part = self.folder(key) / "partial"
        try:
            return sorted(p for p in part.rglob("*.npy") if not p.name.startswith(".")) if part.is_dir() else []
        except FileNotFoundError:  # deleted meanwhile
            return []

    def sweep(self, key: FeatureKey) -> int:
        """Delete temporary files under ``key`` left by writers that are no longer running; returns the count.

        Chunks of layers whose final array is stored are deleted too.
        """
        folder = self.folder(key)
        if not folder.is_dir():
            return 0
        n = 0
        for p in folder.rglob(".*.tmp"):
            m = _TMP.match(p.name)
            if m and not _pid_alive(int(m.group(1))):
                p.unlink(missing_ok=True)
                n += 1
        if (folder / "partial").is_dir():
            with self.lock(key, exclusive=True):
                for layer in self.layers(key):
                    self.drop_partial(key, layer)
        return n

    @staticmethod
    def _read_json(path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None

    def _read_index(self, path: Path) -> dict[str, str]:
        d = self._read_json(path)
        return d if isinstance(d, dict) else {}

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r})"


class _Corrupt(Exception):
    """A stored file failed verification (internal; surfaced as a warning or an InputError naming it)."""

    def __init__(self, path: Path, why: str):
        why = " ".join(str(why).split())  # one line
        super().__init__(f"{path}: {why}")
        self.path, self.why = Path(path), why


def _rmdir_if_empty(d: Path) -> None:
    try:
        d.rmdir()
    except OSError:  # not empty, or already gone
        pass


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
