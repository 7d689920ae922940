"""What every console page is built with: the request's console state,
rendering a template with the session's CSRF token and the notice a
redirect asked for, the plain answers (message, redirect), links to a
function's tabs and the session cookie's attributes."""

from __future__ import annotations

import urllib.parse

from quart import Response, request

from .series import RANGES

NOTICES = {
    "created": "Function created.",
    "general": "Settings saved.",
    "environment": "Environment saved.",
    "concurrency": "Reserved concurrency saved.",
    "tags": "Tags saved.",
    "url": "Function URL saved.",
    "url-deleted": "Function URL removed.",
    "async": "Asynchronous invocation settings saved.",
    "async-deleted": "Asynchronous invocation settings removed.",
    "code": "Code updated.",
    "published": "Version published.",
    "alias": "Alias saved.",
    "alias-deleted": "Alias deleted.",
    "deleted": "Function deleted.",
    "redriven": "Records sent back to their functions.",
    "removed": "Records deleted.",
    "schedule": "Schedule saved.",
    "schedule-deleted": "Schedule deleted.",
    "event-saved": "Test event saved.",
    "event-deleted": "Test event deleted.",
}


class PageKit:
    def __init__(self, console) -> None:
        self.console = console
        self.s = console.services

    @staticmethod
    def rq():
        """What surface.py decided about this request (session, client, ...)."""
        return request.scope["state"]["console"]

    def page(self, template: str, status: int = 200, headers: dict | None = None, **context) -> Response:
        session = self.rq().session
        context.setdefault("notice", NOTICES.get(request.args.get("done", "")))
        html = self.console.render(template, session=session, csrf=session.csrf if session else "", **context)
        return Response(html, status=status, content_type="text/html; charset=utf-8", headers=headers or {})

    def message(self, status: int, title: str, text: str) -> Response:
        return self.page("message.html", status, title=title, text=text, sign_in=False)

    @staticmethod
    def redirect(location: str) -> Response:
        return Response("", status=303, headers={"Location": location})

    @staticmethod
    def fn_url(name: str, tab: str = "", done: str = "") -> str:
        url = f"/console/functions/{urllib.parse.quote(name)}" + (f"/{tab}" if tab else "")
        return url + (f"?done={done}" if done else "")

    def function(self, name: str):
        return self.s.service.resolve(name)

    def cookie_header(self, name: str, value: str, *, path: str, max_age: int) -> str:
        attrs = [f"{name}={value}", f"Path={path}", "HttpOnly", "SameSite=Strict", f"Max-Age={max_age}"]
        if self.rq().secure:
            attrs.append("Secure")
        return "; ".join(attrs)

    @staticmethod
    def range_arg() -> str:
        r = request.args.get("range", "1h")
        return r if r in RANGES else "1h"
