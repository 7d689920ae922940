"""Writing a checked zip's entries into a fresh directory without letting
the zip decide where bytes land: every directory created and re-checked
through realpath, files opened O_EXCL|O_NOFOLLOW, links made last and
checked again, and the bytes that really come out counted against the
limit (headers may lie about sizes).
"""

from __future__ import annotations

import os
import pathlib
import zipfile
import zlib

from .zip_check import NOT_A_ZIP, CodeError, Entry

_CHUNK = 1 << 20


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


def _write_file(zf: zipfile.ZipFile, entry: Entry, root: str, root_real: str, budget: int) -> int:
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
                    view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return written


class _Overflow(Exception):
    pass


def extract(zf: zipfile.ZipFile, entries: list[Entry], dest: pathlib.Path, max_unzipped: int) -> int:
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
        raise CodeError(NOT_A_ZIP) from None
    return total
