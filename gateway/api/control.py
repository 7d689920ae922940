"""The control plane: Lambda's management API on quart-trio.

Only HTTP lives here. Each route decodes its JSON, calls FunctionService and
encodes the answer; LambdaError becomes Lambda's error shape in one handler.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import urllib.parse
from collections.abc import Callable

import msgspec
import trio
from quart import Response, request
from quart_trio import QuartTrio

from ..errors import LambdaError, disk_full, unexpected
from ..functions.function_settings import FunctionSettings
from ..functions.layer_records import LayerVersionRecord
from ..functions.layers import LayerService
from ..functions.model import FunctionRecord
from ..functions.service import FunctionService
from ..functions.versions import Versions
from . import operations, unsupported

CODE_URL_TTL_S = 600

log = logging.getLogger("lambdalet.control")


def _error_response(exc: LambdaError) -> Response:
    status, headers, body = exc.reply()
    return Response(body, status=status, headers=dict(headers))


def _json(doc: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(doc), status=status, content_type="application/json")


class CodeLinks:
    """Short-lived signed download links, standing in for S3 presigned URLs."""

    def __init__(self, secret: bytes, base_url: str, on_issue: Callable[[str, str, int], None] = lambda name, sha, expires: None) -> None:
        self._secret = secret
        self.base_url = base_url
        # Told (function, code digest, expiry) for each link, so that the
        # code stays downloadable as long as the link is valid.
        self._on_issue = on_issue

    def _sign(self, name: str, sha: str, expires: int) -> str:
        msg = f"{name}\n{sha}\n{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def url(self, rec: FunctionRecord) -> str:
        expires = int(time.time()) + CODE_URL_TTL_S
        self._on_issue(rec.name, rec.code_sha256_hex, expires)
        query = urllib.parse.urlencode({"expires": expires, "signature": self._sign(rec.name, rec.code_sha256_hex, expires)})
        return f"{self.base_url}/_lambdalet/code/{rec.name}/{rec.code_sha256_hex}.zip?{query}"

    def layer_url(self, rec: LayerVersionRecord) -> str:
        """A layer version's content, as GetLayerVersion's Content.Location."""
        expires = int(time.time()) + CODE_URL_TTL_S
        owner = layer_owner(rec.name, rec.version)
        self._on_issue(owner, rec.code_sha256_hex, expires)
        query = urllib.parse.urlencode({"expires": expires, "signature": self._sign(owner, rec.code_sha256_hex, expires)})
        return f"{self.base_url}/_lambdalet/code/layers/{rec.name}/{rec.version}/{rec.code_sha256_hex}.zip?{query}"

    def check(self, name: str, sha: str, expires: str, signature: str) -> bool:
        try:
            exp = int(expires)
        except ValueError:
            return False
        if exp < time.time():
            return False
        return hmac.compare_digest(self._sign(name, sha, exp), signature)


def layer_owner(name: str, version: int) -> str:
    """Who a layer version's download links are issued for (CodeHolds'
    owner; never a function's name, which has no colon)."""
    return f"layer:{name}:{version}"


async def _body() -> dict:
    raw = await request.get_data()
    if not raw:
        return {}
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise LambdaError("InvalidRequestContentException", f"Could not parse request body into json: {exc}") from None
    if not isinstance(doc, dict):
        raise LambdaError("InvalidRequestContentException", "Could not parse request body into json: expected an object")
    return doc


