"""Result folders: named by a digest of their config, published atomically, never over foreign files.

Every result (an ``encode`` subject or group, an ``ablate`` study, a sweep cell) lives in a folder
``<parent>/<label>-<digest>``, where ``digest`` hashes the full config (:func:`config_digest`), so
results of different settings never overwrite each other; a rerun with the same settings
replaces its own earlier result. A folder counts as mmneuro's only when it holds the marker
``.mmneuro-result.json`` (kind, digest, config, a run id); mmneuro refuses to replace any other.

Writing (:class:`ResultFolder`):

1. files go to a hidden sibling ``.<name>.partial-<host>-<pid>-<rand>``; the marker is written last;
2. the sibling is published with one atomic exchange (Linux ``renameat2(RENAME_EXCHANGE)``), so
   at every instant the visible folder is the old complete result or the new complete one; the
   old one, now in the sibling, is deleted. Where the exchange is unavailable the old folder is
   first renamed to ``.<name>.old-<host>-<pid>-<rand>``;
3. leftovers of processes that are gone (same host, dead pid) are cleaned when a folder in the
   same parent is next written or read through :func:`recover`: a complete partial or old
   folder whose final name is missing is put back in place (the newest complete one wins), the
   rest is deleted. Two processes publishing the same folder both end with a complete result
   (the last one wins).

JSON outputs are strict (:func:`write_json`): NaN and infinities become ``null``.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import math
import os
import re
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

from mmneuro.errors import InputError

MARKER = ".mmneuro-result.json"
DIGEST_LENGTH = 8
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
#: A path component of a result: letters, digits and ``. _ - + =``, no ``..``, not hidden.
COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,127}$")
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[0-9a-f]+$")


# --------------------------------------------------------------------------- names

def jsonable(value: Any) -> Any:
    """``value`` as strict JSON data: tuples -> lists, paths -> str, numpy scalars -> Python, NaN/inf -> None."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def config_digest(config: Mapping[str, Any]) -> str:
    """A short stable digest (hex) of a JSON-able config; key order does not matter."""
    blob = json.dumps(jsonable(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:DIGEST_LENGTH]


def check_component(text: str, what: str = "a result folder") -> str:
    """``text`` if it may name a file or folder of a result (see :data:`COMPONENT`), else InputError."""
    text = str(text)
    if not COMPONENT.fullmatch(text) or ".." in text:
        raise InputError(f"{text!r} cannot name {what} (it comes from a subject, run, model or layer label): "
                         f"use letters, digits, '.', '_', '-', '+', '=' (no '/', '\\' or '..')")
    return text


def safe_path(root: str | Path, *parts: str) -> Path:
    """``root/part/...`` with every part a safe label (no separator, no ``..``), checked to stay inside ``root``."""
    root = Path(root)
    for part in parts:
        check_component(part)
    path = root.joinpath(*parts)
    base = root.resolve()
    if base not in path.resolve().parents:
        raise InputError(f"result path {path} would leave the output folder {root}")
    return path


def result_dir(root: str | Path, parents: tuple[str, ...], label: str, config: Mapping[str, Any]) -> Path:
    """The folder of one result: ``root/<parents...>/<label>-<digest of config>``."""
    return safe_path(root, *parents, f"{label}-{config_digest(config)}")


def write_json(path: str | Path, data: Any) -> None:
    """Strict JSON (NaN -> null), indented."""
    Path(path).write_text(json.dumps(jsonable(data), indent=2, allow_nan=False, default=str))


def read_marker(folder: str | Path) -> dict[str, Any] | None:
    """The marker of a result folder, or None when ``folder`` is not one of mmneuro's complete results."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "digest" in data else None


# --------------------------------------------------------------------------- publishing

def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    sys.audit("mmneuro.results.exchange", str(a), str(b))  # the one write step os's audit events miss
    if fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(b))


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


def _sibling(final: Path, kind: str) -> Path:
    return final.parent / f".{final.name}.{kind}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def recover(parent: str | Path) -> list[str]:
    """Clean what dead processes (this host) left in ``parent``; returns what was done, one line each.

    A result whose final folder is missing gets back its newest complete leftover (the new
    partial one when it was complete, else the old one); every other dead leftover is deleted.
    """
    parent = Path(parent)
    if not parent.is_dir():
        return []
    by_name: dict[str, list[Path]] = {}
    for entry in parent.iterdir():
        m = _LEFTOVER.match(entry.name)
        if m and m["host"] == _HOST and not _pid_alive(int(m["pid"])):
            by_name.setdefault(m["name"], []).append(entry)
    done = []
    for name, leftovers in by_name.items():
        final = parent / name
        if not final.exists():
            complete = [p for p in leftovers if read_marker(p) is not None]
            if complete:
                best = max(complete, key=lambda p: float(read_marker(p).get("written", 0)))
                try:
                    os.rename(best, final)
                    done.append(f"restored {final} from {best.name}")
                    leftovers.remove(best)
                except OSError:
                    pass
        for p in leftovers:
            _rmtree(p)
            done.append(f"removed {p.name}")
    return done


class ResultFolder:
    """Write a result folder: ``with ResultFolder(final, kind, config) as tmp:`` writes into ``tmp``.

    On success the folder is published atomically (see the module doc); on an exception the
    partial folder is deleted and the old result stays. An existing ``final`` that mmneuro did
    not write (no marker) is refused before anything is written.
    """

    def __init__(self, final: str | Path, kind: str = "result", config: Mapping[str, Any] | None = None) -> None:
        self.final = Path(final)
        self.kind = kind
        self.config = dict(config or {})
        self.partial = _sibling(self.final, "partial")

    def __enter__(self) -> Path:
        recover(self.final.parent)
        check_replaceable(self.final)
        self.partial.mkdir(parents=True)
        return self.partial

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            _rmtree(self.partial)
            return
        marker = {"kind": self.kind, "digest": config_digest(self.config), "config": self.config,
                  "run_id": uuid.uuid4().hex, "written": time.time(), "host": _HOST, "pid": os.getpid()}
        write_json(self.partial / MARKER, marker)
        publish(self.partial, self.final)


def check_replaceable(final: Path) -> None:
    """InputError unless ``final`` is absent, an empty folder, or a result mmneuro wrote."""
    if not final.exists():
        return
    if final.is_dir() and (read_marker(final) is not None or not any(final.iterdir())):
        return
    raise InputError(f"{final} exists and was not written by mmneuro (no {MARKER}); it is left untouched: "
                     f"move it away or choose another --out")


def publish(partial: Path, final: Path) -> None:
    """Move the complete folder ``partial`` to ``final``, replacing a previous result atomically."""
    for _ in range(100):
        if final.exists():
            check_replaceable(final)
            if _exchange(partial, final):
                _rmtree(partial)  # holds the previous result now
                return
            old = _sibling(final, "old")
            try:
                os.rename(final, old)
            except FileNotFoundError:
                continue  # another writer moved it meanwhile
            try:
                os.rename(partial, final)
            except OSError as err:
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                _rmtree(old)
                continue  # another writer published meanwhile: replace theirs
            _rmtree(old)
            return
        try:
            os.rename(partial, final)
            return
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise  # another writer published meanwhile: loop and replace theirs
    raise OSError(errno.EBUSY, "result folder kept changing while publishing", str(final))


def results_named(parent: str | Path, label: str) -> list[Path]:
    """mmneuro's complete results ``parent/<label>-<digest>``, newest first."""
    parent = Path(parent)
    recover(parent)
    found = [p for p in parent.glob(f"{label}-*") if len(p.name) == len(label) + 1 + DIGEST_LENGTH
             and read_marker(p) is not None]
    return sorted(found, key=lambda p: float(read_marker(p).get("written", 0)), reverse=True)


def latest_result(parent: str | Path, label: str) -> Path:
    """The newest complete result ``parent/<label>-<digest>``; InputError naming ``parent`` when there is none."""
    found = results_named(parent, label)
    if not found:
        raise InputError(f"no complete result named {label}-<digest> in {parent}")
    return found[0]
