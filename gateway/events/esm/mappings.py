"""Create/Get/Update/Delete/ListEventSourceMappings, for the built-in
queues, validated as Lambda validates a mapping from SQS:

- the function must exist (ResourceNotFoundException), the source must be
  one of this server's queues (InvalidParameterValueException otherwise);
- BatchSize 1-10000 (default 10), and above 10 a batching window of at
  least one second; MaximumBatchingWindowInSeconds 0-300;
- FunctionResponseTypes only ReportBatchItemFailures; ScalingConfig's
  MaximumConcurrency 2-1000;
- the queue's visibility timeout must not be shorter than the function's
  timeout (a message would come back while its batch still runs);
- one mapping per queue and function (ResourceConflictException naming
  the existing one);
- settings of stream and Kafka sources (StartingPosition, ...) are refused.

Mappings are kept in queue.db beside the queues they read; each enabled
mapping has a poller (poller.py), started and stopped here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import overload

import msgspec
import trio

from ...errors import LambdaError, invalid
from ...functions.validation import function_ref
from ..async_store import AsyncStore
from ..sqs.queues import QUEUE_NAME_RE
from ..sqs.service import SqsService

DEFAULT_BATCH = 10
MAX_BATCH = 10000
MAX_WINDOW_S = 300
_NOT_FOR_SQS = (
    "StartingPosition",
    "StartingPositionTimestamp",
    "ParallelizationFactor",
    "DestinationConfig",
    "MaximumRecordAgeInSeconds",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "TumblingWindowInSeconds",
    "Topics",
    "Queues",
    "SourceAccessConfigurations",
    "SelfManagedEventSource",
    "AmazonManagedKafkaEventSourceConfig",
    "SelfManagedKafkaEventSourceConfig",
    "DocumentDBEventSourceConfig",
    "ProvisionedPollerConfig",
)
_NOT_HERE = ("FilterCriteria", "KMSKeyArn", "MetricsConfig", "LoggingConfig")
_UPDATABLE = {"FunctionName", "Enabled", "BatchSize", "MaximumBatchingWindowInSeconds", "FunctionResponseTypes", "ScalingConfig"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS event_source_mappings (
    uuid TEXT PRIMARY KEY,
    config BLOB NOT NULL
) WITHOUT ROWID
"""


class Mapping(msgspec.Struct, frozen=True):
    uuid: str
    queue: str
    function: str
    qualifier: str | None  # None: $LATEST by the unqualified ARN
    enabled: bool
    batch_size: int
    window_s: int
    report_failures: bool
    max_concurrency: int | None
    last_modified: float
    last_result: str = "No records processed"


_dec = msgspec.json.Decoder(Mapping)


