"""Get/PutFunctionRecursionConfig and Get/PutRuntimeManagementConfig on
the control-plane app, at botocore's paths."""

from __future__ import annotations

from quart import request

from ..functions.function_configs import FunctionConfigs
from .control import _body, _json


def register(app, configs: FunctionConfigs) -> None:
    recursion = "/2024-08-31/functions/<name>/recursion-config"

    @app.get(recursion, endpoint="get_function_recursion_config")
    async def get_function_recursion_config(name: str):
        return _json(configs.get_recursion(name))

    @app.put(recursion, endpoint="put_function_recursion_config")
    async def put_function_recursion_config(name: str):
        return _json(await configs.put_recursion(name, await _body()))

    runtime = "/2021-07-20/functions/<name>/runtime-management-config"

    @app.get(runtime, endpoint="get_runtime_management_config")
    async def get_runtime_management_config(name: str):
        return _json(configs.get_runtime_management(name, request.args.get("Qualifier")))

    @app.put(runtime, endpoint="put_runtime_management_config")
    async def put_runtime_management_config(name: str):
        return _json(await configs.put_runtime_management(name, request.args.get("Qualifier"), await _body()))
