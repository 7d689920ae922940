"""What CreateFunction and UpdateFunction* are given, checked and turned
into record fields, and the account's code-size limits. Pure: no I/O, no
state (the service stores and persists what these return).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime

from ..errors import LambdaError, invalid
from . import unsupported_settings
from . import validation as v
from .layer_records import LayerRef

ACCOUNT_LIMITS = {
    "TotalCodeSize": 80_530_636_800,
    "CodeSizeUnzipped": 262_144_000,
    "CodeSizeZipped": 52_428_800,
}
ZIP_MAX = ACCOUNT_LIMITS["CodeSizeZipped"]


def now_iso() -> str:
    """Now, in Lambda's LastModified format: 2024-01-02T03:04:05.678+0000."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def zip_from(code: object) -> bytes:
    """The deployment package a request's Code (or UpdateFunctionCode's
    body) carries, decoded; only Code.ZipFile is taken."""
    if not isinstance(code, dict):
        raise invalid("Code is required and must contain ZipFile")
    if "ZipFile" not in code:
        if code.get("S3Bucket") or code.get("ImageUri"):
            raise invalid("Only Code.ZipFile is supported by this server; upload the .zip directly.")
        raise invalid("Please provide a source for function code.")
    raw = code["ZipFile"]
    if not isinstance(raw, str):
        raise invalid("Code.ZipFile must be base64-encoded bytes")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("Could not unzip uploaded file. Please check your file, then try to upload again.") from None
    if len(data) > ZIP_MAX:
        raise LambdaError("RequestTooLargeException", f"Request must be smaller than {ZIP_MAX} bytes for the CreateFunction operation")
    return data


def config_fields(body: dict, partial: bool = False) -> dict:
    """The FunctionRecord fields a request's configuration members set,
    each checked. partial: an UpdateFunctionConfiguration, which cannot
    change Architectures (UpdateFunctionCode does)."""
    unsupported_settings.refuse(body)
    out: dict = {}
    if "Description" in body:
        out["description"] = v.description(body["Description"])
    if "Timeout" in body:
        out["timeout"] = v.timeout(body["Timeout"])
    if "MemorySize" in body:
        out["memory_size"] = v.memory(body["MemorySize"])
    if "Environment" in body:
        out["environment"] = v.environment(body["Environment"])
    if "EphemeralStorage" in body:
        out["ephemeral_storage"] = v.ephemeral(body["EphemeralStorage"])
    if "Architectures" in body and not partial:
        out["architectures"] = v.architectures(body["Architectures"])
    if "LoggingConfig" in body:
        out["logging_config"] = v.logging_config(body["LoggingConfig"])
    return out


def check_unzipped(code_bytes: int, layers: list[LayerRef]) -> None:
    """Lambda's 250 MB limit covers the code and its layers together."""
    total = code_bytes + sum(layer.unzipped_size for layer in layers)
    limit = ACCOUNT_LIMITS["CodeSizeUnzipped"]
    if layers and total > limit:
        raise invalid(
            f"Function code combined with layers exceeds the maximum allowed size of {limit} bytes. The actual size is {total} bytes."
        )


def page_of_names(names: list[str], marker: str | None, max_items: str | None) -> tuple[list[str], str | None]:
    """One page of sorted function names for ListFunctions, and the
    NextMarker that follows it (None on the last page). The marker is the
    last name of the page before, base64url-encoded; max_items was checked
    against the model."""
    limit = int(max_items) if max_items is not None else 50
    start = 0
    if marker:
        try:
            raw = base64.urlsafe_b64decode(marker.encode())
            after = raw.decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise invalid("Invalid marker.") from None
        # The decoder skips what is not base64 (and takes "+" and "/" too):
        # only a marker this function could have made is taken.
        if base64.urlsafe_b64encode(raw).decode() != marker:
            raise invalid("Invalid marker.")
        start = bisect.bisect_right(names, after)
    page = names[start : start + limit]
    more = start + limit < len(names)
    return page, base64.urlsafe_b64encode(page[-1].encode()).decode() if more else None
