"""Lambda's HTTP surfaces over an open Lambdalet (root.py): what
`lambdalet serve` and Lambdalet.serve_http() listen with.

Built only when HTTP is served: the control-plane app and its routes, the
console, function URLs, S3's and SQS's surfaces, the S3 webhook, the router
in front of them, the listening port and, when configured, the TLS port.
Everything below them (the function service, the pool, metering, the event
sources) is the Lambdalet's, shared with its invoke().
"""

from __future__ import annotations

import functools
import ipaddress
import secrets
import socket
from typing import TYPE_CHECKING

import msgspec
import trio

from ..api import async_api, code_signing_routes, esm_api, function_config_routes, policy_routes, usage_api
from ..api.control import CodeLinks, create_app
from ..api.credentials import load_or_create_credentials
from ..api.router import Router
from ..api.s3.addressing import default_bases
from ..api.s3.surface import S3Context, S3Surface
from ..api.s3_webhook import S3WebhookSurface, load_or_create_token
from ..api.services import ServiceRoutes
from ..api.sqs.surface import SqsSurface
from ..api.url_handler import UrlHandler
from ..console import pages as console_pages
from ..console import policy as console_policy
from ..console.core import Console
from ..console.core import Services as ConsoleServices
from ..console.monitor import Monitor
from ..errors import LambdaError
from ..events import async_metrics
from ..events.destinations import DEFAULT_DLQ
from ..events.s3.notifications import S3_PRINCIPAL
from ..functions.code_signing import FunctionCodeSigning
from ..functions.function_configs import FunctionConfigs
from ..functions.function_settings import FunctionSettings
from ..http import listener
from ..http.limits import ByteBudget, ConnectionSlots, HttpLimits, MiB
from ..http.tls_front import serve_tls
from ..metering import calls_metrics, metrics
from ..metering.export import export_metrics
from .config import ConfigError, ServerConfig

if TYPE_CHECKING:
    from .root import Lambdalet


