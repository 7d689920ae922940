"""The console's pages: a quart Blueprint on the control-plane app.

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

import base64
import hmac
import io
import secrets
import time
import urllib.parse
import zipfile

import msgspec
import trio
from quart import Blueprint, Response, request

from ..api.invoke import SYNC_PAYLOAD_MAX
from ..api.usage_api import decode_token, encode_token, log_group_for
from ..errors import LambdaError, invalid
from . import forms, password
from .series import RANGES
from .sessions import COOKIE, LIFETIME_S, SIGNIN_COOKIE, csrf_ok
from .surface import SIGN_IN

SORTS = ("name", "runtime", "memory", "modified", "invocations", "errors", "p99")
INLINE_MAX = 256 * 1024  # the inline editor's one file
LOG_PAGE = 200
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
_DUMMY_SECRET = secrets.token_urlsafe(30)


def make_blueprint(console) -> Blueprint:
    bp = Blueprint("console", __name__, url_prefix="/console")
    s = console.services

    # -- helpers -----------------------------------------------------------------

    def rq():
        return request.scope["state"]["console"]

    def page(template: str, status: int = 200, headers: dict | None = None, **context) -> Response:
        session = rq().session
        context.setdefault("notice", NOTICES.get(request.args.get("done", "")))
        html = console.render(template, session=session, csrf=session.csrf if session else "", **context)
        return Response(html, status=status, content_type="text/html; charset=utf-8", headers=headers or {})

    def message(status: int, title: str, text: str) -> Response:
        return page("message.html", status, title=title, text=text, sign_in=False)

    def redirect(location: str) -> Response:
        return Response("", status=303, headers={"Location": location})

    def fn_url(name: str, tab: str = "", done: str = "") -> str:
        url = f"/console/functions/{urllib.parse.quote(name)}" + (f"/{tab}" if tab else "")
        return url + (f"?done={done}" if done else "")

    def function(name: str):
        return s.service.resolve(name)

    def cookie_header(name: str, value: str, *, path: str, max_age: int) -> str:
        attrs = [f"{name}={value}", f"Path={path}", "HttpOnly", "SameSite=Strict", f"Max-Age={max_age}"]
        if rq().secure:
            attrs.append("Secure")
        return "; ".join(attrs)

    @bp.errorhandler(LambdaError)
    async def _lambda_error(exc: LambdaError):
        return message(exc.status if exc.status < 500 else 500, exc.error_type, exc.message)

    @bp.before_request
    async def _csrf():
        if request.method in ("GET", "HEAD") or request.path == SIGN_IN:
            return None
        session = rq().session
        presented = request.headers.get("X-CSRF-Token")
        if presented is None:
            presented = (await request.form).get("csrf")
        if session is None or not csrf_ok(session.csrf, presented):
            return message(403, "Refused", "This form has expired or did not come from the console's own pages. Reload the page and try again.")
        return None

    # -- signing in and out ---------------------------------------------------------

    def sign_in_page(status: int = 200, error: str = "", next_url: str = "", headers: dict | None = None) -> Response:
        token = secrets.token_urlsafe(24)
        out = {"Set-Cookie": cookie_header(SIGNIN_COOKIE, token, path=SIGN_IN, max_age=3600)}
        out.update(headers or {})
        return page("sign_in.html", status, headers=out, form_token=token, error=error, next_url=forms.safe_next(next_url),
                    password_set=password.is_set(console.data_dir))

    @bp.get("/")
    async def root():
        return redirect("/console/functions")

    @bp.get("/sign-in")
    async def sign_in_form():
        if rq().session is not None:
            return redirect(forms.safe_next(request.args.get("next")))
        return sign_in_page(next_url=request.args.get("next", ""))

    @bp.post("/sign-in")
    async def sign_in():
        form = await request.form
        next_url = form.get("next", "")
        expected = request.cookies.get(SIGNIN_COOKIE)
        if not expected or not csrf_ok(expected, form.get("csrf")):
            return sign_in_page(403, "The sign-in form had expired. Try again.", next_url)
        client = rq().client
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
        old = rq().token
        if old:
            console.sessions.end(old)
        token, _ = console.sessions.create(principal)
        response = redirect(forms.safe_next(next_url))
        response.headers.add("Set-Cookie", cookie_header(COOKIE, token, path="/console", max_age=int(LIFETIME_S)))
        response.headers.add("Set-Cookie", cookie_header(SIGNIN_COOKIE, "", path=SIGN_IN, max_age=0))
        return response

    @bp.post("/sign-out")
    async def sign_out():
        console.sessions.end(rq().token)
        response = redirect(SIGN_IN)
        response.headers.add("Set-Cookie", cookie_header(COOKIE, "", path="/console", max_age=0))
        return response

    # -- functions list ----------------------------------------------------------------

    @bp.get("/functions")
    async def functions():
        query = request.args.get("q", "").strip()
        sort = request.args.get("sort", "name")
        sort = sort if sort in SORTS else "name"
        order = "desc" if request.args.get("order") == "desc" else "asc"
        stats = await s.monitor.last_hour()
        rows = []
        for rec in s.service.registry.values():
            if query and query.lower() not in rec.name.lower() and query.lower() not in rec.runtime.lower():
                continue
            st = stats.get(rec.name) or {"invocations": 0, "errors": 0, "p99_ms": None, "spark": None}
            rows.append({"name": rec.name, "runtime": rec.runtime, "memory": rec.memory_size, "modified": rec.last_modified,
                         "invocations": st["invocations"], "errors": st["errors"], "p99": st["p99_ms"], "spark": st["spark"],
                         "url": fn_url(rec.name)})
        missing_last = {"p99": -1.0}
        rows.sort(key=lambda r: (r[sort] if r[sort] is not None else missing_last.get(sort, 0)), reverse=order == "desc")
        return page("functions.html", rows=rows, query=query, sort=sort, order=order, sorts=SORTS, total=len(s.service.registry))

    # -- create --------------------------------------------------------------------

    def runtimes() -> list[str]:
        return _default_runtimes(s.service)

    @bp.get("/functions/new")
    async def new_function():
        return page("function_new.html", runtimes=runtimes(), values={"name": "", "runtime": s.service.runtimes.default, "handler": "lambda_function.lambda_handler",
                                                                        "memory": "128", "timeout": "3", "source": "editor",
                                                                        "code": _STARTER, "filename": "lambda_function.py"}, errors={})

    @bp.post("/functions/new")
    async def create_function():
        form = await request.form
        files = await request.files
        values = {k: form.get(k, "") for k in ("name", "runtime", "handler", "memory", "timeout", "source", "code", "filename")}
        errors: dict[str, str] = {}
        try:
            zip_bytes = await _code_from(form, files)
            body = {"FunctionName": values["name"].strip(), "Runtime": values["runtime"], "Handler": values["handler"].strip(),
                    "Role": f"arn:aws:iam::{s.service.account}:role/lambdalet-console",
                    "MemorySize": forms.number(values["memory"]), "Timeout": forms.number(values["timeout"]),
                    "Code": {"ZipFile": base64.b64encode(zip_bytes).decode()}}
            await s.service.create(body)
        except LambdaError as exc:
            errors[forms.field_of(exc.message, "code")] = exc.message
            return page("function_new.html", 400, runtimes=runtimes(), values=values, errors=errors)
        return redirect(fn_url(values["name"].strip(), done="created"))

    async def _code_from(form, files) -> bytes:
        if form.get("source") == "zip":
            upload = files.get("zip")
            if upload is None or not upload.filename:
                raise invalid("Choose a .zip file to upload.")
            data = upload.read()
            if not data:
                raise invalid("The uploaded file is empty.")
            return data
        filename = (form.get("filename") or "lambda_function.py").strip()
        if not filename or "/" in filename or filename.startswith(".") or len(filename) > 128:
            raise invalid("Name the file like lambda_function.py (no directories).")
        code = form.get("code", "")
        if not code.strip():
            raise invalid("The editor is empty: write the function's code.")
        if len(code.encode()) > INLINE_MAX:
            raise invalid(f"The inline editor takes at most {INLINE_MAX // 1024} KiB; upload a .zip instead.")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            info = zipfile.ZipInfo(filename, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o644 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, code.replace("\r\n", "\n"))
        return buf.getvalue()

    # -- one function: configuration -------------------------------------------------------

    def config_context(name: str) -> dict:
        rec = function(name)
        try:
            async_cfg = s.event_configs.get(name, None)
        except LambdaError:
            async_cfg = None
        url = s.settings.get_url(name, None) if rec.url_config else None
        return {"fn": rec, "conf": s.service.configuration(rec), "url": url, "async_cfg": async_cfg, "tab": "config"}

    @bp.get("/functions/<name>")
    async def function_page(name: str):
        return page("function_config.html", errors={}, submitted={}, **config_context(name))

    async def config_refused(name: str, section: str, exc: LambdaError, default_field: str, submitted: dict) -> Response:
        ctx = config_context(name)
        field = forms.field_of(exc.message, default_field)
        return page("function_config.html", 400, errors={section: {field: exc.message}}, submitted={section: submitted}, **ctx)

    @bp.post("/functions/<name>/config/<section>")
    async def save_config(name: str, section: str):
        function(name)
        form = await request.form
        submitted = {k: form.getlist(k) if k.endswith("[]") else form.get(k) for k in form}
        action = form.get("action", "save")
        try:
            if section == "general":
                await s.service.update_configuration(name, forms.configuration_body(form))
                done = "general"
            elif section == "environment":
                env = forms.pairs(form.getlist("env_key[]"), form.getlist("env_value[]"))
                await s.service.update_configuration(name, {"Environment": {"Variables": env}})
                done = "environment"
            elif section == "concurrency":
                if action == "remove" or not form.get("reserved", "").strip():
                    await s.settings.delete_concurrency(name)
                else:
                    await s.settings.put_concurrency(name, {"ReservedConcurrentExecutions": forms.number(form.get("reserved"))})
                done = "concurrency"
            elif section == "tags":
                rec = function(name)
                wanted = forms.pairs(form.getlist("tag_key[]"), form.getlist("tag_value[]"))
                gone = [k for k in rec.tags if k not in wanted]
                if wanted:
                    await s.settings.tag(s.service.arn(name), {"Tags": wanted})
                if gone:
                    await s.settings.untag(s.service.arn(name), gone)
                done = "tags"
            elif section == "url":
                if action == "delete":
                    await s.settings.delete_url(name, None)
                    done = "url-deleted"
                elif function(name).url_config:
                    await s.settings.update_url(name, None, {"AuthType": form.get("auth_type")})
                    done = "url"
                else:
                    await s.settings.create_url(name, None, {"AuthType": form.get("auth_type")})
                    done = "url"
                if action != "delete" and form.get("auth_type") == "NONE" and s.permissions is not None:
                    # As the AWS console does: a public URL gets the policy
                    # statements that let everyone call it.
                    await s.permissions.open_url(name)
            elif section == "async":
                if action == "delete":
                    await s.event_configs.delete(name, None)
                    done = "async-deleted"
                else:
                    await s.event_configs.put(name, None, forms.async_body(form))
                    done = "async"
            else:
                return message(404, "Not found", "There is no such settings section.")
        except LambdaError as exc:
            defaults = {"general": "memory", "environment": "environment", "concurrency": "reserved", "tags": "tags",
                        "url": "auth_type", "async": "retries"}
            return await config_refused(name, section, exc, defaults.get(section, "memory"), submitted)
        return redirect(fn_url(name, done=done) + f"#{section}")

    # -- code ------------------------------------------------------------------------------

    def inline_source(rec) -> tuple[str, str] | None:
        """The one file of a one-file function, for the editor."""
        try:
            with zipfile.ZipFile(s.service.codes.blob_path(rec.code_sha256_hex)) as zf:
                files = [i for i in zf.infolist() if not i.is_dir()]
                if len(files) != 1 or files[0].file_size > INLINE_MAX:
                    return None
                return files[0].filename, zf.read(files[0]).decode("utf-8")
        except (OSError, zipfile.BadZipFile, UnicodeDecodeError, KeyError):
            return None

    @bp.get("/functions/<name>/code")
    async def code_page(name: str):
        rec = function(name)
        inline = await trio.to_thread.run_sync(inline_source, rec)
        return page("function_code.html", fn=rec, tab="code", inline=inline, errors={})

    @bp.post("/functions/<name>/code")
    async def update_code(name: str):
        rec = function(name)
        form = await request.form
        files = await request.files
        try:
            zip_bytes = await _code_from(form, files)
            await s.service.update_code(name, {"ZipFile": base64.b64encode(zip_bytes).decode()})
        except LambdaError as exc:
            inline = await trio.to_thread.run_sync(inline_source, rec)
            return page("function_code.html", 400, fn=rec, tab="code", inline=inline, errors={"code": exc.message})
        return redirect(fn_url(name, "code", "code"))

    # -- test ---------------------------------------------------------------------------------

    async def test_page_response(name: str, status: int = 200, **extra) -> Response:
        rec = function(name)
        saved = await trio.to_thread.run_sync(s.test_events.list, name)
        chosen = request.args.get("event")
        payload = extra.pop("payload", None)
        if payload is None:
            found = next((e for e in saved if e.name == chosen), saved[0] if saved else None)
            payload = found.payload if found is not None else '{\n  "key": "value"\n}'
            chosen = found.name if found is not None else ""
        return page("function_test.html", status, fn=rec, tab="test", saved=saved, chosen=extra.pop("chosen", chosen),
                    payload=payload, result=extra.pop("result", None), error=extra.pop("error", ""), **extra)

    @bp.get("/functions/<name>/test")
    async def test_page(name: str):
        return await test_page_response(name)

    @bp.post("/functions/<name>/test")
    async def test_action(name: str):
        form = await request.form
        payload = form.get("payload", "")
        event_name = form.get("event_name", "").strip()
        action = form.get("action", "invoke")
        try:
            if action == "save":
                await trio.to_thread.run_sync(s.test_events.save, name, event_name, payload)
                return redirect(fn_url(name, "test", "event-saved") + "&event=" + urllib.parse.quote(event_name))
            if action == "delete":
                await trio.to_thread.run_sync(s.test_events.delete, name, form.get("chosen", ""))
                return redirect(fn_url(name, "test", "event-deleted"))
            result = await invoke(name, payload)
        except LambdaError as exc:
            return await test_page_response(name, 400, payload=payload, chosen=event_name or form.get("chosen", ""), error=exc.message)
        return await test_page_response(name, payload=payload, chosen=form.get("chosen", ""), result=result)

    async def invoke(name: str, payload: str) -> dict:
        raw = payload.encode()
        if len(raw) > SYNC_PAYLOAD_MAX:
            raise LambdaError("RequestTooLargeException", f"Request must be smaller than {SYNC_PAYLOAD_MAX} bytes for the Invoke operation")
        if raw.strip():
            try:
                msgspec.json.decode(raw)
            except msgspec.DecodeError as exc:
                raise LambdaError("InvalidRequestContentException", f"Could not parse request body into json: {exc}") from None
        rec = s.service.resolve(name)
        spec = s.invoker.spec_for(rec)
        outcome = await s.invoker.pool.invoke(spec, raw)
        log = outcome.log.decode("utf-8", errors="replace")
        report = next((line for line in reversed(log.splitlines()) if line.startswith("REPORT RequestId:") or '"platform.report"' in line), "")
        try:
            shown = msgspec.json.format(outcome.payload, indent=2).decode("utf-8", errors="replace")
        except msgspec.DecodeError:
            shown = outcome.payload.decode("utf-8", errors="replace")
        return {"request_id": outcome.request_id, "failed": bool(outcome.function_error), "error_type": outcome.error_type,
                "payload": shown, "log": log, "report": report, "duration_ms": outcome.duration_ns / 1e6, "cold": outcome.cold}

    # -- monitor ----------------------------------------------------------------------------------

    def range_arg() -> str:
        r = request.args.get("range", "1h")
        return r if r in RANGES else "1h"

    @bp.get("/functions/<name>/monitor")
    async def function_monitor(name: str):
        rec = function(name)
        return page("function_monitor.html", fn=rec, tab="fn-monitor", range=range_arg(), ranges=list(RANGES),
                    chart_src=f"/console/api/chart?function={urllib.parse.quote(name)}&range={range_arg()}")

    @bp.get("/monitor")
    async def account_monitor():
        bill = await s.monitor.month_bill(s.granularity_ms)
        return page("monitor.html", range=range_arg(), ranges=list(RANGES), bill=bill, tab="monitor",
                    chart_src=f"/console/api/chart?range={range_arg()}")

    @bp.get("/api/chart")
    async def chart():
        name = request.args.get("function") or None
        if name is not None:
            function(name)
        doc = await s.monitor.chart(name, range_arg())
        return Response(msgspec.json.encode(doc), content_type="application/json")

    # -- logs -----------------------------------------------------------------------------------------

    @bp.get("/functions/<name>/logs")
    async def logs_page(name: str):
        rec = function(name)
        group = log_group_for(s.service, name)
        since_text = request.args.get("since", "")
        until_text = request.args.get("until", "")
        contains = request.args.get("filter", "")[:256] or None
        error = ""
        since_ms = until_ms = None
        try:
            since_ms = _parse_time(since_text, request.args.get("tz", "0"))
            until_ms = _parse_time(until_text, request.args.get("tz", "0"))
        except ValueError as exc:
            error = str(exc)
        if since_ms is None:
            since_ms = int(time.time() * 1000) - 3600_000
        token = request.args.get("next")
        after, upto = decode_token(token) if token else (None, None)
        await s.calls.flush()
        logstore = s.calls.logstore
        result = await trio.to_thread.run_sync(lambda: logstore.page(group, since_ms=since_ms, after=after, upto_id=upto, contains=contains, limit=LOG_PAGE))
        events = result.events
        more = result.next
        if until_ms is not None:
            kept = [e for e in events if e.timestamp_ms <= until_ms]
            if len(kept) < len(events):
                more = None
            events = kept
        next_link = None
        if more is not None:
            args = {k: v for k, v in request.args.items() if k != "next"}
            args["next"] = encode_token(more, result.upto_id)
            next_link = f"{fn_url(name, 'logs')}?{urllib.parse.urlencode(args)}"
        return page("function_logs.html", fn=rec, tab="logs", events=events, group=group, since=since_text, until=until_text,
                    filter=contains or "", error=error, next_link=next_link, since_ms=since_ms,
                    stream_src=f"{fn_url(name, 'logs')}/stream")

    # -- versions and aliases -------------------------------------------------------------------------

    def versions_context(name: str) -> dict:
        rec = function(name)
        versions = [s.service.configuration(r) for _, r in sorted(s.service.versions.get(name, {}).items(), key=lambda kv: int(kv[0]))]
        aliases = s.versions.list_aliases(name, None)["Aliases"]
        return {"fn": rec, "tab": "versions", "versions_list": versions, "aliases": aliases}

    @bp.get("/functions/<name>/versions")
    async def versions_page(name: str):
        return page("function_versions.html", errors={}, **versions_context(name))

    @bp.post("/functions/<name>/versions")
    async def publish(name: str):
        form = await request.form
        try:
            await s.versions.publish(name, {"Description": form.get("description", "")})
        except LambdaError as exc:
            return page("function_versions.html", 400, errors={"publish": exc.message}, **versions_context(name))
        return redirect(fn_url(name, "versions", "published"))

    @bp.post("/functions/<name>/aliases")
    async def alias_action(name: str):
        form = await request.form
        action = form.get("action", "create")
        alias = form.get("alias", "").strip()
        try:
            if action == "delete":
                await s.versions.delete_alias(name, alias)
                done = "alias-deleted"
            elif action == "update":
                await s.versions.update_alias(name, alias, {"FunctionVersion": form.get("version", ""), "Description": form.get("description", "")})
                done = "alias"
            else:
                await s.versions.create_alias(name, {"Name": alias, "FunctionVersion": form.get("version", ""), "Description": form.get("description", "")})
                done = "alias"
        except LambdaError as exc:
            return page("function_versions.html", 400, errors={"alias": exc.message}, **versions_context(name))
        return redirect(fn_url(name, "versions", done))

    # -- delete -----------------------------------------------------------------------------------------

    @bp.get("/functions/<name>/delete")
    async def delete_page(name: str):
        return page("function_delete.html", fn=function(name), tab="delete", error="")

    @bp.post("/functions/<name>/delete")
    async def delete_function(name: str):
        rec = function(name)
        form = await request.form
        if form.get("confirm", "") != rec.name:
            return page("function_delete.html", 400, fn=rec, tab="delete", error=f"Type the function's name, {rec.name}, to delete it.")
        await s.service.delete(name, None)
        console.forget(name)
        return redirect("/console/functions?done=deleted")

    # -- queues -------------------------------------------------------------------------------------------

    @bp.get("/queues")
    async def queues():
        store = s.async_queue.store
        depths = await trio.to_thread.run_sync(store.queue_depths)
        depths.setdefault(s.dead_letter_queue, 0)
        shown = {}
        for queue in sorted(depths):
            msgs = await trio.to_thread.run_sync(lambda q=queue: store.messages(q, 200))
            shown[queue] = [_message_row(m) for m in msgs]
        return page("queues.html", depths=depths, queues=shown, stats=msgspec.structs.asdict(s.async_queue.statistics()), tab="queues")

    @bp.post("/queues/<queue>/<action>")
    async def queue_action(queue: str, action: str):
        form = await request.form
        ids = form.getlist("id[]")
        everything = form.get("all") == "1"
        if not ids and not everything:
            return message(400, "Nothing chosen", "Choose the records first, or use the button for all of them.")
        if action == "redrive":
            await s.async_queue.redrive(queue, None if everything else ids)
            done = "redriven"
        elif action == "delete":
            await s.async_queue.delete_messages(queue, None if everything else ids)
            done = "removed"
        else:
            return message(404, "Not found", "There is no such action.")
        return redirect(f"/console/queues?done={done}")

    # -- schedules ------------------------------------------------------------------------------------------

    @bp.get("/schedules")
    async def schedules():
        return page("schedules.html", schedules=s.scheduler.list()["Schedules"], tab="schedules")

    @bp.post("/schedules/<sched>/<action>")
    async def schedule_action(sched: str, action: str):
        current = s.scheduler.get(sched)
        if action == "delete":
            await s.scheduler.delete(sched)
            return redirect("/console/schedules?done=schedule-deleted")
        if action in ("enable", "disable"):
            body = {"ScheduleExpression": current["ScheduleExpression"], "FunctionName": current["FunctionName"],
                    "State": "ENABLED" if action == "enable" else "DISABLED"}
            if "Input" in current:
                body["Input"] = current["Input"]
            await s.scheduler.put(sched, body)
            return redirect("/console/schedules?done=schedule")
        return message(404, "Not found", "There is no such action.")

    # -- anything else -----------------------------------------------------------------------------------------

    @bp.route("/<path:rest>", methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"])
    async def unknown(rest: str):
        return message(404, "Not found", "There is no such page in the console.")

    return bp


def _message_row(m) -> dict:
    try:
        body = msgspec.json.decode(m.body)
    except msgspec.DecodeError:
        body = {}
    context = body.get("requestContext", {}) if isinstance(body, dict) else {}
    payload = m.payload.decode("utf-8", errors="replace")
    return {"id": m.id, "function": m.function, "qualifier": m.qualifier, "sent": m.sent_s * 1000,
            "condition": context.get("condition", ""), "attempts": context.get("approximateInvokeCount", ""),
            "payload": payload if len(payload) <= 2000 else payload[:2000] + "…"}


def _parse_time(text: str, tz_offset_min: str) -> int | None:
    """A datetime-local value (the browser's local time; tz: its offset from
    UTC in minutes, as Date.getTimezoneOffset() gives it) as epoch ms."""
    import datetime

    text = text.strip()
    if not text:
        return None
    try:
        naive = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date and time") from None
    try:
        offset = int(tz_offset_min)
    except ValueError:
        offset = 0
    offset = max(-14 * 60, min(14 * 60, offset))
    utc = naive.replace(tzinfo=datetime.timezone.utc) + datetime.timedelta(minutes=offset)
    return int(utc.timestamp() * 1000)


def _default_runtimes(service) -> list[str]:
    from ..functions.validation import MODEL_RUNTIMES

    out = []
    for name in MODEL_RUNTIMES:
        try:
            service.runtimes.check(name)
        except LambdaError:
            continue
        out.append(name)
    return out


_STARTER = '''import json


def lambda_handler(event, context):
    print("event:", json.dumps(event))
    return {"statusCode": 200, "body": json.dumps({"hello": event})}
'''


def register(app, console) -> None:
    app.register_blueprint(make_blueprint(console))
    # Form fields (the editor's file, a test event) may be as large as the
    # surface lets a form be; quart's default is 500 kB.
    from .surface import FORM_BODY_MAX

    app.config["MAX_FORM_MEMORY_SIZE"] = max(app.config.get("MAX_FORM_MEMORY_SIZE") or 0, FORM_BODY_MAX)
