"""AddPermission, RemovePermission and GetPolicy, and Put/Get/
DeleteResourcePolicy, on the control-plane app at botocore's paths."""

from __future__ import annotations

import urllib.parse

from quart import Response, request

from ..functions.permissions import Permissions
from .control import _body, _json


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

    # The ARN is one label; a runtime ARN's "/" arrives encoded.
    document = "/2026-07-09/resource-policy/<path:arn>"

    @app.put(document, endpoint="put_resource_policy")
    async def put_resource_policy(arn: str):
        return _json(await permissions.put_document(urllib.parse.unquote(arn), await _body()))

    @app.get(document, endpoint="get_resource_policy")
    async def get_resource_policy(arn: str):
        return _json(permissions.get_document(urllib.parse.unquote(arn)))

    @app.delete(document, endpoint="delete_resource_policy")
    async def delete_resource_policy(arn: str):
        await permissions.delete_document(urllib.parse.unquote(arn), request.args.get("RevisionId"))
        return Response(b"", status=204)
