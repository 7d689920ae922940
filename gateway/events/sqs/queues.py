"""SQS's operations on the queues themselves: create (idempotent for the
same attributes, QueueNameExists otherwise), look up, list, delete, purge,
attributes (with their ranges and the RedrivePolicy's rules), tags and
dead-letter sources. A mixin of SqsService (service.py), which provides
``store``, ``wall``, ``arn``, ``url``, ``name_from_url``, ``name_from_arn``,
``notify`` and ``_run``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from .errors import SqsError, invalid, no_queue
from .message_checks import int_param
from .store import QueueRow, SqsStore

QUEUE_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,80}")
DEFAULTS = {
    "DelaySeconds": "0",
    "MaximumMessageSize": "1048576",
    "MessageRetentionPeriod": "345600",
    "ReceiveMessageWaitTimeSeconds": "0",
    "VisibilityTimeout": "30",
}
# name -> (low, high)
_RANGES = {
    "DelaySeconds": (0, 900),
    "MaximumMessageSize": (1024, 1048576),
    "MessageRetentionPeriod": (60, 1209600),
    "ReceiveMessageWaitTimeSeconds": (0, 20),
    "VisibilityTimeout": (0, 43200),
}
SETTABLE = set(_RANGES) | {
    "Policy",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "SqsManagedSseEnabled",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
}
_COMPUTED = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
)
_FIFO = {"FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"}
READABLE = set(_COMPUTED) | SETTABLE | _FIFO
PURGE_INTERVAL_S = 60
RECREATE_AFTER_DELETE_S = 60


class QueueOperations:
    """The queue operations of SqsService (service.py), which it is mixed
    into; what they use of it is declared here."""

    store: SqsStore
    wall: Callable[[], float]
    _purged: dict[str, float]
    _deleted: dict[str, float]

    if TYPE_CHECKING:

        async def _run(self, fn: Callable[..., Any], *args: Any) -> Any: ...
        def arn(self, name: str) -> str: ...
        def url(self, name: str, host: str) -> str: ...
        def notify(self, name: str) -> None: ...
        @staticmethod
        def name_from_url(url: object) -> str: ...
        @staticmethod
        def name_from_arn(arn: str) -> str | None: ...

    # -- queues ---------------------------------------------------------------------

    async def _queue(self, name: str) -> QueueRow:
        row = await self._run(self.store.queue, name)
        if row is None:
            raise no_queue()
        return row

    def _check_attributes(self, attributes: object, *, creating: bool) -> dict[str, str]:
        if attributes is None:
            return {}
        if not isinstance(attributes, dict):
            raise invalid("Attributes must be a map of names to values.")
        out: dict[str, str] = {}
        for name, value in attributes.items():
            if name in _FIFO:
                if str(value).lower() == "false" and name == "FifoQueue":
                    continue
                raise SqsError(
                    "UnsupportedOperation", "FIFO queues are not supported by this server's built-in queues; they are standard queues."
                )
            if name not in SETTABLE:
                raise SqsError("InvalidAttributeName", f"Unknown Attribute {name}.")
            value = str(value)
            if name in _RANGES:
                low, high = _RANGES[name]
                if not (value.isdigit() and low <= int(value) <= high):
                    raise SqsError("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
            elif name == "RedrivePolicy" and value:
                value = self._redrive_policy(value)
            elif name in ("Policy", "RedriveAllowPolicy") and value:
                try:
                    json.loads(value)
                except ValueError:
                    raise SqsError("InvalidAttributeValue", f"Invalid value for the parameter {name}.") from None
            out[name] = value
        return out

    def _redrive_policy(self, value: str) -> str:
        try:
            doc = json.loads(value)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or set(doc) - {"deadLetterTargetArn", "maxReceiveCount"}:
            raise SqsError(
                "InvalidAttributeValue",
                f"Value {value} for parameter RedrivePolicy is invalid. Reason: Redrive policy is not a valid JSON map.",
            )
        target = doc.get("deadLetterTargetArn")
        count = doc.get("maxReceiveCount")
        if not isinstance(target, str) or self.name_from_arn(target) is None:
            raise SqsError(
                "InvalidAttributeValue",
                f"Value {value} for parameter RedrivePolicy is invalid. Reason: Invalid value for deadLetterTargetArn.",
            )
        try:
            n = int(count)  # type: ignore[arg-type]  # whatever the JSON held: refused below
        except (TypeError, ValueError):
            n = 0
        if not 1 <= n <= 1000:
            raise SqsError(
                "InvalidAttributeValue",
                f"Value {value} for parameter RedrivePolicy is invalid. Reason: Invalid value for maxReceiveCount: {count}, valid values are from 1 to 1000 both inclusive.",
            )
        return json.dumps({"deadLetterTargetArn": target, "maxReceiveCount": n}, separators=(",", ":"))

    async def _check_redrive_target(self, name: str, attributes: dict[str, str]) -> None:
        value = attributes.get("RedrivePolicy")
        if not value:
            return
        target = self.name_from_arn(json.loads(value)["deadLetterTargetArn"])
        if target == name:
            raise SqsError(
                "InvalidAttributeValue",
                f"Value {value} for parameter RedrivePolicy is invalid. Reason: The dead-letter queue can not be the source queue.",
            )
        if await self._run(self.store.queue, target) is None:
            raise SqsError(
                "InvalidAttributeValue", f"Value {value} for parameter RedrivePolicy is invalid. Reason: Dead letter target does not exist."
            )

    async def create_queue(self, req: dict, host: str) -> dict:
        name = req.get("QueueName")
        if not isinstance(name, str) or not name:
            raise SqsError("MissingParameter", "The request must contain the parameter QueueName.")
        if name.endswith(".fifo"):
            raise SqsError(
                "UnsupportedOperation", "FIFO queues are not supported by this server's built-in queues; they are standard queues."
            )
        if not QUEUE_NAME_RE.fullmatch(name):
            raise invalid("Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")
        attributes = self._check_attributes(req.get("Attributes"), creating=True)
        tags = req.get("tags") or req.get("Tags") or {}
        if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise invalid("Tags must be a map of strings.")
        deleted = self._deleted.get(name)
        if deleted is not None and trio.current_time() - deleted < RECREATE_AFTER_DELETE_S:
            raise SqsError(
                "QueueDeletedRecently", "You must wait 60 seconds after deleting a queue before you can create another with the same name."
            )
        await self._check_redrive_target(name, attributes)
        existing = await self._run(self.store.create_queue, name, attributes, tags, self.wall())
        if existing is not None:
            for key in set(attributes) | set(existing.attributes):
                if attributes.get(key, DEFAULTS.get(key, "")) != existing.attributes.get(key, DEFAULTS.get(key, "")):
                    raise SqsError(
                        "QueueNameExists", f"A queue already exists with the same name and a different value for attribute {key}"
                    )
        return {"QueueUrl": self.url(name, host)}

    async def get_queue_url(self, req: dict, host: str) -> dict:
        name = req.get("QueueName")
        if not isinstance(name, str) or not name:
            raise SqsError("MissingParameter", "The request must contain the parameter QueueName.")
        await self._queue(name)
        return {"QueueUrl": self.url(name, host)}

    async def list_queues(self, req: dict, host: str) -> dict:
        prefix = req.get("QueueNamePrefix") or ""
        limit = req.get("MaxResults")
        limit_n = 1000 if limit is None else int_param(limit, "MaxResults", 1, 1000)
        after = ""
        token = req.get("NextToken")
        if token is not None:
            try:
                after = base64.urlsafe_b64decode(str(token).encode()).decode()
            except (ValueError, binascii.Error, UnicodeError):
                raise invalid("Invalid NextToken value.") from None
        names = await self._run(self.store.list_queues, prefix, after, limit_n + 1)
        out: dict = {}
        if names[:limit_n]:
            out["QueueUrls"] = [self.url(n, host) for n in names[:limit_n]]
        if limit is not None and len(names) > limit_n:
            out["NextToken"] = base64.urlsafe_b64encode(names[limit_n - 1].encode()).decode()
        return out

    async def delete_queue(self, req: dict) -> dict:
        name = self.name_from_url(req.get("QueueUrl"))
        if not await self._run(self.store.delete_queue, name):
            raise no_queue()
        self._deleted[name] = trio.current_time()
        self.notify(name)
        return {}

    async def purge_queue(self, req: dict) -> dict:
        name = self.name_from_url(req.get("QueueUrl"))
        await self._queue(name)
        last = self._purged.get(name)
        if last is not None and trio.current_time() - last < PURGE_INTERVAL_S:
            raise SqsError("PurgeQueueInProgress", f"Only one PurgeQueue operation on {name} is allowed every 60 seconds.")
        self._purged[name] = trio.current_time()
        await self._run(self.store.purge, name)
        return {}

    def effective(self, row: QueueRow, key: str) -> str:
        return row.attributes.get(key, DEFAULTS.get(key, ""))

    async def get_queue_attributes(self, req: dict) -> dict:
        name = self.name_from_url(req.get("QueueUrl"))
        wanted = req.get("AttributeNames") or []
        if not isinstance(wanted, list):
            raise invalid("AttributeNames must be a list.")
        for w in wanted:
            if w != "All" and w not in READABLE:
                raise SqsError("InvalidAttributeName", f"Unknown Attribute {w}.")
        row = await self._queue(name)
        if not wanted:
            return {}
        names = READABLE if "All" in wanted else set(wanted)
        visible, in_flight, delayed = await self._run(self.store.counts, name, self.wall())
        values: dict[str, str] = {
            "ApproximateNumberOfMessages": str(visible),
            "ApproximateNumberOfMessagesNotVisible": str(in_flight),
            "ApproximateNumberOfMessagesDelayed": str(delayed),
            "CreatedTimestamp": str(int(row.created_s)),
            "LastModifiedTimestamp": str(int(row.modified_s)),
            "QueueArn": self.arn(name),
            "SqsManagedSseEnabled": "false",
        }
        for key in DEFAULTS:
            values[key] = self.effective(row, key)
        for key in ("Policy", "RedrivePolicy", "RedriveAllowPolicy", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds"):
            if row.attributes.get(key):
                values[key] = row.attributes[key]
        if "SqsManagedSseEnabled" in row.attributes:
            values["SqsManagedSseEnabled"] = row.attributes["SqsManagedSseEnabled"]
        return {"Attributes": {k: v for k, v in values.items() if k in names}}

    async def set_queue_attributes(self, req: dict) -> dict:
        name = self.name_from_url(req.get("QueueUrl"))
        changes = self._check_attributes(req.get("Attributes"), creating=False)
        row = await self._queue(name)
        await self._check_redrive_target(name, changes)
        merged = dict(row.attributes)
        for key, value in changes.items():
            if value == "" and key in ("RedrivePolicy", "Policy", "RedriveAllowPolicy"):
                merged.pop(key, None)
            else:
                merged[key] = value
        await self._run(self.store.set_attributes, name, merged, self.wall())
        return {}

    async def list_dead_letter_source_queues(self, req: dict, host: str) -> dict:
        name = self.name_from_url(req.get("QueueUrl"))
        await self._queue(name)
        arn = self.arn(name)
        sources = []
        for row in await self._run(self.store.all_queues):
            policy = row.attributes.get("RedrivePolicy")
            if policy and json.loads(policy).get("deadLetterTargetArn") == arn:
                sources.append(self.url(row.name, host))
        return {"queueUrls": sources}

    async def tag_queue(self, req: dict) -> dict:
        name = self.name_from_url(req.get("QueueUrl"))
        row = await self._queue(name)
        tags = req.get("Tags")
        if not isinstance(tags, dict) or not tags:
            raise invalid("Tags must be a non-empty map of strings.")
        await self._run(self.store.set_tags, name, {**row.tags, **{str(k): str(v) for k, v in tags.items()}})
        return {}

    async def untag_queue(self, req: dict) -> dict:
        name = self.name_from_url(req.get("QueueUrl"))
        row = await self._queue(name)
        keys = req.get("TagKeys") or []
        await self._run(self.store.set_tags, name, {k: v for k, v in row.tags.items() if k not in keys})
        return {}

    async def list_queue_tags(self, req: dict) -> dict:
        row = await self._queue(self.name_from_url(req.get("QueueUrl")))
        return {"Tags": row.tags} if row.tags else {}
