"""Find model weights by path or registry name, without surprises.

Order: an existing path; `$FALLWATCH_WEIGHTS/<file>` (or one folder down); the user cache; the project's bundled
`models/`; a download from the registry URL into the cache (checksum verified) when downloads are allowed; otherwise
a one-line error naming the file, every place searched and where to get it. Third-party libraries (ultralytics)
are only ever handed the resolved local file, so they never download on their own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from fallwatch.errors import FallwatchError


class WeightsError(FallwatchError, FileNotFoundError):
    """A weight file that cannot be found or trusted; the message says what to do."""


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    file: str
    task: str
    sha256: tuple[str, ...]
    licence: str
    url: str | None
    bundled: str | None = None  # sha256 of the copy shipped in models/, if one ships


@dataclass(frozen=True)
class ResolvedWeights:
    name: str
    path: Path
    sha256: str
    source: str  # path | env | cache | bundled | download


def models_dir() -> Path:
    return Path(str(resources.files("fallwatch.models")))


def cache_dir() -> Path:
    return Path(os.environ.get("FALLWATCH_CACHE", Path.home() / ".cache" / "fallwatch"))


@lru_cache(maxsize=1)
def registry() -> dict[str, RegistryEntry]:
    raw = yaml.safe_load((models_dir() / "registry.yaml").read_text()) or {}
    return {
        name: RegistryEntry(
            name=name,
            file=entry["file"],
            task=entry.get("task", ""),
            sha256=tuple(entry.get("sha256") or ()),
            licence=entry.get("licence", ""),
            url=entry.get("url"),
            bundled=entry.get("bundled"),
        )
        for name, entry in raw.items()
    }


@lru_cache(maxsize=32)
def _sha256_cached(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    stat = path.stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime)


def downloads_allowed(config_allows: bool = True) -> bool:
    return config_allows and os.environ.get("FALLWATCH_OFFLINE", "") not in ("1", "true", "yes")


def candidate_places(file: str) -> list[tuple[str, Path]]:
    """Every (source, path) where `file` may be found, in search order."""
    places: list[tuple[str, Path]] = []
    env = os.environ.get("FALLWATCH_WEIGHTS")
    if env:
        root = Path(env).expanduser()
        places.append(("env", root / file))
        if root.is_dir():
            places.extend(("env", sub / file) for sub in sorted(root.iterdir()) if sub.is_dir())
    places.append(("cache", cache_dir() / file))
    places.append(("bundled", models_dir() / file))
    return places


def resolve(spec: str, allow_download: bool = True) -> ResolvedWeights:
    """Resolve a path or registry name to a local, checksummed file."""
    path = Path(spec).expanduser()
    entry = registry().get(spec)
    if entry is None and (path.suffix or os.sep in spec):
        if path.is_file():
            return ResolvedWeights(path.stem, path.resolve(), sha256_of(path), "path")
        raise WeightsError(f"weights file not found: {spec}")
    if entry is None:
        known = ", ".join(sorted(registry()))
        raise WeightsError(f"unknown model {spec!r}: give a file path or one of: {known}")

    for source, candidate in candidate_places(entry.file):
        if candidate.is_file():
            return _checked(entry, candidate, source)

    if entry.url and downloads_allowed(allow_download):
        return _checked(entry, _download(entry), "download")

    searched = [str(p) for _, p in candidate_places(entry.file)]
    if entry.url:
        hint = f"download it from {entry.url}" + (
            "" if downloads_allowed(allow_download) else " (downloads are off: FALLWATCH_OFFLINE or run.allow_download)"
        )
    else:
        hint = "it has no public download; copy it into one of those places or set FALLWATCH_WEIGHTS to its folder"
    raise WeightsError(f"weights {entry.file!r} for {spec!r} not found (searched: {', '.join(searched)}); {hint}")


def _digest_ok(entry: RegistryEntry, digest: str) -> bool:
    """Registered digests may be full or a published prefix (mmpose file names carry 8 hex digits)."""
    return not entry.sha256 or any(digest.startswith(known.lower()) for known in entry.sha256)


def _checked(entry: RegistryEntry, path: Path, source: str) -> ResolvedWeights:
    digest = sha256_of(path)
    if not _digest_ok(entry, digest):
        raise WeightsError(
            f"{path} does not match the registered sha256 of {entry.name!r} (got {digest[:12]}…); "
            "the file is corrupt or a different model: pass it as an explicit path to use it anyway"
        )
    return ResolvedWeights(entry.name, path.resolve(), digest, source)


def _download(entry: RegistryEntry) -> Path:
    target = cache_dir() / entry.file
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
        try:
            with urllib.request.urlopen(entry.url, timeout=60) as response:  # noqa: S310 - registry URL
                shutil.copyfileobj(response, tmp)
        except OSError as exc:
            Path(tmp.name).unlink(missing_ok=True)
            raise WeightsError(f"could not download {entry.url} ({exc}); put {entry.file} in {target.parent}") from None
    part = Path(tmp.name)
    digest = sha256_of(part)
    if not _digest_ok(entry, digest):
        part.unlink(missing_ok=True)
        raise WeightsError(f"download of {entry.url} has sha256 {digest[:12]}…, not the registered one; not used")
    part.replace(target)
    return target
