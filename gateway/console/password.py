"""The console password: an scrypt hash in <data-dir>/console-password.

`lambdalet console-password` sets it (or --clear removes it); the server
reads the file at each sign-in, so a change needs no restart. Only the hash
is stored: the file cannot be used to sign in, though it can be used to try
guesses offline, so it is 0600 like the rest of the data directory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pathlib
import secrets

FILE = "console-password"
MIN_LENGTH = 10
MAX_LENGTH = 1024
# RFC 7914's interactive parameters: ~16 MiB and some tens of ms per check,
# which the sign-in limiter multiplies for anyone guessing.
_N, _R, _P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024


class PasswordError(ValueError):
    """A password this server will not accept."""


def _hash(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8", "surrogateescape"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)


def encode(password: str) -> str:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise PasswordError(f"the console password must be {MIN_LENGTH} to {MAX_LENGTH} characters long")
    salt = secrets.token_bytes(16)
    digest = _hash(password, salt, _N, _R, _P)
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"scrypt${_N}${_R}${_P}${b64(salt)}${b64(digest)}"


def matches(stored: str, password: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.strip().split("$")
        if scheme != "scrypt":
            return False
        n_, r_, p_ = int(n), int(r), int(p)
        if not (2 <= n_ <= 2**20 and 1 <= r_ <= 32 and 1 <= p_ <= 16) or len(password) > MAX_LENGTH:
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = _hash(password, base64.b64decode(salt, validate=True), n_, r_, p_)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(expected, actual)


def path_in(data_dir: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(data_dir) / FILE


def is_set(data_dir: pathlib.Path) -> bool:
    return path_in(data_dir).is_file()


def check(data_dir: pathlib.Path, password: str) -> bool:
    """Whether password is the console password (False when none is set).
    Costs tens of ms of CPU: run it in a worker thread."""
    try:
        stored = path_in(data_dir).read_text()
    except (FileNotFoundError, UnicodeDecodeError):
        return False
    return matches(stored, password)


def store(data_dir: pathlib.Path, password: str) -> pathlib.Path:
    """Writes the hash atomically, 0600 from the start."""
    line = encode(password) + "\n"
    target = path_in(data_dir)
    tmp = target.with_name(f".{FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    return target


def clear(data_dir: pathlib.Path) -> bool:
    try:
        path_in(data_dir).unlink()
    except FileNotFoundError:
        return False
    return True
