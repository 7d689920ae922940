"""The server's side of the export worker (worker.py): a Sink whose
encode only packs the batch into a frame, and whose deliver hands the
frame to the worker process and reads its answer. The worker is started
on first use and again after it exits; stopping closes its stdin and
waits for it (it is killed if it does not end within WORKER_EXIT_S)."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import trio

from .sinks import Call, Rejected, Retry
from .worker import Answer, Batch, SinkSpec, frame, read_frame

# What encode makes of a batch: (its sequence number, its frame for the worker).
Frame = tuple[int, bytes]

WORKER_EXIT_S = 5.0
WORKER_MODULE = "lambdalet.gateway.metering.export"  # its __main__.py runs worker.main


class ProcessSink:
    def __init__(self, spec: SinkSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder(Answer).decode
        self._argv = [sys.executable, "-m", WORKER_MODULE]
        self._seq = 0
        self._proc: trio.Process | None = None
        self._pending = bytearray()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        """Starts the worker ahead of the first batch (a Python start takes
        a second or more on a busy host). A failure here is retried by the
        first delivery."""
        try:
            await self._spawn()
        except OSError:
            pass

    async def _spawn(self) -> trio.Process:
        self._pending = bytearray()
        self._proc = proc = await trio.lowlevel.open_process(self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdin is not None
        await proc.stdin.send_all(frame(self._encode(self.spec)))
        return proc

    def encode(self, batch: list[Call], now_ns: int) -> list[Frame]:
        self._seq += 1
        return [(self._seq, frame(self._encode(Batch(self._seq, batch))))]

    async def deliver(self, payload: Frame) -> None:
        seq, data = payload
        try:
            proc = self._proc if self._proc is not None else await self._spawn()
            # Both are pipes: open_process was asked for them.
            assert proc.stdin is not None and proc.stdout is not None
            await proc.stdin.send_all(data)
            body = await read_frame(proc.stdout, self._pending)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            await self.aclose()
            raise Retry(f"the export worker failed: {exc}") from None
        if body is None:
            code = await self._reap()
            raise Retry(f"the export worker exited ({code})")
        answer = self._decode(body)
        if answer.seq != seq:
            await self.aclose()
            raise Retry(f"the export worker answered batch {answer.seq} for {seq}")
        if answer.status == "retry":
            raise Retry(answer.message)
        if answer.status == "rejected":
            raise Rejected(answer.message)

    async def _reap(self) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        with trio.CancelScope(shield=True):
            with trio.move_on_after(WORKER_EXIT_S):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    await stream.aclose()
        return proc.returncode

    async def aclose(self) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            with trio.CancelScope(shield=True):
                await proc.stdin.aclose()  # the worker ends at the end of its stdin
        await self._reap()
