"""Function code, validated and stored by sha256.

A deployment package is kept twice: the zip itself (``blobs/<hex>.zip``, the
durable record, fsynced before ``put`` returns) and its extracted tree
(``trees/<hex>/``, what a sandbox mounts at /var/task). A tree is a cache of
its blob: it appears by one atomic rename, and ``ensure_tree`` rebuilds it
from the blob if it is ever missing.

Everything here is synchronous and may block on disk; the gateway calls it
from a worker thread. Nothing here knows about HTTP: refusals are
``CodeError``, which the API turns into 400 InvalidParameterValueException.
What a zip must be is zip_check.py's; writing a tree is zip_extract.py's.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pathlib
import re
import secrets
import shutil
import zipfile

import msgspec

from .. import crashpoints
from . import zip_check
from .zip_check import MAX_UNZIPPED_BYTES, CodeError, Entry, regular_size, validate_zip
from .zip_extract import extract

# CodeError, validate_zip and MAX_UNZIPPED_BYTES are the code store's
# refusals and limits as its callers know them; zip_check.py defines them.
__all__ = ["CodeError", "CodeStore", "StoredCode", "validate_zip", "MAX_UNZIPPED_BYTES"]

_HEX_RE = re.compile(r"[0-9a-f]{64}")
_TMP_PREFIX = ".tmp-"


class StoredCode(msgspec.Struct, frozen=True):
    sha256_hex: str
    # Lambda's CodeSha256: base64 of the raw digest, not of the hex.
    sha256_b64: str
    size: int
    unzipped_size: int
    blob: pathlib.Path
    tree: pathlib.Path


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the store --------------------------------------------------------------


class CodeStore:
    """Content-addressed function code under one directory.

    ``detach`` and ``delete_unreferenced`` must not run concurrently with a
    ``put`` whose result is not yet referenced, or they may take it away;
    the caller serialises them (code_gc.py says how).
    """

    def __init__(self, root: pathlib.Path, *, max_unzipped: int = MAX_UNZIPPED_BYTES) -> None:
        self.root = pathlib.Path(root)
        self.max_unzipped = max_unzipped
        self._blobs = self.root / "blobs"
        self._trees = self.root / "trees"
        for d in (self.root, self._blobs, self._trees):
            d.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        # A crash mid-put or mid-delete leaves only names with this prefix;
        # completed blobs and trees never carry it.
        for d in (self._blobs, self._trees):
            for child in d.iterdir():
                if child.name.startswith(_TMP_PREFIX):
                    _remove(child)

    @staticmethod
    def _check_hex(sha256_hex: str) -> str:
        if not _HEX_RE.fullmatch(sha256_hex):
            raise ValueError(f"not a sha256 hex digest: {sha256_hex!r}")
        return sha256_hex

    def blob_path(self, sha256_hex: str) -> pathlib.Path:
        return self._blobs / f"{self._check_hex(sha256_hex)}.zip"

    def tree_path(self, sha256_hex: str) -> pathlib.Path:
        return self._trees / self._check_hex(sha256_hex)

    def has(self, sha256_hex: str) -> bool:
        """True when the blob is stored; the tree follows via ensure_tree."""
        return self.blob_path(sha256_hex).is_file()

    def put(self, data: bytes) -> StoredCode:
        """Validate, store durably and extract. Idempotent for equal bytes."""
        zf, entries = zip_check.open_checked(data, self.max_unzipped)
        with zf:
            digest = hashlib.sha256(data).digest()
            hex_ = digest.hex()
            blob = self.blob_path(hex_)
            tree = self.tree_path(hex_)
            # Extract before the blob is written, so that a zip refused
            # half-way through (a bomb whose headers lied) leaves nothing.
            staged = None if tree.is_dir() else self._stage_tree(zf, entries, hex_)
            try:
                if not blob.is_file():
                    self._write_blob(blob, data)
            except BaseException:
                if staged is not None:
                    _remove(staged)
                raise
            if staged is not None:
                self._publish_tree(staged, tree)
        crashpoints.reach("code-put:stored")
        return StoredCode(
            sha256_hex=hex_,
            sha256_b64=base64.b64encode(digest).decode(),
            size=len(data),
            unzipped_size=regular_size(entries),
            blob=blob,
            tree=tree,
        )

    def ensure_tree(self, sha256_hex: str) -> pathlib.Path:
        """Return the tree for a stored blob, extracting it again if missing."""
        tree = self.tree_path(sha256_hex)
        if tree.is_dir():
            return tree
        data = self.blob_path(sha256_hex).read_bytes()
        zf, entries = zip_check.open_checked(data, self.max_unzipped)
        with zf:
            self._publish_tree(self._stage_tree(zf, entries, sha256_hex), tree)
        return tree

    def unzipped_size(self, sha256_hex: str) -> int:
        """A stored zip's unzipped size, from its central directory."""
        zf, entries = zip_check.open_checked(self.blob_path(sha256_hex).read_bytes(), self.max_unzipped)
        with zf:
            return regular_size(entries)

    def stored(self) -> set[str]:
        """Digests with a blob or a tree on disk."""
        out = {b.stem for b in self._blobs.glob("*.zip") if _HEX_RE.fullmatch(b.stem)}
        out.update(t.name for t in self._trees.iterdir() if _HEX_RE.fullmatch(t.name))
        return out

    def detach(self, digests: list[str]) -> list[pathlib.Path]:
        """Takes each digest's blob and tree out of the store, durably, and
        returns what is left to remove (see ``purge``).

        The blob goes first: a tree without its blob is never mistaken for
        stored code (``has`` looks at blobs). Each is renamed to a temporary
        name, which ``_remove_leftovers`` deletes at the next start if we die
        before ``purge``; so a tree is always whole or absent.
        """
        doomed: list[pathlib.Path] = []
        for hex_ in digests:
            for path in (self.blob_path(hex_), self.tree_path(hex_)):
                parent = path.parent
                moved = parent / f"{_TMP_PREFIX}del-{path.name}-{secrets.token_hex(4)}"
                try:
                    os.rename(path, moved)
                except FileNotFoundError:
                    continue
                doomed.append(moved)
                crashpoints.reach(f"code-detach:{parent.name}")
        if doomed:
            _fsync_dir(self._blobs)
            _fsync_dir(self._trees)
        return doomed

    @staticmethod
    def purge(doomed: list[pathlib.Path]) -> None:
        """Deletes what ``detach`` returned; slow for a big tree, so it runs
        outside any lock."""
        for path in doomed:
            _remove(path)

    def delete_unreferenced(self, keep: set[str]) -> list[str]:
        """Remove every blob and tree whose digest is not in ``keep``."""
        removed = sorted(self.stored() - keep)
        self.purge(self.detach(removed))
        return removed

    def _write_blob(self, blob: pathlib.Path, data: bytes) -> None:
        tmp = self._blobs / f"{_TMP_PREFIX}{blob.stem}-{secrets.token_hex(4)}"
        # 0600: a blob is served only by the server; sandboxes read trees.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        # Equal names mean equal bytes, so replacing a concurrent writer's
        # copy is harmless.
        os.replace(tmp, blob)
        _fsync_dir(self._blobs)

    def _stage_tree(self, zf: zipfile.ZipFile, entries: list[Entry], hex_: str) -> pathlib.Path:
        tmp = self._trees / f"{_TMP_PREFIX}{hex_}-{secrets.token_hex(4)}"
        tmp.mkdir(mode=0o700)
        try:
            extract(zf, entries, tmp, self.max_unzipped)
            os.chmod(tmp, 0o755)
        except BaseException:
            _remove(tmp)
            raise
        return tmp

    def _publish_tree(self, staged: pathlib.Path, tree: pathlib.Path) -> None:
        try:
            os.rename(staged, tree)
        except OSError:
            _remove(staged)
            # Someone else finished the same tree first; theirs is equal.
            if not tree.is_dir():
                raise
        _fsync_dir(self._trees)


def _remove(path: pathlib.Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
