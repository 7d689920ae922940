"""A function's versions and aliases: publishing a version, creating,
pointing and deleting aliases."""

from __future__ import annotations

from quart import Blueprint, request

from ..errors import LambdaError
from .page_kit import PageKit


def add_routes(bp: Blueprint, kit: PageKit) -> None:
    s = kit.s

    # -- versions and aliases -------------------------------------------------------------------------

    def versions_context(name: str) -> dict:
        rec = kit.function(name)
        versions = [s.service.configuration(r) for _, r in sorted(s.service.versions.get(name, {}).items(), key=lambda kv: int(kv[0]))]
        aliases = s.versions.list_aliases(name, None)["Aliases"]
        return {"fn": rec, "tab": "versions", "versions_list": versions, "aliases": aliases}

    @bp.get("/functions/<name>/versions")
    async def versions_page(name: str):
        return kit.page("function_versions.html", errors={}, **versions_context(name))

    @bp.post("/functions/<name>/versions")
    async def publish(name: str):
        form = await request.form
        try:
            await s.versions.publish(name, {"Description": form.get("description", "")})
        except LambdaError as exc:
            return kit.page("function_versions.html", 400, errors={"publish": exc.message}, **versions_context(name))
        return kit.redirect(kit.fn_url(name, "versions", "published"))

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
                await s.versions.update_alias(
                    name, alias, {"FunctionVersion": form.get("version", ""), "Description": form.get("description", "")}
                )
                done = "alias"
            else:
                await s.versions.create_alias(
                    name, {"Name": alias, "FunctionVersion": form.get("version", ""), "Description": form.get("description", "")}
                )
                done = "alias"
        except LambdaError as exc:
            return kit.page("function_versions.html", 400, errors={"alias": exc.message}, **versions_context(name))
        return kit.redirect(kit.fn_url(name, "versions", done))
