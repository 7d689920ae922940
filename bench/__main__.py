"""`python -m bench [--quick] [--only a,b,c,d,e,f,i,p,m,w,g,l,s,k,o,t,soak] [--soak-minutes N] [--json FILE]`

Runs lambdalet and its peers side by side and prints one table:
(a) warm invoke through a function URL against serverless-offline, a
trio+h11 floor and a raw socket server (the load generator's own tail), (b) cold start against `python3 -I -S -c pass`, (c)
sandbox churn against a bare namespaced clone, (d) PSS per idle warm
instance, (e) 10,000 never-called functions, (f) what freezing idle
instances costs (the warm path with and without it, and a call that finds
its instance frozen), (i) the invoke paths in one server: Invoke API
(SigV4, boto3's path) against a function URL, 1,000 functions round-robin
against one, p99 at c=16 and the platform's CPU per warm call, gateway and
worker (bench/paths.py), (p) p99 at 128 MB against 1024 MB under the same
load, (m) the metering cost, (w) the seccomp allow-list against no filter,
(g) a provided.al2023 function (aws-lambda-go) beside the Python fast
path, warm and cold (bench/custom_runtime.py), (l) a row per language:
Python, Node.js, Java, C#, provided.al2023, warm, cold and idle
(bench/languages.py), (s) S3 object-created and SQS message to handler
start; (k) bytes on disk per call and logs.db under --log-max-mb
(bench/growth.py); (o) warm throughput with the built-in OTLP export on and
off (bench/export.py); (t) a warm call with an attached extension, plain
and subscribed to the Telemetry API, against none (bench/extensions.py); and
on request (r) the other Python versions' cold
starts and warm calls, with and without their own builds, and (soak)
steady load for --soak-minutes (30) with the server's RSS slope, fds,
errors and bytes on disk per call. Medians throughout.

Above the table: the machine (CPU, cores, kernel, load average at the
start), the commit (and whether the tree differed from it) and each peer's
and tool's version; the raw figures go to bench/results/<date>-<sha>.json
(bench/provenance.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from lambdalet.sandbox import proc_stat

from . import events, extensions, harness, paths, peers, provenance, smaps
from .harness import Lambdalet, http_get_once, load, median, percentile

RAW_FLOOR = "load generator alone (raw socket server)"


def section_a(quick: bool) -> dict:
    seconds = 3 if quick else 5
    runs = 1 if quick else 3
    out: dict = {}
    targets: list[tuple[str, str, Lambdalet | peers.TrioH11Floor | peers.ServerlessOffline]] = []
    lam = Lambdalet()
    try:
        url = lam.function("hello", memory=1024)
        http_get_once(url)
        targets.append(("lambdalet", url, lam))
        floor = peers.TrioH11Floor()
        targets.append(("trio+h11 floor", floor.url, floor))
        raw = peers.RawSocketFloor()
        targets.append((RAW_FLOOR, raw.url, raw))
        try:
            home = peers.install_serverless_offline()
            sls = peers.ServerlessOffline(home, harness.RUNTIME) if home else None
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            sls = None
            out["serverless_offline_error"] = str(exc)
        if sls is not None:
            targets.append(("serverless-offline", sls.url, sls))
        for name, target_url, _ in targets:
            load(target_url, 16, 1)  # warm every instance the run will use
            out[name] = {
                "c1": harness.best_of([load(target_url, 1, seconds) for _ in range(runs)]),
                "c16": harness.best_of([load(target_url, 16, seconds) for _ in range(runs)]),
            }
        out["sandbox_backend"] = lam.backend
    finally:
        for _, _, owner in reversed(targets):
            owner.stop()
        if not targets:
            lam.stop()
    return out


def section_b(quick: bool) -> dict:
    n = 15 if quick else 40
    floor = peers.python_start_ms(30)
    out = {"python -I -S -c pass": {"p50_ms": median(floor), "p99_ms": percentile(floor, 99)}}
    for label, args in (("spare sandbox", ()), ("no spare (full spawn)", ("--spare-sandboxes", "0"))):
        lam = Lambdalet(*args)
        try:
            warm = lam.function("warmup")
            http_get_once(warm)  # the first call wakes the spare pool
            urls = [lam.function(f"cold-{i}") for i in range(n if args == () else max(5, n // 4))]
            times = []
            for url in urls:
                time.sleep(0.25)  # let the spare pool refill: this measures a cold start, not a burst
                times.append(http_get_once(url) * 1000)
            out[label] = {"p50_ms": median(times), "p99_ms": percentile(times, 99), "n": len(times)}
        finally:
            lam.stop()
    return out


def section_r(quick: bool) -> dict:
    """Each Python version other than the server's: a cold start without a
    spare (a full spawn) beside that interpreter's own bare start, and warm
    p50 at c=1 beside the server's own version in the same server. Once
    with msgspec and cffi built for the version (`lambdalet runtimes
    install`: a zygote of its own), once without (an interpreter per
    sandbox and the pure-Python frame codec)."""
    from lambdalet.sandbox import interpreters

    n = 8 if quick else 20
    seconds = 2 if quick else 4
    found, _ = interpreters.discover()
    others = [r for r in ("python3.9", "python3.12", "python3.13") if r in found and r != harness.RUNTIME]
    out: dict = {"floors": {r: median(peers.python_start_ms(20, found[r].path)) for r in others}}
    with_builds = tempfile.mkdtemp(prefix="lambdalet-bench-cache-")
    without = tempfile.mkdtemp(prefix="lambdalet-bench-nocache-")
    try:
        install = subprocess.run(
            [harness.PY, "-m", "lambdalet.gateway.cli", "runtimes", "install", *others],
            env=dict(os.environ, LAMBDALET_CACHE_DIR=with_builds),
            capture_output=True,
            text=True,
            timeout=900,
        )
        modes = [("no builds", without)]
        if install.returncode == 0:
            modes.insert(0, ("builds", with_builds))
        else:
            out["install_error"] = (install.stdout + install.stderr).strip()[-300:]
        for mode, cache in modes:
            lam = Lambdalet("--spare-sandboxes", "0", env=dict(os.environ, LAMBDALET_CACHE_DIR=cache))
            try:
                own = lam.function("own-warm")
                load(own, 1, 1)
                rows = {}
                for runtime in others:
                    urls = [lam.function(f"cold-{runtime.replace('.', '')}-{i}", runtime=runtime) for i in range(n)]
                    cold = [http_get_once(url) * 1000 for url in urls]
                    load(urls[0], 1, 1)
                    line = re.search(rf"runtime {re.escape(runtime)}: .*?; workers: ([^;]+); frames: (\S+)", lam.banner)
                    how = (
                        "?"
                        if line is None
                        else (
                            ("zygote" if line.group(1).startswith("forked") else "exec")
                            + ", "
                            + ("msgspec" if line.group(2) == "msgspec" else "pure-Python frames")
                        )
                    )
                    # The server's own version measured right after, in the
                    # same server, so that both see the same machine.
                    rows[runtime] = {
                        "cold_p50_ms": median(cold),
                        "cold_p99_ms": percentile(cold, 99),
                        "warm_c1_p50_ms": load(urls[0], 1, seconds)["p50_ms"],
                        "own_warm_c1_p50_ms": load(own, 1, seconds)["p50_ms"],
                        "how": how,
                    }
                out[mode] = rows
            finally:
                lam.stop()
    finally:
        shutil.rmtree(with_builds, ignore_errors=True)
        shutil.rmtree(without, ignore_errors=True)
    return out


def section_c(quick: bool) -> dict:
    import pathlib

    from lambdalet.sandbox.runtime_root import RuntimeRoot
    from lambdalet.sandbox.select import choose_backend
    from lambdalet.sandbox.spec import SandboxSpec

    seconds = 3 if quick else 6
    out: dict = {}
    from lambdalet.sandbox import namespaced, nsspawn

    # The floor: a bare clone into the same namespaces, reaped at once.
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        nsspawn.clone_floor(namespaced.ALL_NAMESPACES)
        count += 1
    out["floor: bare namespaced clone"] = {"per_s": count / (time.perf_counter() - started)}
    # The same without a network namespace of its own: a sandbox is cloned
    # into one from the pool (netns_pool.py), made ahead of time or reused.
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        nsspawn.clone_floor(namespaced.ALL_NAMESPACES & ~nsspawn.CLONE_NEWNET)
        count += 1
    out["floor: bare clone, network namespace pooled"] = {"per_s": count / (time.perf_counter() - started)}
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="lambdalet-churn-"))
    root = RuntimeRoot.create(tmp / "runtime")
    backend, reasons = choose_backend(root, tmp)
    empty = tmp / "task"
    empty.mkdir()
    try:
        if getattr(backend, "zygote", "n/a") is None:
            # As in a server that has started workers: sandboxes are then
            # cloned from the small zygote rather than from this process.
            warm = backend.spawn(SandboxSpec(instance_id=f"churn-{uuid.uuid4().hex[:12]}", function_name="churn", code_dir=str(empty)))
            warm.destroy()
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            spec = SandboxSpec(instance_id=f"churn-{uuid.uuid4().hex[:12]}", function_name="churn", code_dir=str(empty))
            sandbox = backend.spawn_command(spec, ["/bin/true"]) if hasattr(backend, "spawn_command") else backend.spawn(spec)
            sandbox.destroy()
            count += 1
        out["lambdalet sandbox create+destroy"] = {"per_s": count / (time.perf_counter() - started), "backend": backend.name}
        # The same with the Python worker each sandbox really runs, forked
        # from the runtime zygote, up to its Ready message; each phase's
        # median too, for the profile of what holds the rate back.
        phases: dict[str, list[float]] = {"spawn_ms": [], "ready_ms": [], "destroy_ms": []}
        zygote = getattr(backend, "zygote", None)
        cpu_before = _churn_cpu_ms(zygote.pid if zygote is not None else None)
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            spec = SandboxSpec(instance_id=f"churn-{uuid.uuid4().hex[:12]}", function_name="churn", code_dir=str(empty))
            t0 = time.perf_counter()
            sandbox = backend.spawn(spec)
            t1 = time.perf_counter()
            sandbox.control.recv(64)  # Ready
            t2 = time.perf_counter()
            sandbox.destroy()
            t3 = time.perf_counter()
            for key, took in zip(phases, (t1 - t0, t2 - t1, t3 - t2)):
                phases[key].append(took * 1000)
            count += 1
        cpu_after = _churn_cpu_ms(zygote.pid if zygote is not None else None)
        out["lambdalet python sandbox create+ready+destroy"] = {
            "per_s": count / (time.perf_counter() - started),
            "zygote": bool(getattr(backend, "zygote", None)),
            **{key: median(values) for key, values in phases.items()},
            # CPU per sandbox, where it was spent: 1,000/s on 2 cores leaves 2 ms.
            **{f"cpu_ms_{key}": (cpu_after[key] - cpu_before[key]) / count for key in cpu_before},
        }
        # As the server churns: destroys run on other threads (the pool's)
        # while the spawner thread starts the next sandbox.
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(2) as destroyer:
            count, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                spec = SandboxSpec(instance_id=f"churn-{uuid.uuid4().hex[:12]}", function_name="churn", code_dir=str(empty))
                sandbox = backend.spawn(spec)
                sandbox.control.recv(64)  # Ready
                destroyer.submit(sandbox.destroy)
                count += 1
            elapsed = time.perf_counter() - started
        out["lambdalet python sandbox create+ready, destroyed on other threads"] = {"per_s": count / elapsed}
    finally:
        backend.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _churn_cpu_ms(zygote_pid: int | None) -> dict[str, float]:
    """CPU time so far (ms): this process (every thread: the spawn path,
    the cgroup stager, the netns pool), the reaped sandboxes (each PID 1
    with the worker it reaped) and the runtime zygote."""
    times = os.times()
    stat = proc_stat.read(zygote_pid) if zygote_pid is not None else None
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    return {
        "server": (times.user + times.system) * 1000,
        "sandboxes": (times.children_user + times.children_system) * 1000,
        "zygote": (stat.utime + stat.stime) * tick_ms if stat is not None else 0.0,
    }


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat.read(int(entry))
            if stat is not None:
                children.setdefault(stat.ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def section_d(quick: bool) -> dict:
    import concurrent.futures

    # 100 in the quick run too: the target is stated over 100 instances, and
    # they start in a few seconds.
    n = 100
    lam = Lambdalet("--spare-sandboxes", "0")
    try:
        url = lam.function(
            "idle", source="import time\ndef handler(e, c):\n    time.sleep(2)\n    return {'statusCode': 200, 'body': 'ok'}\n", memory=128
        )
        with concurrent.futures.ThreadPoolExecutor(n) as ex:
            list(ex.map(lambda _: http_get_once(url), range(n)))
        time.sleep(1.0)
        pids = _descendants(lam.proc.pid)
        total = sum(_pss_kb(p) for p in pids)
        # The workers: each sandbox's PID 1 is the server's child, its worker a grandchild.
        workers = [p for p in pids if (stat := proc_stat.read(p)) is not None and stat.ppid != lam.proc.pid]
        return {
            "instances": n,
            "processes": len(pids),
            "pss_mb_per_instance": total / 1024 / n,
            "worker_private_kb": smaps.median_private_kb(workers),
        }
    finally:
        lam.stop()


def section_e(quick: bool) -> dict:
    import concurrent.futures

    n = 1000 if quick else 10_000
    lam = Lambdalet("--spare-sandboxes", "2")
    try:
        code = harness.zip_of({"app.py": harness.HELLO})
        started = time.perf_counter()

        def create(i: int) -> None:
            lam.client.create_function(
                FunctionName=f"idle-{i}", Runtime=harness.RUNTIME, Role=harness.ROLE, Handler="app.handler", Code={"ZipFile": code}
            )

        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            list(ex.map(create, range(n)))
        elapsed = time.perf_counter() - started
        with open(f"/proc/{lam.proc.pid}/status") as f:
            rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return {"functions": n, "processes": len(_descendants(lam.proc.pid)), "server_rss_mb": rss_kb / 1024, "create_per_s": n / elapsed}
    finally:
        lam.stop()


def _keepalive_get(conn, path: str) -> float:
    """Seconds for one GET on an open keep-alive connection."""
    started = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    elapsed = time.perf_counter() - started
    if resp.status != 200:
        raise RuntimeError(f"bad response: {resp.status} {body[:200]!r}")
    return elapsed


def section_f(quick: bool) -> dict:
    """The warm path with idle freezing on (the default) and off, and calls
    spaced wider than the freeze delay, each of which thaws its instance.
    Both servers run at once and are measured in alternation, so that a
    busy machine's noise falls on both alike."""
    import http.client
    from urllib.parse import urlsplit

    rounds = 3 if quick else 7
    seconds = 2 if quick else 4
    spaced = 60 if quick else 200
    variants = {"freezing": (), "no freezing": ("--freeze-idle-ms", "0")}
    servers: dict = {}
    try:
        for label, args in variants.items():
            servers[label] = Lambdalet(*args)
        urls = {label: lam.function("hello", memory=1024) for label, lam in servers.items()}
        for url in urls.values():
            load(url, 16, 1)
        runs: dict = {label: {"c1": [], "c16": [], "cpu_us": []} for label in servers}
        for i in range(rounds):
            for label in list(servers) if i % 2 == 0 else list(reversed(servers)):
                # The gateway's CPU per request: what the warm path costs,
                # and less at the mercy of a busy machine than throughput.
                before = harness.cpu_seconds(servers[label].proc.pid)
                run = load(urls[label], 16, seconds)
                runs[label]["cpu_us"].append((harness.cpu_seconds(servers[label].proc.pid) - before) / (run["rps"] * seconds) * 1e6)
                runs[label]["c16"].append(run)
                runs[label]["c1"].append(load(urls[label], 1, seconds))
        # One keep-alive connection each, one call every 30 ms: frozen
        # (5 ms after the last call) each time when freezing is on.
        conns = {label: http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=30) for label, url in urls.items()}
        times: dict = {label: [] for label in servers}
        try:
            for _ in range(spaced):
                for label, url in urls.items():
                    time.sleep(0.03)
                    times[label].append(_keepalive_get(conns[label], urlsplit(url).path) * 1000)
        finally:
            for conn in conns.values():
                conn.close()
        out: dict = {"rounds": rounds}
        for label in servers:
            out[label] = {
                "c16": {
                    "rps": median([r["rps"] for r in runs[label]["c16"]]),
                    "p99_ms": median([r["p99_ms"] for r in runs[label]["c16"]]),
                    "gateway_cpu_us": median(runs[label]["cpu_us"]),
                },
                "c1": {"p50_ms": median([r["p50_ms"] for r in runs[label]["c1"]])},
                "spaced": {"p50_ms": median(times[label]), "p99_ms": percentile(times[label], 99), "n": len(times[label])},
            }
        return out
    finally:
        for lam in servers.values():
            lam.stop()


