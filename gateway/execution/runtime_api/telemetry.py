"""The Telemetry API (2022-07-01): subscriptions, the event schema, and each
subscriber's buffer. Sans-IO.

An extension subscribes its own HTTP listener inside the sandbox (PUT
/2022-07-01/telemetry) to any of three streams: `platform` (the
platform.* events of init, each call and the environment), `function`
(what the runtime wrote, a record per line) and `extension` (what the
extensions wrote). Events are buffered per subscriber and POSTed to its
listener as a JSON array once `maxItems` events or `maxBytes` bytes are
waiting, or `timeoutMs` after the oldest arrived. Everything here is a
pure function or a plain buffer; delivery is telemetry_delivery.py's.

The records follow AWS's event schema reference (schema 2022-12-13, which
2022-07-01 subscribers receive as well): platform.initStart,
platform.initRuntimeDone, platform.initReport, platform.start,
platform.runtimeDone (metrics and spans), platform.report,
platform.extension, platform.telemetrySubscription, platform.logsDropped,
function and extension.
"""

from __future__ import annotations

import collections
import datetime
import json
import re
import urllib.parse

import msgspec

SCHEMA_VERSIONS = ("2022-07-01", "2022-12-13", "2025-01-29")
TYPES = ("platform", "function", "extension")
# (default, lowest, highest) as AWS documents them.
MAX_ITEMS = (10000, 1000, 10000)
MAX_BYTES = (262144, 262144, 1048576)
TIMEOUT_MS = (1000, 25, 30000)
# Names a listener inside the sandbox may be subscribed under: the sandbox's
# own loopback, where /etc/hosts puts sandbox.localdomain.
LOCAL_HOSTS = frozenset({"sandbox.localdomain", "sandbox", "localhost", "127.0.0.1"})
# What a subscriber may have waiting before events are dropped (and counted
# in platform.logsDropped): a listener that does not keep up costs the
# server this much per subscription at most.
QUEUE_BYTES = 4 * 1024 * 1024
QUEUE_ITEMS = 20000
DROPPED_REASON = "Consumer seems to have fallen behind as it has not acknowledged receipt of logs."

_MAX_RECORD_TEXT = 256 * 1024  # a log line longer than this is cut (the log itself is capped at 1 MiB a call)


class SubscriptionError(ValueError):
    pass


class Subscription(msgspec.Struct, frozen=True):
    schema_version: str
    types: frozenset
    max_items: int
    max_bytes: int
    timeout_ms: int
    host: str
    port: int
    path: str  # with the query, as sent in the request line


def _bounded(buffering: dict, key: str, limits: tuple[int, int, int]) -> int:
    value = buffering.get(key, limits[0])
    if isinstance(value, bool) or not isinstance(value, int) or not limits[1] <= value <= limits[2]:
        raise SubscriptionError(f"buffering.{key} must be an integer between {limits[1]} and {limits[2]}")
    return value


def parse_subscription(body: bytes) -> Subscription:
    """A PUT /2022-07-01/telemetry body, checked as AWS checks it."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise SubscriptionError(f"Invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SubscriptionError("the subscription must be a JSON object")
    version = doc.get("schemaVersion")
    if version not in SCHEMA_VERSIONS:
        raise SubscriptionError(f"schemaVersion must be one of {', '.join(SCHEMA_VERSIONS)}")
    types = doc.get("types")
    if not isinstance(types, list) or not types or any(t not in TYPES for t in types):
        raise SubscriptionError(f"types must be a non-empty list of {', '.join(TYPES)}")
    buffering = doc.get("buffering") or {}
    if not isinstance(buffering, dict):
        raise SubscriptionError("buffering must be an object")
    max_items = _bounded(buffering, "maxItems", MAX_ITEMS)
    max_bytes = _bounded(buffering, "maxBytes", MAX_BYTES)
    timeout_ms = _bounded(buffering, "timeoutMs", TIMEOUT_MS)
    destination = doc.get("destination")
    if not isinstance(destination, dict):
        raise SubscriptionError("destination is required")
    if destination.get("protocol") != "HTTP":
        raise SubscriptionError("destination.protocol must be HTTP (this server does not deliver over TCP)")
    uri = destination.get("URI")
    if not isinstance(uri, str) or not uri:
        raise SubscriptionError("destination.URI is required")
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port
    except ValueError:
        raise SubscriptionError(f"destination.URI is not a URI: {uri}") from None
    if parts.scheme != "http" or parts.hostname not in LOCAL_HOSTS or port is None:
        raise SubscriptionError("destination.URI must be http://sandbox.localdomain:PORT/... (a listener inside the sandbox)")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if not re.fullmatch(r"[\x21-\x7e]+", path):
        raise SubscriptionError("destination.URI has characters a request line cannot carry")
    return Subscription(version, frozenset(types), max_items, max_bytes, timeout_ms, "127.0.0.1", port, path)


# -- the event schema -------------------------------------------------------------


def iso(ms: int) -> str:
    """AWS's event time: UTC, milliseconds, Z."""
    t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class Event(msgspec.Struct, frozen=True):
    """One event, encoded once for every subscriber: its category decides
    who gets it."""

    category: str  # platform, function or extension
    data: bytes  # the JSON object {"time", "type", "record"}