def create_app(
    service: FunctionService,
    links: CodeLinks,
    settings: FunctionSettings | None = None,
    versions: Versions | None = None,
    provisioned_ready=None,
    layers: LayerService | None = None,
) -> QuartTrio:
    app = QuartTrio(__name__)
    app.url_map.strict_slashes = False
    # Every body is bounded before it reaches the app (router.CONTROL_BODY_MAX:
    # a 50 MB zip, base64, in JSON); quart's own 16 MB default would refuse
    # a package the router allowed, in HTML instead of Lambda's shape.
    app.config["MAX_CONTENT_LENGTH"] = None

    @app.errorhandler(LambdaError)
    async def _lambda_error(exc: LambdaError):
        return _error_response(exc)

    @app.before_request
    async def _check_against_model():
        """Lambda's operations: refused here when this server does not do
        them, or when their input breaks the model's constraints (before
        any handler looks for a function, as AWS orders it)."""
        query = request.args.to_dict(flat=False)
        # The path as sent: a label may hold an encoded "/" (an ARN).
        raw = request.scope.get("raw_path")
        found = operations.match(request.method, raw.decode("latin-1") if raw else request.path, query)
        if found is None:
            return None
        op, labels = found
        if request.url_rule is None:
            raise unsupported.refusal(op.name)
        payload = await request.get_data() if op.payload else None
        assert not isinstance(payload, str)  # as_text is off
        body = await _body() if op.body and op.payload is None else None
        operations.check(op, labels, query, {k.lower(): v for k, v in request.headers.items()}, body, payload)
        return None

    @app.errorhandler(Exception)
    async def _unexpected(exc: Exception):
        # Quart's default for an exception no handler foresaw is an HTML
        # 500 page; SDKs can only read Lambda's JSON shape.
        stores_code = request.method in ("POST", "PUT") and (
            request.path.rstrip("/").endswith(("/functions", "/code", "/versions")) or "/layers/" in request.path
        )
        err = unexpected(exc, stores_code=stores_code)
        if err.error_type == "ServiceException" and not disk_full(exc):
            log.exception("%s %s failed", request.method, request.path)
        else:
            log.warning("%s %s: %s", request.method, request.path, exc)
        return _error_response(err)

    @app.errorhandler(404)
    async def _unknown(_exc):
        err = LambdaError("UnknownOperationException", f"Unknown operation {request.method} {request.path}")
        return _error_response(err)

    @app.errorhandler(405)
    async def _method(_exc):
        err = LambdaError("MethodNotAllowedException", f"Method {request.method} is not allowed on {request.path}")
        return _error_response(err)

    @app.post("/2015-03-31/functions")
    async def create_function():
        body = await _body()
        conf = await service.create(body)
        if body.get("Publish") and versions is not None:
            conf = await versions.publish(conf["FunctionName"], {})
        return _json(conf, 201)

    @app.get("/2015-03-31/functions")
    async def list_functions():
        return _json(service.list(request.args.get("Marker"), request.args.get("MaxItems"), request.args.get("FunctionVersion")))

    @app.get("/2015-03-31/functions/<name>")
    async def get_function(name: str):
        return _json(await service.get(name, request.args.get("Qualifier"), links.url))

    @app.delete("/2015-03-31/functions/<name>")
    async def delete_function(name: str):
        await service.delete(name, request.args.get("Qualifier"))
        return Response(b"", status=204)

    @app.get("/2015-03-31/functions/<name>/configuration")
    async def get_configuration(name: str):
        return _json(service.configuration(service.resolve(name, request.args.get("Qualifier"))))

    @app.put("/2015-03-31/functions/<name>/configuration")
    async def update_configuration(name: str):
        return _json(await service.update_configuration(name, await _body()))

    @app.put("/2015-03-31/functions/<name>/code")
    async def update_code(name: str):
        body = await _body()
        conf = await service.update_code(name, body)
        if body.get("Publish") and not body.get("DryRun") and versions is not None:
            conf = await versions.publish(name, {})
        return _json(conf)

    @app.get("/2016-08-19/account-settings")
    async def account_settings():
        return _json(service.account_settings())

    @app.get("/_lambdalet/code/<name>/<sha>.zip")
    async def download_code(name: str, sha: str):
        if not links.check(name, sha, request.args.get("expires", ""), request.args.get("signature", "")):
            err = LambdaError("AccessDeniedException", "Request has expired or its signature does not match.")
            return _error_response(err)
        # A valid link serves the code it was issued for, even once a newer
        # upload replaced it (its hold keeps it until the link expires), or
        # when it names a published version's code. A deleted function's
        # links end with it.
        if name not in service.registry or not service.codes.has(sha):
            raise LambdaError("ResourceNotFoundException", f"Code not found for {name}")
        try:
            data = await trio.to_thread.run_sync(service.codes.blob_path(sha).read_bytes)
        except FileNotFoundError:
            raise LambdaError("ResourceNotFoundException", f"Code not found for {name}") from None
        return Response(data, status=200, content_type="application/zip")

    if layers is not None:
        _layer_routes(app, layers, links)
    if settings is not None:
        _settings_routes(app, settings)
    if versions is not None:
        _version_routes(app, versions, provisioned_ready or (lambda name, qualifier: 0))
    return app


