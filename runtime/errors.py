"""Lambda's function-error documents, as the Python runtime builds them.

Pure functions: an exception (or a runtime fault) in, the JSON bytes that
Invoke returns with X-Amz-Function-Error out.
"""

from __future__ import annotations

import json
import traceback

# Frames from these files are the runtime's own and are hidden, as AWS hides
# its bootstrap frames from a user's stack trace.
_RUNTIME_MARKER = "/lambdalet/runtime/"


def user_frames(tb) -> list[str]:
    frames = [f for f in traceback.extract_tb(tb) if _RUNTIME_MARKER not in f.filename]
    return traceback.format_list(frames)


_user_frames = user_frames


def from_exception(exc: BaseException, request_id: str) -> tuple[str, bytes, str]:
    """Returns (errorType, payload, log text) for an exception a handler raised."""
    error_type = type(exc).__name__
    stack = _user_frames(exc.__traceback__)
    doc = {
        "errorMessage": str(exc),
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack,
    }
    log = f"[ERROR] {error_type}: {exc}\nTraceback (most recent call last):\n{''.join(stack)}"
    return error_type, json.dumps(doc).encode(), log


def fault(error_type: str, message: str, request_id: str = "", stack: list[str] | None = None) -> bytes:
    """A runtime fault such as Runtime.ImportModuleError."""
    return json.dumps(
        {
            "errorMessage": message,
            "errorType": error_type,
            "requestId": request_id,
            "stackTrace": stack or [],
        }
    ).encode()


def platform(error_type: str, request_id: str, detail: str) -> bytes:
    """An error the platform raises on the function's behalf (timeout, OOM, exit)."""
    return json.dumps({"errorType": error_type, "errorMessage": f"RequestId: {request_id} Error: {detail}"}).encode()


RESPONSE_TOO_LARGE = "Response payload size exceeded maximum allowed payload size (6291556 bytes)."


def response_too_large() -> bytes:
    """What Invoke returns, as AWS words it, for a response over 6291556 bytes."""
    return json.dumps({"errorMessage": RESPONSE_TOO_LARGE, "errorType": "Function.ResponseSizeTooLarge"}).encode()
