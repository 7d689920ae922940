"""The embedding API: `lambdalet.Lambdalet`, the whole server inside a
trio program (assembly.py builds its parts).

    async with lambdalet.Lambdalet(data_dir=...) as lam:          # inside trio.run
        await lam.deploy("hello", "path/or/zip", handler="app.handler")
        result = await lam.invoke("hello", {"x": 1})               # no HTTP on this path
        await lam.serve_http(host="127.0.0.1", port=9000)           # optional: what `lambdalet serve` runs

invoke() goes to the same pool, the same sandboxes and the same metering,
billing and logs as an Invoke over HTTP; serve_http() builds the HTTP
surfaces (http_front.py) over the same parts.
"""

from __future__ import annotations

import base64
import os
import pathlib
import sys
from typing import Any

import msgspec
import trio

from ..api.invoke import ASYNC_PAYLOAD_MAX, SYNC_PAYLOAD_MAX, too_large_for
from ..errors import LambdaError
from ..functions import packaging
from .assembly import Assembly


class InvokeResult(msgspec.Struct, frozen=True):
    """One call's answer, as Invoke's response carries it."""

    request_id: str
    payload: bytes  # the function's answer (JSON), or its error document
    function_error: str | None  # "Unhandled" when the function failed, as X-Amz-Function-Error
    executed_version: str
    log: bytes  # START .. REPORT, what LogType=Tail shows the end of

    def json(self) -> Any:
        """The payload decoded."""
        return msgspec.json.decode(self.payload) if self.payload else None


class Lambdalet(Assembly):
    """The server's parts, assembled; usable as a library from a trio program.

    data_dir: where functions, code, logs and usage live (the same layout as
    `lambdalet serve --data-dir`, and locked the same way: one Lambdalet or
    server per directory). Every other option is a ServerConfig field
    (`serve`'s options: sandbox="process", concurrency_limit=..., ...), or
    pass config= whole."""

    # -- the embedding API -------------------------------------------------

    async def deploy(
        self,
        name: str,
        code: str | os.PathLike | bytes,
        *,
        handler: str | None = None,
        runtime: str | None = None,
        memory_size: int | None = None,
        timeout: int | None = None,
        environment: dict[str, str] | None = None,
    ) -> dict:
        """Creates the function, or updates its code (and whatever settings
        are given) if it exists, as `lambdalet deploy` does. code: a
        directory, a .zip file, or a .zip's bytes. Returns the function's
        configuration (GetFunctionConfiguration's document). Bad input is
        the LambdaError the API would answer (InvalidParameterValueException, ...)."""
        if isinstance(code, (bytes, bytearray)):
            zip_bytes = bytes(code)
        else:
            try:
                zip_bytes = await trio.to_thread.run_sync(packaging.package, code)
            except packaging.PackageError as exc:
                raise LambdaError("InvalidParameterValueException", str(exc)) from None
        zip_file = base64.b64encode(zip_bytes).decode()
        settings: dict[str, Any] = {}
        if handler is not None:
            settings["Handler"] = handler
        if runtime is not None:
            settings["Runtime"] = runtime
        if memory_size is not None:
            settings["MemorySize"] = memory_size
        if timeout is not None:
            settings["Timeout"] = timeout
        if environment is not None:
            settings["Environment"] = {"Variables": environment}
        if name in self.service.registry:
            await self.service.update_code(name, {"ZipFile": zip_file})
            if settings:
                await self.service.update_configuration(name, settings)
        else:
            settings.setdefault(
                "Handler",
                packaging.guess_handler(pathlib.Path(os.fsdecode(code)))
                if not isinstance(code, (bytes, bytearray))
                else "lambda_function.lambda_handler",
            )
            settings.setdefault("Runtime", f"python{sys.version_info[0]}.{sys.version_info[1]}")
            await self.service.create(
                {
                    "FunctionName": name,
                    "Role": f"arn:aws:iam::{self.config.account}:role/lambdalet",
                    "Code": {"ZipFile": zip_file},
                    **settings,
                }
            )
        return self.service.configuration(self.service.resolve(name))

    async def invoke(
        self,
        name: str,
        event: Any = None,
        *,
        qualifier: str | None = None,
        payload: bytes | None = None,
        invocation_type: str = "RequestResponse",
    ) -> InvokeResult:
        """Calls a function, as Invoke does, without HTTP: the same pool and
        sandboxes, metered, billed and logged as an Invoke over HTTP. event
        is encoded as JSON (or pass payload= bytes of JSON). A function
        error is a result (function_error "Unhandled"); a platform error
        (not found, throttled, too large) raises LambdaError.
        invocation_type "Event" queues the call (the async queue, retries,
        destinations) and returns at once with an empty payload."""
        if payload is None:
            payload = msgspec.json.encode(event) if event is not None else b"{}"
        if invocation_type not in ("RequestResponse", "Event"):
            raise LambdaError(
                "InvalidParameterValueException", f"invocation_type must be RequestResponse or Event, not {invocation_type!r}"
            )
        rec = self.service.resolve(name, qualifier)
        if len(payload) > (ASYNC_PAYLOAD_MAX if invocation_type == "Event" else SYNC_PAYLOAD_MAX):
            raise too_large_for(invocation_type)
        if payload.strip():
            try:
                msgspec.json.decode(payload)
            except msgspec.DecodeError as exc:
                raise LambdaError(
                    "InvalidRequestContentException", f"Could not parse request body into json: Could not parse payload into json: {exc}"
                ) from None
        if invocation_type == "Event":
            # Returned once the event is committed to queue.db, as the 202 is.
            request_id = await self.async_queue.enqueue(rec, payload, ref=name, qualifier=qualifier)
            return InvokeResult(request_id, b"", None, rec.version, b"")
        outcome = await self.pool.invoke(self.specs.spec_for(rec), payload)
        return InvokeResult(outcome.request_id, outcome.payload, outcome.function_error, rec.version, outcome.log)

    async def serve_http(self, host: str | None = None, port: int | None = None, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Serves Lambda's HTTP API (and the console, S3, SQS, function URLs,
        TLS when configured) for this Lambdalet until cancelled, as
        `lambdalet serve` does. host and port default to the config's. With
        nursery.start() it returns the ServingHttp (port, URLs) once listening."""
        from .http_front import serve_http

        if self._stack is None:
            raise RuntimeError("serve_http() needs the Lambdalet open (async with)")
        if self._serving:
            raise RuntimeError("this Lambdalet already serves HTTP")
        self._serving = True
        config = self.config
        if host is not None or port is not None:
            config = msgspec.structs.replace(config, host=config.host if host is None else host, port=config.port if port is None else port)
        await serve_http(self, config, task_status=task_status)