class ServingHttp(msgspec.Struct, frozen=True):
    """Where a Lambdalet listens, once it does."""

    port: int
    base_url: str  # http://host:port
    tls_url: str | None
    console_lines: list[str]  # what the start-up lines say of the console


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def http_limits(config: ServerConfig) -> HttpLimits:
    try:
        return HttpLimits(
            max_connections=config.max_connections,
            unauthenticated_buffer_bytes=config.unauthenticated_buffer_mb * MiB,
            head_timeout_s=config.head_timeout_s,
            body_timeout_s=config.body_timeout_s,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def check(config: ServerConfig) -> HttpLimits:
    """The HTTP settings the server refuses to start with, refused before
    anything is created."""
    if not config.auth and not is_loopback(config.host):
        raise ConfigError("--no-auth is only allowed with a loopback --host")
    if (config.tls_port is None) != (config.tls_cert is None) or (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("--tls-port, --tls-cert and --tls-key go together")
    return http_limits(config)


def _listen(config: ServerConfig) -> socket.socket:
    listen = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listen.bind((config.host, config.port))
    except OSError as exc:
        listen.close()
        raise ConfigError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}") from None
    listen.listen(1024)
    return listen


async def serve_http(lam: Lambdalet, config: ServerConfig, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    limits = check(config)
    data_dir = lam.data_dir
    keys = load_or_create_credentials(data_dir)
    with _listen(config) as listen:
        port = listen.getsockname()[1]
        host = config.host if ":" not in config.host else f"[{config.host}]"
        base_url = f"http://{host}:{port}"
        tls_url = f"https://{host}:{config.tls_port}" if config.tls_port is not None else None
        service, pool, invoker, code_holds = lam.service, lam.pool, lam.invoker, lam.code_holds
        auth_keys = keys if config.auth else None

        links = CodeLinks(
            secrets.token_bytes(32),
            base_url,
            on_issue=lambda name, sha, expires: code_holds.hold_until(lam.collector.path(sha), expires + 1, name),
        )
        settings = FunctionSettings(service, base_url, on_reserved_change=pool.set_reserved_total, code_signing=lam.code_signing)

        def provisioned_ready(name: str, qualifier: str) -> int:
            try:
                return pool.provisioned_ready(service.resolve(name, qualifier).revision_id)
            except LambdaError:
                return 0

        app = create_app(service, links, settings, lam.versions, provisioned_ready, layers=service.layers)
        s3_context = S3Context(
            lam.objects, region=config.region, account=config.account, on_events=lam.drainer.wake, can_invoke=lam.s3_invoke_check
        )
        s3_surface = S3Surface(
            s3_context, auth_keys, default_bases(config.region, config.s3_hosts), max_request_bytes=limits.unauthenticated_buffer_bytes
        )
        policy = console_policy.decide(config.console, config.host, is_loopback(config.host), tls_url)
        console = Console(
            ConsoleServices(
                service=service,
                settings=settings,
                versions=lam.versions,
                event_configs=lam.event_configs,
                async_queue=lam.async_queue,
                scheduler=lam.scheduler,
                calls=lam.calls,
                invoker=invoker,
                monitor=Monitor(lam.rollup_store, lam.rollup, lam.calls, service),
                test_events=lam.test_events,
                permissions=lam.permissions,
                granularity_ms=config.billing_granularity_ms,
                dead_letter_queue=DEFAULT_DLQ,
            ),
            app=app,
            server_addr=(config.host, port),
            policy=policy,
            data_dir=data_dir,
            keys=keys,
        )

        def forget(name: str) -> None:
            if name not in service.registry:
                settings.forget(name)
                console.forget(name)

        lam.function_changed.connect(forget)
        sqs_surface = SqsSurface(lam.sqs, auth_keys)
        webhook = S3WebhookSurface(
            load_or_create_token(data_dir),
            service,
            lam.async_queue,
            allowed=lambda name, qualifier, bucket: lam.permissions.allows(
                name,
                qualifier,
                principal=S3_PRINCIPAL,
                action="lambda:InvokeFunction",
                source_arn=f"arn:aws:s3:::{bucket}",
                source_account=config.account,
            ),
        )
        url_handler = UrlHandler(settings, invoker, keys)

        def router(port: int, secure: bool) -> Router:
            routes = ServiceRoutes(
                s3=s3_surface,
                sqs=sqs_surface,
                s3_virtual_host=s3_surface.virtual_bucket,
                console=console.surface(secure=secure),
                s3_webhook=webhook,
            )
            return Router(invoker, app, auth_keys, (config.host, port), url_handler, routes)

        async_api.register(app, lam.event_configs, lam.async_queue, lam.scheduler)
        esm_api.register(app, lam.mappings)
        policy_routes.register(app, lam.permissions)
        code_signing_routes.register(app, lam.code_signing, FunctionCodeSigning(service, lam.code_signing))
        function_config_routes.register(app, FunctionConfigs(service))
        usage_api.register(app, service, lam.calls, granularity_ms=config.billing_granularity_ms)
        console_pages.register(app, console)
        metrics.register(lam.meter)
        calls_metrics.register(lam.calls, str(data_dir))
        async_metrics.register(lam.async_queue)
        export_metrics.register(lam.exporter)

        async with trio.open_nursery() as nursery:
            # One budget and one connection cap for both ports.
            budget = ByteBudget(limits.unauthenticated_buffer_bytes)
            slots = ConnectionSlots(limits.max_connections)
            await nursery.start(functools.partial(listener.serve, listen, router(port, False), limits=limits, budget=budget, slots=slots))
            if config.tls_port is not None:
                try:
                    # Its own router: the console on it knows the port is TLS.
                    await nursery.start(
                        functools.partial(
                            serve_tls,
                            router(config.tls_port, True),
                            config.host,
                            config.tls_port,
                            config.tls_cert,
                            config.tls_key,
                            limits=limits,
                            budget=budget,
                            slots=slots,
                        )
                    )
                except (OSError, ValueError) as exc:
                    raise ConfigError(f"cannot serve TLS on {config.host}:{config.tls_port}: {exc}") from None
            lam.lock.announce(base_url)
            task_status.started(ServingHttp(port, base_url, tls_url, console_policy.banner_lines(policy, base_url, tls_url)))
