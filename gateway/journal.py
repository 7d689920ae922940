"""Append-only journal files of framed records: <dir>/<seq>.journal.

What makes an answered call durable against `kill -9` before SQLite has
it (calls.py says how the journal is used). Sans-SQLite, sans-trio.
"""
from __future__ import annotations

import os
import pathlib
import struct
import zlib
from typing import Iterator

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
        """Starts a new file for appends; returns the one it replaces."""
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
        data = _FRAME.pack(len(body), zlib.crc32(body)) + body
        # One write(2) for a regular file in practice; the loop covers a
        # short write (a signal, a nearly full disk) without tearing a frame
        # in a way replay would not detect.
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(self._fd, view) :]
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError:
            # Part of a frame may be on disk now, and replay stops at a torn
            # frame: anything appended after it would be lost to a kill.
            # Later frames go to a fresh file; this one is replayed up to
            # the tear, which is where its good frames end.
            torn = self.open_next()
            if torn is not None:
                self._torn.append(torn)
            raise

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
