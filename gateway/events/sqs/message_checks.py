"""What SQS checks in a message operation's input, as SQS words its
refusals: integer parameters and their ranges, receipt handles, a message's
body and attributes, batch entries; and the attribute shapes md5.py takes
and a receive returns. Pure."""

from __future__ import annotations

import base64
import binascii
import re

from .errors import SqsError, invalid
from .store import StoredMessage

BATCH_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,80}")
_ATTRIBUTE_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,256}")
_DATA_TYPE_RE = re.compile(r"(String|Number|Binary)(\.[^\s]{1,248})?")
# XML 1.0's characters: what a message body and string attributes may hold.
_INVALID_CHARS = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_RECEIPT_RE = re.compile(r"(\d+)\.([0-9a-f]{32})")

MAX_BATCH = 10


def int_param(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value.lstrip("-").isdigit()):
        raise invalid(f"Value {value} for parameter {name} is invalid. Reason: Must be an integer from {low} to {high}.")
    n = int(value)
    if not low <= n <= high:
        raise invalid(f"Value {value} for parameter {name} is invalid. Reason: Must be between {low} and {high}, if provided.")
    return n


def parse_receipt(handle: object) -> tuple[int, str]:
    if not isinstance(handle, str):
        raise SqsError("ReceiptHandleIsInvalid", f'The input receipt handle "{handle}" is not a valid receipt handle.')
    try:
        decoded = base64.urlsafe_b64decode(handle.encode("ascii")).decode("ascii")
    except (ValueError, binascii.Error, UnicodeError):
        decoded = ""
    m = _RECEIPT_RE.fullmatch(decoded)
    if m is None:
        raise SqsError("ReceiptHandleIsInvalid", f'The input receipt handle "{handle}" is not a valid receipt handle.')
    return int(m.group(1)), m.group(2)


def receipt_handle(msg: StoredMessage) -> str:
    return base64.urlsafe_b64encode(f"{msg.seq}.{msg.receipt}".encode()).decode()


def check_body(body: object) -> str:
    """A message body: present and made of XML 1.0's characters."""
    if not isinstance(body, str) or body == "":
        raise SqsError("MissingParameter", "The request must contain the parameter MessageBody.")
    if _INVALID_CHARS.search(body):
        raise SqsError(
            "InvalidMessageContents",
            "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
        )
    return body


def message_attributes(raw: object) -> dict[str, dict]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise invalid("MessageAttributes must be a map.")
    if len(raw) > 10:
        raise invalid(f"Number of message attributes [{len(raw)}] exceeds the allowed maximum [10].")
    out: dict[str, dict] = {}
    for name, value in raw.items():
        if (
            not isinstance(name, str)
            or not _ATTRIBUTE_NAME_RE.fullmatch(name)
            or name.lower().startswith(("aws.", "amazon."))
            or name.startswith(".")
            or name.endswith(".")
            or ".." in name
        ):
            raise invalid(f"Message attribute name '{name}' is invalid.")
        if not isinstance(value, dict) or not isinstance(value.get("DataType"), str):
            raise invalid(f"The message attribute '{name}' must contain a non-empty attribute type.")
        data_type = value["DataType"]
        if not _DATA_TYPE_RE.fullmatch(data_type):
            raise invalid(
                f"The type of message attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
            )
        if data_type.startswith("Binary"):
            blob = value.get("BinaryValue")
            if not isinstance(blob, str) or not blob:
                raise invalid(f"The message attribute '{name}' with type 'Binary' must use field 'Binary'.")
            try:
                base64.b64decode(blob, validate=True)
            except (ValueError, binascii.Error):
                raise invalid(f"The message attribute '{name}' has an invalid binary value.") from None
            out[name] = {"DataType": data_type, "BinaryValue": blob}
        else:
            text = value.get("StringValue")
            if not isinstance(text, str) or text == "":
                raise invalid(
                    f"The message attribute '{name}' must contain non-empty message attribute value for message attribute type '{data_type.split('.')[0]}'."
                )
            if _INVALID_CHARS.search(text):
                raise SqsError("InvalidMessageContents", f"The message attribute '{name}' contains invalid characters.")
            if data_type.startswith("Number"):
                try:
                    float(text)
                except ValueError:
                    raise invalid(f"Could not cast message attribute '{name}' value to number.") from None
            out[name] = {"DataType": data_type, "StringValue": text}
    return out


def batch_entries(req: dict, key: str, entry_name: str) -> list[dict]:
    entries = req.get(key)
    if not entries:
        raise SqsError("EmptyBatchRequest", f"There should be at least one {entry_name} in the request.")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise invalid(f"{key} must be a list of entries.")
    if len(entries) > MAX_BATCH:
        raise SqsError(
            "TooManyEntriesInBatchRequest", f"Maximum number of entries per request are {MAX_BATCH}. You have sent {len(entries)}."
        )
    ids = [e.get("Id") for e in entries]
    for i in ids:
        if not isinstance(i, str) or not BATCH_ID_RE.fullmatch(i):
            raise SqsError(
                "InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
            )
    if len(set(ids)) != len(ids):
        raise SqsError("BatchEntryIdsNotDistinct", f"Id {next(i for i in ids if ids.count(i) > 1)} repeated.")
    return entries


def attribute_bytes(value: dict) -> dict:
    """An attribute as md5.of_attributes takes it (binary values as bytes)."""
    if "BinaryValue" in value:
        return {"DataType": value["DataType"], "BinaryValue": base64.b64decode(value["BinaryValue"])}
    return value


def pick_attributes(attributes: dict[str, dict], names: list[str]) -> dict[str, dict]:
    if not attributes or not names:
        return {}
    if "All" in names or ".*" in names:
        return dict(attributes)
    out = {}
    for n, v in attributes.items():
        for want in names:
            if n == want or (want.endswith(".*") and n.startswith(want[:-1])):
                out[n] = v
                break
    return out
