"""Console sessions, CSRF tokens and the limit on failed sign-ins. Sans-IO:
a clock goes in, decisions come out.

A session is a random token in a cookie (HttpOnly, SameSite=Strict, Secure
under TLS, Path=/console); the server keeps only its SHA-256, so a memory
dump of the table cannot be replayed as a cookie. Sessions live in memory:
a restart signs everyone out. Each session carries its own CSRF token,
which every form and every change must send back.

Failed sign-ins drain two token buckets, one per client address and one
for everyone; an empty bucket refuses even to check a guess until it
refills. Successful sign-ins cost nothing.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

import msgspec

COOKIE = "lambdalet_console"
SIGNIN_COOKIE = "lambdalet_console_signin"  # the sign-in form's own CSRF token, before any session
LIFETIME_S = 12 * 3600
IDLE_S = 3600
MAX_SESSIONS = 256


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class Session(msgspec.Struct, kw_only=True):
    principal: str  # what signed in: "access key AKID" or "console password"
    csrf: str
    created: float
    seen: float


class SessionStore:
    def __init__(
        self,
        *,
        lifetime_s: float = LIFETIME_S,
        idle_s: float = IDLE_S,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime_s = lifetime_s
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self.clock = clock
        self._sessions: collections.OrderedDict[bytes, Session] = collections.OrderedDict()

    def create(self, principal: str) -> tuple[str, Session]:
        """A new session and the cookie value that names it."""
        now = self.clock()
        self._expire(now)
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)  # the oldest sign-in makes room
        token = secrets.token_urlsafe(32)
        session = Session(principal=principal, csrf=secrets.token_urlsafe(32), created=now, seen=now)
        self._sessions[_digest(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session a cookie names, or None (unknown, idle too long,
        or past its lifetime)."""
        if not token or len(token) > 128:
            return None
        key = _digest(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self.clock()
        if now - session.created >= self.lifetime_s or now - session.seen >= self.idle_s:
            del self._sessions[key]
            return None
        session.seen = now
        return session

    def alive(self, token: str | None) -> bool:
        """Whether the session still stands, without counting this as use
        (a live tail left open keeps no session alive past its idle time)."""
        session = self._sessions.get(_digest(token)) if token and len(token) <= 128 else None
        if session is None:
            return False
        now = self.clock()
        return now - session.created < self.lifetime_s and now - session.seen < self.idle_s

    def end(self, token: str | None) -> None:
        if token:
            self._sessions.pop(_digest(token), None)

    def end_all(self) -> None:
        self._sessions.clear()

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if now - s.created >= self.lifetime_s or now - s.seen >= self.idle_s]:
            del self._sessions[key]

    def __len__(self) -> int:
        return len(self._sessions)


def csrf_ok(expected: str, presented: object) -> bool:
    return isinstance(presented, str) and hmac.compare_digest(expected.encode(), presented.encode("utf-8", "surrogateescape"))


class _Bucket:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class SignInLimiter:
    """Failed sign-ins: ``per_client`` at once, then one per
    ``client_refill_s``; ``overall`` at once for all clients together, then
    one per ``overall_refill_s``."""

    def __init__(
        self,
        *,
        per_client: int = 5,
        client_refill_s: float = 60.0,
        overall: int = 50,
        overall_refill_s: float = 2.0,
        max_clients: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_client = per_client
        self.client_refill_s = client_refill_s
        self.overall = overall
        self.overall_refill_s = overall_refill_s
        self.max_clients = max_clients
        self.clock = clock
        self._clients: collections.OrderedDict[str, _Bucket] = collections.OrderedDict()
        self._all = _Bucket(overall, clock())

    @staticmethod
    def _refill(bucket: _Bucket, capacity: int, every_s: float, now: float) -> None:
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) / every_s)
        bucket.at = now

    def retry_after(self, client: str) -> float:
        """0 when this client may try now; otherwise seconds until it may."""
        now = self.clock()
        self._refill(self._all, self.overall, self.overall_refill_s, now)
        wait = 0.0
        if self._all.tokens < 1:
            wait = (1 - self._all.tokens) * self.overall_refill_s
        bucket = self._clients.get(client)
        if bucket is not None:
            self._refill(bucket, self.per_client, self.client_refill_s, now)
            if bucket.tokens < 1:
                wait = max(wait, (1 - bucket.tokens) * self.client_refill_s)
        return wait

    def failed(self, client: str) -> None:
        now = self.clock()
        bucket = self._clients.pop(client, None)
        if bucket is None:
            while len(self._clients) >= self.max_clients:
                self._clients.popitem(last=False)
            bucket = _Bucket(self.per_client, now)
        self._refill(bucket, self.per_client, self.client_refill_s, now)
        bucket.tokens -= 1
        self._clients[client] = bucket
        self._refill(self._all, self.overall, self.overall_refill_s, now)
        self._all.tokens -= 1
