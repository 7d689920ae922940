"""Object bytes as content-addressed files: ``blobs/<aa>/<sha256 hex>``.

A blob is written to a temporary file beside its final name, fsynced,
renamed into place and its directory fsynced, all before the database
row that names it commits; so a committed object always has its bytes,
and a crash leaves at worst a file nothing names, which ``sweep`` removes
at start-up. Identical bytes are stored once (an object copied, the same
file uploaded twice); the store's reference counts say when a blob is no
longer named, and only then is it unlinked.

Synchronous, may block on disk: called from worker threads.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import secrets
from collections.abc import Iterable, Iterator

_HEX_RE = re.compile(r"[0-9a-f]{64}")
_TMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20


class WrittenBlob:
    """What writing a blob learnt about its bytes."""

    __slots__ = ("sha256", "md5", "size")

    def __init__(self, sha256: str, md5: str, size: int) -> None:
        self.sha256 = sha256
        self.md5 = md5
        self.size = size


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, sha256: str) -> pathlib.Path:
        if not _HEX_RE.fullmatch(sha256):
            raise ValueError(f"not a sha256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def write(self, data: bytes | memoryview) -> WrittenBlob:
        """Stores ``data`` durably; returns its digests and size. When the
        same bytes are stored already, the new copy replaces the old one by
        rename (identical, so a reader holding the old file sees no change)."""
        sha = hashlib.sha256(data).hexdigest()
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        final = self.path(sha)
        final.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = final.parent / f"{_TMP_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with memoryview(data) as view:
                written = 0
                while written < len(view):
                    written += os.write(fd, view[written : written + _CHUNK])
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        try:
            os.rename(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)
        return WrittenBlob(sha, md5, len(data))

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def open(self, sha256: str) -> int:
        """A read-only fd on the blob (the caller closes it). An fd keeps the
        bytes readable even if the blob is unlinked while it is read."""
        return os.open(self.path(sha256), os.O_RDONLY | os.O_CLOEXEC)

    def read(self, sha256: str, offset: int = 0, length: int | None = None) -> bytes:
        fd = self.open(sha256)
        try:
            if length is None:
                length = os.fstat(fd).st_size - offset
            out = bytearray()
            while len(out) < length:
                chunk = os.pread(fd, min(_CHUNK, length - len(out)), offset + len(out))
                if not chunk:
                    raise OSError(f"blob {sha256} is shorter than expected")
                out += chunk
            return bytes(out)
        finally:
            os.close(fd)

    def unlink(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def stored(self) -> Iterator[str]:
        """Every blob digest on disk."""
        for sub in self.root.iterdir():
            if not sub.is_dir():
                continue
            for entry in sub.iterdir():
                if _HEX_RE.fullmatch(entry.name):
                    yield entry.name

    def sweep(self, keep: Iterable[str]) -> int:
        """Removes blobs not in ``keep`` and temporary files a crash left.
        Only at start-up, before any write can be in flight."""
        wanted = set(keep)
        removed = 0
        for sub in list(self.root.iterdir()):
            if not sub.is_dir():
                continue
            for entry in list(sub.iterdir()):
                if entry.name.startswith(_TMP_PREFIX) or (_HEX_RE.fullmatch(entry.name) and entry.name not in wanted):
                    entry.unlink(missing_ok=True)
                    removed += 1
        return removed
