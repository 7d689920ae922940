"""Function code, validated and stored by sha256.

A deployment package is kept twice: the zip itself (``blobs/<hex>.zip``, the
durable record, fsynced before ``put`` returns) and its extracted tree
(``trees/<hex>/``, what a sandbox mounts at /var/task). A tree is a cache of
its blob: it appears by one atomic rename, and ``ensure_tree`` rebuilds it
from the blob if it is ever missing.

Everything here is synchronous and may block on disk; the gateway calls it
from a worker thread. Nothing here knows about HTTP: refusals are
``CodeError``, which the API turns into 400 InvalidParameterValueException.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import pathlib
import re
import secrets
import shutil
import stat
import zipfile
import zlib

import msgspec

from .. import crashpoints

__all__ = ["CodeError", "CodeStore", "StoredCode", "validate_zip", "MAX_UNZIPPED_BYTES"]

# Lambda's own limit for a function's unzipped code (250 MiB).
MAX_UNZIPPED_BYTES = 262_144_000
# Large dependency bundles (numpy + pandas + scipy) hold ~20k files; a zip
# with more than this is an attack on the extractor, not a function.
MAX_ENTRIES = 100_000
# Linux's limits; checked up front so that a long name is the user's 400,
# not an ENAMETOOLONG half-way through extraction.
_MAX_COMPONENT_BYTES = 255
_MAX_PATH_BYTES = 4000
# A symlink target is stored as the entry's data; PATH_MAX bounds it.
_MAX_LINK_TARGET = 4095
# Links may point at links; the kernel gives up at 40, and so do we.
_MAX_LINK_DEPTH = 40
_CHUNK = 1 << 20

_NOT_A_ZIP = "Could not unzip uploaded file. Please check your file, then try to upload again."
_HEX_RE = re.compile(r"[0-9a-f]{64}")
_DRIVE_RE = re.compile(r"[A-Za-z]:")
# Only these: zipfile inflates bzip2 and lzma in one unbounded call, so a
# few kilobytes of either can demand gigabytes of memory before any size
# check runs. Deflate is bounded per read, and it is what every tool writes.
_SUPPORTED_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_TMP_PREFIX = ".tmp-"


class CodeError(Exception):
    """A deployment package that Lambda would refuse; ``message`` is Lambda-style."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StoredCode(msgspec.Struct, frozen=True):
    sha256_hex: str
    # Lambda's CodeSha256: base64 of the raw digest, not of the hex.
    sha256_b64: str
    size: int
    unzipped_size: int
    blob: pathlib.Path
    tree: pathlib.Path


# --- validation -------------------------------------------------------------

class _Entry(msgspec.Struct, frozen=True):
    info: zipfile.ZipInfo
    parts: tuple[str, ...]
    kind: str  # "file", "dir" or "link"
    mode: int


def _unix_mode(info: zipfile.ZipInfo) -> int:
    # Only zips made on Unix carry a Unix mode in the high 16 bits; elsewhere
    # they hold DOS attributes or garbage. Ignoring them is the safe side: a
    # would-be symlink is then written as a plain file.
    if info.create_system != 3:
        return 0
    return info.external_attr >> 16


def _split_name(name: str) -> tuple[str, ...]:
    if "\x00" in name:
        raise CodeError(f"Invalid file name in zip: {name!r}.")
    # Windows tools sometimes write backslashes; treat them as separators so
    # that "..\\x" is seen for what it is.
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE_RE.match(unified):
        raise CodeError(f"Zip entry has an absolute path: {name!r}.")
    parts = tuple(p for p in unified.split("/") if p not in ("", "."))
    if ".." in parts:
        raise CodeError(f"Zip entry leaves the function's directory: {name!r}.")
    if len("/".join(parts).encode()) > _MAX_PATH_BYTES or any(
        len(p.encode()) > _MAX_COMPONENT_BYTES for p in parts
    ):
        raise CodeError(f"Zip entry name is too long: {name[:80]!r}...")
    return parts


def _classify(info: zipfile.ZipInfo, parts: tuple[str, ...]) -> _Entry:
    mode = _unix_mode(info)
    fmt = stat.S_IFMT(mode)
    if info.is_dir() or fmt == stat.S_IFDIR:
        kind = "dir"
    elif fmt == stat.S_IFLNK:
        kind = "link"
    elif fmt in (0, stat.S_IFREG):
        kind = "file"
    else:
        raise CodeError(f"Zip entry is not a file, directory or symbolic link: {info.filename!r}.")
    if kind != "dir" and not parts:
        raise CodeError(f"Invalid file name in zip: {info.filename!r}.")
    return _Entry(info, parts, kind, mode)


