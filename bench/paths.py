"""(i) The invoke paths side by side, in one server and with one load tool:
a function URL, the same function through the Invoke API signed with SigV4
(boto3's path), and 1,000 functions called round-robin through their URLs;
with the platform's CPU per warm call (the gateway and every process under
it, from /proc) and the server's RSS.

The loads take turns, round after round, so that a busy machine's noise
falls on each alike; each figure is the median over the rounds.
"""

from __future__ import annotations

import concurrent.futures
import configparser
import itertools
import os
import time

import trio

from lambdalet.sandbox import proc_stat

from . import harness
from .harness import Lambdalet, median

CONNECTIONS = 16


def _ticks(pid: int) -> int | None:
    stat = proc_stat.read(pid)
    return stat.utime + stat.stime if stat is not None else None


def platform_ticks(root: int) -> dict[int, int]:
    """utime + stime (clock ticks, all threads) of the server and every
    process under it: spawner, zygotes, sandboxes, workers."""
    from .__main__ import _descendants

    out = {}
    for pid in [root, *_descendants(root)]:
        ticks = _ticks(pid)
        if ticks is not None:
            out[pid] = ticks
    return out


def platform_run_ns(root: int) -> dict[int, int]:
    """CPU time (ns, all threads, from /proc/PID/task/*/schedstat) of the
    server and every process under it. With 1,000 functions each worker runs
    well under one clock tick per load, and /proc/PID/stat's utime + stime,
    rounded to ticks per process, loses nearly all of it."""
    from .__main__ import _descendants

    out = {}
    for pid in [root, *_descendants(root)]:
        try:
            total = 0
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                    total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        out[pid] = total
    return out


def event_loop_ticks(pid: int) -> int:
    """utime + stime (clock ticks) of the server's main thread alone: the
    trio thread that answers every call (its flush thread and spawner are
    other threads of the same process)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/stat", "rb") as f:
            stat = proc_stat.parse(f.read())
    except (OSError, ValueError):
        return 0
    return stat.utime + stat.stime


def cpu_seconds_between(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU the platform spent between two samples. A process that ended in
    between is lost (a warm run ends none); one that started counts whole."""
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def _run(url: str, make, seconds: float) -> dict:
    from lambdalet.gateway.cli.loadgen import run_load

    results = trio.run(run_load, url, make, CONNECTIONS, seconds)
    if results.fatal:
        raise RuntimeError(results.fatal)
    s = results.summary()
    return {
        "rps": s["rps"],
        "p50_ms": s["latency_ms"]["p50"],
        "p99_ms": s["latency_ms"]["p99"],
        "errors": s["errors"],
        "requests": s["requests"],
        "status": s["status"],
    }


def run(quick: bool) -> dict:
    from lambdalet.gateway.cli.loadgen import plain_request, signed_invoke_request

    n_functions = 200 if quick else 1000
    rounds = 3 if quick else 5
    seconds = 3 if quick else 5
    # MemorySize for every instance the run keeps (each of the many
    # functions' one, the one function's sixteen): under the default budget
    # (the host's free memory) starting one evicts another, and this section
    # measures dispatch, not eviction.
    lam = Lambdalet("--memory-budget-mb", str(n_functions * 128 + (CONNECTIONS + 4) * 1024))
    try:
        one_url = lam.function("hello", memory=1024)
        parser = configparser.ConfigParser()
        parser.read(os.path.join(lam.tmp, "credentials"))
        key, secret = parser["default"]["aws_access_key_id"], parser["default"]["aws_secret_access_key"]
        code = harness.zip_of({"app.py": harness.HELLO})

        def create(i: int) -> str:
            name = f"rr-{i}"
            lam.client.create_function(
                FunctionName=name, Runtime=harness.RUNTIME, Role=harness.ROLE, Handler="app.handler", Code={"ZipFile": code}, MemorySize=128
            )
            return lam.public_url(name)

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            rr_urls = list(ex.map(create, range(n_functions)))
        created_s = time.perf_counter() - started
        rr_requests = [plain_request(u)() for u in rr_urls]
        cycle = itertools.cycle(rr_requests)
        loads = {
            "function URL": (one_url, plain_request(one_url)),
            "Invoke API (SigV4)": (lam.url, signed_invoke_request(lam.url, "hello", b"{}", key, secret)),
            f"{n_functions} functions round-robin": (rr_urls[0], lambda: next(cycle)),
        }
        # Every instance the run will use started: each of the many
        # functions once (a cold start each), and the one function at c=16.
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(CONNECTIONS) as ex:
            list(ex.map(harness.http_get_once, rr_urls))
        warmed_s = time.perf_counter() - started
        for url, make in loads.values():
            _run(url, make, 1)
        runs: dict = {label: [] for label in loads}
        for i in range(rounds):
            for label in list(loads) if i % 2 == 0 else list(reversed(loads)):
                url, make = loads[label]
                loop_before = event_loop_ticks(lam.proc.pid)
                before = platform_ticks(lam.proc.pid)
                before_ns = platform_run_ns(lam.proc.pid)
                started = time.perf_counter()
                run_ = _run(url, make, seconds)
                elapsed = time.perf_counter() - started
                after = platform_ticks(lam.proc.pid)
                after_ns = platform_run_ns(lam.proc.pid)
                loop = (event_loop_ticks(lam.proc.pid) - loop_before) / os.sysconf("SC_CLK_TCK")
                # The event loop's CPU per call, and how much of one core it
                # had: near 1.0, that thread is what limits req/s.
                run_["loop_cpu_us"] = loop / max(run_["requests"], 1) * 1e6
                run_["loop_busy"] = loop / elapsed
                run_["platform_cpu_us"] = cpu_seconds_between(before, after) / max(run_["requests"], 1) * 1e6
                gateway = (after.get(lam.proc.pid, 0) - before.get(lam.proc.pid, 0)) / os.sysconf("SC_CLK_TCK")
                run_["gateway_cpu_us"] = gateway / max(run_["requests"], 1) * 1e6
                # The same split from schedstat (ns): the sandboxes' share is
                # what ticks lose with many functions.
                calls = max(run_["requests"], 1)
                server_ns = after_ns.get(lam.proc.pid, 0) - before_ns.get(lam.proc.pid, 0)
                run_["server_ns_us"] = server_ns / calls / 1e3
                run_["sandboxes_ns_us"] = sum(t - before_ns.get(pid, 0) for pid, t in after_ns.items() if pid != lam.proc.pid) / calls / 1e3
                runs[label].append(run_)
        out: dict = {
            "functions": n_functions,
            "rounds": rounds,
            "seconds": seconds,
            "connections": CONNECTIONS,
            "tool": "lambdalet bench (trio), in the bench's process",
            "create_s": created_s,
            "first_calls_s": warmed_s,
            "server_rss_mb": rss_mb(lam.proc.pid),
        }
        for label, rs in runs.items():
            out[label] = {
                key: median([r[key] for r in rs])
                for key in (
                    "rps",
                    "p50_ms",
                    "p99_ms",
                    "platform_cpu_us",
                    "gateway_cpu_us",
                    "loop_cpu_us",
                    "loop_busy",
                    "server_ns_us",
                    "sandboxes_ns_us",
                )
            }
            out[label]["errors"] = sum(r["errors"] for r in rs)
            statuses: dict = {}
            for r in rs:
                for code, count in r["status"].items():
                    statuses[code] = statuses.get(code, 0) + count
            out[label]["status"] = statuses
        return out
    finally:
        lam.stop()


