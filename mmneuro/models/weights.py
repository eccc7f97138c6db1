"""Finding model weights offline, and saying exactly what to do when they are missing.

``resolve_weights(spec, default_hub_id)`` looks, in this order, at

1. an explicit local folder (``--weights /path/to/folder``) holding ``config.json`` and
   weight files saved with ``save_pretrained``; identity ``sha256:<hex>`` over the
   weight files' bytes;
2. ``"random"``: an architecture-true model with seeded random init; identity
   ``random-seed<seed>``;
3. a Hugging Face hub id (``spec``, or ``default_hub_id`` when ``spec`` is None), looked
   up in the local Hugging Face cache only; identity ``hub:<id>@<commit>``. With
   ``allow_download=True`` a missing snapshot is fetched.

Nothing falls back silently: a missing model raises :class:`WeightsUnavailableError`
with the ways to provide it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from mmneuro.errors import InputError, WeightsUnavailableError
from mmneuro.models.base import WeightsInfo

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")

_HASH_CACHE: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class ResolvedWeights(WeightsInfo):
    """:class:`WeightsInfo` plus what a loader needs.

    Attributes
    ----------
    path : local folder to ``from_pretrained`` from (None for random weights).
    seed : init seed for random weights (None otherwise).
    hub_id : hub id the weights stand for (the default architecture for random weights).
    """

    path: Path | None = None
    seed: int | None = None
    hub_id: str | None = None

    @property
    def info(self) -> WeightsInfo:
        return WeightsInfo(kind=self.kind, location=self.location, identity=self.identity)


def guidance(hub_id: str | None, model: str | None = None) -> str:
    """The text telling a user how to make weights available offline."""
    hid = hub_id or "<org>/<name>"
    m = f" of {model}" if model else ""
    return (
        "Provide the weights in one of these ways:\n"
        f"  1. --weights /path/to/folder   a folder saved with `save_pretrained` (config.json + weight files);\n"
        f"  2. pre-populate the Hugging Face cache: on a machine with internet run\n"
        f"       huggingface-cli download {hid}\n"
        f"     then copy ~/.cache/huggingface (or $HF_HOME / $HF_HUB_CACHE) to this machine;\n"
        f"  3. --download                  allow mmneuro to fetch {hid} from the hub now;\n"
        f"  4. --weights random            an architecture-true model with random weights{m}\n"
        f"     (a control, not the trained model; labelled 'random-seed<seed>' in every output)."
    )


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, read from the environment at call time."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def weight_files(folder: Path) -> list[Path]:
    """Weight files in ``folder`` (recursively), sorted by relative path."""
    folder = Path(folder)
    files = [p for p in folder.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def folder_identity(folder: Path) -> str:
    """``sha256:<16 hex>`` over the names and bytes of the folder's weight files.

    Cached per process by (path, size, mtime) of each file.
    """
    folder = Path(folder).resolve()
    files = weight_files(folder)
    if not files:
        raise WeightsUnavailableError(
            f"weights folder {folder} has a config.json but no weight files "
            f"({', '.join('*' + s for s in WEIGHT_SUFFIXES[:3])}). Save the model with `save_pretrained`."
        )
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(folder).as_posix().encode())
        h.update(b"\0")
        h.update(_file_sha256(p).encode())
    return "sha256:" + h.hexdigest()[:16]


def _file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def weights_from_folder(folder: str | Path, kind: str = "path", location: str | None = None) -> ResolvedWeights:
    """Weights in a local folder (``kind`` "path", or "package" for weights shipped in a package)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise WeightsUnavailableError(f"weights folder {folder} does not exist (or is not a folder).")
    if not (folder / "config.json").is_file():
        raise WeightsUnavailableError(
            f"weights folder {folder} has no config.json; save the model there with `save_pretrained`."
        )
    return ResolvedWeights(
        kind=kind,  # type: ignore[arg-type]
        location=location or str(folder.resolve()),
        identity=folder_identity(folder),
        path=folder.resolve(),
    )


def _looks_like_path(spec: str) -> bool:
    return spec.startswith(("/", "./", "../", "~", ".\\")) or spec in (".", "..")