# About 5 ms of CPU per call, called back to back on one connection: the
# one instance wants a whole CPU, so its share binds (7% at 128 MB) however
# fast or busy the machine is, which a hello-world at c=16 does only on a
# fast, quiet one.
CPU_WORK = "def handler(event, context):\n    n = sum(i * i for i in range(100000))\n    return {'statusCode': 200, 'body': str(n)}\n"


def section_p(quick: bool) -> dict:
    """A small function against a large one under the same sustained load,
    measured in alternation: hello-world at 16 connections (the load a soak
    runs), and one connection calling CPU_WORK back to back. CPU follows
    memory, so a 128 MB function is slower; the CFS period decides whether
    it slows down smoothly (p99 near p50) or stalls for most of a period
    once it has used its share (a 1 s period: p99 ~0.9 s)."""
    rounds = 3 if quick else 5
    seconds = 4 if quick else 8
    loads = {"hello, c=16": (harness.HELLO, 16), "5 ms of CPU, c=1": (CPU_WORK, 1)}
    lam = Lambdalet("--spare-sandboxes", "0")
    try:
        urls = {}
        for i, (load_name, (source, connections)) in enumerate(loads.items()):
            for memory in (128, 1024):
                urls[(load_name, memory)] = (lam.function(f"p{i}-{memory}", source=source, memory=memory), connections)
        for url, connections in urls.values():
            load(url, connections, 1)  # start the instances the run will use
        runs: dict = {key: [] for key in urls}
        for i in range(rounds):
            for key in list(urls) if i % 2 == 0 else list(reversed(urls)):
                url, connections = urls[key]
                runs[key].append(load(url, connections, seconds))
        out: dict = {}
        for (load_name, memory), rs in runs.items():
            out.setdefault(load_name, {})[f"{memory} MB"] = {
                "rps": median([r["rps"] for r in rs]),
                "p50_ms": median([r["p50_ms"] for r in rs]),
                "p99_ms": median([r["p99_ms"] for r in rs]),
                "rounds": rounds,
            }
        return out
    finally:
        lam.stop()


