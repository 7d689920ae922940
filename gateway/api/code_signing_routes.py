"""Code signing on the control-plane app: Lambda's operations at botocore's
paths, and Lambdalet's signing profiles (its stand-in for AWS Signer, which
`lambdalet signing-profile` and `lambdalet sign` use), SigV4-signed like
everything else:

    PUT  /_lambdalet/signing-profiles/{name}         {"PublicKey": PEM}: trust a key
    GET  /_lambdalet/signing-profiles                every profile version
    POST /_lambdalet/signing-profiles/{name}/revoke  revoke a profile (or one version, by ARN)
"""

from __future__ import annotations

import urllib.parse

from quart import Response, request

from ..functions.code_signing import CodeSigning, FunctionCodeSigning
from .control import _body, _json


def _max_items() -> int | None:
    value = request.args.get("MaxItems")
    return int(value) if value is not None else None  # a number of 1-10000, by the model


def register(app, signing: CodeSigning, functions: FunctionCodeSigning) -> None:
    configs = "/2020-04-22/code-signing-configs"

    @app.post(configs, endpoint="create_code_signing_config")
    async def create_code_signing_config():
        return _json(await signing.create(await _body()), 201)

    @app.get(configs, endpoint="list_code_signing_configs")
    async def list_code_signing_configs():
        return _json(signing.list(request.args.get("Marker"), _max_items()))

    @app.get(configs + "/<arn>", endpoint="get_code_signing_config")
    async def get_code_signing_config(arn: str):
        return _json(signing.get(urllib.parse.unquote(arn)))

    @app.put(configs + "/<arn>", endpoint="update_code_signing_config")
    async def update_code_signing_config(arn: str):
        return _json(await signing.update(urllib.parse.unquote(arn), await _body()))

    @app.delete(configs + "/<arn>", endpoint="delete_code_signing_config")
    async def delete_code_signing_config(arn: str):
        arn = urllib.parse.unquote(arn)
        await signing.delete(arn, functions.users(arn))
        return Response(b"", status=204)

    @app.get(configs + "/<arn>/functions", endpoint="list_functions_by_code_signing_config")
    async def list_functions_by_code_signing_config(arn: str):
        return _json(functions.list_functions(urllib.parse.unquote(arn), request.args.get("Marker"), _max_items()))

    per_function = "/2020-06-30/functions/<name>/code-signing-config"

    @app.put(per_function, endpoint="put_function_code_signing_config")
    async def put_function_code_signing_config(name: str):
        return _json(await functions.put(name, await _body()))

    @app.get(per_function, endpoint="get_function_code_signing_config")
    async def get_function_code_signing_config(name: str):
        return _json(functions.get(name))

    @app.delete(per_function, endpoint="delete_function_code_signing_config")
    async def delete_function_code_signing_config(name: str):
        await functions.delete(name)
        return Response(b"", status=204)

    @app.put("/_lambdalet/signing-profiles/<profile>", endpoint="put_signing_profile")
    async def put_signing_profile(profile: str):
        return _json(await signing.put_profile(profile, await _body()))

    @app.get("/_lambdalet/signing-profiles", endpoint="list_signing_profiles")
    async def list_signing_profiles():
        return _json(signing.list_profiles())

    @app.post("/_lambdalet/signing-profiles/<profile>/revoke", endpoint="revoke_signing_profile")
    async def revoke_signing_profile(profile: str):
        return _json(await signing.revoke_profile(urllib.parse.unquote(profile)))
