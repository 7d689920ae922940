"""What the async queue keeps in memory of each event between its
attempts (PendingEvent), what it reports about itself (QueueStatistics),
and how long its retries wait. Pure: async_queue.py does the waiting.

Retries follow Lambda's rules (invocation-async-error-handling):
- a function error (raised, timed out, out of memory) is retried
  MaximumRetryAttempts times (default 2), waiting one base delay before the
  first retry and two before the second (AWS: one minute, then two);
- a throttle or a platform error puts the event back with a delay that grows
  from one second to five minutes (scaled with the base delay), until the
  event is older than MaximumEventAgeInSeconds. A throttle is not an
  attempt, so reserved concurrency 0 holds events queued instead of failing
  them.
"""

from __future__ import annotations

import msgspec

from ..execution.pool import CallOutcome
from .async_store import NewEvent

AWS_RETRY_DELAY_S = 60.0
# AWS: throttled events wait from 1 s, doubling, up to 5 min. Both scale with
# the base delay so that `--retry-delay-s` shortens every wait alike.
_THROTTLE_FIRST = 1.0 / AWS_RETRY_DELAY_S
_THROTTLE_CAP = 300.0 / AWS_RETRY_DELAY_S


class QueueStatistics(msgspec.Struct, frozen=True):
    depth: int  # events accepted and not yet finished
    oldest_age_s: float  # age of the oldest of them, 0 when empty
    in_flight: int
    retries: int  # function-error retries scheduled, since the data dir was made
    throttles: int  # throttled or platform-failed attempts, since this server started
    succeeded: int
    failed: int  # events whose retries ran out or whose age exceeded the maximum
    dead_letters: int  # records waiting in the built-in queues


class PendingEvent:
    __slots__ = ("function", "qualifier", "version", "enqueued_s", "attempts", "throttles", "last", "chain", "turn", "throttled", "payload")

    def __init__(self, event: NewEvent, attempts: int) -> None:
        self.function = event.function
        self.qualifier = event.qualifier
        self.version = event.version
        self.enqueued_s = event.enqueued_s
        self.chain = event.chain
        self.turn = 0  # only the newest heap entry for an event may dispatch it
        self.throttled = False  # waiting out a throttle backoff
        self.attempts = attempts
        self.throttles = 0
        self.last: CallOutcome | None = None
        # The payload, kept from its commit for the first attempt: reading it
        # back would queue behind whatever fsync the store is doing then.
        self.payload: bytes | None = None


# Payloads kept in memory for their first attempt: small ones only, and
# no more than this in all (events waiting out a throttle keep theirs).
KEEP_PAYLOAD_MAX = 64 * 1024
KEEP_PAYLOADS_TOTAL = 16 * 1024 * 1024


def retry_wait_s(attempts: int, base_s: float) -> float:
    """The wait before retrying a function error: one base delay before
    the first retry, two before the second."""
    return base_s * attempts


def throttle_wait_s(throttles: int, base_s: float) -> float:
    """The wait after the n-th throttle (n >= 1): 1 s, 2 s, 4 s, ... up to
    5 min at the default base delay."""
    return min(_THROTTLE_CAP * base_s, _THROTTLE_FIRST * base_s * 2 ** min(throttles - 1, 30))
