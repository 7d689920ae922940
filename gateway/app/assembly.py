"""The composition root: every part of the server built in dependency order.

Entering builds each part with what it needs in its constructor: the
stores, the sandbox backend, the function service, the pool, the event
sources, then starts their background tasks. A part that must tell a part
built after it (a function changed, provisioned concurrency changed, a
poller must start) is given a Relay (relay.py). Everything opened is closed
by one exit stack, in the reverse order, when the block ends. The HTTP
surfaces (http_front.py) are built only when HTTP is served.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from typing import Any, TypeVar

import trio

from ..api.control import layer_owner
from ..api.invoke import Invoker
from ..console.monitor import queue_gauges
from ..console.rollup import Rollup
from ..console.rollup_store import RollupStore
from ..console.test_events import TestEvents
from ..errors import LambdaError
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
from ..execution import accounting
from ..execution.spares import SparePool
from ..execution.spawner import SpawnerThread
from ..execution.specs import FunctionSpecs
from ..functions import validation
from ..functions.code_gc import CodeCollector, CodeHolds
from ..functions.code_signing import CodeSigning
from ..functions.codestore import CodeStore
from ..functions.disk_reserve import DiskReserve
from ..functions.layers import LayerService
from ..functions.permissions import Permissions
from ..functions.service import FunctionService
from ..functions.storage import SQLiteStorage
from ..functions.versions import Versions
from ..http.limits import MiB
from ..metering import export
from ..metering.calls import CallJournal
from ..metering.ledger import Ledger
from ..metering.logstore import LogStore
from ..metering.meter import Meter
from .backend import open_backend
from .config import ConfigError, ServerConfig, default_data_dir
from .datadir import DataDirBusy, DataDirLock
from .relay import Relay

_A = TypeVar("_A", bound="Assembly")


class Assembly:
    """Every part of the server, built and started on entering, closed on
    leaving. root.Lambdalet adds the embedding API over them."""

    def __init__(self, data_dir: str | os.PathLike | None = None, *, config: ServerConfig | None = None, **options: Any) -> None:
        if config is None:
            config = ServerConfig(data_dir=str(data_dir if data_dir is not None else default_data_dir()), **options)
        elif data_dir is not None or options:
            raise TypeError("pass either config= or data_dir and options, not both")
        self.config = config
        self.data_dir = pathlib.Path(config.data_dir).resolve()
        self._stack: contextlib.AsyncExitStack | None = None
        self._serving = False

    # -- assembly ----------------------------------------------------------

    async def __aenter__(self: _A) -> _A:
        if self._stack is not None:
            raise RuntimeError("this Lambdalet is already open")
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            self._open_stores(stack)
            self._open_backend(stack)
            self._nursery = await stack.enter_async_context(trio.open_nursery())
            # Cancelled first when the block ends: the background tasks stop
            # (the pool destroys every sandbox), then the stores close.
            stack.callback(self._nursery.cancel_scope.cancel)
            # Room kept back so that deletes work on a full disk.
            self.reserve = DiskReserve(self.data_dir / "disk-reserve")
            await self._nursery.start(self.reserve.run)
            self._build_functions()
            self._build_execution()
            self._build_events()
            self._connect()
            await self._start()
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, exc_type, exc, tb) -> bool | None:
        stack, self._stack = self._stack, None
        assert stack is not None
        try:
            return await stack.__aexit__(exc_type, exc, tb)
        except BaseException as raised:
            # The block ran inside the background tasks' nursery, which wraps
            # what the block raised in an exception group: the caller gets
            # its own exception back (a LambdaError from invoke(), say).
            if exc is not None and getattr(raised, "exceptions", None) == (exc,):
                return False
            raise

    def _open_stores(self, stack: contextlib.AsyncExitStack) -> None:
        config, data_dir = self.config, self.data_dir
        export_targets = _export_targets(config)  # refused before anything is created
        try:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Before anything is written in it, whatever mode it had.
            os.chmod(data_dir, 0o700)
            self.lock = DataDirLock(data_dir).acquire()
        except DataDirBusy as exc:
            raise ConfigError(str(exc)) from None
        except OSError as exc:
            raise ConfigError(f"cannot use the data dir {data_dir}: {exc.strerror}") from None
        stack.callback(self.lock.close)
        self.storage = _closing(stack, SQLiteStorage(data_dir / "lambdalet.db"))
        self.async_store = _closing(stack, AsyncStore(data_dir / "queue.db"))
        # Metering: counters in a shared mapping, the usage ledger and the
        # logs, a call's usage row and log journaled together before it is
        # answered (metering/calls.py says how).
        self.meter = _closing(stack, Meter(data_dir / "meter.bin"))
        self.meter.recover()
        self.ledger = _closing(stack, Ledger(data_dir, rollup_days=config.usage_rollup_days))
        self.logstore = _closing(stack, LogStore(data_dir, retention_days=config.log_retention_days, max_bytes=config.log_max_mb << 20))
        self.calls = _closing(stack, CallJournal(data_dir, self.ledger, self.logstore))
        # The operator's export, when asked for: the hook only appends to its buffers.
        self.exporter = export.build(*export_targets, region=config.region, account=config.account, max_calls=config.export_buffer_calls)
        self.codes = CodeStore(data_dir / "code")
        self.objects = _closing(
            stack,
            ObjectStore(
                data_dir / "s3", max_object_bytes=config.s3_max_object_mb * MiB, quota_bytes=config.s3_quota_mb * MiB, region=config.region
            ),
        )
        # What a kill left behind: blobs written for a PUT that never committed.
        self.objects.recover()
        # The console's per-minute rollup of the meter, and its saved test events.
        self.rollup_store = _closing(stack, RollupStore(data_dir / "console.db"))
        self.test_events = _closing(stack, TestEvents(data_dir / "console.db"))

    def _open_backend(self, stack: contextlib.AsyncExitStack) -> None:
        self.runtimes, self.backend, self.warnings = open_backend(self.config, self.data_dir)
        stack.callback(self.backend.close)
        self.spawner = SpawnerThread()
        stack.callback(self.spawner.close)

    def _build_functions(self) -> None:
        config = self.config
        self.function_changed: Relay[[str]] = Relay("function change")
        self.code_unneeded: Relay[...] = Relay("unneeded code")
        self.provisioned_changed: Relay[[]] = Relay("provisioned concurrency")
        self.code_holds = CodeHolds()
        # One lock for every store-then-persist of code, functions' and layers'
        # alike (functions/code_gc.py says why).
        code_lock = trio.Lock()
        self.code_signing = CodeSigning(
            self.storage, region=config.region, account=config.account, warn=lambda message: print(f"lambdalet: {message}", flush=True)
        )
        layers = LayerService(
            self.storage,
            self.codes,
            region=config.region,
            account=config.account,
            lock=code_lock,
            runtimes=validation.MODEL_RUNTIMES,
            on_code_unneeded=self.code_unneeded,
            on_version_deleted=lambda name, version: self.code_holds.revoke(layer_owner(name, version)),
        )
        self.service = service = FunctionService(
            self.storage,
            self.codes,
            region=config.region,
            account=config.account,
            concurrency_limit=config.concurrency_limit,
            on_change=self.function_changed,
            on_code_unneeded=self.code_unneeded,
            runtimes=self.runtimes.catalog,
            reserve=self.reserve,
            lock=code_lock,
            layers=layers,
            code_signing=self.code_signing,
        )
        self.collector = CodeCollector(self.codes, self.code_holds, service.referenced_code, code_lock, on_removed=self.backend.forget_code)
        self.versions = Versions(service, on_provisioned=self.provisioned_changed)
        self.permissions = Permissions(service)
        self.specs = FunctionSpecs(service)

    def _build_execution(self) -> None:
        config, service = self.config, self.service
        accountant = accounting.Accounting(
            self.meter,
            self.calls,
            granularity_ms=config.billing_granularity_ms,
            account=config.account,
            export=self.exporter.record if self.exporter is not None else None,
        )
        self.spares = None
        # Handing a spare to a function mounts its code from outside the
        # sandbox (setns + move_mount), which takes root.
        if config.spare_sandboxes > 0 and self.backend.name == "namespaced" and os.geteuid() == 0:
            self.spares = SparePool(
                self.backend, self.spawner, self.data_dir / "empty-task", size=config.spare_sandboxes, idle_timeout_s=config.idle_timeout_s
            )

        def reserved_for(name: str) -> int | None:
            rec = service.registry.get(name)
            return rec.reserved_concurrency if rec is not None else None

        self.pool = accounting.MeteredPool(
            self.backend,
            meter=self.meter,
            billing_granularity_ms=config.billing_granularity_ms,
            on_call=accountant.on_call,
            concurrency_limit=config.concurrency_limit,
            idle_timeout_s=config.idle_timeout_s,
            reserved_for=reserved_for,
            memory_budget_mb=config.memory_budget_mb,
            spawner=self.spawner,
            spares=self.spares,
            code_holds=self.code_holds,
            freeze_after_s=config.freeze_idle_ms / 1000,
        )

    def _build_events(self) -> None:
        config, service, nursery = self.config, self.service, self._nursery
        self.event_configs = EventConfigs(self.async_store, service)
        self.sqs = SqsService(SqsStore(self.async_store, builtin=(DEFAULT_DLQ,)), region=config.region, account=config.account)
        self.async_queue = AsyncQueue(
            self.async_store,
            service,
            self.event_configs,
            self.pool,
            self.specs.spec_for,
            retry_delay_s=config.retry_delay_s,
            on_message=self.sqs.notify,
        )
        self.invoker = Invoker(service, self.pool, nursery, self.specs, self.async_queue)
        self.scheduler = Scheduler(self.async_store, self.async_queue, service)
        policy = self.permissions  # event sources ask the functions' resource policies (AddPermission)

        def version_of(name: str, qualifier: str) -> str:
            try:
                return service.resolve(name, None if qualifier == "$LATEST" else qualifier).version
            except LambdaError:
                return qualifier  # gone: the dispatcher records it in the dead-letter queue

        def function_exists(name: str, qualifier: str) -> bool:
            try:
                service.resolve(name, None if qualifier == "$LATEST" else qualifier)
            except LambdaError:
                return False
            return True

        self.drainer = OutboxDrainer(
            self.objects,
            self.async_queue,
            version_of=version_of,
            allowed=lambda row: policy.allows(
                row.function,
                row.qualifier,
                principal=S3_PRINCIPAL,
                action="lambda:InvokeFunction",
                source_arn=row.source_arn,
                source_account=config.account,
            ),
        )
        self.s3_invoke_check = s3_invoke_check(policy, function_exists, region=config.region, account=config.account)
        start_poller: Relay[...] = Relay("start poller")
        stop_poller: Relay[[str]] = Relay("stop poller")
        self.mappings = EventSourceMappings(
            self.async_store,
            self.sqs,
            service,
            region=config.region,
            account=config.account,
            start_poller=start_poller,
            stop_poller=stop_poller,
        )
        self.pollers = Pollers(self.sqs, self.pool, self.specs.spec_for, self.mappings)
        start_poller.connect(self.pollers.start)
        stop_poller.connect(self.pollers.stop)
        self.rollup = Rollup(self.meter, self.rollup_store, gauges=queue_gauges(self.async_store, DEFAULT_DLQ))

    def _connect(self) -> None:
        """The feedback edges, connected now that both ends exist."""
        self.code_unneeded.connect(self.collector.suspect)
        self.function_changed.connect(self._function_changed)
        self.provisioned_changed.connect(self._sync_provisioned)

    def _function_changed(self, name: str) -> None:
        service, pool = self.service, self.pool
        latest = service.registry.get(name)
        live = {r.revision_id for r in service.versions.get(name, {}).values()}
        if latest is not None:
            live.add(latest.revision_id)
        pool.drop(name, live)
        # A deleted function's reservation returns to the shared pool.
        pool.set_reserved_total(service.reserved_total())
        if name not in service.registry:
            self._nursery.start_soon(self.event_configs.forget, name)
            self.code_holds.revoke(name)  # its download links end with it
            # Lookups kept per function name, which would grow with every
            # function ever deleted.
            self.meter.forget(name)
        self.specs.forget(name)
        self._sync_provisioned()

    def _sync_provisioned(self) -> None:
        targets = []
        for rec, _q, n in self.versions.provisioned_targets():
            try:
                targets.append((self.specs.spec_for(rec), n))
            except LambdaError as exc:  # a runtime this server (as started) cannot run
                print(f"lambdalet: provisioned concurrency for {rec.name}: {exc.message}", flush=True)
        self.pool.set_provisioned(targets)

    async def _start(self) -> None:
        # Before any call: what a kill left behind (code stored for a create
        # that never committed, code of a committed delete).
        self.collector.sweep()
        self.pool.set_reserved_total(self.service.reserved_total())
        self._sync_provisioned()
        self.mappings.start_all()
        nursery = self._nursery
        await nursery.start(self.calls.run)
        if self.exporter is not None:
            await nursery.start(self.exporter.run)
        await nursery.start(self.pool.run)
        await nursery.start(self.collector.run)
        if self.spares is not None:
            await nursery.start(self.spares.run)
        await nursery.start(self.async_queue.run)
        await nursery.start(self.drainer.run)
        await nursery.start(self.pollers.run)
        await nursery.start(self.scheduler.run)
        await nursery.start(self.rollup.run)


def _export_targets(config: ServerConfig):
    try:
        return export.targets(
            config.export_otlp, config.export_syslog, config.export_otlp_headers, os.environ.get("OTEL_EXPORTER_OTLP_HEADERS")
        )
    except export.ExportConfigError as exc:
        raise ConfigError(str(exc)) from None


def _closing(stack: contextlib.AsyncExitStack, resource):
    stack.callback(resource.close)
    return resource
