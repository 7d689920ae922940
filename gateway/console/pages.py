"""The console's pages: a quart Blueprint on the control-plane app, put
together from the modules that hold each group of pages (the room's map
lists them), with what every page shares: Lambda's errors shown as a
page, the CSRF check of every change, and a 404 page for the rest.

Each page works with the server's own service objects (core.Services),
never with the HTTP API over loopback, and is rendered on the server from
an autoescaped template, so whatever a function controls (log lines,
environment values, payloads, error messages) reaches the browser as text.
Forms post back and redirect (they work without JavaScript); a refused
change renders the form again with Lambda's message beside its field.

surface.py has already decided who may ask (the session); the CSRF token
of every change is checked here, where the form is parsed.
"""

from __future__ import annotations

from quart import Blueprint, request

from ..errors import LambdaError
from . import code_pages, function_pages, invoke_pages, monitor_pages, queue_pages, sign_in_pages, version_pages
from .page_kit import PageKit
from .sessions import csrf_ok
from .surface import FORM_BODY_MAX, SIGN_IN


def make_blueprint(console) -> Blueprint:
    bp = Blueprint("console", __name__, url_prefix="/console")
    kit = PageKit(console)

    @bp.errorhandler(LambdaError)
    async def _lambda_error(exc: LambdaError):
        return kit.message(exc.status if exc.status < 500 else 500, exc.error_type, exc.message)

    @bp.before_request
    async def _csrf():
        if request.method in ("GET", "HEAD") or request.path == SIGN_IN:
            return None
        session = kit.rq().session
        presented = request.headers.get("X-CSRF-Token")
        if presented is None:
            presented = (await request.form).get("csrf")
        if session is None or not csrf_ok(session.csrf, presented):
            return kit.message(
                403, "Refused", "This form has expired or did not come from the console's own pages. Reload the page and try again."
            )
        return None

    for pages in (sign_in_pages, function_pages, code_pages, invoke_pages, monitor_pages, version_pages, queue_pages):
        pages.add_routes(bp, kit)

    @bp.route("/<path:rest>", methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"])
    async def unknown(rest: str):
        return kit.message(404, "Not found", "There is no such page in the console.")

    return bp


def register(app, console) -> None:
    app.register_blueprint(make_blueprint(console))
    # Form fields (the editor's file, a test event) may be as large as the
    # surface lets a form be; quart's default is 500 kB.
    app.config["MAX_FORM_MEMORY_SIZE"] = max(app.config.get("MAX_FORM_MEMORY_SIZE") or 0, FORM_BODY_MAX)
