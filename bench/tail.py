"""`python -m bench.tail [--seconds S] [--rounds N]`: what the slowest 1%
of warm URL calls at c=16 have in common.

One server (bench/traced_serve.py: its GC passes and its flush's SQLite
commits, stamped), one function URL, N closed-loop loads of 16
connections, each call stamped on the same clock. For each load: the
latency percentiles; how many of the slowest 1% overlapped a flush's
commit, against all calls; calls' median latency across a flush and
outside one, and the p99 of the calls outside; GC passes per 1,000 calls
and their time; the event loop's CPU and its wait for a CPU (schedstat)
per call; the longest stretch in which no call completed. Medians over
the loads are printed last.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import time
import urllib.parse

import trio

from lambdalet.gateway.cli.loadgen import ResponseReader, plain_request, read_response

from .harness import Lambdalet

CONNECTIONS = 16


async def _connection(host: str, port: int, request: bytes, out: list[tuple[float, float]], deadline: float) -> None:
    sock = trio.socket.socket()
    try:
        await sock.connect((host, port))
        sock.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, 1)
        reader = ResponseReader()
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            await sock.send(request)
            await read_response(sock, reader)
            out.append((sent, time.perf_counter()))
    finally:
        sock.close()


async def stamped_load(url: str, connections: int, seconds: float) -> list[tuple[float, float]]:
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = plain_request(url)()
    out: list[tuple[float, float]] = []
    deadline = time.perf_counter() + seconds
    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(_connection, host, port, request, out, deadline)
    return out


def _schedstat(pid: int) -> tuple[int, int]:
    """ns on a CPU and ns waiting for one, of a process's main thread."""
    with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
        run, wait, _ = f.read().split()
    return int(run), int(wait)


def _pct(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def analyse(calls: list[tuple[float, float]], events: list, loop_cpu_ns: int, loop_wait_ns: int) -> dict:
    t0, t1 = min(a for a, _ in calls), max(b for _, b in calls)
    # A flush commits the ledger, then the log store: one window.
    windows: list[list[float]] = []
    for e in sorted((e for e in events if e[0] == "commit" and e[2] > t0 and e[1] < t1), key=lambda e: e[1]):
        if windows and e[1] - windows[-1][1] < 0.002:
            windows[-1][1] = max(windows[-1][1], e[2])
        else:
            windows.append([e[1], e[2]])
    starts = [w[0] for w in windows]

    def across_flush(a: float, b: float) -> bool:
        i = bisect.bisect_left(starts, b) - 1
        return i >= 0 and windows[i][1] > a

    lat = sorted((b - a) * 1e3 for a, b in calls)
    p99 = _pct(lat, 99)
    inside = sorted((b - a) * 1e3 for a, b in calls if across_flush(a, b))
    outside = sorted((b - a) * 1e3 for a, b in calls if not across_flush(a, b))
    slow = [(a, b) for a, b in calls if (b - a) * 1e3 >= p99]
    gcs = [e for e in events if e[0] == "gc" and t0 <= e[1] <= t1]
    done = sorted(b for _, b in calls)
    n = len(calls)
    return {
        "rps": n / (t1 - t0),
        "p50_ms": _pct(lat, 50),
        "p99_ms": p99,
        "p99.9_ms": _pct(lat, 99.9),
        "slowest_1pct_across_a_flush": sum(1 for a, b in slow if across_flush(a, b)) / max(len(slow), 1),
        "all_calls_across_a_flush": len(inside) / n,
        "median_ms_across_a_flush": _pct(inside, 50),
        "median_ms_outside": _pct(outside, 50),
        "p99_ms_outside_flushes": _pct(outside, 99),
        "flush_ms": statistics.median(w[1] - w[0] for w in windows) * 1e3 if windows else 0.0,
        "gc_per_1000_calls": len(gcs) / n * 1000,
        "gc_us_per_call": sum(e[2] - e[1] for e in gcs) / n * 1e6,
        "gc_max_ms": max((e[2] - e[1] for e in gcs), default=0.0) * 1e3,
        "loop_cpu_us_per_call": loop_cpu_ns / n / 1e3,
        "loop_runqueue_wait_us_per_call": loop_wait_ns / n / 1e3,
        "longest_no_completion_ms": max((done[i + 1] - done[i] for i in range(n - 1)), default=0.0) * 1e3,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tail")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trace = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"lambdalet-tail-{os.getpid()}.json")
    lam = Lambdalet(env=dict(os.environ, LAMBDALET_TRACE_OUT=trace), module="bench.traced_serve")
    loads = []
    try:
        url = lam.function("hello", memory=1024)
        trio.run(stamped_load, url, CONNECTIONS, 1.0)  # every instance started
        for _ in range(args.rounds):
            before = _schedstat(lam.proc.pid)
            calls = trio.run(stamped_load, url, CONNECTIONS, args.seconds)
            after = _schedstat(lam.proc.pid)
            loads.append((calls, after[0] - before[0], after[1] - before[1], os.getloadavg()[0]))
    finally:
        lam.stop()
    with open(trace) as f:
        events = json.load(f)
    os.unlink(trace)
    figures = []
    for calls, cpu, wait, load in loads:
        fig = analyse(calls, events, cpu, wait)
        fig["load_average"] = load
        figures.append(fig)
        print("  ".join(f"{k} {v:.3g}" for k, v in fig.items()), flush=True)
    print("median of the loads:")
    for key in figures[0]:
        print(f"  {key}: {statistics.median(f[key] for f in figures):.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
