"""`lambdalet serve`: assemble the parts, print how to connect, run until
SIGTERM or SIGINT, then stop every worker."""
from __future__ import annotations

import functools
import gc
import ipaddress
import os
import pathlib
import secrets as secrets_mod
import signal
import socket
import sys
from collections.abc import Sequence

import trio

from lambdalet.sandbox import select as sandbox_select
from lambdalet.sandbox.process import ProcessBackend
from lambdalet.sandbox.runtime_root import RuntimeRoot

from ..api import async_api, code_signing_routes, esm_api, function_config_routes, policy_routes, usage_api
from ..api.control import CodeLinks, create_app, layer_owner
from ..api.credentials import load_or_create_credentials
from ..api.invoke import Invoker
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
from ..console.monitor import Monitor, queue_gauges
from ..console.rollup import Rollup
from ..console.rollup_store import RollupStore
from ..console.test_events import TestEvents
from ..errors import LambdaError
from ..events import async_metrics
from ..events.async_queue import AsyncQueue
from ..events.async_store import AsyncStore
from ..events.destinations import DEFAULT_DLQ
from ..events.esm.mappings import EventSourceMappings
from ..events.esm.poller import Pollers
from ..events.event_config import EventConfigs
from ..events.policy import s3_invoke_check
from ..events.s3.notifications import S3_PRINCIPAL
from ..events.s3.outbox import OutboxDrainer
from ..events.s3.store import ObjectStore
from ..events.scheduler import Scheduler
from ..events.sqs.service import SqsService
from ..events.sqs.store import SqsStore
from ..execution import accounting, runtime_setup
from ..execution.spares import SparePool
from ..execution.spawner import SpawnerThread
from ..functions import validation
from ..functions.code_gc import CodeCollector, CodeHolds
from ..functions.code_signing import CodeSigning, FunctionCodeSigning
from ..functions.codestore import CodeStore
from ..functions.disk_reserve import DiskReserve
from ..functions.function_configs import FunctionConfigs
from ..functions.function_settings import FunctionSettings
from ..functions.layers import LayerService
from ..functions.permissions import Permissions
from ..functions.service import FunctionService
from ..functions.storage import SQLiteStorage
from ..functions.versions import Versions
from ..http import listener
from ..http.limits import ByteBudget, ConnectionSlots, HttpLimits, MiB
from ..http.tls_front import serve_tls
from ..metering import calls_metrics, export, metrics
from ..metering.calls import CallJournal
from ..metering.export import export_metrics
from ..metering.ledger import Ledger
from ..metering.logstore import LogStore
from ..metering.meter import Meter
from .config import ServerConfig, default_cache_dir
from .datadir import DataDirBusy, DataDirLock, make_private


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConfigError(Exception):
    """A setting the server refuses to start with."""


def choose_backend(config: ServerConfig, root: RuntimeRoot, data_dir: pathlib.Path,
                   runtimes: dict[str, RuntimeRoot] | None = None):
    """Returns (backend, warnings). Functions run unisolated only when the
    operator asked for it (--sandbox process); a host where no sandbox can
    start is a ConfigError that says why and how to fix it. runtimes: the
    other interpreters' roots, by runtime name."""
    if config.sandbox == "process":
        return ProcessBackend(root, runtimes), [
            f"sandbox: plain processes ({sandbox_select.UNISOLATED_OPTION}) — functions are NOT isolated from this host"]
    try:
        return sandbox_select.choose_backend(root, data_dir, zygote=config.zygote, tasks_max=config.tasks_max,
                                             runtimes=runtimes)
    except sandbox_select.SandboxUnavailable as exc:
        raise ConfigError(str(exc)) from None


