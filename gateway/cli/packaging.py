"""A deployment package from what the user points at, for the CLI: the
packaging itself is functions/packaging.py's (the embedding API's deploy
uses it too); here its refusals become the CLI's one-line UserError."""

from __future__ import annotations

from ..functions import packaging
from ..functions.packaging import guess_handler, zip_directory, zip_entries
from .client import UserError

__all__ = ["guess_handler", "package", "zip_directory", "zip_entries"]


def package(source: str) -> bytes:
    try:
        return packaging.package(source)
    except packaging.PackageError as exc:
        raise UserError(str(exc)) from None