@overload
def _int(body: dict, key: str, low: int, high: int, default: int) -> int: ...
@overload
def _int(body: dict, key: str, low: int, high: int, default: None) -> int | None: ...
def _int(body: dict, key: str, low: int, high: int, default: int | None) -> int | None:
    """body[key] in [low, high]; absent or null (how a JSON client leaves a
    member out), the default."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(
            f"1 validation error detected: Value '{value}' at '{key[0].lower() + key[1:]}' failed to satisfy constraint: Member must be an integer"
        )
    if value < low:
        raise invalid(
            f"1 validation error detected: Value '{value}' at '{key[0].lower() + key[1:]}' failed to satisfy constraint: Member must have value greater than or equal to {low}"
        )
    if value > high:
        raise invalid(
            f"1 validation error detected: Value '{value}' at '{key[0].lower() + key[1:]}' failed to satisfy constraint: Member must have value less than or equal to {high}"
        )
    return value


class EventSourceMappings:
    def __init__(
        self,
        store: AsyncStore,
        sqs: SqsService,
        service,
        *,
        region: str,
        account: str,
        start_poller: Callable[[Mapping], None] = lambda m: None,
        stop_poller: Callable[[str], None] = lambda uid: None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """``service``: the FunctionService. The poller callbacks are told a
        mapping to run (again, with new settings) or to stop."""
        self.store = store
        self.sqs = sqs
        self.service = service
        self.region = region
        self.account = account
        self.start_poller = start_poller
        self.stop_poller = stop_poller
        self.wall = wall
        with store.transaction() as db:
            db.execute(_SCHEMA)
            rows = db.execute("SELECT config FROM event_source_mappings").fetchall()
        self._mappings: dict[str, Mapping] = {m.uuid: m for m in (_dec.decode(r[0]) for r in rows)}
        self._lock = trio.Lock()

    def all(self) -> list[Mapping]:
        return list(self._mappings.values())

    def start_all(self) -> None:
        for m in self._mappings.values():
            if m.enabled:
                self.start_poller(m)

    # -- documents ------------------------------------------------------------------

    def arn(self, uid: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:event-source-mapping:{uid}"

    def document(self, m: Mapping, state: str | None = None) -> dict:
        doc = {
            "UUID": m.uuid,
            "BatchSize": m.batch_size,
            "MaximumBatchingWindowInSeconds": m.window_s,
            "EventSourceArn": self.sqs.arn(m.queue),
            "FunctionArn": self.service.arn(m.function, m.qualifier),
            "LastModified": m.last_modified,
            "LastProcessingResult": m.last_result,
            "State": state or ("Enabled" if m.enabled else "Disabled"),
            "StateTransitionReason": "USER_INITIATED",
            "FunctionResponseTypes": ["ReportBatchItemFailures"] if m.report_failures else [],
            "EventSourceMappingArn": self.arn(m.uuid),
        }
        if m.max_concurrency is not None:
            doc["ScalingConfig"] = {"MaximumConcurrency": m.max_concurrency}
        return doc

    # -- validation -----------------------------------------------------------------

    def _queue_name(self, arn: object) -> str:
        if not isinstance(arn, str) or not arn:
            raise invalid(
                "1 validation error detected: Value null at 'eventSourceArn' failed to satisfy constraint: Member must not be null"
            )
        parts = arn.split(":")
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs":
            raise invalid(
                f"Unrecognized event source, must be one of this server's SQS queues (arn:aws:sqs:{self.region}:{self.account}:<queue>): {arn}"
            )
        if parts[3] != self.region or parts[4] != self.account or not QUEUE_NAME_RE.fullmatch(parts[5]):
            raise invalid(f"The event source {arn} is not a queue of this server (arn:aws:sqs:{self.region}:{self.account}:<queue>).")
        return parts[5]

    def _function(self, ref: object) -> tuple[str, str | None, object]:
        if not isinstance(ref, str) or not ref:
            raise invalid("1 validation error detected: Value null at 'functionName' failed to satisfy constraint: Member must not be null")
        rec = self.service.resolve(ref)  # ResourceNotFoundException for a function that does not exist
        _name, qualifier = function_ref(ref)
        return rec.name, qualifier if qualifier not in (None, "$LATEST") else None, rec

    def _settings(self, body: dict, base: Mapping | None) -> dict:
        for key in _NOT_FOR_SQS:
            if body.get(key) is not None:
                raise invalid(f"{key} is not valid for Amazon SQS event sources.")
        for key in _NOT_HERE:
            if body.get(key) is not None:
                raise invalid(f"{key} is not supported by this server's event source mappings.")
        batch = _int(body, "BatchSize", 1, MAX_BATCH, base.batch_size if base else DEFAULT_BATCH)
        window = _int(body, "MaximumBatchingWindowInSeconds", 0, MAX_WINDOW_S, base.window_s if base else 0)
        if batch > 10 and window < 1:
            raise invalid("Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10")
        types = body.get("FunctionResponseTypes")
        if types is None:
            report = base.report_failures if base else False
        else:
            if not isinstance(types, list) or len(types) > 1 or any(t != "ReportBatchItemFailures" for t in types):
                raise invalid(
                    f"1 validation error detected: Value '{types}' at 'functionResponseTypes' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [ReportBatchItemFailures]]"
                )
            report = bool(types)
        concurrency = base.max_concurrency if base else None
        scaling = body.get("ScalingConfig")
        if scaling is not None:
            if not isinstance(scaling, dict):
                raise invalid("ScalingConfig must be an object.")
            concurrency = _int(scaling, "MaximumConcurrency", 2, 1000, None)
        enabled = body.get("Enabled", base.enabled if base else True)
        if not isinstance(enabled, bool):
            raise invalid(
                f"1 validation error detected: Value '{enabled}' at 'enabled' failed to satisfy constraint: Member must be a boolean"
            )
        return {"batch_size": batch, "window_s": window, "report_failures": report, "max_concurrency": concurrency, "enabled": enabled}

    async def _check_visibility(self, queue: str, rec) -> None:
        row = await trio.to_thread.run_sync(self.sqs.store.queue, queue)
        if row is None:
            raise invalid(f"The provided event source {self.sqs.arn(queue)} does not exist: create the queue first (CreateQueue).")
        visibility = int(self.sqs.effective(row, "VisibilityTimeout"))
        if visibility < rec.timeout:
            raise invalid(f"Queue visibility timeout: {visibility} seconds is less than Function timeout: {rec.timeout} seconds")

    async def _save(self, m: Mapping) -> None:
        blob = msgspec.json.encode(m)

        def write():
            with self.store.transaction() as db:
                db.execute(
                    "INSERT INTO event_source_mappings(uuid, config) VALUES(?, ?) ON CONFLICT(uuid) DO UPDATE SET config=excluded.config",
                    (m.uuid, blob),
                )

        await trio.to_thread.run_sync(write)
        self._mappings[m.uuid] = m

    def _get(self, uid: str) -> Mapping:
        m = self._mappings.get(uid)
        if m is None:
            raise LambdaError("ResourceNotFoundException", "The resource you requested does not exist.")
        return m

    # -- operations -------------------------------------------------------------------

    async def create(self, body: dict) -> dict:
        queue = self._queue_name(body.get("EventSourceArn"))
        function, qualifier, rec = self._function(body.get("FunctionName"))
        settings = self._settings(body, None)
        async with self._lock:
            for other in self._mappings.values():
                if other.queue == queue and other.function == function and other.qualifier == qualifier:
                    raise LambdaError(
                        "ResourceConflictException",
                        f'An event source mapping with SQS arn (" {self.sqs.arn(queue)} ") and function (" {function} ") already exists. '
                        f"Please update or delete the existing mapping with UUID {other.uuid}",
                    )
            await self._check_visibility(queue, rec)
            m = Mapping(str(uuid.uuid4()), queue, function, qualifier, last_modified=self.wall(), **settings)
            await self._save(m)
        if m.enabled:
            self.start_poller(m)
        return self.document(m, "Creating")

    def get(self, uid: str) -> dict:
        return self.document(self._get(uid))

    def list(self, function: str | None, source: str | None, marker: str | None, max_items: str | None) -> dict:
        items = sorted(self._mappings.values(), key=lambda m: (m.last_modified, m.uuid))
        if function:
            name, qualifier = function_ref(function)
            if qualifier == "$LATEST":
                qualifier = None
            items = [m for m in items if m.function == name and (qualifier is None or m.qualifier == qualifier)]
        if source:
            items = [m for m in items if self.sqs.arn(m.queue) == source]
        start = 0
        if marker:
            ids = [m.uuid for m in items]
            if marker not in ids:
                raise invalid(f"Invalid marker: {marker}")
            start = ids.index(marker) + 1
        limit = 100
        if max_items is not None:
            if not max_items.isdigit() or not 1 <= int(max_items) <= 10000:
                raise invalid(
                    f"1 validation error detected: Value '{max_items}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 10000"
                )
            limit = int(max_items)
        page = items[start : start + limit]
        doc: dict = {"EventSourceMappings": [self.document(m) for m in page]}
        if start + limit < len(items):
            doc["NextMarker"] = page[-1].uuid
        return doc

    async def update(self, uid: str, body: dict) -> dict:
        unknown = [k for k in body if k not in _UPDATABLE and body[k] is not None and k != "UUID"]
        async with self._lock:
            m = self._get(uid)
            for key in unknown:
                if key in _NOT_FOR_SQS or key in _NOT_HERE:
                    self._settings({key: body[key]}, m)  # raises with the reason
            function, qualifier, rec = (m.function, m.qualifier, None)
            if body.get("FunctionName") is not None:
                function, qualifier, rec = self._function(body["FunctionName"])
            settings = self._settings(body, m)
            if rec is None:
                rec = self.service.resolve(function, qualifier)
            await self._check_visibility(m.queue, rec)
            changed = msgspec.structs.replace(m, function=function, qualifier=qualifier, last_modified=self.wall(), **settings)
            await self._save(changed)
        self.stop_poller(uid)
        if changed.enabled:
            self.start_poller(changed)
        return self.document(changed, "Updating")

    async def delete(self, uid: str) -> dict:
        async with self._lock:
            m = self._get(uid)

            def remove():
                with self.store.transaction() as db:
                    db.execute("DELETE FROM event_source_mappings WHERE uuid=?", (uid,))

            await trio.to_thread.run_sync(remove)
            del self._mappings[uid]
        self.stop_poller(uid)
        return self.document(m, "Deleting")

    def record_result(self, uid: str, result: str) -> None:
        """What the poller last saw (LastProcessingResult), kept in memory."""
        m = self._mappings.get(uid)
        if m is not None and m.last_result != result:
            self._mappings[uid] = msgspec.structs.replace(m, last_result=result)