def _banner(config: ServerConfig, data_dir: pathlib.Path, backend, warnings: list[str], port: int,
            runtimes: runtime_setup.ServerRuntimes | None = None, console_lines: Sequence[str] = ()) -> str:
    host = config.host if ":" not in config.host else f"[{config.host}]"
    url = f"http://{host}:{port}"
    lines = [f"lambdalet serving the Lambda API on {url}"]
    if config.tls_port is not None:
        lines.append(f"  and over TLS + HTTP/2 on https://{host}:{config.tls_port}")
    lines += [f"  data dir: {data_dir}", f"  sandbox backend: {backend.name}"]
    protections = backend.protections()
    on = [k for k, v in protections.items() if v]
    off = [k for k, v in protections.items() if not v]
    lines.append(f"  protections on: {', '.join(on) or 'none'}")
    if protections.get("seccomp_allow_list"):
        from lambdalet.sandbox import seccomp

        lines.append(f"  {seccomp.summary()}")
    if off:
        lines.append(f"  WARNING protections OFF: {', '.join(off)}")
    for w in warnings:
        lines.append(f"  WARNING {w}")
    if runtimes is not None:
        lines.extend(f"  {line}" for line in runtime_setup.lines(runtimes, backend))
    if not config.auth:
        lines.append("  WARNING authentication is OFF (--no-auth)")
    lines.extend(f"  {line}" for line in console_lines)
    lines.append("Use it from boto3 or the aws CLI:")
    creds = data_dir / "credentials"
    lines.append(
        f"  export AWS_ENDPOINT_URL={url} AWS_SHARED_CREDENTIALS_FILE={creds} "
        f"AWS_REGION={config.region} AWS_DEFAULT_REGION={config.region}"
    )
    return "\n".join(lines)


