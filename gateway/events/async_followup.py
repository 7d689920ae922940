"""What follows a finished async event: its destination record (AWS's
shape, destinations.py) goes to the configured destination, as a new event
for a function or a message in a built-in queue. A record whose function
is gone, or that would go round a loop of destinations too often, is kept
in the dead-letter queue rather than lost."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import msgspec

from ..errors import LambdaError
from ..functions.model import FunctionRecord
from ..functions.service import FunctionService
from . import destinations
from .async_pending import PendingEvent
from .async_store import NewEvent, NewMessage

# Records that trigger records (A's destination is B, B's is A) stop after
# this many hops and go to the dead-letter queue, as AWS's recursive-loop
# detection stops a chain after about 16 invocations.
MAX_CHAIN = 16


def destination_record(service: FunctionService, target: destinations.FunctionTarget) -> FunctionRecord | None:
    if target.qualifier == "$LATEST":
        return service.registry.get(target.name)
    try:
        return service.resolve(target.name, target.qualifier)
    except LambdaError:
        return None


def loops_allowed(service: FunctionService, function: str) -> bool:
    """PutFunctionRecursionConfig: Allow lets a looping chain of
    destinations go on calling this function."""
    latest = service.registry.get(function)
    return latest is not None and latest.recursive_loop == "Allow"


def route(
    service: FunctionService,
    target: destinations.FunctionTarget | destinations.QueueTarget,
    body: bytes,
    payload: bytes,
    *,
    function: str,
    qualifier: str,
    chain: int,
    wall: Callable[[], float],
) -> tuple[NewEvent | None, NewMessage | None]:
    """The record ``body`` of an event of ``function`` (its request
    ``payload``, ``chain`` hops from the first call) as the next event or
    the next queued message, exactly one of them."""
    function_target = target if isinstance(target, destinations.FunctionTarget) else None
    dest = destination_record(service, function_target) if function_target is not None else None
    if function_target is not None and dest is not None and (chain < MAX_CHAIN or loops_allowed(service, dest.name)):
        return NewEvent(str(uuid.uuid4()), dest.name, body, wall(), chain + 1, function_target.qualifier, dest.version), None
    # A queue, a destination function that no longer exists, or
    # a loop of destinations: the record is kept rather than lost.
    queue = target.name if isinstance(target, destinations.QueueTarget) else destinations.DEFAULT_DLQ
    return None, NewMessage(str(uuid.uuid4()), queue, function, body, payload, wall(), qualifier)


def follow(
    service: FunctionService,
    target: destinations.FunctionTarget | destinations.QueueTarget,
    event_id: str,
    p: PendingEvent,
    condition: str,
    payload: bytes,
    *,
    status_code: int | None,
    function_error: str | None,
    wall: Callable[[], float],
) -> tuple[NewEvent | None, NewMessage | None]:
    """The destination record of a finished event (``condition``: Success,
    RetriesExhausted or EventAgeExceeded; ``payload``: its request), routed
    to ``target``. status_code and function_error: what to report when it
    is not what its last attempt answered."""
    last = p.last
    if status_code is None:
        # Never ran (only throttled): report the throttle.
        status_code = 200 if last is not None else 429
    if last is not None and function_error is None:
        function_error = last.function_error
    body = msgspec.json.encode(
        destinations.record(
            wall_s=wall(),
            request_id=event_id,
            function_arn=service.arn(p.function, p.qualifier),
            executed_version=p.version,
            condition=condition,
            invoke_count=p.attempts,
            request_payload=payload,
            status_code=status_code,
            function_error=function_error,
            response_payload=last.payload if last is not None else None,
        )
    )
    return route(service, target, body, payload, function=p.function, qualifier=p.qualifier, chain=p.chain, wall=wall)