def resolve_weights(
    spec: str | os.PathLike | None,
    default_hub_id: str | None,
    allow_download: bool = False,
    seed: int = 0,
    model: str | None = None,
) -> ResolvedWeights:
    """Resolve a ``--weights`` value to something loadable, offline unless allowed.

    Parameters
    ----------
    spec : a local folder, ``"random"``, a hub id (``"org/name"`` or ``"org/name@revision"``)
        or None (use ``default_hub_id``).
    default_hub_id : the hub id of the model's default checkpoint.
    allow_download : fetch a missing hub snapshot instead of raising.
    seed : init seed when ``spec == "random"``.
    model : registry name, used only in error messages.

    Raises
    ------
    WeightsUnavailableError
        when nothing loadable is found; the message lists the ways to provide weights.
    """
    if spec is not None and not isinstance(spec, str):
        spec = os.fspath(spec)
    if spec is not None:
        spec = spec.strip()
        if not spec:
            raise InputError("--weights is empty; give a folder, a hub id or 'random'")
    if spec is not None and Path(spec).expanduser().exists():
        return weights_from_folder(spec)
    if spec == "random":
        return ResolvedWeights(
            kind="random", location=None, identity=f"random-seed{int(seed)}", seed=int(seed), hub_id=default_hub_id
        )
    if spec is not None and _looks_like_path(spec):
        raise WeightsUnavailableError(f"weights folder {spec} does not exist.\n" + guidance(default_hub_id, model))
    hub_id = spec if spec is not None else default_hub_id
    if hub_id is None:
        raise WeightsUnavailableError(f"model {model!r} has no default weights.\n" + guidance(None, model))
    revision = None
    if "@" in hub_id:
        hub_id, revision = hub_id.split("@", 1)
    return _from_hub(hub_id, revision, allow_download, model)


def _from_hub(hub_id: str, revision: str | None, allow_download: bool, model: str | None) -> ResolvedWeights:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hf_cache_dir()
    try:
        folder = Path(snapshot_download(hub_id, revision=revision, cache_dir=cache, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        folder = None
    if folder is not None and not ((folder / "config.json").is_file() and weight_files(folder)):
        folder = None  # a partial snapshot (e.g. only config.json) is not loadable
    if folder is None:
        if not allow_download:
            raise WeightsUnavailableError(
                f"weights for {hub_id!r}{'@' + revision if revision else ''} are not in the local Hugging Face "
                f"cache ({cache}) and downloading is off.\n" + guidance(hub_id, model)
            )
        try:
            folder = _download(hub_id, revision, cache)
        except _network_errors() as err:
            raise WeightsUnavailableError(download_failed(hub_id, revision, err)) from None
    commit = folder.name
    return ResolvedWeights(
        kind="hub", location=hub_id, identity=f"hub:{hub_id}@{commit}", path=folder, hub_id=hub_id
    )


def _network_errors() -> tuple[type[BaseException], ...]:
    """What fetching from the hub raises without a network or a reachable repository: the hub's own errors
    (offline mode, no cached snapshot, HTTP errors) and the HTTP clients' transport errors. Disk errors
    (ENOSPC...) are not among them: they reach the command with their path."""
    import importlib

    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, names in (("huggingface_hub.errors", ("LocalEntryNotFoundError", "OfflineModeIsEnabled",
                                                      "HfHubHTTPError")),
                          ("httpx", ("TransportError",)), ("httpx2", ("TransportError",)),
                          ("requests.exceptions", ("ConnectionError", "Timeout"))):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        found += [getattr(mod, n) for n in names if isinstance(getattr(mod, n, None), type)]
    return tuple(found)


def download_failed(hub_id: str, revision: str | None, err: BaseException) -> str:
    """One line: the download of ``hub_id`` failed (first line of ``err``), and how to bring the weights."""
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    rev = f" --revision {revision}" if revision else ""
    return (f"cannot download {hub_id!r}{'@' + revision if revision else ''} from the Hugging Face hub "
            f"({type(err).__name__}: {reason[:200]}); on a machine with internet run `hf download {hub_id}{rev}` "
            f"and pass the folder it prints with --weights /path/to/folder")


def _download(hub_id: str, revision: str | None, cache: Path) -> Path:  # pragma: no cover - needs internet
    from huggingface_hub import snapshot_download

    meta = ["*.json", "*.txt", "*.model", "*.tiktoken"]
    folder = Path(
        snapshot_download(hub_id, revision=revision, cache_dir=cache, allow_patterns=meta + ["*.safetensors"])
    )
    if not weight_files(folder):
        folder = Path(snapshot_download(hub_id, revision=revision, cache_dir=cache, allow_patterns=meta + ["*.bin"]))
    if not weight_files(folder):
        raise WeightsUnavailableError(f"downloaded {hub_id!r} but found no safetensors/bin weight files in {folder}")
    return folder
