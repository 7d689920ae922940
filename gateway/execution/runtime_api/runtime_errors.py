"""A runtime's error reports as the caller gets them. Pure.

The Runtime API lets a runtime name the error type of a failed call (a
header, or a streamed response's trailers) and post an error document; the
emulator keeps only types it recognises and strips the X-Ray cause from a
document posted with the error-cause content type. The platform's own
errors (an oversized or truncated response) reach the caller in the same
document shape.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

ERROR_TYPE_HEADER = "lambda-runtime-function-error-type"
ERROR_BODY_TRAILER = "lambda-runtime-function-error-body"
ERROR_CAUSE_CONTENT_TYPE = "application/vnd.aws.lambda.error.cause+json"

# The emulator checks the type with this pattern, unanchored.
_VALID_ERROR_TYPE = re.compile(r"(Runtime|Function)\.[A-Z][a-zA-Z]+")


def valid_error_type(value: str | None) -> str:
    """A runtime's error type as the emulator keeps it: Runtime.X or
    Function.X, else Function.Unknown or Runtime.Unknown."""
    value = value or ""
    if _VALID_ERROR_TYPE.search(value):
        return value
    return "Function.Unknown" if value.startswith("Function.") else "Runtime.Unknown"


def platform_error(error_type: str, message: str) -> bytes:
    """An error document for the caller, in the shape the runtime API's
    service gives it (errorMessage, errorType)."""
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


def trailer_error(trailers: list[tuple[str, str]]) -> tuple[str, bytes] | None:
    """A streamed response's trailers as (error type, error body), or None
    when they report no error."""
    fields = dict(trailers)
    kind = fields.get(ERROR_TYPE_HEADER)
    if not kind:
        return None
    try:
        body = base64.b64decode(fields.get(ERROR_BODY_TRAILER, ""), validate=True)
    except (binascii.Error, ValueError):
        body = b""
    return valid_error_type(kind), body


def without_cause(body: bytes) -> bytes:
    """An error posted with the error-cause content type reaches the
    caller without its X-Ray cause, as the emulator filters it."""
    try:
        doc = json.loads(body)
        if not isinstance(doc, dict):
            raise ValueError
        message = doc.get("errorMessage", "")
        kind = doc.get("errorType", "")
        stack = doc.get("stackTrace")
        if (
            not isinstance(message, str)
            or not isinstance(kind, str)
            or (stack is not None and not (isinstance(stack, list) and all(isinstance(s, str) for s in stack)))
        ):
            raise ValueError
    except ValueError:
        return json.dumps("Invalid error body").encode()
    out: dict[str, object] = {"errorMessage": message, "errorType": kind}
    if stack:
        out["stackTrace"] = stack
    return json.dumps(out, separators=(",", ":")).encode()
