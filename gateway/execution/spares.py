"""Spare sandboxes: started before anyone asks, handed to the first caller.

A cold start that has to build a sandbox and start Python inside it costs
tens of milliseconds. A spare is a sandbox whose runtime has already
started, with an empty task root; handing it to a function takes a cgroup
resize, mounting the function's code into it (sandbox/attach.py) and the
handler's import. That brings a cold start under the time of a bare
`python3 -I -S -c pass`.

Spares exist only while the server is being used: the pool is filled on the
first call and emptied after an idle period, so a server whose functions
are never called runs no process at all. A spare never ran user code, and is
used once: a sandbox is never shared by two functions.

A Node.js function can take a spare whose runtime (node with Lambdalet's
runtime client loaded) has started already and waits for the function's
environment: the cold start then skips Node.js's own start. Such spares
are kept per program, on the first demand for them, like the others.

A spare runs one interpreter, so there are spares per interpreter
(runtime name), each set filled on its own first demand and emptied after
its own idle period: a server whose functions all use python3.12 keeps
python3.12 spares and nothing else; one that also serves python3.13 keeps
both sets while both are called.
"""

from __future__ import annotations

import logging
import pathlib
import uuid

import trio

from lambdalet.sandbox.spec import SandboxBackend, SandboxSpec

from .instance import Instance, WorkerGone
from .languages import Launch
from .runtime_api import session as runtime_api
from .spawner import SpawnerThread

log = logging.getLogger("lambdalet.spares")

SPARE_EPHEMERAL_MB = 512  # functions asking for more /tmp get a sandbox of their own
READY_TIMEOUT_S = 10.0
SPARE_START_MEMORY_MB = 1769
REFILL_DELAY_S = 0.05


class SparePool:
    def __init__(
        self, backend: SandboxBackend, spawner: SpawnerThread, empty_dir: pathlib.Path, *, size: int = 2, idle_timeout_s: float = 300.0
    ) -> None:
        self.backend = backend
        self.spawner = spawner
        self.empty_dir = empty_dir
        empty_dir.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.idle_timeout_s = idle_timeout_s
        # By runtime name ("" the backend's default interpreter).
        self._ready: dict[str, list[Instance]] = {}
        self._starting: dict[str, int] = {}
        self._last_demand: dict[str, float] = {}
        # Keys of spares that start a language runtime: key -> (interpreter, what to start).
        self._languages: dict[str, tuple[str, Launch]] = {}
        self._wanted = trio.Event()
        self.handed_out = 0
        self.failures = 0

    def eligible(self, ephemeral_mb: int, network: str = "none", layers: tuple = ()) -> bool:
        return self.size > 0 and ephemeral_mb == SPARE_EPHEMERAL_MB and network == "none" and not layers

    def take(self, runtime: str = "", language: Launch | None = None) -> Instance | None:
        """A ready spare running this interpreter (and, with language, that
        language's runtime started in it already, waiting for its function:
        execution/languages.py), or None. Either way the pool refills
        behind it."""
        key = self._key(runtime, language)
        self._last_demand[key] = trio.current_time()
        self._wanted.set()
        ready = self._ready.get(key)
        if not ready:
            return None
        self.handed_out += 1
        return ready.pop()

    def _key(self, runtime: str, language: Launch | None) -> str:
        if language is None:
            return runtime
        key = f"{runtime}|{language.program}"
        self._languages[key] = (runtime, language)
        return key

    def ready(self, runtime: str = "", language: Launch | None = None) -> int:
        """Spares of this interpreter (and language runtime) ready now."""
        return len(self._ready.get(self._key(runtime, language), ()))

    def statistics(self) -> dict[str, int]:
        return {
            "ready": sum(map(len, self._ready.values())),
            "starting": sum(self._starting.values()),
            "handed_out": self.handed_out,
            "failures": self.failures,
        }

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await self._wanted.wait()
                self._wanted = trio.Event()
                while True:
                    now = trio.current_time()
                    wanted = [rt for rt, at in self._last_demand.items() if now - at < self.idle_timeout_s]
                    for runtime in [rt for rt in {*self._last_demand, *self._ready} if rt not in wanted]:
                        # Nobody has asked for this interpreter for a while: scale it to zero.
                        self._last_demand.pop(runtime, None)
                        await self._drain(runtime)
                    if not wanted:
                        break
                    short = [rt for rt in wanted if len(self._ready.get(rt, ())) + self._starting.get(rt, 0) < self.size]
                    if short:
                        # Building a sandbox takes a core for tens of ms; let
                        # the cold start that took the spare finish first.
                        await trio.sleep_until(max(self._last_demand.values(), default=now) + REFILL_DELAY_S)
                        await self._start_one(short[0])
                        continue
                    expiry = min(self._last_demand[rt] for rt in wanted) + self.idle_timeout_s
                    with trio.move_on_after(max(0.0, expiry - trio.current_time())):
                        await self._wanted.wait()
                        self._wanted = trio.Event()
        finally:
            with trio.CancelScope(shield=True):
                for runtime in list(self._ready):
                    await self._drain(runtime)

    async def _start_one(self, key: str) -> None:
        runtime, language = self._languages.get(key, (key, None))
        spec = SandboxSpec(
            instance_id=f"spare-{uuid.uuid4().hex}",
            function_name="",
            code_dir=str(self.empty_dir),
            # One full vCPU while Python starts (CPU follows memory); the
            # limits are cut to the function's MemorySize when handed out.
            memory_mb=SPARE_START_MEMORY_MB,
            ephemeral_mb=SPARE_EPHEMERAL_MB,
            runtime=runtime,
        )
        self._starting[key] = self._starting.get(key, 0) + 1
        try:
            try:
                sandbox = await self.spawner.run(lambda: self.backend.spawn(spec), on_abandoned=lambda s: s.destroy())
            except OSError as exc:
                self.failures += 1
                log.warning("could not start a spare sandbox: %s", exc)
                await trio.sleep(1.0)
                return
            inst = Instance(uuid.uuid4().hex, sandbox, "")
            try:
                with trio.fail_after(READY_TIMEOUT_S):
                    await inst.wait_ready()
                    if language is not None:
                        await runtime_api.prelaunch(inst, sandbox.task_root, language)
            except BaseException as exc:
                # Not ready (or shutting down): this spare is nobody's, so it
                # is destroyed here whatever interrupted it.
                if isinstance(exc, (WorkerGone, trio.TooSlowError)):
                    self.failures += 1
                trio.lowlevel.notify_closing(inst.sock)
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(inst.destroy)
                if isinstance(exc, (WorkerGone, trio.TooSlowError)):
                    return
                raise
            self._ready.setdefault(key, []).append(inst)
        finally:
            self._starting[key] -= 1

    async def _drain(self, runtime: str) -> None:
        spares = self._ready.pop(runtime, [])
        for inst in spares:
            trio.lowlevel.notify_closing(inst.sock)
            await trio.to_thread.run_sync(inst.destroy)