def _resolve_in_tree(
    start: list[str], target: str, links: dict[tuple[str, ...], str], depth: int
) -> list[str] | None:
    """Resolve ``target`` from directory ``start`` as the kernel would once the
    tree exists, following the zip's own links. None means it leaves the tree.

    A purely lexical check is not enough: with ``d/s -> ..``, the target
    ``s/../../x`` of ``d/t`` looks harmless but climbs out through ``s``.
    """
    if depth > _MAX_LINK_DEPTH:
        raise CodeError("Symbolic links in the zip form a loop or nest too deeply.")
    if target.startswith("/"):
        return None
    here = list(start)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not here:
                return None
            here.pop()
            continue
        here.append(part)
        inner = links.get(tuple(here))
        if inner is not None:
            resolved = _resolve_in_tree(here[:-1], inner, links, depth + 1)
            if resolved is None:
                return None
            here = resolved
    return here


def _read_link_target(zf: zipfile.ZipFile, entry: _Entry) -> str:
    if entry.info.file_size > _MAX_LINK_TARGET:
        raise CodeError(f"Symbolic link target is too long: {entry.info.filename!r}.")
    raw = zf.read(entry.info)
    try:
        target = raw.decode()
    except UnicodeDecodeError:
        raise CodeError(f"Symbolic link target is not UTF-8: {entry.info.filename!r}.") from None
    if not target or "\x00" in target:
        raise CodeError(f"Invalid symbolic link target: {entry.info.filename!r}.")
    return target


def _check_entries(zf: zipfile.ZipFile, max_unzipped: int) -> list[_Entry]:
    infos = zf.infolist()
    if not infos:
        raise CodeError("Uploaded file must be a non-empty zip")
    if len(infos) > MAX_ENTRIES:
        raise CodeError(f"Zip has {len(infos)} entries; at most {MAX_ENTRIES} are allowed.")
    if sum(i.file_size for i in infos) > max_unzipped:
        raise CodeError(f"Unzipped size must be smaller than {max_unzipped} bytes")

    entries: list[_Entry] = []
    seen: set[tuple[str, ...]] = set()
    for info in infos:
        if info.flag_bits & 0x1:
            raise CodeError(f"Zip entry is encrypted: {info.filename!r}. Encrypted zips are not supported.")
        if info.compress_type not in _SUPPORTED_METHODS:
            raise CodeError(f"{_NOT_A_ZIP} Unsupported compression method in {info.filename!r}; use deflate.")
        entry = _classify(info, _split_name(info.filename))
        if entry.parts in seen and entry.parts:
            raise CodeError(f"Zip has a duplicate entry: {info.filename!r}.")
        seen.add(entry.parts)
        entries.append(entry)

    non_dirs = {e.parts for e in entries if e.kind != "dir"}
    links = {e.parts for e in entries if e.kind == "link"}
    for e in entries:
        for i in range(1, len(e.parts)):
            prefix = e.parts[:i]
            if prefix in links:
                # Writing through a link would let the link decide where
                # bytes land; links are only ever leaves.
                raise CodeError(f"Zip entry passes through a symbolic link: {e.info.filename!r}.")
            if prefix in non_dirs:
                raise CodeError(f"Zip entry is inside something that is a file: {e.info.filename!r}.")

    targets = {e.parts: _read_link_target(zf, e) for e in entries if e.kind == "link"}
    for parts, target in targets.items():
        if target.startswith("/") or _resolve_in_tree(list(parts[:-1]), target, targets, 0) is None:
            raise CodeError(f"Symbolic link points outside the function's directory: {'/'.join(parts)!r} -> {target!r}.")
    return entries


def _open_zip(data: bytes) -> zipfile.ZipFile:
    # Every central directory entry starts with this signature, so its count
    # bounds the entry count before zipfile builds an object per entry.
    if data.count(b"PK\x01\x02") > MAX_ENTRIES:
        raise CodeError(f"Zip has too many entries; at most {MAX_ENTRIES} are allowed.")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, NotImplementedError):
        # ValueError covers UnicodeDecodeError from a mis-flagged name.
        raise CodeError(_NOT_A_ZIP) from None


def _validate(data: bytes, max_unzipped: int) -> tuple[zipfile.ZipFile, list[_Entry]]:
    zf = _open_zip(data)
    try:
        return zf, _check_entries(zf, max_unzipped)
    except CodeError:
        zf.close()
        raise
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, NotImplementedError):
        zf.close()
        raise CodeError(_NOT_A_ZIP) from None


