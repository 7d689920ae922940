"""The server's access keys: ``<data-dir>/credentials``, an AWS
shared-credentials file made with a fresh key pair on first use (mode 0600,
linked into place so that a racing server's key wins) and read whole
afterwards, every profile in it a key the server accepts."""

from __future__ import annotations

import configparser
import os
import pathlib
import secrets
import string

_KEY_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


def _new_key_pair() -> tuple[str, str]:
    # "LLAK" marks a Lambdalet key, much as "AKIA" marks an AWS user key.
    access_key = "LLAK" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    return access_key, secret


def _read_credentials(path: pathlib.Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(path.read_text(), source=str(path))
    keys: dict[str, str] = {}
    for section in parser.sections():
        access_key = parser.get(section, "aws_access_key_id", fallback="").strip()
        secret = parser.get(section, "aws_secret_access_key", fallback="").strip()
        if not (access_key and secret):
            continue
        if keys.get(access_key, secret) != secret:
            raise ValueError(f"{path}: access key {access_key} appears twice with different secrets")
        keys[access_key] = secret
    if not keys:
        raise ValueError(f"{path}: no profile holds both aws_access_key_id and aws_secret_access_key")
    return keys


def load_or_create_credentials(data_dir: pathlib.Path) -> dict[str, str]:
    """Return {access_key_id: secret} from ``<data_dir>/credentials``.

    On first use a key pair is generated and written as the ``[default]``
    profile of an AWS shared-credentials file, mode 0600, so that
    ``AWS_SHARED_CREDENTIALS_FILE`` can point straight at it. Every profile
    in the file is accepted; a user may add more by hand.
    """
    data_dir = pathlib.Path(data_dir)
    path = data_dir / "credentials"
    if path.exists():
        return _read_credentials(path)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    access_key, secret = _new_key_pair()
    text = f"[default]\naws_access_key_id = {access_key}\naws_secret_access_key = {secret}\n"
    tmp = data_dir / f".credentials.tmp-{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        # The umask can only narrow the mode; fchmod makes it exactly 0600
        # before any secret byte exists on disk.
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
        os.close(fd)
        fd = -1
        try:
            # link, not rename: if another server raced us here, its key
            # (perhaps already printed to its user) must win, not ours.
            os.link(tmp, path)
        except FileExistsError:
            return _read_credentials(path)
    finally:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return {access_key: secret}
