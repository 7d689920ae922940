"""The values a layer operation is given, checked as Lambda's model and
Lambda check them: names and ARNs, version numbers, compatibility lists and
filters, page sizes and markers, the uploaded zip. Pure; refusals are
LambdaError in AWS's words."""

from __future__ import annotations

import base64
import binascii
import re

from ..errors import LambdaError, invalid
from .layer_records import LayerVersionRecord

LAYER_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,140}$")
# LayerName in a path: a name, or a layer's ARN (botocore's LayerName pattern).
LAYER_REF_RE = re.compile(
    r"^(?:arn:(?:aws[a-zA-Z-]*)?:lambda:(?P<region>(?:eusc-)?[a-z]{2}(?:(?:-gov)|(?:-iso[a-z]?))?-[a-z]+-\d):"
    r"(?P<account>\d{12}):layer:)?(?P<name>[a-zA-Z0-9_-]+)$"
)
LAYER_VERSION_ARN_RE = re.compile(
    r"^arn:(?:aws[a-zA-Z-]*)?:lambda:(?P<region>(?:eusc-)?[a-z]{2}(?:(?:-gov)|(?:-iso[a-z]?))?-[a-z]+-\d):"
    r"(?P<account>\d{12}):layer:(?P<name>[a-zA-Z0-9_-]+):(?P<version>[0-9]+)$"
)
VERSION_ARN_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:layer:"
    r"[a-zA-Z0-9-_]+:[0-9]+)|(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+)"
)
MAX_FUNCTION_LAYERS = 5
MAX_COMPATIBLE_RUNTIMES = 15
ARCHITECTURES = ("x86_64", "arm64")
ZIP_MAX = 52_428_800  # a direct upload's limit (CodeSizeZipped), as for a function's code


def not_found() -> LambdaError:
    # AWS's words for a layer or version that does not exist.
    return LambdaError("ResourceNotFoundException", "The resource you requested does not exist.")


def pattern_error(value: object, field: str, pattern: str) -> LambdaError:
    return invalid(
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: "
        f"Member must satisfy regular expression pattern: {pattern}"
    )


def version_number(value: object) -> int:
    if isinstance(value, bool):
        raise invalid(
            f"1 validation error detected: Value '{value}' at 'versionNumber' failed to satisfy constraint: Member must be a number"
        )
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise invalid(
            f"1 validation error detected: Value '{value}' at 'versionNumber' failed to satisfy constraint: Member must be a number"
        ) from None
    return number


def matching(versions: dict[int, LayerVersionRecord], runtime: str | None, architecture: str | None) -> list[LayerVersionRecord]:
    """Versions that declare the runtime and architecture asked for,
    newest first (a version that declares none matches no filter)."""
    return [
        versions[n]
        for n in sorted(versions, reverse=True)
        if (runtime is None or runtime in versions[n].compatible_runtimes)
        and (architecture is None or architecture in versions[n].compatible_architectures)
    ]


def check_filters(runtime: str | None, architecture: str | None, runtimes: tuple[str, ...]) -> None:
    if runtime is not None and runtime not in runtimes:
        raise invalid(
            f"1 validation error detected: Value '{runtime}' at 'compatibleRuntime' failed to satisfy "
            f"constraint: Member must satisfy enum value set: [{', '.join(runtimes)}]"
        )
    if architecture is not None and architecture not in ARCHITECTURES:
        raise invalid(
            f"1 validation error detected: Value '{architecture}' at 'compatibleArchitecture' failed to "
            "satisfy constraint: Member must satisfy enum value set: [x86_64, arm64]"
        )


def compatible_runtimes(value: object, runtimes: tuple[str, ...]) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_COMPATIBLE_RUNTIMES:
        raise invalid(
            "1 validation error detected: Value at 'compatibleRuntimes' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_COMPATIBLE_RUNTIMES}"
        )
    bad = [r for r in value if r not in runtimes]
    if bad:
        raise invalid(
            f"1 validation error detected: Value '{bad}' at 'compatibleRuntimes' failed to satisfy "
            f"constraint: Member must satisfy constraint: [Member must satisfy enum value set: "
            f"[{', '.join(runtimes)}]]"
        )
    return list(dict.fromkeys(value))


def compatible_architectures(value: object) -> list[str]:
    if not isinstance(value, list) or len(value) > 2 or any(a not in ARCHITECTURES for a in value):
        raise invalid(
            f"1 validation error detected: Value '{value}' at 'compatibleArchitectures' failed to satisfy "
            "constraint: Member must have length less than or equal to 2, and Member must satisfy "
            "constraint: [Member must satisfy enum value set: [x86_64, arm64]]"
        )
    return list(dict.fromkeys(value))


def page_limit(max_items: str | None) -> int:
    if max_items is None:
        return 50
    try:
        limit = int(max_items)
    except ValueError:
        raise invalid(f"Value '{max_items}' at 'maxItems' failed to satisfy constraint: Member must be a number") from None
    if not 1 <= limit <= 50:
        raise invalid(
            f"1 validation error detected: Value '{limit}' at 'maxItems' failed to satisfy constraint: "
            "Member must have value between 1 and 50"
        )
    return limit


def encode_marker(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def decode_marker(marker: str) -> str:
    try:
        return base64.urlsafe_b64decode(marker.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid("Invalid marker.") from None


def zip_from(content: object) -> bytes:
    if not isinstance(content, dict):
        raise invalid("1 validation error detected: Value null at 'content' failed to satisfy constraint: Member must not be null")
    if "ZipFile" not in content:
        if content.get("S3Bucket") or content.get("S3Key"):
            raise invalid("Content.S3Bucket is not supported by this server yet; upload the .zip as Content.ZipFile.")
        raise invalid("Please provide a source for layer content: Content.ZipFile.")
    raw = content["ZipFile"]
    if not isinstance(raw, str):
        raise invalid("Content.ZipFile must be base64-encoded bytes")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("Could not unzip uploaded file. Please check your file, then try to upload again.") from None
    if len(data) > ZIP_MAX:
        raise LambdaError("RequestTooLargeException", f"Request must be smaller than {ZIP_MAX} bytes for the PublishLayerVersion operation")
    return data