def render(i: dict) -> list[str]:
    url = i.get("function URL")
    if not url:
        return []
    rows = []
    invoke = i.get("Invoke API (SigV4)")
    if invoke:
        rows.append(
            f"| Invoke API (SigV4, boto3's path) req/s, c=16 (vs function URL) | {invoke['rps']:.0f} | "
            f"{url['rps']:.0f} | {invoke['rps'] / url['rps']:.2f}× (target ≥ 0.8×) |"
        )
    rr = i.get(f"{i['functions']} functions round-robin")
    if rr:
        rows.append(
            f"| {i['functions']} functions round-robin req/s, c=16 (vs one function) | {rr['rps']:.0f} | "
            f"{url['rps']:.0f} | {rr['rps'] / url['rps']:.2f}× (target ≥ 0.8×) |"
        )
        rows.append(f"| server RSS after {i['functions']} functions warm | {i['server_rss_mb']:.0f} MB | | |")
        if "server_ns_us" in rr and "server_ns_us" in url:
            # Where the round-robin calls' extra CPU goes (schedstat, ns):
            # the server (its event loop, one of them), and the sandboxes.
            rows.append(
                f"| {i['functions']} functions round-robin CPU µs per call: server (loop); sandboxes (vs one function) | "
                f"{rr['server_ns_us']:.0f} ({rr['loop_cpu_us']:.0f}); {rr['sandboxes_ns_us']:.0f} | "
                f"{url['server_ns_us']:.0f} ({url['loop_cpu_us']:.0f}); {url['sandboxes_ns_us']:.0f} | |"
            )
    failed = [
        f"{label} {fig['errors']} ({', '.join(f'{n}× {code}' for code, n in fig.get('status', {}).items() if code[0] != '2')})"
        for label, fig in i.items()
        if isinstance(fig, dict) and fig.get("errors")
    ]
    if failed:
        # A throughput that includes refusals (429s when instances do not
        # fit) is not the figure its row claims.
        rows.append(f"| (i) requests failed or refused | {'; '.join(failed)} | | |")
    rows.append(f"| warm URL p99 ms, c=16 | {url['p99_ms']:.2f} | target 3 | {url['p99_ms'] / 3:.2f}× |")
    rows.append(
        f"| platform CPU µs per warm URL call, gateway + worker, c=16 | {url['platform_cpu_us']:.0f} "
        f"(gateway {url['gateway_cpu_us']:.0f}) | target 60 | {url['platform_cpu_us'] / 60:.2f}× |"
    )
    if "loop_cpu_us" in url:
        rows.append(
            f"| gateway event loop (trio thread) CPU µs per warm URL call, c=16; share of a core it had | {url['loop_cpu_us']:.0f}; "
            f"{url['loop_busy']:.2f} | | |"
        )
    if invoke:
        rows.append(
            f"| platform CPU µs per Invoke API call, gateway + worker, c=16 | {invoke['platform_cpu_us']:.0f} "
            f"(gateway {invoke['gateway_cpu_us']:.0f}) | | |"
        )
        # The gateway's thread is what limits both paths: its CPU per call
        # says the same as their req/s ratio, less at the mercy of a busy
        # machine's other load.
        rows.append(
            f"| gateway CPU µs per call, c=16: Invoke API (vs function URL) | {invoke['gateway_cpu_us']:.0f} | "
            f"{url['gateway_cpu_us']:.0f} | {invoke['gateway_cpu_us'] / url['gateway_cpu_us']:.2f}× |"
        )
    return rows
