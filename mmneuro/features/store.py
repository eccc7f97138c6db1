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

Partial progress of an extraction lives beside the final arrays, one file per layer and
chunk of consecutive windows::

    root/<model>/<digest>/partial/<tag>/<layer>/<start>-<stop>.npy   (stop - start, p) float32

``tag`` names the batching (``b<batch>-k<chunk>``) so a resumed extraction recomputes
exactly the batches an uninterrupted one would (bitwise-equal results). Chunk files are
atomic too: a killed extraction loses at most the chunk it was computing. Once a layer's
final array is assembled its chunks are deleted; temporary files of dead writers are swept
by :meth:`FeatureStore.sweep`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from mmneuro.errors import InputError
from mmneuro.models.base import TimedFeatures

FORMAT = 1

_HASHES: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes, cached per process by (path, size, mtime)."""
    p = Path(path).resolve()
    st = p.stat()
    k = (str(p), st.st_size, st.st_mtime_ns)
    with _LOCK:
        if k in _HASHES:
            return _HASHES[k]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _LOCK:
        _HASHES[k] = digest
    return digest


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
        """sha256 of a stimulus file; cached in memory and in ``root/file_hashes.json``."""
        p = Path(path).resolve()
        st = p.stat()
        entry = f"{p}|{st.st_size}|{st.st_mtime_ns}"
        index_path = self.root / "file_hashes.json"
        index = self._read_json(index_path) or {}
        if entry in index:
            return index[entry]
        digest = file_sha256(p)
        index = self._read_json(index_path) or {}
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

    # ---- queries --------------------------------------------------------------------
    def has(self, key: FeatureKey, layer: str) -> bool:
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
            if d and "layer" in d and self.has(key, d["layer"]):
                out.append(d["layer"])
        return out

    # ---- io -------------------------------------------------------------------------
    def save(self, key: FeatureKey, features: Mapping[str, TimedFeatures], info: Mapping[str, Any] | None = None) -> None:
        """Write each layer's features atomically (``.npy`` then its ``.json`` sidecar).

        ``info``: json-able facts about the windows (e.g. how many repeated frames),
        recorded in each sidecar under ``"windows"``.
        """
        folder = self.folder(key)
        kd = key.as_dict()
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
                "times": [float(t) for t in tf.times],
            }
            if info is not None:
                sidecar["windows"] = dict(info)
            _atomic_write(meta, lambda f: f.write(json.dumps(sidecar).encode()))

    def load(self, key: FeatureKey, layers: Iterable[str], mmap: bool = False) -> dict[str, TimedFeatures]:
        """Read the requested layers only (``mmap``: memory-map them). KeyError for a layer not stored."""
        out = {}
        for layer in layers:
            npy, meta = self._paths(key, layer)
            if not (meta.is_file() and npy.is_file()):
                raise KeyError(f"layer {layer!r} is not stored under {self.folder(key)}")
            side = self._read_json(meta)
            if side is None or side.get("key") != key.as_dict() or side.get("layer") != layer:
                raise InputError(f"feature store file {meta} does not belong to this key/layer (corrupt store?)")
            data = np.load(npy, allow_pickle=False, mmap_mode="r" if mmap else None)
            if list(data.shape) != side["shape"]:
                raise InputError(f"feature store file {npy} has shape {data.shape}, its sidecar says {side['shape']}")
            out[layer] = TimedFeatures(
                data=data,
                times=np.asarray(side["times"], dtype=np.float64),
                pooling=side["pooling"],
                layer=layer,
                model=side.get("model", ""),
                weights=side.get("weights", ""),
            )
        return out

    # ---- partial progress (chunks) ----------------------------------------------------
    def _chunk_path(self, key: FeatureKey, tag: str, layer: str, start: int, stop: int) -> Path:
        return self.folder(key) / "partial" / _safe(tag) / _safe(layer) / f"{int(start):08d}-{int(stop):08d}.npy"

    def has_chunk(self, key: FeatureKey, tag: str, layer: str, start: int, stop: int, width: int | None = None) -> bool:
        """Whether windows ``[start, stop)`` of ``layer`` are stored as a complete chunk.

        Reads only the ``.npy`` header: the chunk must be 2-D float32 with ``stop - start``
        rows (and ``width`` columns when given); anything else is treated as absent.
        """
        path = self._chunk_path(key, tag, layer, start, stop)
        if not path.is_file():
            return False
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError):
            return False
        return arr.ndim == 2 and arr.dtype == np.float32 and arr.shape[0] == stop - start and (
            width is None or arr.shape[1] == width)

    def save_chunk(self, key: FeatureKey, tag: str, layer: str, start: int, stop: int, data: np.ndarray) -> None:
        """Atomically store ``data`` ((stop - start, p) float32) as windows ``[start, stop)`` of ``layer``."""
        data = np.ascontiguousarray(data, dtype=np.float32)
        if data.ndim != 2 or data.shape[0] != stop - start:
            raise InputError(f"chunk [{start}, {stop}) of layer {layer!r} needs {stop - start} rows; got shape {data.shape}")
        key_json = self.folder(key) / "key.json"
        if not key_json.is_file():
            kd = key.as_dict()
            _atomic_write(key_json, lambda f: f.write(json.dumps(kd, indent=1, sort_keys=True).encode()))
        _atomic_write(self._chunk_path(key, tag, layer, start, stop), lambda f: np.save(f, data, allow_pickle=False))

    def load_chunks(self, key: FeatureKey, tag: str, layer: str, bounds: Iterable[tuple[int, int]]) -> np.ndarray:
        """Concatenate the chunks ``bounds`` (consecutive ``(start, stop)``) of ``layer``: (n, p) float32."""
        parts = []
        for a, b in bounds:
            path = self._chunk_path(key, tag, layer, a, b)
            try:
                arr = np.load(path, allow_pickle=False)
            except (FileNotFoundError, ValueError, OSError) as exc:
                raise InputError(f"feature store chunk {path} is missing or unreadable: {exc}") from exc
            if arr.ndim != 2 or arr.shape[0] != b - a:
                raise InputError(f"feature store chunk {path} has shape {arr.shape}; expected {b - a} rows")
            parts.append(arr)
        return np.concatenate(parts, axis=0).astype(np.float32, copy=False)

    def drop_partial(self, key: FeatureKey, layer: str | None = None) -> None:
        """Delete the chunks of ``layer`` under every tag (all layers when None)."""
        part = self.folder(key) / "partial"
        if not part.is_dir():
            return
        if layer is None:
            shutil.rmtree(part, ignore_errors=True)
            return
        for tag_dir in part.iterdir():
            shutil.rmtree(tag_dir / _safe(layer), ignore_errors=True)
            if tag_dir.is_dir() and not any(tag_dir.iterdir()):
                tag_dir.rmdir()
        if not any(part.iterdir()):
            part.rmdir()

    def partial_chunks(self, key: FeatureKey) -> list[Path]:
        """Every chunk file stored under ``key`` (any tag, any layer)."""
        part = self.folder(key) / "partial"
        return sorted(p for p in part.rglob("*.npy") if not p.name.startswith(".")) if part.is_dir() else []

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
        part = folder / "partial"
        if part.is_dir():
            for layer in self.layers(key):
                self.drop_partial(key, layer)
        return n

    @staticmethod
    def _read_json(path: Path) -> Any:
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r})"


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
