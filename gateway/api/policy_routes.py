"""AddPermission, RemovePermission and GetPolicy on the control-plane app,
at botocore's paths."""
from __future__ import annotations

from quart import Response, request

from .control import _body, _json
from ..functions.permissions import Permissions


def register(app, permissions: Permissions) -> None:
    base = "/2015-03-31/functions/<name>/policy"

    @app.post(base, endpoint="add_permission")
    async def add_permission(name: str):
        body = await _body()
        return _json(await permissions.add(name, request.args.get("Qualifier"), body), 201)

    @app.get(base, endpoint="get_policy")
    async def get_policy(name: str):
        return _json(permissions.get(name, request.args.get("Qualifier")))

    @app.delete(base + "/<sid>", endpoint="remove_permission")
    async def remove_permission(name: str, sid: str):
        await permissions.remove(name, sid, request.args.get("Qualifier"), request.args.get("RevisionId"))
        return Response(b"", status=204)
