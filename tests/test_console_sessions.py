"""Console sessions, CSRF tokens, the failed sign-in limiter and the
password file, on an injected clock (sans-IO)."""

from __future__ import annotations

import pytest

from lambdalet.gateway.console import forms, password
from lambdalet.gateway.console.sessions import SessionStore, SignInLimiter, csrf_ok


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_sessions_end_when_idle_past_their_lifetime_or_signed_out():
    clock = Clock()
    store = SessionStore(lifetime_s=100, idle_s=30, clock=clock)
    token, session = store.create("access key AK")
    assert store.get(token) is session and store.alive(token)
    clock.t += 29
    assert store.get(token) is session  # use keeps it alive...
    clock.t += 29
    assert store.alive(token) and store.get(token) is session
    clock.t += 29
    assert store.get(token) is session
    clock.t += 14  # ...but not past its lifetime (101 s since sign-in)
    assert store.get(token) is None and not store.alive(token)
    idle, _ = store.create("p")
    clock.t += 31
    assert not store.alive(idle) and store.get(idle) is None
    gone, _ = store.create("p")
    store.end(gone)
    assert store.get(gone) is None
    assert store.get(None) is None and store.get("x" * 500) is None


def test_the_table_is_bounded_and_tokens_are_not_kept():
    store = SessionStore(max_sessions=3)
    tokens = [store.create(f"p{i}")[0] for i in range(5)]
    assert len(store) == 3
    assert store.get(tokens[0]) is None and store.get(tokens[4]) is not None
    assert all(t.encode() not in repr(store._sessions).encode() for t in tokens)


def test_csrf_tokens_compare_exactly():
    assert csrf_ok("abc", "abc")
    assert not csrf_ok("abc", "abd") and not csrf_ok("abc", None) and not csrf_ok("abc", "") and not csrf_ok("abc", ["abc"])


def test_failed_sign_ins_drain_a_bucket_per_client_and_one_for_all():
    clock = Clock()
    limiter = SignInLimiter(per_client=3, client_refill_s=60, overall=5, overall_refill_s=10, clock=clock)
    for _ in range(3):
        assert limiter.retry_after("a") == 0
        limiter.failed("a")
    wait = limiter.retry_after("a")
    assert 0 < wait <= 60
    assert limiter.retry_after("b") == 0  # another client is not held up by a's guesses
    limiter.failed("b")
    limiter.failed("b")
    assert limiter.retry_after("c") > 0  # but the overall budget is spent
    clock.t += 60
    assert limiter.retry_after("a") == 0 and limiter.retry_after("c") == 0


def test_password_hashes_verify_and_refuse():
    stored = password.encode("correct horse battery")
    assert stored.startswith("scrypt$") and "correct" not in stored
    assert password.matches(stored, "correct horse battery")
    assert not password.matches(stored, "correct horse batterY")
    assert not password.matches("garbage", "x") and not password.matches("scrypt$1$1$1$AA==$AA==", "x")
    with pytest.raises(password.PasswordError):
        password.encode("short")


def test_sign_in_redirects_stay_inside_the_console():
    assert forms.safe_next("/console/functions/x?y=1") == "/console/functions/x?y=1"
    for bad in ("//evil.example/console", "https://evil.example", "/elsewhere", "/console\\..", "/console\r\nSet-Cookie: x", None, ""):
        assert forms.safe_next(bad) == "/console/functions"


def test_lambda_messages_find_their_field():
    assert forms.field_of("1 validation error detected: Value '9' at 'memorySize' failed", "x") == "memory"
    assert (
        forms.field_of("... Reserved keys used in this request: AWS_REGION (environment variables you have provided)", "x") == "environment"
    )
    assert forms.field_of("something else entirely", "dflt") == "dflt"
    assert forms.number(" 42 ") == 42 and forms.number("4x") == "4x" and forms.number(None) is None
