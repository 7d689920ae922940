"""Where /console meets the router: the console as one more surface on the
port (api/services.py), beside S3 and SQS.

Every console request passes here first, and this is the one place its
access is decided: whether the console is served on this port at all (and
if not, why), the session cookie (a signed-out client gets the sign-in page
and nothing else, before its body is read), and, for a change, that it
comes from the console's own pages (Origin and Sec-Fetch-Site; the CSRF
token is checked by pages.py, which parses the form). Pages are answered
by the control plane's quart-trio app through the in-process ASGI bridge,
with the session handed over in the scope's state; the live log tail is
answered here, as a stream the bridge could not carry.

Every answer carries the security headers: a Content-Security-Policy that
allows no inline script or style, no framing, no sniffing, no referrer
leaving the console, and no caching of pages.
"""

from __future__ import annotations

import re
import urllib.parse

from ..http.asgi import call_asgi
from ..http.http1 import Head
from .assets import PREFIX as STATIC_PREFIX
from .sessions import COOKIE

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
]
SIGN_IN = "/console/sign-in"
PUBLIC = frozenset({SIGN_IN})
SIGN_IN_BODY_MAX = 16 * 1024
# A 50 MB zip (Lambda's direct upload limit) in a multipart form, with room.
UPLOAD_MAX = 52 * 1024 * 1024
FORM_BODY_MAX = 8 * 1024 * 1024  # a 6 MB test event, form-encoded
UPLOAD_RE = re.compile(r"^/console/functions/(new|[A-Za-z0-9_-]{1,64}/code)$")
TAIL_RE = re.compile(r"^/console/functions/([A-Za-z0-9_-]{1,64})/logs/stream$")
SAFE_METHODS = ("GET", "HEAD")

Reply = tuple[int, list[tuple[str, str]], object]


def owns(head: Head) -> bool:
    path = head.path
    return path == "/console" or path.startswith("/console/")


def cookie(head: Head, name: str) -> str | None:
    for key, value in head.headers:
        if key != "cookie":
            continue
        for part in value.split(";"):
            k, sep, v = part.strip().partition("=")
            if sep and k == name:
                return v
    return None


class ConsoleRequest:
    """What the surface decided about a request, for the pages."""

    __slots__ = ("session", "token", "secure", "client")

    def __init__(self, session, token: str | None, secure: bool, client: str) -> None:
        self.session = session
        self.token = token
        self.secure = secure
        self.client = client


class ConsoleSurface:
    """The console on one port. ``secure``: this is the TLS port."""

    def __init__(self, console, *, secure: bool) -> None:
        self.console = console
        self.secure = secure

    # -- before the body ------------------------------------------------------

    def body_limit(self, head: Head) -> int:
        if head.method in SAFE_METHODS:
            return 0
        if head.path == SIGN_IN:
            return SIGN_IN_BODY_MAX
        return UPLOAD_MAX if UPLOAD_RE.match(head.path) else FORM_BODY_MAX

    def precheck(self, head: Head) -> Reply | None:
        return self._gate(head)[0]

    def too_large(self, head: Head) -> Reply:
        limit = self.body_limit(head)
        return self._message(
            413,
            "Too large",
            f"This request may carry at most {limit // 1024} KiB."
            if limit < 1 << 20
            else f"This request may carry at most {limit >> 20} MiB.",
        )

    def busy(self, head: Head) -> Reply:
        status, headers, body = self._message(429, "Busy", "Too many requests are arriving at once; try again in a moment.")
        return status, headers + [("Retry-After", "1")], body

    def timed_out(self, head: Head) -> Reply:
        return self._message(408, "Too slow", "The request did not arrive in time.")

    # -- the answer -------------------------------------------------------------

    async def handle(self, head: Head, body: bytes, client: tuple[str, int]) -> Reply:
        path = head.path
        if path.startswith(STATIC_PREFIX) and head.method in SAFE_METHODS and self.console.policy.served(self.secure):
            status, headers, payload = self.console.assets.reply(path, head.query, head.header("if-none-match"))
            return status, headers + SECURITY_HEADERS, b"" if head.method == "HEAD" else payload
        refusal, session, token = self._gate(head)
        if refusal is not None:
            return refusal
        if session is not None:
            tail = TAIL_RE.match(path)
            if tail is not None and head.method == "GET":
                status, headers, stream = self.console.live_tail(tail.group(1), head, session)
                return status, headers + SECURITY_HEADERS, stream
        state = {"console": ConsoleRequest(session, token, self.secure, client[0])}
        status, headers, payload = await call_asgi(self.console.app, head, body, client, self.console.server_addr, state)
        headers = [(k, v) for k, v in headers if k.lower() != "x-amzn-requestid"]
        if not any(k.lower() == "cache-control" for k, _ in headers):
            headers.append(("Cache-Control", "no-store"))
        return status, headers + SECURITY_HEADERS, payload

    def _gate(self, head: Head) -> tuple[Reply | None, object, str | None]:
        """(refusal or None, session, cookie token)."""
        console = self.console
        if not console.policy.served(self.secure):
            return self._message(404, "Console off", console.policy.note(self.secure)), None, None
        path = head.path
        if path.startswith(STATIC_PREFIX) and head.method in SAFE_METHODS:
            return None, None, None
        token = cookie(head, COOKIE)
        session = console.sessions.get(token)
        if head.method not in SAFE_METHODS and not self.same_origin(head):
            return self._message(403, "Refused", "This change did not come from the console's own pages."), session, token
        if session is None and path not in PUBLIC:
            if head.method in SAFE_METHODS:
                return self._redirect_to_sign_in(head), None, None
            return self._message(403, "Signed out", "Your session has ended. Sign in again.", sign_in=True), None, None
        return None, session, token

    def same_origin(self, head: Head) -> bool:
        site = head.header("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = head.header("origin")
        if origin is None:
            return True  # not a browser, or an old one: the CSRF token decides
        host = head.header("host")
        return host is not None and origin == f"{'https' if self.secure else 'http'}://{host}"

    def _redirect_to_sign_in(self, head: Head) -> Reply:
        target = SIGN_IN
        if head.path not in ("/console", "/console/", SIGN_IN):
            target += "?" + urllib.parse.urlencode({"next": head.target})
        return (
            303,
            [("Location", target), ("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")] + SECURITY_HEADERS,
            b"Sign in first.",
        )

    def _message(self, status: int, title: str, text: str, *, sign_in: bool = False) -> Reply:
        html = self.console.render("message.html", title=title, text=text, sign_in=sign_in, session=None)
        return status, [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")] + SECURITY_HEADERS, html.encode()
