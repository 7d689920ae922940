"""Where an asynchronous invocation's record goes, and what the record says.

A destination is either another function (its ARN) or one of Lambdalet's
built-in durable queues, named by an SQS-shaped ARN:

    arn:aws:sqs:<region>:<account>:<queue-name>

Any queue name works and is created on first use; `lambdalet-dlq` is the
dead-letter queue that failures land in when no OnFailure is configured.
Records in these queues are read and redriven with `lambdalet dlq` or over
HTTP (/_lambdalet/queues). Other AWS services (SNS, EventBridge, S3) do not
exist on one box and are refused when configured.
"""

from __future__ import annotations

import datetime
import re

import msgspec

from ..errors import invalid

DEFAULT_DLQ = "lambdalet-dlq"
QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_LAMBDA_RE = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]*:\d{0,12}:function:(?P<name>[a-zA-Z0-9_-]{1,64})(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?$"
)
_SQS_RE = re.compile(r"^arn:aws[a-zA-Z-]*:sqs:[a-z0-9-]*:\d{0,12}:(?P<name>[^:]+)$")


class FunctionTarget(msgspec.Struct, frozen=True):
    name: str
    qualifier: str = "$LATEST"  # or a version number or an alias


class QueueTarget(msgspec.Struct, frozen=True):
    name: str


Target = FunctionTarget | QueueTarget


def queue_arn(region: str, account: str, name: str = DEFAULT_DLQ) -> str:
    return f"arn:aws:sqs:{region}:{account}:{name}"


def parse_target(arn: object, field: str) -> Target:
    """A DestinationConfig ARN to what it names; InvalidParameterValue if it
    names nothing this server can deliver to."""
    if not isinstance(arn, str) or len(arn) > 350:
        raise invalid(
            f"1 validation error detected: Value '{arn}' at '{field}' failed to satisfy constraint: Member must have length less than or equal to 350"
        )
    m = _LAMBDA_RE.match(arn)
    if m:
        return FunctionTarget(m.group("name"), m.group("qualifier") or "$LATEST")
    m = _SQS_RE.match(arn)
    if m:
        if not QUEUE_NAME_RE.match(m.group("name")):
            raise invalid(f"The destination queue name in {arn} must be 1-80 of A-Z, a-z, 0-9, '-' and '_'.")
        return QueueTarget(m.group("name"))
    if arn.startswith("arn:"):
        service = arn.split(":")[2] if arn.count(":") >= 2 else ""
        raise invalid(
            f"The destination ARN {arn} is not supported: this server delivers to Lambda functions and its built-in SQS-style queues, not to {service or 'that service'}."
        )
    raise invalid(
        f"1 validation error detected: Value '{arn}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:(.*)"
    )


def timestamp(wall_s: float) -> str:
    # Lambda's record timestamp: 2019-11-14T18:16:05.568Z
    dt = datetime.datetime.fromtimestamp(wall_s, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _json_or_text(raw: bytes | None) -> object:
    if raw is None or not raw.strip():
        return None
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        # RecursionError: JSON nested deeper than a decoder goes, as the
        # records of a long-allowed loop of destinations become (each one
        # carries the one before): kept as text rather than failing the event.
        return raw.decode(errors="replace")


def record(
    *,
    wall_s: float,
    request_id: str,
    function_arn: str,
    executed_version: str = "$LATEST",
    condition: str,
    invoke_count: int,
    request_payload: bytes,
    status_code: int,
    function_error: str | None,
    response_payload: bytes | None,
) -> dict:
    """Lambda's invocation record. condition is Success, RetriesExhausted or
    EventAgeExceeded; responsePayload is present when the function ran."""
    response_context: dict = {"statusCode": status_code, "executedVersion": executed_version}
    if function_error:
        response_context["functionError"] = function_error
    doc = {
        "version": "1.0",
        "timestamp": timestamp(wall_s),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": _json_or_text(request_payload),
        "responseContext": response_context,
    }
    if response_payload is not None:
        doc["responsePayload"] = _json_or_text(response_payload)
    return doc
