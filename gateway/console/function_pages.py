"""The functions list (search, sort, last hour's figures), creating a
function from the inline editor or a .zip, one function's configuration
tab (general, environment, concurrency, tags, URL, asynchronous
invocation) and deleting it."""

from __future__ import annotations

import base64

from quart import Blueprint, Response, request

from ..errors import LambdaError
from . import forms
from .code_pages import STARTER, code_from
from .page_kit import PageKit

SORTS = ("name", "runtime", "memory", "modified", "invocations", "errors", "p99")


def add_routes(bp: Blueprint, kit: PageKit) -> None:
    s = kit.s

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
            rows.append(
                {
                    "name": rec.name,
                    "runtime": rec.runtime,
                    "memory": rec.memory_size,
                    "modified": rec.last_modified,
                    "invocations": st["invocations"],
                    "errors": st["errors"],
                    "p99": st["p99_ms"],
                    "spark": st["spark"],
                    "url": kit.fn_url(rec.name),
                }
            )
        missing_last = {"p99": -1.0}
        rows.sort(key=lambda r: r[sort] if r[sort] is not None else missing_last.get(sort, 0), reverse=order == "desc")
        return kit.page("functions.html", rows=rows, query=query, sort=sort, order=order, sorts=SORTS, total=len(s.service.registry))

    # -- create --------------------------------------------------------------------

    def runtimes() -> list[str]:
        return default_runtimes(s.service)

    @bp.get("/functions/new")
    async def new_function():
        return kit.page(
            "function_new.html",
            runtimes=runtimes(),
            values={
                "name": "",
                "runtime": s.service.runtimes.default,
                "handler": "lambda_function.lambda_handler",
                "memory": "128",
                "timeout": "3",
                "source": "editor",
                "code": STARTER,
                "filename": "lambda_function.py",
            },
            errors={},
        )

    @bp.post("/functions/new")
    async def create_function():
        form = await request.form
        files = await request.files
        values = {k: form.get(k, "") for k in ("name", "runtime", "handler", "memory", "timeout", "source", "code", "filename")}
        errors: dict[str, str] = {}
        try:
            zip_bytes = await code_from(form, files)
            body = {
                "FunctionName": values["name"].strip(),
                "Runtime": values["runtime"],
                "Handler": values["handler"].strip(),
                "Role": f"arn:aws:iam::{s.service.account}:role/lambdalet-console",
                "MemorySize": forms.number(values["memory"]),
                "Timeout": forms.number(values["timeout"]),
                "Code": {"ZipFile": base64.b64encode(zip_bytes).decode()},
            }
            await s.service.create(body)
        except LambdaError as exc:
            errors[forms.field_of(exc.message, "code")] = exc.message
            return kit.page("function_new.html", 400, runtimes=runtimes(), values=values, errors=errors)
        return kit.redirect(kit.fn_url(values["name"].strip(), done="created"))

    # -- one function: configuration -------------------------------------------------------

    def config_context(name: str) -> dict:
        rec = kit.function(name)
        try:
            async_cfg = s.event_configs.get(name, None)
        except LambdaError:
            async_cfg = None
        url = s.settings.get_url(name, None) if rec.url_config else None
        return {"fn": rec, "conf": s.service.configuration(rec), "url": url, "async_cfg": async_cfg, "tab": "config"}

    @bp.get("/functions/<name>")
    async def function_page(name: str):
        return kit.page("function_config.html", errors={}, submitted={}, **config_context(name))

    async def config_refused(name: str, section: str, exc: LambdaError, default_field: str, submitted: dict) -> Response:
        ctx = config_context(name)
        field = forms.field_of(exc.message, default_field)
        return kit.page("function_config.html", 400, errors={section: {field: exc.message}}, submitted={section: submitted}, **ctx)

    @bp.post("/functions/<name>/config/<section>")
    async def save_config(name: str, section: str):
        kit.function(name)
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
                rec = kit.function(name)
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
                elif kit.function(name).url_config:
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
                return kit.message(404, "Not found", "There is no such settings section.")
        except LambdaError as exc:
            defaults = {
                "general": "memory",
                "environment": "environment",
                "concurrency": "reserved",
                "tags": "tags",
                "url": "auth_type",
                "async": "retries",
            }
            return await config_refused(name, section, exc, defaults.get(section, "memory"), submitted)
        return kit.redirect(kit.fn_url(name, done=done) + f"#{section}")

    # -- delete -----------------------------------------------------------------------------------------

    @bp.get("/functions/<name>/delete")
    async def delete_page(name: str):
        return kit.page("function_delete.html", fn=kit.function(name), tab="delete", error="")

    @bp.post("/functions/<name>/delete")
    async def delete_function(name: str):
        rec = kit.function(name)
        form = await request.form
        if form.get("confirm", "") != rec.name:
            return kit.page("function_delete.html", 400, fn=rec, tab="delete", error=f"Type the function's name, {rec.name}, to delete it.")
        await s.service.delete(name, None)
        kit.console.forget(name)
        return kit.redirect("/console/functions?done=deleted")


def default_runtimes(service) -> list[str]:
    """The runtimes of Lambda's model that this server runs, for the new-function form."""
    from ..functions.validation import MODEL_RUNTIMES

    out = []
    for name in MODEL_RUNTIMES:
        try:
            service.runtimes.check(name)
        except LambdaError:
            continue
        out.append(name)
    return out
