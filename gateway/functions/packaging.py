"""A function's code as the .zip Lambda takes, from a directory or a .zip
file: what `lambdalet deploy` and the embedding API's deploy() upload.

A directory is zipped in a fixed order with fixed timestamps, so the same
tree gives the same bytes (and CodeSha256) every time.
"""

from __future__ import annotations

import io
import os
import pathlib
import zipfile


class PackageError(ValueError):
    """The source cannot be deployed; the message says why."""


def zip_directory(path: pathlib.Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(path.rglob("*")):
            rel = file.relative_to(path)
            if any(part in ("__pycache__", ".git") for part in rel.parts):
                continue
            if file.is_file() and not file.is_symlink():
                info = zipfile.ZipInfo(str(rel), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (file.stat().st_mode & 0o777 | 0o100000) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, file.read_bytes())
    return buf.getvalue()


def package(source: str | os.PathLike) -> bytes:
    """The .zip of a directory, or a .zip file's bytes."""
    path = pathlib.Path(source)
    if path.is_dir():
        data = zip_directory(path)
        if not zip_entries(data):
            raise PackageError(f"{source} holds no files to deploy (__pycache__ and .git are left out)")
        return data
    if path.is_file():
        data = path.read_bytes()
        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise PackageError(f"{source} is not a .zip file or a directory")
        if not zip_entries(data):
            raise PackageError(f"{source} is an empty .zip file")
        return data
    raise PackageError(f"{source}: no such file or directory")


def zip_entries(data: bytes) -> int:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return len(zf.infolist())
    except zipfile.BadZipFile:
        return 1  # not ours to judge: the server explains what is wrong with it


def guess_handler(path: pathlib.Path) -> str:
    if path.is_dir():
        for candidate in ("lambda_function.py", "app.py", "handler.py", "main.py"):
            if (path / candidate).exists():
                name = candidate[:-3]
                return f"{name}.lambda_handler" if name == "lambda_function" else f"{name}.handler"
    return "lambda_function.lambda_handler"