async def run(config: ServerConfig, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    if not config.auth and not is_loopback(config.host):
        raise ConfigError("--no-auth is only allowed with a loopback --host")
    if (config.tls_port is None) != (config.tls_cert is None) or (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("--tls-port, --tls-cert and --tls-key go together")
    for pem in (config.tls_cert, config.tls_key):
        if pem is not None and not os.access(pem, os.R_OK):
            raise ConfigError(f"cannot read {pem}")
    http_limits(config)  # refused before anything is created
    export_targets(config)
    data_dir = pathlib.Path(config.data_dir).resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Before anything is written in it, whatever mode it had.
        os.chmod(data_dir, 0o700)
        lock = DataDirLock(data_dir).acquire()
    except DataDirBusy as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot use the data dir {data_dir}: {exc.strerror}") from None
    try:
        await _run(config, data_dir, lock, task_status)
    finally:
        lock.close()


def http_limits(config: ServerConfig) -> HttpLimits:
    try:
        return HttpLimits(max_connections=config.max_connections,
                          unauthenticated_buffer_bytes=config.unauthenticated_buffer_mb * MiB,
                          head_timeout_s=config.head_timeout_s, body_timeout_s=config.body_timeout_s)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def export_targets(config: ServerConfig):
    try:
        return export.targets(config.export_otlp, config.export_syslog)
    except export.ExportConfigError as exc:
        raise ConfigError(str(exc)) from None


async def _run(config: ServerConfig, data_dir: pathlib.Path, lock: DataDirLock, task_status) -> None:
    limits = http_limits(config)
    keys = load_or_create_credentials(data_dir)
    storage = SQLiteStorage(data_dir / "lambdalet.db")
    async_store = AsyncStore(data_dir / "queue.db")
    # Metering: counters in a shared mapping, the usage ledger and the logs,
    # a call's usage row and log journaled together before it is answered
    # (calls.py says how).
    meter = Meter(data_dir / "meter.bin")
    meter.recover()
    ledger = Ledger(data_dir, rollup_days=config.usage_rollup_days)
    logstore = LogStore(data_dir, retention_days=config.log_retention_days, max_bytes=config.log_max_mb << 20)
    calls = CallJournal(data_dir, ledger, logstore)
    # The operator's export, when asked for: the hook only appends to its buffers.
    exporter = export.build(*export_targets(config), region=config.region, account=config.account,
                            max_calls=config.export_buffer_calls)
    accountant = accounting.Accounting(meter, calls, granularity_ms=config.billing_granularity_ms, account=config.account,
                                       export=exporter.record if exporter is not None else None)
    codes = CodeStore(data_dir / "code")
    objects = ObjectStore(data_dir / "s3", max_object_bytes=config.s3_max_object_mb * MiB,
                          quota_bytes=config.s3_quota_mb * MiB, region=config.region)
    # What a kill left behind: blobs written for a PUT that never committed.
    objects.recover()
    # The console's per-minute rollup of the meter, and its saved test events.
    rollup_store = RollupStore(data_dir / "console.db")
    test_events = TestEvents(data_dir / "console.db")
    try:
        runtimes = runtime_setup.prepare(data_dir, default_cache_dir(), config.pythons, config.runtime_map)
    except ValueError as exc:  # a --python or --runtime-map that cannot be honoured
        raise ConfigError(str(exc)) from None
    # What the stores just created, and what earlier versions left.
    make_private(data_dir)
    backend, warnings = choose_backend(config, runtimes.default, data_dir, runtimes.others)
    try:
        runtime_setup.write_state(data_dir, runtimes)
    except OSError as exc:
        # Only for `lambdalet doctor`; a full disk must not keep the server
        # (and the API that frees space) from starting.
        warnings.append(f"cannot write {runtime_setup.STATE_FILE} for `lambdalet doctor`: {exc.strerror}")

    listen = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listen.bind((config.host, config.port))
    except OSError as exc:
        listen.close()
        raise ConfigError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}") from None
    listen.listen(1024)
    port = listen.getsockname()[1]

    try:
        async with trio.open_nursery() as nursery:
            def reserved_for(name: str) -> int | None:
                rec = service.registry.get(name)
                return rec.reserved_concurrency if rec is not None else None

            consoles: list[Console] = []
            spawner = SpawnerThread()
            code_holds = CodeHolds()
            spares = None
            # Handing a spare to a function mounts its code from outside the
            # sandbox (setns + move_mount), which takes root.
            if config.spare_sandboxes > 0 and getattr(backend, "name", "") == "namespaced" and os.geteuid() == 0:
                spares = SparePool(backend, spawner, data_dir / "empty-task", size=config.spare_sandboxes, idle_timeout_s=config.idle_timeout_s)
            pool = accounting.MeteredPool(backend, meter=meter, billing_granularity_ms=config.billing_granularity_ms, on_call=accountant.on_call, concurrency_limit=config.concurrency_limit, idle_timeout_s=config.idle_timeout_s, reserved_for=reserved_for, memory_budget_mb=config.memory_budget_mb, spawner=spawner, spares=spares, code_holds=code_holds, freeze_after_s=config.freeze_idle_ms / 1000)
            invoker_box: list[Invoker] = []

            def on_change(name: str) -> None:
                latest = service.registry.get(name)
                live = {r.revision_id for r in service.versions.get(name, {}).values()}
                if latest is not None:
                    live.add(latest.revision_id)
                pool.drop(name, live)
                # A deleted function's reservation returns to the shared pool.
                pool.set_reserved_total(service.reserved_total())
                if name not in service.registry:
                    nursery.start_soon(event_configs.forget, name)
                    code_holds.revoke(name)  # its download links end with it
                    # Lookups kept per function name, which would grow with
                    # every function ever deleted.
                    meter.forget(name)
                    settings.forget(name)
                    for console in consoles:
                        console.forget(name)
                if invoker_box:
                    invoker_box[0].forget(name)
                    sync_provisioned()

            def sync_provisioned() -> None:
                targets = []
                for rec, _q, n in versions.provisioned_targets():
                    try:
                        targets.append((invoker.spec_for(rec), n))
                    except LambdaError as exc:  # a runtime this server (as started) cannot run
                        print(f"lambdalet: provisioned concurrency for {rec.name}: {exc.message}", flush=True)
                pool.set_provisioned(targets)

            def provisioned_ready(name: str, qualifier: str) -> int:
                try:
                    return pool.provisioned_ready(service.resolve(name, qualifier).revision_id)
                except LambdaError:
                    return 0

            # Room kept back so that deletes work on a full disk.
            reserve = DiskReserve(data_dir / "disk-reserve")
            await nursery.start(reserve.run)
            service = FunctionService(storage, codes, region=config.region, account=config.account, concurrency_limit=config.concurrency_limit, on_change=on_change, runtimes=runtimes.catalog,
                                      on_code_unneeded=lambda *digests: collector.suspect(*digests), reserve=reserve)
            service.layers = LayerService(storage, codes, region=config.region, account=config.account, lock=service._lock,
                                          runtimes=validation.MODEL_RUNTIMES,
                                          on_code_unneeded=lambda *digests: collector.suspect(*digests),
                                          on_version_deleted=lambda name, version: code_holds.revoke(layer_owner(name, version)))
            collector = CodeCollector(codes, code_holds, service.referenced_code, service._lock,
                                      on_removed=getattr(backend, "forget_code", lambda path: None))
            # Before any call: what a kill left behind (code stored for a
            # create that never committed, code of a committed delete).
            collector.sweep()
            invoker = Invoker(service, pool, nursery)
            permissions = Permissions(service)
            # Event sources ask the functions' resource policies (AddPermission).
            invoke_policy = permissions

            def function_exists(name: str, qualifier: str) -> bool:
                try:
                    service.resolve(name, None if qualifier == "$LATEST" else qualifier)
                except LambdaError:
                    return False
                return True
            invoker_box.append(invoker)
            event_configs = EventConfigs(async_store, service)
            async_queue = AsyncQueue(async_store, service, event_configs, pool, invoker.spec_for, retry_delay_s=config.retry_delay_s)
            invoker.async_queue = async_queue
            scheduler = Scheduler(async_store, async_queue, service)
            async_metrics.register(async_queue)
            host = config.host if ":" not in config.host else f"[{config.host}]"
            base_url = f"http://{host}:{port}"
            links = CodeLinks(secrets_mod.token_bytes(32), base_url,
                              on_issue=lambda name, sha, expires: code_holds.hold_until(collector.path(sha), expires + 1, name))
            settings = FunctionSettings(service, base_url, on_reserved_change=pool.set_reserved_total)
            pool.set_reserved_total(service.reserved_total())
            versions = Versions(service, on_provisioned=sync_provisioned)
            sync_provisioned()
            app = create_app(service, links, settings, versions, provisioned_ready, layers=service.layers)
            def version_of(name: str, qualifier: str) -> str:
                try:
                    return getattr(service.resolve(name, None if qualifier == "$LATEST" else qualifier), "version", "$LATEST")
                except LambdaError:
                    return qualifier  # gone: the dispatcher records it in the dead-letter queue

            drainer = OutboxDrainer(
                objects, async_queue, version_of=version_of,
                allowed=lambda row: invoke_policy.allows(row.function, row.qualifier, principal=S3_PRINCIPAL, action="lambda:InvokeFunction",
                                                         source_arn=row.source_arn, source_account=config.account))
            s3_context = S3Context(objects, region=config.region, account=config.account, on_events=drainer.wake,
                                   can_invoke=s3_invoke_check(invoke_policy, function_exists, region=config.region, account=config.account))
            s3_surface = S3Surface(s3_context, keys if config.auth else None, default_bases(config.region, config.s3_hosts),
                                   max_request_bytes=limits.unauthenticated_buffer_bytes)
            sqs = SqsService(SqsStore(async_store, builtin=(DEFAULT_DLQ,)), region=config.region, account=config.account)
            async_queue.on_message = sqs.notify
            pollers = Pollers(sqs, pool, invoker.spec_for)
            mappings = EventSourceMappings(async_store, sqs, service, region=config.region, account=config.account,
                                           start_poller=pollers.start, stop_poller=pollers.stop)
            pollers.mappings = mappings
            mappings.start_all()
            rollup = Rollup(meter, rollup_store, gauges=queue_gauges(async_store, DEFAULT_DLQ))
            tls_url = f"https://{host}:{config.tls_port}" if config.tls_port is not None else None
            policy = console_policy.decide(config.console, config.host, is_loopback(config.host), tls_url)
            console = Console(ConsoleServices(service=service, settings=settings, versions=versions, event_configs=event_configs,
                                              async_queue=async_queue, scheduler=scheduler, calls=calls, invoker=invoker,
                                              monitor=Monitor(rollup_store, rollup, calls, service), test_events=test_events,
                                              permissions=permissions,
                                              granularity_ms=config.billing_granularity_ms, dead_letter_queue=DEFAULT_DLQ),
                              app=app, server_addr=(config.host, port), policy=policy, data_dir=data_dir, keys=keys)
            consoles.append(console)
            sqs_surface = SqsSurface(sqs, keys if config.auth else None)
            webhook = S3WebhookSurface(
                load_or_create_token(data_dir), service, async_queue,
                allowed=lambda name, qualifier, bucket: invoke_policy.allows(
                    name, qualifier, principal=S3_PRINCIPAL, action="lambda:InvokeFunction",
                    source_arn=f"arn:aws:s3:::{bucket}", source_account=config.account))
            url_handler = UrlHandler(settings, invoker, keys)

            def routes(secure: bool) -> ServiceRoutes:
                return ServiceRoutes(s3=s3_surface, sqs=sqs_surface, s3_virtual_host=s3_surface.virtual_bucket,
                                     console=console.surface(secure=secure), s3_webhook=webhook)
            router = Router(invoker, app, keys if config.auth else None, (config.host, port), url_handler, routes(False))
            async_api.register(app, event_configs, async_queue, scheduler)
            esm_api.register(app, mappings)
            policy_routes.register(app, permissions)
            code_signing = CodeSigning(storage, region=config.region, account=config.account,
                                       warn=lambda message: print(f"lambdalet: {message}", flush=True))
            service.code_signing = code_signing
            settings.code_signing = code_signing
            code_signing_routes.register(app, code_signing, FunctionCodeSigning(service, code_signing))
            function_config_routes.register(app, FunctionConfigs(service))
            usage_api.register(app, service, calls, granularity_ms=config.billing_granularity_ms)
            console_pages.register(app, console)
            metrics.register(meter)
            calls_metrics.register(calls, str(data_dir))
            export_metrics.register(exporter)
            await nursery.start(calls.run)
            if exporter is not None:
                await nursery.start(exporter.run)
            await nursery.start(pool.run)
            await nursery.start(collector.run)
            if spares is not None:
                await nursery.start(spares.run)
            await nursery.start(async_queue.run)
            await nursery.start(drainer.run)
            await nursery.start(pollers.run)
            await nursery.start(scheduler.run)
            await nursery.start(rollup.run)
            # One budget and one connection cap for both ports.
            budget = ByteBudget(limits.unauthenticated_buffer_bytes)
            slots = ConnectionSlots(limits.max_connections)
            await nursery.start(functools.partial(listener.serve, listen, router, limits=limits, budget=budget, slots=slots))
            if config.tls_port is not None:
                try:
                    # Its own router: the console on it knows the port is TLS.
                    tls_router = Router(invoker, app, keys if config.auth else None, (config.host, config.tls_port), url_handler, routes(True))
                    await nursery.start(functools.partial(serve_tls, tls_router, config.host, config.tls_port, config.tls_cert, config.tls_key,
                                                          limits=limits, budget=budget, slots=slots))
                except (OSError, ValueError) as exc:
                    raise ConfigError(f"cannot serve TLS on {config.host}:{config.tls_port}: {exc}") from None
            lock.announce(base_url)
            print(_banner(config, data_dir, backend, warnings, port, runtimes,
                          console_policy.banner_lines(policy, base_url, tls_url) + (exporter.describe() if exporter else [])), flush=True)
            # What start-up built lives as long as the server: keep the
            # collector's full passes from walking it again and again (one
            # such pass stalled every request for ~30 ms under load).
            gc.freeze()
            task_status.started(port)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    print(f"lambdalet: {signal.Signals(signum).name} received, stopping", flush=True)
                    nursery.cancel_scope.cancel()
                    break
    finally:
        listen.close()
        backend.close()
        storage.close()
        async_store.close()
        calls.close()
        objects.close()
        rollup_store.close()
        test_events.close()
        ledger.close()
        logstore.close()
        meter.close()


def serve(config: ServerConfig) -> int:
    try:
        trio.run(run, config)
    except ConfigError as exc:
        print(f"lambdalet: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print("lambdalet: stopped", flush=True)
    return 0