def section_m(quick: bool) -> dict:
    try:
        from . import metering
    except ImportError as exc:
        return {"error": str(exc)}
    return metering.run()


def section_g(quick: bool) -> dict:
    from . import custom_runtime

    return custom_runtime.run(quick)


def section_l(quick: bool) -> dict:
    from . import languages

    return languages.run(quick)


def section_w(quick: bool) -> dict:
    from . import walls

    return walls.run(quick)


_WALLS_ROWS = (
    ("getppid", "ns, getppid (allowed outright)"),
    ("ioctl", "ns, ioctl FIONREAD (decided by its arguments)"),
    ("socket_close", "ns, socket + close (decided by its arguments)"),
    ("unlisted", "ns, a call nobody listed (refused)"),
    ("python_file_ops_us", "µs, Python stat + open + read + close"),
    ("spawn_ms", "ms, sandbox start + end (/bin/true)"),
)


def render(results: dict) -> str:
    rows = ["| measure | lambdalet | peer / floor | ratio |", "|---|---|---|---|"]
    a = results.get("a", {})
    lam = a.get("lambdalet")
    for peer in ("serverless-offline", "trio+h11 floor"):
        other = a.get(peer)
        if lam and other:
            rows.append(
                f"| warm URL req/s, c=16 (vs {peer}) | {lam['c16']['rps']:.0f} | {other['c16']['rps']:.0f} | {lam['c16']['rps'] / other['c16']['rps']:.2f}× |"
            )
            rows.append(
                f"| warm URL p50 ms, c=1 (vs {peer}) | {lam['c1']['p50_ms']:.3f} | {other['c1']['p50_ms']:.3f} | {lam['c1']['p50_ms'] / other['c1']['p50_ms']:.2f}× |"
            )
    if lam:
        rows.append(f"| warm URL p99 ms, c=1 / c=16 | {lam['c1']['p99_ms']:.2f} / {lam['c16']['p99_ms']:.2f} | | |")
        raw = a.get(RAW_FLOOR)
        if raw:
            # The tool's own tail: a p99 target at c=16 cannot be met below it.
            rows.append(
                f"| warm URL p99 ms, c=16 (vs the load generator alone, raw socket server) | {lam['c16']['p99_ms']:.2f} | "
                f"{raw['c16']['p99_ms']:.2f} ({raw['c16']['rps']:.0f} req/s) | {lam['c16']['p99_ms'] / raw['c16']['p99_ms']:.2f}× |"
            )
            # The tool's and the kernel's share of a c=1 round trip.
            rows.append(
                f"| warm URL p50 ms, c=1 (vs the load generator alone, raw socket server) | {lam['c1']['p50_ms']:.3f} | "
                f"{raw['c1']['p50_ms']:.3f} | {lam['c1']['p50_ms'] / raw['c1']['p50_ms']:.2f}× |"
            )
    b = results.get("b", {})
    floor = b.get("python -I -S -c pass")
    for label in ("spare sandbox", "no spare (full spawn)"):
        if floor and label in b:
            rows.append(
                f"| cold start p50 ms ({label}) | {b[label]['p50_ms']:.2f} | {floor['p50_ms']:.2f} (python -I -S) | {b[label]['p50_ms'] / floor['p50_ms']:.2f}× |"
            )
            rows.append(
                f"| cold start p99 ms ({label}) | {b[label]['p99_ms']:.2f} | {floor['p99_ms']:.2f} | {b[label]['p99_ms'] / floor['p99_ms']:.2f}× |"
            )
    c = results.get("c", {})
    mine = c.get("lambdalet sandbox create+destroy")
    fl = c.get("floor: bare namespaced clone")
    if mine:
        rows.append(
            f"| sandbox churn /s (create + destroy) | {mine['per_s']:.0f} | {fl['per_s']:.0f} (bare namespaced clone) | {mine['per_s'] / fl['per_s']:.2f}× |"
            if fl
            else f"| sandbox churn /s | {mine['per_s']:.0f} | | |"
        )
    py = c.get("lambdalet python sandbox create+ready+destroy")
    if py and fl:
        how = "zygote fork" if py.get("zygote") else "exec'd interpreter"
        rows.append(
            f"| sandbox churn /s (Python worker, {how}, to Ready) | {py['per_s']:.0f} | {fl['per_s']:.0f} (bare namespaced clone) | {py['per_s'] / fl['per_s']:.2f}× |"
        )
        if "spawn_ms" in py:
            rows.append(
                f"| churn phases p50 ms: spawn / to Ready / destroy | {py['spawn_ms']:.2f} / {py['ready_ms']:.2f} / {py['destroy_ms']:.2f} | | |"
            )
        if "cpu_ms_server" in py:
            total = py["cpu_ms_server"] + py["cpu_ms_sandboxes"] + py["cpu_ms_zygote"]
            rows.append(
                f"| churn CPU ms per sandbox: server / sandbox / zygote = sum | {py['cpu_ms_server']:.2f} / {py['cpu_ms_sandboxes']:.2f} / {py['cpu_ms_zygote']:.2f} = {total:.2f} | ≤ 2.00 (1,000/s on 2 cores) | {total / 2.0:.2f}× |"
            )
    pooled_floor = c.get("floor: bare clone, network namespace pooled")
    if py and pooled_floor:
        rows.append(
            f"| sandbox churn /s (Python worker to Ready) vs a bare clone whose network namespace is pooled | {py['per_s']:.0f} | {pooled_floor['per_s']:.0f} | {py['per_s'] / pooled_floor['per_s']:.2f}× |"
        )
    overlapped = c.get("lambdalet python sandbox create+ready, destroyed on other threads")
    if overlapped and fl:
        rows.append(
            f"| sandbox churn /s (Python worker to Ready, destroys on other threads as in the server) | {overlapped['per_s']:.0f} | {fl['per_s']:.0f} (bare namespaced clone) | {overlapped['per_s'] / fl['per_s']:.2f}× |"
        )
    d = results.get("d", {})
    if "pss_mb_per_instance" in d:
        rows.append(
            f"| PSS per idle warm instance, {d['instances']} instances | {d['pss_mb_per_instance']:.2f} MB | target ≤ 1.5 MB | {d['pss_mb_per_instance'] / 1.5:.2f}× |"
        )
    private = d.get("worker_private_kb")
    if private:
        kinds = " / ".join(smaps.KINDS)
        rows.append(f"| an idle worker's private KB: {kinds} | {' / '.join(f'{private[k]:.0f}' for k in smaps.KINDS)} | | |")
    e = results.get("e", {})
    if "functions" in e:
        rows.append(
            f"| {e['functions']} never-called functions: processes / server RSS | {e['processes']} / {e['server_rss_mb']:.0f} MB | target 0 / < 150 MB | |"
        )
    rows.extend(paths.render(results.get("i", {})))
    w = results.get("w", {})
    mine, none = w.get("allow-list", {}), w.get("no filter", {})
    for key, label in _WALLS_ROWS:
        if key in mine and key in none:
            rows.append(f"| seccomp allow-list: {label} | {mine[key]:.2f} | {none[key]:.2f} (no filter) | {mine[key] / none[key]:.2f}× |")
    f = results.get("f", {})
    on, off = f.get("freezing"), f.get("no freezing")
    if on and off:
        rows.append(
            f"| warm URL req/s, c=16, idle freezing on (vs off) | {on['c16']['rps']:.0f} | {off['c16']['rps']:.0f} | {on['c16']['rps'] / off['c16']['rps']:.2f}× |"
        )
        rows.append(
            f"| warm URL p50 ms, c=1, idle freezing on (vs off) | {on['c1']['p50_ms']:.3f} | {off['c1']['p50_ms']:.3f} | {on['c1']['p50_ms'] / off['c1']['p50_ms']:.2f}× |"
        )
        rows.append(
            f"| gateway CPU µs per warm request, c=16, idle freezing on (vs off) | {on['c16']['gateway_cpu_us']:.0f} | {off['c16']['gateway_cpu_us']:.0f} | {on['c16']['gateway_cpu_us'] / off['c16']['gateway_cpu_us']:.2f}× |"
        )
        rows.append(
            f"| call after 30 ms idle, p50 ms: thawed (vs never frozen) | {on['spaced']['p50_ms']:.3f} | {off['spaced']['p50_ms']:.3f} | {on['spaced']['p50_ms'] / off['spaced']['p50_ms']:.2f}× |"
        )
        rows.append(
            f"| call after 30 ms idle, p99 ms: thawed (vs never frozen) | {on['spaced']['p99_ms']:.3f} | {off['spaced']['p99_ms']:.3f} | {on['spaced']['p99_ms'] / off['spaced']['p99_ms']:.2f}× |"
        )
    for load_name, sizes in results.get("p", {}).items():
        if not isinstance(sizes, dict):
            continue  # the section's error
        small, large = sizes.get("128 MB"), sizes.get("1024 MB")
        if small and large:
            for key, unit in (("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("rps", "req/s")):
                fmt = ".0f" if key == "rps" else ".2f"
                rows.append(
                    f"| {load_name}: {unit} at 128 MB (vs 1024 MB) | {small[key]:{fmt}} | {large[key]:{fmt}} | {small[key] / large[key]:.2f}× |"
                )
    r = results.get("r", {})
    floors = r.get("floors", {})
    for mode in ("builds", "no builds"):
        for runtime, fig in r.get(mode, {}).items():
            floor_ms = floors.get(runtime)
            if floor_ms:
                rows.append(
                    f"| {runtime} cold start p50 ms, no spare ({fig['how']}) | {fig['cold_p50_ms']:.2f} | "
                    f"{floor_ms:.2f} ({runtime} -I -S -c pass) | {fig['cold_p50_ms'] / floor_ms:.2f}× |"
                )
            own = fig["own_warm_c1_p50_ms"]
            rows.append(
                f"| {runtime} warm URL p50 ms, c=1 ({fig['how']}) | {fig['warm_c1_p50_ms']:.3f} | "
                f"{own:.3f} ({harness.RUNTIME}, same server) | {fig['warm_c1_p50_ms'] / own:.2f}× |"
            )
    from . import export, growth, soak

    rows.extend(events.render(results.get("s", {})))
    rows.extend(growth.render(results.get("k", {})))
    rows.extend(export.render(results.get("o", {})))
    rows.extend(extensions.render(results.get("t", {})))
    rows.extend(soak.render(results.get("soak", {})))
    if "g" in results and "error" not in results["g"]:
        from . import custom_runtime

        rows.extend(custom_runtime.rows(results["g"]))
    if "l" in results and "error" not in results["l"]:
        from . import languages

        rows.append("")
        rows.extend(languages.rows(results["l"]))
    m = results.get("m", {})
    for key, value in m.items():
        if isinstance(value, (int, float)):
            rows.append(f"| metering: {key} | {value:.3f} | | |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer samples")
    parser.add_argument(
        "--only",
        default="a,b,c,d,e,f,i,p,m,w,g,l,s,k,o,t",
        help="sections to run, e.g. a,b (not run by default: r, other Python versions, as it installs their builds with pip; soak, as it takes --soak-minutes)",
    )
    parser.add_argument("--soak-minutes", type=float, default=30.0, help="length of the (soak) section's load (default 30)")
    parser.add_argument("--json", help="also write the raw figures to this file")
    args = parser.parse_args()

    def section_k(quick: bool) -> dict:
        from . import growth

        return growth.run(quick)

    def section_o(quick: bool) -> dict:
        from . import export

        return export.run(quick)

    def section_soak(quick: bool) -> dict:
        from . import soak

        return soak.run(args.soak_minutes)

    sections = {
        "a": section_a,
        "b": section_b,
        "c": section_c,
        "d": section_d,
        "e": section_e,
        "f": section_f,
        "i": paths.run,
        "p": section_p,
        "m": section_m,
        "w": section_w,
        "g": section_g,
        "l": section_l,
        "s": events.section_s,
        "k": section_k,
        "o": section_o,
        "t": extensions.run,
        "r": section_r,
        "soak": section_soak,
    }
    results: dict = {
        "host": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    # Before any load: the load average then is the machine's, not the bench's.
    results["provenance"] = {"machine": provenance.machine(), "commit": provenance.commit(), "peers": provenance.peers()}
    for key in args.only.split(","):
        key = key.strip()
        print(f"running ({key}) ...", file=sys.stderr, flush=True)
        try:
            results[key] = sections[key](args.quick)
        except Exception as exc:  # one broken section must not hide the others
            results[key] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"  ({key}) failed: {exc}", file=sys.stderr)
    print(f"lambdalet bench — {results['host']} — {results['started']}")
    print(f"command: python -m bench {' '.join(sys.argv[1:])}".rstrip())
    for line in provenance.header_lines(results["provenance"]):
        print(line)
    print()
    print(render(results))
    results["command"] = f"python -m bench {' '.join(sys.argv[1:])}".rstrip()
    kept = provenance.results_path(results["started"], results["provenance"])
    kept.parent.mkdir(parents=True, exist_ok=True)
    for path in (kept, args.json):
        if path:
            with open(path, "w") as f:
                json.dump(results, f, indent=1)
    print(f"\nraw figures: {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