def validate_zip(data: bytes, *, max_unzipped: int = MAX_UNZIPPED_BYTES) -> list[zipfile.ZipInfo]:
    """Check a deployment package without writing anything; raise CodeError.

    Refuses non-zips, absolute or climbing names, links that leave the tree,
    duplicates, declared sizes over ``max_unzipped``, too many entries,
    encryption, and compression methods other than stored and deflate. Sizes
    that headers under-declare are caught during extraction.
    """
    zf, entries = _validate(data, max_unzipped)
    zf.close()
    return [e.info for e in entries]


# --- extraction -------------------------------------------------------------

def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _inside(root_real: str, path: str) -> bool:
    return os.path.commonpath([root_real, path]) == root_real


def _make_dirs(root: str, root_real: str, parts: tuple[str, ...]) -> None:
    path = root
    for part in parts:
        path = os.path.join(path, part)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            pass
        real = os.path.realpath(path)
        if not _inside(root_real, real) or not os.path.isdir(real) or os.path.islink(path):
            raise CodeError(f"Zip entry leaves the function's directory: {'/'.join(parts)!r}.")
        # mkdir's mode passes through the umask; a 077 umask would lock the
        # sandbox's unprivileged uid out.
        os.chmod(path, 0o755)


def _write_file(
    zf: zipfile.ZipFile, entry: _Entry, root: str, root_real: str, budget: int
) -> int:
    _make_dirs(root, root_real, entry.parts[:-1])
    path = os.path.join(root, *entry.parts)
    if not _inside(root_real, os.path.realpath(os.path.dirname(path))):
        raise CodeError(f"Zip entry leaves the function's directory: {entry.info.filename!r}.")
    mode = 0o755 if entry.mode & 0o111 else 0o644
    # O_EXCL|O_NOFOLLOW: never reuse or follow anything already at the path.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    written = 0
    try:
        os.fchmod(fd, mode)
        with zf.open(entry.info) as src:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                # Count what is really produced: headers may lie, and only
                # the bytes reaching the disk are the truth.
                if written > entry.info.file_size or written > budget:
                    raise _Overflow()
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    return written


class _Overflow(Exception):
    pass


def _extract(zf: zipfile.ZipFile, entries: list[_Entry], dest: pathlib.Path, max_unzipped: int) -> int:
    root = str(dest)
    root_real = os.path.realpath(root)
    total = 0
    try:
        for e in entries:
            if e.kind == "dir":
                _make_dirs(root, root_real, e.parts)
            elif e.kind == "file":
                total += _write_file(zf, e, root, root_real, max_unzipped - total)
        # Links last, so that no file or directory is ever created through one.
        for e in entries:
            if e.kind != "link":
                continue
            _make_dirs(root, root_real, e.parts[:-1])
            path = os.path.join(root, *e.parts)
            os.symlink(zf.read(e.info).decode(), path)
        for e in entries:
            if e.kind == "link":
                real = os.path.realpath(os.path.join(root, *e.parts))
                if not _inside(root_real, real):
                    raise CodeError(f"Symbolic link points outside the function's directory: {e.info.filename!r}.")
    except _Overflow:
        raise CodeError(f"Unzipped size must be smaller than {max_unzipped} bytes") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, zipfile.LargeZipFile, NotImplementedError):
        # zipfile stops at the declared size and then fails the CRC, which
        # is how a header that under-declares usually shows up.
        raise CodeError(_NOT_A_ZIP) from None
    return total


def _regular_size(entries: list[_Entry]) -> int:
    return sum(e.info.file_size for e in entries if e.kind == "file")


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
        zf, entries = _validate(data, self.max_unzipped)
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
            unzipped_size=_regular_size(entries),
            blob=blob,
            tree=tree,
        )

    def ensure_tree(self, sha256_hex: str) -> pathlib.Path:
        """Return the tree for a stored blob, extracting it again if missing."""
        tree = self.tree_path(sha256_hex)
        if tree.is_dir():
            return tree
        data = self.blob_path(sha256_hex).read_bytes()
        zf, entries = _validate(data, self.max_unzipped)
        with zf:
            self._publish_tree(self._stage_tree(zf, entries, sha256_hex), tree)
        return tree

    def unzipped_size(self, sha256_hex: str) -> int:
        """A stored zip's unzipped size, from its central directory."""
        zf, entries = _validate(self.blob_path(sha256_hex).read_bytes(), self.max_unzipped)
        with zf:
            return _regular_size(entries)

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
                view = view[os.write(fd, view):]
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

    def _stage_tree(self, zf: zipfile.ZipFile, entries: list[_Entry], hex_: str) -> pathlib.Path:
        tmp = self._trees / f"{_TMP_PREFIX}{hex_}-{secrets.token_hex(4)}"
        tmp.mkdir(mode=0o700)
        try:
            _extract(zf, entries, tmp, self.max_unzipped)
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
