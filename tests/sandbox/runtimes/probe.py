"""CPython under the sandbox: what handlers ordinarily do, one line each.
Runs under every interpreter version the tests find (3.9 on), so it uses
nothing newer than 3.9 has."""

import asyncio
import concurrent.futures
import json
import mmap
import multiprocessing
import os
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import uuid

out = {}
with concurrent.futures.ThreadPoolExecutor(4) as pool:  # threads: clone3 -> ENOSYS -> clone
    out["threads"] = sum(pool.map(lambda x: x * x, range(8)))


def child(conn):
    conn.send(os.getpid() > 2)
    conn.close()


parent_end, child_end = multiprocessing.Pipe()
proc = multiprocessing.get_context("fork").Process(target=child, args=(child_end,))
proc.start()
out["fork"] = parent_end.recv()
proc.join()
out["subprocess"] = subprocess.run(["sh", "-c", "echo hi"], capture_output=True, text=True).stdout.strip()


async def echo_once() -> str:
    async def handle(reader, writer):
        writer.write(await reader.read(1))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
    writer.write(b"x")
    await writer.drain()
    got = await reader.read(1)
    writer.close()
    server.close()
    await server.wait_closed()
    return got.decode()


out["asyncio"] = asyncio.run(echo_once())
out["tls"] = ssl.create_default_context().cert_store_stats()["x509_ca"] > 0
# AI_ADDRCONFIG makes glibc ask netlink (NETLINK_ROUTE) which families exist.
out["getaddrinfo"] = socket.getaddrinfo("localhost", "https", proto=socket.IPPROTO_TCP, flags=socket.AI_ADDRCONFIG)[0][4][1]
out["interfaces"] = [name for _, name in socket.if_nameindex()]
db = sqlite3.connect(os.path.join(tempfile.mkdtemp(), "x.db"))
db.execute("create table t(x)")
db.commit()
out["uuid"] = len(str(uuid.uuid4()))
os.mkfifo(os.path.join(tempfile.mkdtemp(), "fifo"))
out["loadavg"] = list(os.getloadavg())
out["memory"] = os.sysconf("SC_PHYS_PAGES") > 0  # glibc asks sysinfo()
with mmap.mmap(-1, 4096) as m:
    m[0] = 1
os.sync()  # answered without flushing the host's disks
os.write(3, (json.dumps(out) + "\n").encode())
