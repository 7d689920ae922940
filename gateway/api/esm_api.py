"""Lambda's event source mapping operations, on the control-plane app, at
botocore's paths:
    POST   /2015-03-31/event-source-mappings           CreateEventSourceMapping (202)
    GET    /2015-03-31/event-source-mappings           ListEventSourceMappings
    GET    /2015-03-31/event-source-mappings/{UUID}    GetEventSourceMapping
    PUT    /2015-03-31/event-source-mappings/{UUID}    UpdateEventSourceMapping (202)
    DELETE /2015-03-31/event-source-mappings/{UUID}    DeleteEventSourceMapping (202)
"""

from __future__ import annotations

from quart import request

from ..events.esm.mappings import EventSourceMappings
from .control import _body, _json

BASE = "/2015-03-31/event-source-mappings"


def register(app, mappings: EventSourceMappings) -> None:
    @app.post(BASE, endpoint="create_event_source_mapping")
    async def create_event_source_mapping():
        return _json(await mappings.create(await _body()), 202)

    @app.get(BASE, endpoint="list_event_source_mappings")
    async def list_event_source_mappings():
        args = request.args
        return _json(mappings.list(args.get("FunctionName"), args.get("EventSourceArn"), args.get("Marker"), args.get("MaxItems")))

    @app.get(BASE + "/<uid>", endpoint="get_event_source_mapping")
    async def get_event_source_mapping(uid: str):
        return _json(mappings.get(uid))

    @app.put(BASE + "/<uid>", endpoint="update_event_source_mapping")
    async def update_event_source_mapping(uid: str):
        return _json(await mappings.update(uid, await _body()), 202)

    @app.delete(BASE + "/<uid>", endpoint="delete_event_source_mapping")
    async def delete_event_source_mapping(uid: str):
        return _json(await mappings.delete(uid), 202)
