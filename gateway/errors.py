"""Platform errors and their one translation into Lambda's wire shape.

Function errors (the handler raised, timed out, ran out of memory) are not
here: they are results, returned as 200 with X-Amz-Function-Error.
"""

from __future__ import annotations

import errno
import functools
import sqlite3
import sys

import msgspec

from .ids import request_id as new_request_id

if sys.version_info < (3, 11):  # a builtin from 3.11; trio brings the backport before
    from exceptiongroup import BaseExceptionGroup

# Errors AWS sends that Lambda's model does not declare:
# type -> (HTTP status, name of the message member, whether the body has "Type").
_NOT_MODELED: dict[str, tuple[int, str, bool]] = {
    # Request validation against the model (functions/constraints.py).
    "ValidationException": (400, "message", False),
    # AWS's front ends send it for a request that arrived too slowly, and
    # botocore retries it as a transient error.
    "RequestTimeoutException": (408, "message", True),
    # Authentication and authorization are AWS-wide, not in Lambda's model.
    "MissingAuthenticationTokenException": (403, "message", True),
    "UnrecognizedClientException": (403, "message", True),
    "InvalidSignatureException": (403, "message", True),
    "IncompleteSignatureException": (403, "message", True),
    "AccessDeniedException": (403, "Message", False),
    "UnknownOperationException": (404, "message", True),
    "MethodNotAllowedException": (405, "message", True),
}


@functools.cache
def error_table() -> dict[str, tuple[int, str, bool]]:
    """Every error type this server answers with: Lambda's modeled errors
    (status, message member and fault from botocore's model), and the
    AWS-wide ones above."""
    from .lambda_model import shapes

    table = dict(_NOT_MODELED)
    for name, shape in shapes().items():
        if shape.get("exception"):
            member = "Message" if "Message" in shape["members"] else "message"
            table[name] = (shape["error"]["httpStatusCode"], member, True)
    return table


@functools.cache
def _service_faults() -> frozenset[str]:
    from .lambda_model import shapes

    return frozenset(name for name, shape in shapes().items() if shape.get("exception") and shape.get("fault"))


class LambdaError(Exception):
    """A platform error with a Lambda exception type."""

    def __init__(self, error_type: str, message: str, **extra: object) -> None:
        if error_type not in error_table():
            raise ValueError(f"unknown error type {error_type}")
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.extra = extra

    @property
    def status(self) -> int:
        return error_table()[self.error_type][0]

    def body(self) -> bytes:
        _status, member, typed = error_table()[self.error_type]
        doc: dict[str, object] = {"Type": "Service" if self.error_type in _service_faults() else "User"} if typed else {}
        doc[member] = self.message
        doc.update(self.extra)
        return msgspec.json.encode(doc)

    def headers(self) -> list[tuple[str, str]]:
        return [("x-amzn-ErrorType", self.error_type), ("Content-Type", "application/json")]

    def reply(self, request_id: str | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
        """The error as the API answers it: status, headers (with the
        request's id, a new one if none is given) and body. Every surface
        that answers a LambdaError in Lambda's shape goes through here."""
        return self.status, [*self.headers(), ("x-amzn-RequestId", request_id or new_request_id())], self.body()


def not_found(arn: str) -> LambdaError:
    return LambdaError("ResourceNotFoundException", f"Function not found: {arn}")


def invalid(message: str) -> LambdaError:
    return LambdaError("InvalidParameterValueException", message)


_SQLITE_FULL = 13  # sqlite3.SQLITE_FULL, which Python names only from 3.11


def disk_full(exc: BaseException) -> bool:
    """Whether exc is the data disk refusing a write: ENOSPC or EDQUOT from
    a file, or SQLITE_FULL from a database (wrapped in a group or not)."""
    if isinstance(exc, BaseExceptionGroup):
        return any(disk_full(e) for e in exc.exceptions)
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.OperationalError):
        return getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "disk is full" in str(exc)
    return False


def unexpected(exc: BaseException, *, stores_code: bool) -> LambdaError:
    """What a request that failed in a way no handler foresaw answers, in
    Lambda's shape (never an HTML page no SDK can read). A full disk is
    said as such: for a request that uploads code, AWS's error for code
    that cannot be stored, otherwise a ServiceException (5xx: SDKs retry)."""
    if disk_full(exc):
        why = "the server's data disk is full (No space left on device); delete functions or free space, then retry"
        if stores_code:
            return LambdaError("CodeStorageExceededException", f"Code storage limit exceeded: {why}.")
        return LambdaError("ServiceException", f"The change could not be stored: {why}.")
    return LambdaError("ServiceException", f"An internal error occurred ({type(exc).__name__}); the server's log has the details.")
