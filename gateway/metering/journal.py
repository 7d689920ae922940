"""Append-only journal files of framed records: <dir>/<seq>.journal.

What makes an answered call durable against `kill -9` before SQLite has
it (calls.py says how the journal is used). Sans-SQLite, sans-trio.
"""

from __future__ import annotations

import os
import pathlib
import struct
import zlib
from collections.abc import Iterator

_FRAME = struct.Struct("<II")  # body length, crc32 of body


class Journal:
    """Append-only files of framed records: <dir>/<seq>.journal.

    Each frame is an 8-byte header (length, CRC32) and the body, written
    with one write(2) on an O_APPEND descriptor. Readers stop at the first
    frame that is short or fails its CRC: the tail a kill can tear.
    """

    def __init__(self, directory: pathlib.Path, *, fsync: bool = False) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.fsync = fsync
        self._fd = -1
        self._path: pathlib.Path | None = None
        self._seq = max((_seq_of(p) for p in self.files()), default=0)
        self._torn: list[pathlib.Path] = []  # files left after a failed append

    def files(self) -> list[pathlib.Path]:
        """Journal files on disk, oldest first (the open one included)."""
        return sorted((p for p in self.directory.glob("*.journal") if _seq_of(p) >= 0), key=_seq_of)

    def open_next(self) -> pathlib.Path | None:
        """Starts a new file for appends; returns the one it replaces. If
        that fails, appends go on to the current file."""
        previous = self._path
        old_fd = self._fd
        self._seq += 1
        path = self.directory / f"{self._seq:012d}.journal"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._path = path
        if old_fd >= 0:
            os.close(old_fd)
        return previous

    def append(self, body: bytes) -> None:
        """Appends one frame, or raises OSError having kept none of it: a
        frame is either whole in the file or not there at all."""
        data = _FRAME.pack(len(body), zlib.crc32(body)) + body
        if self._fd < 0:
            self.open_next()  # the last attempt to open one failed (a full disk)
        written = 0
        # One write(2) for a regular file in practice; the loop covers a
        # short write (a signal, a nearly full disk).
        try:
            written = os.write(self._fd, data)
            while written < len(data):
                written += os.write(self._fd, memoryview(data)[written:])
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError:
            if written:
                self._take_back(written)
            raise

    def _take_back(self, written: int) -> None:
        """Removes the `written` bytes just appended (the start of a frame, or
        a whole one whose sync failed): the caller is told the record was not
        kept, so replay must not find it, nor anything after it be hidden
        behind a torn frame."""
        try:
            os.ftruncate(self._fd, os.lseek(self._fd, 0, os.SEEK_END) - written)
            return
        except OSError:
            pass
        # The file cannot be cut: it is replayed up to the tear, which is
        # where its good frames end, and later frames go to a fresh file.
        try:
            torn = self.open_next()
        except OSError:
            # No new file either: the next append tries to open one.
            torn = self._path
            os.close(self._fd)
            self._fd, self._path = -1, None
        if torn is not None:
            self._torn.append(torn)

    def take_torn(self) -> list[pathlib.Path]:
        """Files set aside by failed appends since the last call: their
        good frames are in the batch that flushes with them."""
        torn, self._torn = self._torn, []
        return torn

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @staticmethod
    def read(path: pathlib.Path) -> Iterator[bytes]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        pos = 0
        while pos + _FRAME.size <= len(data):
            length, crc = _FRAME.unpack_from(data, pos)
            body = data[pos + _FRAME.size : pos + _FRAME.size + length]
            if len(body) < length or zlib.crc32(body) != crc:
                return  # torn by a kill mid-write: nothing after it was answered
            yield body
            pos += _FRAME.size + length


def _seq_of(path: pathlib.Path) -> int:
    try:
        return int(path.stem)
    except ValueError:
        return -1
