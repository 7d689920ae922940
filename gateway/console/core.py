"""The console as the server builds it: the service objects it works with,
its sessions, templates and assets, and the surfaces for each port."""

from __future__ import annotations

import datetime
import pathlib
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING

import jinja2
import msgspec

from ..api.streaming import ChunkedBody
from ..api.usage_api import log_group_for
from ..http.http1 import Head
from . import live_tail
from .assets import Assets
from .policy import ConsolePolicy
from .sessions import COOKIE, SessionStore, SignInLimiter
from .surface import ConsoleSurface, cookie

if TYPE_CHECKING:  # msgspec reads these annotations only to encode or decode, which Services never is
    from ..api.invoke import Invoker
    from ..events.async_queue import AsyncQueue
    from ..events.event_config import EventConfigs
    from ..events.scheduler import Scheduler
    from ..functions.function_settings import FunctionSettings
    from ..functions.permissions import Permissions
    from ..functions.service import FunctionService
    from ..functions.versions import Versions
    from ..metering.calls import CallJournal
    from .monitor import Monitor
    from .test_events import TestEvents

TEMPLATES = pathlib.Path(__file__).parent / "templates"


def _when(ms: int | float | None) -> str:
    if ms is None:
        return ""
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _number(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 1000 else f"{value:,.0f}"
    return f"{value:,}"


class Services(msgspec.Struct, kw_only=True):
    """The server's own objects the console works with (never the HTTP API)."""

    service: FunctionService
    settings: FunctionSettings
    versions: Versions
    event_configs: EventConfigs
    async_queue: AsyncQueue
    scheduler: Scheduler
    calls: CallJournal  # the ledger and the log store behind it
    invoker: Invoker  # its pool runs test calls
    monitor: Monitor
    test_events: TestEvents
    permissions: Permissions | None = None  # a public URL's statements
    granularity_ms: int = 1
    dead_letter_queue: str = "lambdalet-dlq"


class Console:
    def __init__(
        self,
        services: Services,
        *,
        app,
        server_addr: tuple[str, int],
        policy: ConsolePolicy,
        data_dir: pathlib.Path,
        keys: Mapping[str, str],
        sessions: SessionStore | None = None,
        limiter: SignInLimiter | None = None,
    ) -> None:
        self.services = services
        self.app = app
        self.server_addr = server_addr
        self.policy = policy
        self.data_dir = data_dir
        self.keys = keys
        self.sessions = sessions or SessionStore()
        self.limiter = limiter or SignInLimiter()
        self.assets = Assets()
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals["asset"] = self.assets.url
        self.templates.filters["when"] = _when
        self.templates.filters["number"] = _number
        self.templates.filters["zip_pairs"] = lambda keys, values: list(zip(keys, values))
        self.tails = 0

    def render(self, name: str, **context) -> str:
        for key, default in (("session", None), ("csrf", ""), ("tab", ""), ("notice", None), ("title", "")):
            context.setdefault(key, default)
        return self.templates.get_template(name).render(**context)

    def surface(self, *, secure: bool) -> ConsoleSurface:
        return ConsoleSurface(self, secure=secure)

    def forget(self, name: str) -> None:
        """A function is gone: so are its saved test events."""
        self.services.test_events.forget(name)

    def live_tail(self, name: str, head: Head, session) -> tuple[int, list[tuple[str, str]], object]:
        if self.tails >= live_tail.MAX_STREAMS:
            return (
                429,
                [("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "5"), ("Cache-Control", "no-store")],
                b"Too many live tails are open.",
            )
        query = urllib.parse.parse_qs(head.query)
        contains = (query.get("filter") or [""])[0][:256] or None
        last = head.header("last-event-id")
        after_id = int(last) if last is not None and last.isdigit() and len(last) < 19 else None
        token = cookie(head, COOKIE)
        store = self.services.calls.logstore
        group = log_group_for(self.services.service, name)
        source = live_tail.stream(store, group, after_id=after_id, contains=contains, alive=lambda: self.sessions.alive(token))
        self.tails += 1

        def closed() -> None:
            self.tails -= 1

        headers = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")]
        return 200, headers, _TailBody(source, closed)


class _TailBody(ChunkedBody):
    """The live tail's body: sent chunked as events come; the count of open
    tails goes down once the listener is done with it, sent or not."""

    def __init__(self, pieces, on_close) -> None:
        super().__init__(pieces)
        self._on_close = on_close

    def close(self) -> None:
        super().close()
        if self._on_close is not None:
            self._on_close, on_close = None, self._on_close
            on_close()
