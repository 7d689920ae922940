"""Put/Get/Update/Delete/ListFunctionEventInvokeConfig(s): how a function's
asynchronous events are retried and where their records go.

Independent of HTTP: each method takes the decoded request and returns the
response document, or raises LambdaError. Configs live in queue.db beside the
events they govern, one per function and qualifier ($LATEST, a version or
an alias), as on AWS; an event obeys the config of the qualifier it was
invoked with.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable

import msgspec
import trio

from ..errors import LambdaError, invalid
from ..functions import FunctionService, constraints
from .async_store import AsyncStore
from .destinations import DEFAULT_DLQ, FunctionTarget, QueueTarget, Target, parse_target

# The services AWS delivers asynchronous records to; parse_target says which
# of them this server can reach.
_DESTINATION_SERVICES = frozenset({"lambda", "sqs", "sns", "events", "s3"})
DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_AGE_S = 21600


class EventInvokeConfig(msgspec.Struct, frozen=True):
    """What the user set; None means 'not set' (the default applies)."""

    last_modified: float
    maximum_retry_attempts: int | None = None
    maximum_event_age_s: int | None = None
    on_success: str | None = None
    on_failure: str | None = None


class Effective(msgspec.Struct, frozen=True):
    """What the dispatcher obeys."""

    max_retries: int
    max_age_s: int
    on_success: Target | None
    on_failure: Target


class EventConfigs:
    def __init__(self, store: AsyncStore, service: FunctionService, wall: Callable[[], float] = time.time) -> None:
        self.store = store
        self.service = service
        self.wall = wall
        dec = msgspec.json.Decoder(EventInvokeConfig)
        self._configs: dict[str, EventInvokeConfig] = {name: dec.decode(blob) for name, blob in store.load_configs().items()}
        self._db = trio.CapacityLimiter(1)

    # -- for the dispatcher ---------------------------------------------------

    def effective(self, function: str, qualifier: str = "$LATEST") -> Effective:
        cfg = self._configs.get(_key(function, qualifier))
        if cfg is None:
            return Effective(DEFAULT_MAX_RETRIES, DEFAULT_MAX_AGE_S, None, QueueTarget(DEFAULT_DLQ))
        return Effective(
            DEFAULT_MAX_RETRIES if cfg.maximum_retry_attempts is None else cfg.maximum_retry_attempts,
            DEFAULT_MAX_AGE_S if cfg.maximum_event_age_s is None else cfg.maximum_event_age_s,
            parse_target(cfg.on_success, "onSuccess") if cfg.on_success else None,
            # No OnFailure: the event is not discarded, as AWS would, but kept
            # in the built-in dead-letter queue, where a person can see it.
            parse_target(cfg.on_failure, "onFailure") if cfg.on_failure else QueueTarget(DEFAULT_DLQ),
        )

    # -- operations -----------------------------------------------------------

    async def put(self, ref: str, qualifier: str | None, body: dict) -> dict:
        constraints.check_input("PutFunctionEventInvokeConfig", body, FunctionName=ref, Qualifier=qualifier)
        key = self._existing(ref, qualifier)
        if not any(k in body for k in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")):
            raise invalid("You must specify at least one of error handling or destination setting.")
        cfg = self._from_body(key, body, EventInvokeConfig(last_modified=self.wall()), replace=True)
        await self._store(key, cfg)
        return self._document(key, cfg)

    async def update(self, ref: str, qualifier: str | None, body: dict) -> dict:
        constraints.check_input("UpdateFunctionEventInvokeConfig", body, FunctionName=ref, Qualifier=qualifier)
        key = self._existing(ref, qualifier)
        current = self._configs.get(key)
        if current is None:
            raise self._missing(key)
        cfg = self._from_body(key, body, current, replace=False)
        await self._store(key, cfg)
        return self._document(key, cfg)

    def get(self, ref: str, qualifier: str | None) -> dict:
        # AWS answers for the config alone, whether or not the function
        # (or its version or alias) exists.
        key = self._named(ref, qualifier)
        cfg = self._configs.get(key)
        if cfg is None:
            raise self._missing(key)
        return self._document(key, cfg)

    async def delete(self, ref: str, qualifier: str | None) -> None:
        key = self._named(ref, qualifier)
        if key not in self._configs:
            raise self._missing(key)
        async with self._db:
            await trio.to_thread.run_sync(self.store.delete_config, key)
        self._configs.pop(key, None)

    def list(self, ref: str, marker: str | None, max_items: str | None) -> dict:
        name = self.service.latest(ref, missing=lambda _n: _no_function()).name
        limit = int(max_items) if max_items is not None else 50  # 1-50, by the model
        keys = sorted(k for k in self._configs if k == name or k.startswith(name + ":"))
        items = [self._document(k, self._configs[k]) for k in keys]
        start = 0
        if marker:
            try:
                start = int(base64.urlsafe_b64decode(marker.encode()).decode())
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise invalid("Invalid marker.") from None
        page = items[start : start + limit]
        out: dict = {"FunctionEventInvokeConfigs": page}
        if start + limit < len(items):
            out["NextMarker"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
        return out

    async def forget(self, name: str) -> None:
        """The function is gone: so are its configs, for every qualifier."""
        keys = [k for k in self._configs if k == name or k.startswith(name + ":")]
        async with self._db:
            for key in keys:
                await trio.to_thread.run_sync(self.store.delete_config, key)
        for key in keys:
            self._configs.pop(key, None)

    # -- helpers --------------------------------------------------------------

    def _named(self, ref: str, qualifier: str | None) -> str:
        """The config's key: the function, and the qualifier as given."""
        name, given = self.service.qualified(ref, qualifier)
        return _key(name, given or "$LATEST")

    def _existing(self, ref: str, qualifier: str | None) -> str:
        """The key, for a function (and version or alias) that exists."""
        key = self._named(ref, qualifier)
        name, _, given = key.partition(":")
        try:
            self.service.resolve(name, given or None)
        except LambdaError as exc:
            if exc.error_type == "ResourceNotFoundException":
                raise _no_function() from None
            raise
        return key

    def _missing(self, key: str) -> LambdaError:
        return LambdaError("ResourceNotFoundException", f"The function {self._arn(key)} doesn't have an EventInvokeConfig")

    def _arn(self, key: str) -> str:
        name, _, qualifier = key.partition(":")
        return self.service.arn(name, qualifier or "$LATEST")

    async def _store(self, name: str, cfg: EventInvokeConfig) -> None:
        async with self._db:
            await trio.to_thread.run_sync(self.store.put_config, name, msgspec.json.encode(cfg))
        self._configs[name] = cfg

    def _from_body(self, key: str, body: dict, base: EventInvokeConfig, *, replace: bool) -> EventInvokeConfig:
        """Put replaces every field (an omitted one returns to its default);
        Update changes only the fields it names. Ranges and the ARNs'
        pattern were checked against the model."""
        changes: dict = {"last_modified": self.wall()}
        if replace:
            changes.update(maximum_retry_attempts=None, maximum_event_age_s=None, on_success=None, on_failure=None)
        if "MaximumRetryAttempts" in body:
            changes["maximum_retry_attempts"] = body["MaximumRetryAttempts"]
        if "MaximumEventAgeInSeconds" in body:
            changes["maximum_event_age_s"] = body["MaximumEventAgeInSeconds"]
        if "DestinationConfig" in body:
            dc = body["DestinationConfig"] or {}
            for part, attr in (("OnSuccess", "on_success"), ("OnFailure", "on_failure")):
                if part not in dc:
                    continue
                arn = (dc[part] or {}).get("Destination")
                if arn:
                    self._check_destination(key, arn, dc)
                changes[attr] = arn or None
        return msgspec.structs.replace(base, **changes)

    def _check_destination(self, key: str, arn: str, config: dict) -> None:
        """AWS's semantic checks of a destination, in its words, and what
        this server can deliver to."""
        service = arn.split(":")[2] if arn.count(":") >= 2 else ""
        if service not in _DESTINATION_SERVICES:
            shown = constraints.java_text(config, "DestinationConfig")
            raise invalid(f"The provided destination config {shown} is invalid.")
        target = parse_target(arn, "destination")
        if isinstance(target, FunctionTarget):
            if target.name == key.partition(":")[0]:
                raise invalid("You can't specify the function as a destination for itself.")
            try:
                self.service.resolve(arn)
            except LambdaError as exc:
                if exc.error_type == "ResourceNotFoundException":
                    raise invalid(f"The destination ARN {arn} is invalid.") from None
                raise

    def _document(self, key: str, cfg: EventInvokeConfig) -> dict:
        doc: dict = {"LastModified": cfg.last_modified, "FunctionArn": self._arn(key)}
        if cfg.maximum_retry_attempts is not None:
            doc["MaximumRetryAttempts"] = cfg.maximum_retry_attempts
        if cfg.maximum_event_age_s is not None:
            doc["MaximumEventAgeInSeconds"] = cfg.maximum_event_age_s
        doc["DestinationConfig"] = {
            "OnSuccess": {"Destination": cfg.on_success} if cfg.on_success else {},
            "OnFailure": {"Destination": cfg.on_failure} if cfg.on_failure else {},
        }
        return doc


def _no_function() -> LambdaError:
    return LambdaError("ResourceNotFoundException", "The function doesn't exist.")


def _key(function: str, qualifier: str) -> str:
    # $LATEST keeps the bare name, so configs stored before versions existed
    # still apply.
    return function if qualifier == "$LATEST" else f"{function}:{qualifier}"
