"""The gateway's side of a custom runtime (runtime_api/session.py and
server.py) against a scripted worker on the other end of a socketpair and
a runtime client on real loopback sockets: no sandbox, so each step's
order can be forced (frames that arrive together, a runtime that dies
before or after it was handed its call)."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading

import pytest
import trio

from lambdalet.gateway.execution.instance import Instance, WorkerGone
from lambdalet.gateway.execution.runtime_api import session
from lambdalet.runtime.protocol import Bootstrap, FrameReader, Init, InitOk, Invoke, Launched, Ready, encode


class FakeSandbox:
    """What Instance and the session use of a sandbox; the 'worker' is a
    real child process so that its pidfd says when it has gone."""

    task_root = "/tmp/not-a-sandbox"  # a plain process: any free port
    pidfd = -1  # as a plain-process sandbox: the session opens its own

    def __init__(self) -> None:
        self.control, self.worker_end = socket.socketpair()
        self.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        self.pid = self.proc.pid
        self.peak_resets = 0

    def reset_peak_memory(self) -> None:
        self.peak_resets += 1

    def destroy(self):
        self.proc.kill()
        self.proc.wait()
        self.control.close()
        self.worker_end.close()


def _init() -> Init:
    return Init("h", FakeSandbox.task_root, {"_HANDLER": "h"}, "f", "$LATEST", 128, "g", "s")


def _worker_launches(sandbox: FakeSandbox, *, together: bool) -> tuple[socket.socket, Bootstrap]:
    """The worker's side: Ready, then (in the same send if together)
    Launched with a listening socket and a memfd."""
    (request,) = FrameReader("to_worker").feed(sandbox.worker_end.recv(65536))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    memfd = os.memfd_create("log")
    os.write(memfd, b"worker said hello\n")
    launched = encode(Launched("/x/bootstrap", listener.getsockname()[1]))
    if together:
        socket.send_fds(sandbox.worker_end, [encode(Ready()) + launched], [listener.fileno(), memfd])
    else:
        sandbox.worker_end.sendall(encode(Ready()))
        socket.send_fds(sandbox.worker_end, [launched], [listener.fileno(), memfd])
    os.close(memfd)
    return listener, request


class Client(threading.Thread):
    """A runtime client on a thread: `next`, then answer each call."""

    def __init__(self, port: int, answers: list) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.answers = answers  # per call: ("response", body) or ("die", None)
        self.seen: list[dict] = []

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        for action, body in self.answers:
            conn.request("GET", "/2018-06-01/runtime/invocation/next")
            resp = conn.getresponse()
            event = resp.read()
            rid = resp.getheader("Lambda-Runtime-Aws-Request-Id")
            self.seen.append({"id": rid, "event": event, "deadline": resp.getheader("Lambda-Runtime-Deadline-Ms")})
            if action == "die":
                conn.close()
                return
            conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", body=body)
            resp = conn.getresponse()
            resp.read()
            self.seen[-1]["status"] = resp.status
        conn.close()


@pytest.mark.parametrize("together", [True, False], ids=["ready-and-launched-in-one-read", "apart"])
def test_launch_then_calls_measured_by_the_gateway(together):
    sandbox = FakeSandbox()
    inst = Instance("i", sandbox, "rev")
    outcome: dict = {}

    async def main():
        async with trio.open_nursery() as nursery:
            worker = trio.to_thread.run_sync(lambda: _worker_launches(sandbox, together=together))
            launching = trio.Event()

            async def launch():
                outcome["init"] = await session.launch(inst, _init(), nursery)
                launching.set()

            nursery.start_soon(launch)
            listener, request = await worker
            assert request.paths == ["/tmp/not-a-sandbox/bootstrap"] and request.port == 0
            client = Client(listener.getsockname()[1], [("response", b'{"ok": 1}'), ("response", b"[2]")])
            client.start()
            await launching.wait()
            for n in (1, 2):
                result = await inst.call(Invoke(f"req-{n}", b'{"n": %d}' % n, 1234, "arn"))
                outcome[n] = (result, inst.last_heard_ns - inst.call_started_ns)
            await trio.to_thread.run_sync(client.join)
            outcome["seen"] = client.seen
            listener.close()
            inst.closing()
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        inst.destroy()
    assert isinstance(outcome["init"], InitOk) and outcome["init"].log == b"worker said hello\n"
    assert [(r.request_id, r.payload, r.error_type) for r, _ in (outcome[1], outcome[2])] == [
        ("req-1", b'{"ok": 1}', None),
        ("req-2", b"[2]", None),
    ]
    assert all(d > 0 for _, d in (outcome[1], outcome[2]))
    assert [(s["id"], s["event"], s["deadline"], s["status"]) for s in outcome["seen"]] == [
        ("req-1", b'{"n": 1}', "1234", 202),
        ("req-2", b'{"n": 2}', "1234", 202),
    ]
    assert sandbox.peak_resets == 2


def test_a_runtime_that_dies_before_its_next_never_had_the_call():
    """WorkerGone(delivered=False): the pool gives the call to a fresh
    instance, as the function never saw it."""
    sandbox = FakeSandbox()
    inst = Instance("i", sandbox, "rev")
    outcome: dict = {}

    async def main():
        async with trio.open_nursery() as nursery:
            worker = trio.to_thread.run_sync(lambda: _worker_launches(sandbox, together=False))
            launching = trio.Event()

            async def launch():
                outcome["init"] = await session.launch(inst, _init(), nursery)
                launching.set()

            nursery.start_soon(launch)
            listener, _ = await worker
            client = Client(listener.getsockname()[1], [("die", None)])
            client.start()
            await launching.wait()

            # The first call goes to the parked `next`; the client then
            # leaves without answering, and its process ends.
            async def kill_when_delivered():
                await trio.to_thread.run_sync(client.join)
                sandbox.proc.kill()

            nursery.start_soon(kill_when_delivered)
            with pytest.raises(WorkerGone) as gone:
                await inst.call(Invoke("req-1", b"{}", 1, "arn"))
            outcome["delivered"] = gone.value.delivered
            with pytest.raises(WorkerGone) as gone:
                await inst.call(Invoke("req-2", b"{}", 1, "arn"))
            outcome["second"] = gone.value.delivered
            listener.close()
            inst.closing()
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        inst.destroy()
    assert outcome["delivered"] is True and outcome["second"] is False