def _event(category: str, ms: int, kind: str, record: object) -> Event:
    return Event(
        category, json.dumps({"time": iso(ms), "type": kind, "record": record}, separators=(",", ":"), ensure_ascii=False).encode()
    )


def _tracing(trace_id: str) -> dict:
    return {"type": "X-Amzn-Trace-Id", "value": trace_id}


def _ms(ns: int) -> float:
    return round(ns / 1e6, 3)


def init_start(
    ms: int, *, initialization_type: str, runtime_version: str, function_name: str, function_version: str, instance_id: str, memory_mb: int
) -> Event:
    return _event(
        "platform",
        ms,
        "platform.initStart",
        {
            "initializationType": initialization_type,
            "phase": "init",
            "runtimeVersion": runtime_version,
            "runtimeVersionArn": f"arn:aws:lambda:::runtime:{runtime_version}",
            "functionName": function_name,
            "functionVersion": function_version,
            "instanceId": instance_id,
            "instanceMaxMemory": memory_mb * 1048576,
        },
    )


def _status(record: dict, status: str, error_type: str | None) -> dict:
    record["status"] = status
    if status != "success" and error_type:
        record["errorType"] = error_type
    return record


def init_runtime_done(ms: int, *, initialization_type: str, status: str, error_type: str | None = None) -> Event:
    return _event(
        "platform",
        ms,
        "platform.initRuntimeDone",
        _status({"initializationType": initialization_type, "phase": "init"}, status, error_type),
    )


def init_report(ms: int, *, initialization_type: str, status: str, duration_ns: int, error_type: str | None = None) -> Event:
    record = _status({"initializationType": initialization_type, "phase": "init"}, status, error_type)
    record["metrics"] = {"durationMs": _ms(duration_ns)}
    return _event("platform", ms, "platform.initReport", record)


def extension(ms: int, name: str, events: tuple[str, ...], state: str = "Ready", error_type: str | None = None) -> Event:
    record = {"name": name, "state": state, "events": list(events)}
    if error_type:
        record["errorType"] = error_type
    return _event("platform", ms, "platform.extension", record)


def subscription(ms: int, name: str, types: frozenset) -> Event:
    return _event(
        "platform", ms, "platform.telemetrySubscription", {"name": name, "state": "Subscribed", "types": [t for t in TYPES if t in types]}
    )


def start(ms: int, request_id: str, version: str, trace_id: str) -> Event:
    return _event("platform", ms, "platform.start", {"requestId": request_id, "version": version, "tracing": _tracing(trace_id)})


