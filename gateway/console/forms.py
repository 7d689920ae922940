"""Form fields to Lambda request bodies, and Lambda's errors back to the
fields they are about. Pure functions.

The console builds the same request bodies boto3 would send and hands them
to the same service objects, so a value is checked by the same code and
refused with the same message as through the API. A number that does not
parse is passed on as the text it was, so that the message is Lambda's own
("Value 'abc' at 'memorySize' failed to satisfy constraint ...").
"""

from __future__ import annotations

import re

_INT_RE = re.compile(r"^\s*-?\d{1,18}\s*$")
_AT_RE = re.compile(r"at '([A-Za-z.]+)'")

# Lambda's member names (as its messages cite them) -> the console's field names.
FIELDS = {
    "functionName": "name",
    "runtime": "runtime",
    "handler": "handler",
    "role": "role",
    "memorySize": "memory",
    "timeout": "timeout",
    "description": "description",
    "ephemeralStorage.size": "ephemeral",
    "environment.variables": "environment",
    "reservedConcurrentExecutions": "reserved",
    "authType": "auth_type",
    "invokeMode": "invoke_mode",
    "maximumRetryAttempts": "retries",
    "maximumEventAgeInSeconds": "max_age",
    "destinationConfig.onSuccess.destination": "on_success",
    "destinationConfig.onFailure.destination": "on_failure",
    "qualifier": "qualifier",
}


def number(value: str | None) -> int | str | None:
    """An int when the text is one; otherwise the text (None stays None)."""
    if value is None:
        return None
    return int(value) if _INT_RE.match(value) else value


def field_of(message: str, default: str) -> str:
    """The form field a Lambda error message is about."""
    m = _AT_RE.search(message)
    if m is not None:
        return FIELDS.get(m.group(1), default)
    lowered = message.lower()
    if "environment variables" in lowered:
        return "environment"
    if lowered.startswith("handler "):
        return "handler"
    if "destination" in lowered:
        return "on_failure" if "onfailure" in lowered.replace(" ", "") else default
    return default


def pairs(keys: list[str], values: list[str]) -> dict[str, str]:
    """Rows of a key/value table; rows with an empty key are dropped."""
    out: dict[str, str] = {}
    for key, value in zip(keys, values):
        key = key.strip()
        if key:
            out[key] = value
    return out


def configuration_body(form) -> dict:
    """UpdateFunctionConfiguration's body from the general settings form."""
    body: dict = {}
    if "memory" in form:
        body["MemorySize"] = number(form.get("memory"))
    if "timeout" in form:
        body["Timeout"] = number(form.get("timeout"))
    if "description" in form:
        body["Description"] = form.get("description", "")
    if "handler" in form:
        body["Handler"] = form.get("handler", "").strip()
    if "ephemeral" in form:
        body["EphemeralStorage"] = {"Size": number(form.get("ephemeral"))}
    return body


def async_body(form) -> dict:
    """PutFunctionEventInvokeConfig's body from the async settings form."""
    body: dict = {
        "MaximumRetryAttempts": number(form.get("retries", "2")),
        "MaximumEventAgeInSeconds": number(form.get("max_age", "21600")),
    }
    dc: dict = {}
    for field, key in (("on_success", "OnSuccess"), ("on_failure", "OnFailure")):
        arn = (form.get(field) or "").strip()
        dc[key] = {"Destination": arn} if arn else {}
    body["DestinationConfig"] = dc
    return body


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path of this server, never
    another site (//evil.example or a scheme)."""
    if not target or not target.startswith("/console") or target.startswith("//") or "\\" in target or any(c in target for c in "\r\n"):
        return "/console/functions"
    return target
