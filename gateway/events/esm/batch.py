"""A batch of SQS messages as the event Lambda gives a function, and what
the function's answer says to delete. Sans-IO."""

from __future__ import annotations

import msgspec

from ..sqs import md5
from ..sqs.message_checks import attribute_bytes, receipt_handle
from ..sqs.store import StoredMessage

# A synchronous invocation's payload limit: a batch stops growing before it.
MAX_PAYLOAD = 6 * 1024 * 1024


def record(m: StoredMessage, system: dict[str, str], queue_arn: str, region: str) -> dict:
    """One message as Lambda's SQS event record (aws:sqs)."""
    attributes = {}
    for name, value in m.attributes.items():
        item: dict = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
        if "BinaryValue" in value:
            item["binaryValue"] = value["BinaryValue"]
        else:
            item["stringValue"] = value["StringValue"]
        attributes[name] = item
    doc: dict[str, object] = {
        "messageId": m.id,
        "receiptHandle": receipt_handle(m),
        "body": m.body,
        "attributes": system,
        "messageAttributes": attributes,
        "md5OfBody": md5.of_body(m.body),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if m.attributes:
        doc["md5OfMessageAttributes"] = md5.of_attributes({n: attribute_bytes(v) for n, v in m.attributes.items()})
    return doc


def event(records: list[dict]) -> bytes:
    return msgspec.json.encode({"Records": records})


def failed_ids(response: bytes, batch_ids: list[str]) -> list[str] | None:
    """The messages a ReportBatchItemFailures answer names as failed; None
    when the answer makes the whole batch a failure, as Lambda reads it:
    an itemIdentifier that is missing, empty or not in the batch. An answer
    that is not JSON, or has no (or an empty or null) batchItemFailures,
    reports no failure."""
    try:
        doc = msgspec.json.decode(response) if response.strip() else None
    except msgspec.DecodeError:
        return []
    if not isinstance(doc, dict):
        return []
    failures = doc.get("batchItemFailures")
    if not failures:
        return []
    if not isinstance(failures, list):
        return None
    wanted = set(batch_ids)
    out = []
    for f in failures:
        ident = f.get("itemIdentifier") if isinstance(f, dict) else None
        if not isinstance(ident, str) or not ident or ident not in wanted:
            return None
        out.append(ident)
    return out