def runtime_done(
    ms: int, *, request_id: str, status: str, error_type: str | None, duration_ns: int, produced_bytes: int, started_ms: int, trace_id: str
) -> Event:
    record = _status({"requestId": request_id}, status, error_type)
    record["metrics"] = {"durationMs": _ms(duration_ns), "producedBytes": produced_bytes}
    # The answer arrives whole (a frame, or a response body read to its
    # end) when it is not streamed: its transfer is within the latency.
    record["spans"] = [
        {"name": "responseLatency", "start": iso(started_ms), "durationMs": _ms(duration_ns)},
        {"name": "responseDuration", "start": iso(started_ms + duration_ns // 1_000_000), "durationMs": 0.0},
    ]
    record["tracing"] = _tracing(trace_id)
    return _event("platform", ms, "platform.runtimeDone", record)


def report(
    ms: int,
    *,
    request_id: str,
    status: str,
    error_type: str | None,
    duration_ns: int,
    billed_ms: int,
    memory_mb: int,
    max_memory_mb: int,
    init_ns: int | None,
    trace_id: str,
) -> Event:
    metrics: dict = {
        "durationMs": _ms(duration_ns),
        "billedDurationMs": billed_ms,
        "memorySizeMB": memory_mb,
        "maxMemoryUsedMB": max_memory_mb,
    }
    if init_ns is not None:
        metrics["initDurationMs"] = _ms(init_ns)
    record = _status({"requestId": request_id}, status, error_type)
    record["metrics"] = metrics
    record["tracing"] = _tracing(trace_id)
    return _event("platform", ms, "platform.report", record)


def logs_dropped(ms: int, records: int, size: int) -> Event:
    return _event("platform", ms, "platform.logsDropped", {"reason": DROPPED_REASON, "droppedRecords": records, "droppedBytes": size})


def log_lines(category: str, text: bytes, marks: list[tuple[int, int]], end_ms: int, json_format: bool, start_ms: int = 0) -> list[Event]:
    """A `function` or `extension` record per line of text: each stamped
    with the time it was written (marks: (offset, epoch ms) as
    metering/log_lines.py keeps them; lines past the last mark carry
    end_ms), as a string, or with the JSON log format the object a line
    holds when it holds one. The marks come from the sandbox: each time
    is clamped between start_ms, the line before's and end_ms."""
    out: list[Event] = []
    pos = 0
    mark = 0
    floor = min(start_ms, end_ms)
    for line in text.splitlines(keepends=True):
        pos += len(line)
        while mark < len(marks) and marks[mark][0] < pos:
            mark += 1
        ms = marks[mark][1] if mark < len(marks) else end_ms
        ms = floor = min(max(ms, floor), end_ms) if isinstance(ms, int) else end_ms
        value = line.rstrip(b"\r\n")[:_MAX_RECORD_TEXT].decode("utf-8", "replace")
        if not value:
            continue
        record: object = value
        if json_format and value.startswith("{"):
            try:
                parsed = json.loads(value)
                if isinstance(parsed, dict):
                    record = parsed
            except (ValueError, RecursionError):  # not JSON, or nested past the decoder's depth
                pass
        out.append(_event(category, ms, category, record))
    return out


# -- a subscriber's buffer ------------------------------------------------------------


class Buffer:
    """The events waiting for one subscriber, in order. Bounded: past
    QUEUE_BYTES or QUEUE_ITEMS new events are dropped and counted, and the
    next batch opens with a platform.logsDropped event."""

    def __init__(self, sub: Subscription, *, queue_bytes: int = QUEUE_BYTES, queue_items: int = QUEUE_ITEMS) -> None:
        self.sub = sub
        self._events: collections.deque[bytes] = collections.deque()
        self._bytes = 0
        self._queue_bytes = queue_bytes
        self._queue_items = queue_items
        self.oldest_ms = 0  # when the oldest waiting event arrived (a monotonic ms the caller chooses)
        self.dropped_records = 0
        self.dropped_bytes = 0
        self.delivered = 0

    def __len__(self) -> int:
        return len(self._events)

    def add(self, event: Event, now_ms: int) -> bool:
        if event.category not in self.sub.types:
            return False
        if len(self._events) >= self._queue_items or self._bytes + len(event.data) > self._queue_bytes:
            self.dropped_records += 1
            self.dropped_bytes += len(event.data)
            return False
        if not self._events:
            self.oldest_ms = now_ms
        self._events.append(event.data)
        self._bytes += len(event.data)
        return True

    def due_ms(self) -> int | None:
        """When the waiting events must go at the latest, or None."""
        if not self._events and not self.dropped_records:
            return None
        return self.oldest_ms + self.sub.timeout_ms

    def full(self) -> bool:
        return len(self._events) >= self.sub.max_items or self._bytes >= self.sub.max_bytes

    def take(self, now_ms: int) -> bytes | None:
        """The next batch as a JSON array (at most maxItems events and
        about maxBytes, at least one event), or None if nothing waits."""
        parts: list[bytes] = []
        size = 2
        if self.dropped_records and "platform" in self.sub.types:
            notice = logs_dropped(now_ms, self.dropped_records, self.dropped_bytes).data
            parts.append(notice)
            size += len(notice) + 1
        self.dropped_records = self.dropped_bytes = 0
        events = self._events
        while events and len(parts) < self.sub.max_items:
            nxt = events[0]
            if parts and size + len(nxt) + 1 > self.sub.max_bytes:
                break
            parts.append(events.popleft())
            self._bytes -= len(nxt)
            size += len(nxt) + 1
        if not parts:
            return None
        self.delivered += len(parts)
        if events:
            self.oldest_ms = now_ms
        return b"[" + b",".join(parts) + b"]"

    def put_back(self, batch: bytes) -> None:
        """A batch that could not be delivered, first again (as parts)."""
        for part in reversed(_split_array(batch)):
            self._events.appendleft(part)
            self._bytes += len(part)


def _split_array(batch: bytes) -> list[bytes]:
    return [json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode() for e in json.loads(batch)]
