"""Signing in (an access key of the server's credentials file, or the
console password) and out, with a failed-attempt limit per client."""

from __future__ import annotations

import hmac
import secrets

import trio
from quart import Blueprint, Response, request

from . import forms, password
from .page_kit import PageKit
from .sessions import COOKIE, LIFETIME_S, SIGNIN_COOKIE, csrf_ok
from .surface import SIGN_IN

_DUMMY_SECRET = secrets.token_urlsafe(30)


def add_routes(bp: Blueprint, kit: PageKit) -> None:
    console = kit.console

    def sign_in_page(status: int = 200, error: str = "", next_url: str = "", headers: dict | None = None) -> Response:
        token = secrets.token_urlsafe(24)
        out = {"Set-Cookie": kit.cookie_header(SIGNIN_COOKIE, token, path=SIGN_IN, max_age=3600)}
        out.update(headers or {})
        return kit.page(
            "sign_in.html",
            status,
            headers=out,
            form_token=token,
            error=error,
            next_url=forms.safe_next(next_url),
            password_set=password.is_set(console.data_dir),
        )

    @bp.get("/")
    async def root():
        return kit.redirect("/console/functions")

    @bp.get("/sign-in")
    async def sign_in_form():
        if kit.rq().session is not None:
            return kit.redirect(forms.safe_next(request.args.get("next")))
        return sign_in_page(next_url=request.args.get("next", ""))

    @bp.post("/sign-in")
    async def sign_in():
        form = await request.form
        next_url = form.get("next", "")
        expected = request.cookies.get(SIGNIN_COOKIE)
        if not expected or not csrf_ok(expected, form.get("csrf")):
            return sign_in_page(403, "The sign-in form had expired. Try again.", next_url)
        client = kit.rq().client
        wait = console.limiter.retry_after(client)
        if wait > 0:
            seconds = int(wait) + 1
            return sign_in_page(429, f"Too many failed sign-ins. Try again in {seconds} seconds.", next_url, {"Retry-After": str(seconds)})
        if form.get("method") == "password":
            given = form.get("password", "")
            ok = bool(given) and await trio.to_thread.run_sync(password.check, console.data_dir, given)
            principal = "console password"
        else:
            key_id = form.get("access_key_id", "").strip()
            given = form.get("secret_access_key", "")
            secret = console.keys.get(key_id)
            # The same comparison whether or not the key exists.
            ok = hmac.compare_digest((secret or _DUMMY_SECRET).encode(), given.encode("utf-8", "surrogateescape")) and secret is not None
            principal = f"access key {key_id}"
        if not ok:
            console.limiter.failed(client)
            return sign_in_page(401, "That did not match. Check the access key id and secret (or the console password).", next_url)
        old = kit.rq().token
        if old:
            console.sessions.end(old)
        token, _ = console.sessions.create(principal)
        response = kit.redirect(forms.safe_next(next_url))
        response.headers.add("Set-Cookie", kit.cookie_header(COOKIE, token, path="/console", max_age=int(LIFETIME_S)))
        response.headers.add("Set-Cookie", kit.cookie_header(SIGNIN_COOKIE, "", path=SIGN_IN, max_age=0))
        return response

    @bp.post("/sign-out")
    async def sign_out():
        console.sessions.end(kit.rq().token)
        response = kit.redirect(SIGN_IN)
        response.headers.add("Set-Cookie", kit.cookie_header(COOKIE, "", path="/console", max_age=0))
        return response