def _layer_routes(app: QuartTrio, layers: LayerService, links: CodeLinks) -> None:
    @app.post("/2018-10-31/layers/<name>/versions")
    async def publish_layer_version(name: str):
        return _json(await layers.publish(name, await _body(), links.layer_url), 201)

    @app.get("/2018-10-31/layers/<name>/versions")
    async def list_layer_versions(name: str):
        args = request.args
        return _json(
            layers.list_versions(
                name, args.get("CompatibleRuntime"), args.get("CompatibleArchitecture"), args.get("Marker"), args.get("MaxItems")
            )
        )

    @app.get("/2018-10-31/layers")
    async def list_layers():
        args = request.args
        if args.get("find") == "LayerVersion":  # GetLayerVersionByArn
            return _json(layers.get_by_arn(args.get("Arn"), links.layer_url))
        return _json(
            layers.list_layers(args.get("CompatibleRuntime"), args.get("CompatibleArchitecture"), args.get("Marker"), args.get("MaxItems"))
        )

    @app.get("/2018-10-31/layers/<name>/versions/<version>")
    async def get_layer_version(name: str, version: str):
        return _json(layers.get(name, version, links.layer_url))

    @app.delete("/2018-10-31/layers/<name>/versions/<version>")
    async def delete_layer_version(name: str, version: str):
        await layers.delete(name, version)
        return Response(b"", status=204)

    @app.post("/2018-10-31/layers/<name>/versions/<version>/policy")
    async def add_layer_version_permission(name: str, version: str):
        return _json(await layers.add_permission(name, version, await _body(), request.args.get("RevisionId")), 201)

    @app.get("/2018-10-31/layers/<name>/versions/<version>/policy")
    async def get_layer_version_policy(name: str, version: str):
        return _json(layers.get_policy(name, version))

    @app.delete("/2018-10-31/layers/<name>/versions/<version>/policy/<sid>")
    async def remove_layer_version_permission(name: str, version: str, sid: str):
        await layers.remove_permission(name, version, sid, request.args.get("RevisionId"))
        return Response(b"", status=204)

    @app.get("/_lambdalet/code/layers/<name>/<int:version>/<sha>.zip")
    async def download_layer(name: str, version: int, sha: str):
        if not links.check(layer_owner(name, version), sha, request.args.get("expires", ""), request.args.get("signature", "")):
            err = LambdaError("AccessDeniedException", "Request has expired or its signature does not match.")
            return _error_response(err)
        # A deleted version's links end with it.
        rec = layers.layers.get(name, {}).get(version)
        if rec is None or rec.code_sha256_hex != sha or not layers.codes.has(sha):
            raise LambdaError("ResourceNotFoundException", f"Content not found for layer {name} version {version}")
        try:
            data = await trio.to_thread.run_sync(layers.codes.blob_path(sha).read_bytes)
        except FileNotFoundError:
            raise LambdaError("ResourceNotFoundException", f"Content not found for layer {name} version {version}") from None
        return Response(data, status=200, content_type="application/zip")


