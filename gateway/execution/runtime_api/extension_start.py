"""Starting an environment's external extensions, for the pool's init.

When a function's layers hold /opt/extensions (wanted()), the pool hands
its init to init_with_extensions():

1. StartExtensions: the worker (still running only Lambdalet's code)
   opens the sandbox's API socket, starts each program of /opt/extensions
   and hands over the socket, the extensions' log memfd and a pidfd per
   extension (runtime/extensions.py), each checked here (handover.py);
2. an ExtensionHost (extension_host.py) serves the Extensions and
   Telemetry APIs on that socket (the Runtime API too, for a custom
   runtime: one port, dispatch.py) and waits until every extension has
   registered;
3. the runtime's own init runs (the Python worker's Init, or the
   bootstrap, which finds the socket open);
4. init is over once every extension has asked for its first event.

An extension that could not be started, crashed or reported init/error
fails the init (Extension.Crash, Extension.InitError); the runtime's own
init is then not run.
"""

from __future__ import annotations

import os
import socket
import stat
import time
from collections.abc import Awaitable, Callable

import trio

from lambdalet.gateway.execution.instance import Instance, WorkerGone
from lambdalet.gateway.http import rawio
from lambdalet.runtime import errors as function_errors
from lambdalet.runtime import extensions as extensions_limit
from lambdalet.runtime.protocol import ExtensionsStarted, Init, InitError, InitOk, StartExtensions, encode

from . import extensions as ex
from . import handover, platform_events
from .extension_host import ExtensionHost
from .platform_events import Figures, now_ms
from .session import HOST, api_port

EXTENSIONS_DIR = "extensions"
# Room for ExtensionsStarted's fds: the socket, the log and a pidfd each.
ANCILLARY = socket.CMSG_SPACE(4 * (2 + extensions_limit.MAX_EXTENSIONS))


def wanted(layer_dirs: tuple[str, ...]) -> bool:
    """A layer brings /opt/extensions (the trees are merged at /opt)."""
    for tree in layer_dirs:
        try:
            with os.scandir(os.path.join(tree, EXTENSIONS_DIR)) as entries:
                if next(entries, None) is not None:
                    return True
        except OSError:
            continue
    return False


async def start(inst: Instance, init: Init, figures: Figures, nursery: trio.Nursery, started_ms: int) -> ExtensionHost:
    """Starts the extensions in inst's sandbox and serves their API from
    nursery until they have registered (or one has failed: then
    finish_init() reports it). Raises WorkerGone if the worker is gone."""
    env = dict(init.env)
    request = StartExtensions(env, HOST, api_port(init.task_root))
    try:
        await rawio.send_all(inst.sock, encode(request))
    except OSError:
        raise WorkerGone(delivered=False) from None
    answers, fds = await handover.read_answers(inst, ANCILLARY)
    reply = answers[0]
    if not isinstance(reply, ExtensionsStarted) or len(answers) > 1 or len(fds) != 2 + len(reply.started):
        handover.close_all(fds)
        raise WorkerGone()
    listener = handover.listener_of(fds[0], fds[1:])
    # Each fd checked to be what it claims, and the port read off the
    # socket, before the gateway relies on them.
    if (
        not stat.S_ISREG(os.fstat(fds[1]).st_mode)
        or not all(handover.is_pidfd(fd) for fd in fds[2:])
        or len(set(reply.started)) != len(reply.started)
    ):
        listener.close()
        handover.close_all(fds[1:])
        raise WorkerGone()
    pidfds = dict(zip(reply.started, fds[2:]))
    port = listener.getsockname()[1]
    host = ExtensionHost(inst, listener, port, fds[1], pidfds, reply.failed, figures)
    inst.extensions = host
    host.deliveries.emit([platform_events.init_start(figures, started_ms, inst.id)])
    await nursery.start(host.run)
    await host.wait_registered()
    return host


async def init_with_extensions(
    inst: Instance, init: Init, figures: Figures, nursery: trio.Nursery, run_init: Callable[[], Awaitable[InitOk | InitError]]
) -> InitOk | InitError:
    """The pool's init of an instance whose layers bring extensions."""
    started_ms = now_ms()
    init_ns = time.monotonic_ns()
    host = await start(inst, init, figures, nursery, started_ms)
    failure = host.failure()
    if failure is None and host.start_failures:
        name, why = host.start_failures[0]
        failure = ex.CRASH, f"Extension {name} could not be started: {why}"
    if failure is not None:
        reply: InitOk | InitError = InitError(failure[0], function_errors.platform(failure[0], "", failure[1]), host.emit_extension_log())
        return await host.finish_init(reply, started_ms, init_ns)
    reply = await run_init()
    return await host.finish_init(reply, started_ms, init_ns)