def _version_routes(app: QuartTrio, versions: Versions, ready) -> None:
    @app.post("/2015-03-31/functions/<name>/versions")
    async def publish_version(name: str):
        return _json(await versions.publish(name, await _body()), 201)

    @app.get("/2015-03-31/functions/<name>/versions")
    async def list_versions(name: str):
        return _json(versions.list_versions(name, request.args.get("Marker"), request.args.get("MaxItems")))

    @app.post("/2015-03-31/functions/<name>/aliases")
    async def create_alias(name: str):
        return _json(await versions.create_alias(name, await _body()), 201)

    @app.get("/2015-03-31/functions/<name>/aliases")
    async def list_aliases(name: str):
        return _json(versions.list_aliases(name, request.args.get("FunctionVersion")))

    @app.get("/2015-03-31/functions/<name>/aliases/<alias>")
    async def get_alias(name: str, alias: str):
        return _json(versions.get_alias(name, alias))

    @app.put("/2015-03-31/functions/<name>/aliases/<alias>")
    async def update_alias(name: str, alias: str):
        return _json(await versions.update_alias(name, alias, await _body()))

    @app.delete("/2015-03-31/functions/<name>/aliases/<alias>")
    async def delete_alias(name: str, alias: str):
        await versions.delete_alias(name, alias)
        return Response(b"", status=204)

    @app.put("/2019-09-30/functions/<name>/provisioned-concurrency")
    async def put_provisioned(name: str):
        doc = await versions.put_provisioned(name, request.args.get("Qualifier"), await _body(), ready)
        doc.pop("FunctionArn", None)
        return _json(doc, 202)

    @app.get("/2019-09-30/functions/<name>/provisioned-concurrency")
    async def get_provisioned(name: str):
        if request.args.get("List") == "ALL":
            return _json(versions.list_provisioned(name, ready))
        return _json(versions.get_provisioned(name, request.args.get("Qualifier"), ready))

    @app.delete("/2019-09-30/functions/<name>/provisioned-concurrency")
    async def delete_provisioned(name: str):
        await versions.delete_provisioned(name, request.args.get("Qualifier"))
        return Response(b"", status=204)


def _settings_routes(app: QuartTrio, settings: FunctionSettings) -> None:
    @app.post("/2021-10-31/functions/<name>/url")
    async def create_url(name: str):
        return _json(await settings.create_url(name, request.args.get("Qualifier"), await _body()), 201)

    @app.get("/2021-10-31/functions/<name>/url")
    async def get_url(name: str):
        return _json(settings.get_url(name, request.args.get("Qualifier")))

    @app.put("/2021-10-31/functions/<name>/url")
    async def update_url(name: str):
        return _json(await settings.update_url(name, request.args.get("Qualifier"), await _body()))

    @app.delete("/2021-10-31/functions/<name>/url")
    async def delete_url(name: str):
        await settings.delete_url(name, request.args.get("Qualifier"))
        return Response(b"", status=204)

    @app.get("/2021-10-31/functions/<name>/urls")
    async def list_urls(name: str):
        return _json(settings.list_urls(name))

    @app.get("/2017-03-31/tags/<resource>")
    async def list_tags(resource: str):
        return _json(settings.list_tags(resource))

    @app.post("/2017-03-31/tags/<resource>")
    async def tag_resource(resource: str):
        await settings.tag(resource, await _body())
        return Response(b"", status=204)

    @app.delete("/2017-03-31/tags/<resource>")
    async def untag_resource(resource: str):
        await settings.untag(resource, request.args.getlist("tagKeys"))
        return Response(b"", status=204)

    @app.put("/2017-10-31/functions/<name>/concurrency")
    async def put_concurrency(name: str):
        return _json(await settings.put_concurrency(name, await _body()))

    @app.get("/2019-09-30/functions/<name>/concurrency")
    async def get_concurrency(name: str):
        return _json(settings.get_concurrency(name))

    @app.delete("/2017-10-31/functions/<name>/concurrency")
    async def delete_concurrency(name: str):
        await settings.delete_concurrency(name)
        return Response(b"", status=204)
