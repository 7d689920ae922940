"""(g) A custom runtime beside the Python fast path: provided.al2023 with an
aws-lambda-go bootstrap (tests/custom_runtimes/go, built by
tests/runtime_builds.py from the Go module proxy, once per source).

Warm: one server holds a Python hello function and the Go one (same
answer, MemorySize 1024, each behind a function URL); their loads run in
alternation, so that a busy machine's noise falls on both alike: req/s at
c=16, p50 at c=1, and the gateway's CPU per request. Cold: new Go
functions' first calls (a spare sandbox whose worker execs the bootstrap,
and a full spawn) beside `python3 -I -S -c pass`.
"""

from __future__ import annotations

import pathlib
import sys
import time

from . import harness, peers
from .harness import Lambdalet, http_get_once, load, median, percentile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
import runtime_builds  # noqa: E402
from helpers import make_zip  # noqa: E402


def _go_function(lam: Lambdalet, name: str, boot: bytes, memory: int = 1024) -> str:
    lam.client.create_function(
        FunctionName=name,
        Runtime="provided.al2023",
        Role=harness.ROLE,
        Handler="hello",
        Code={"ZipFile": make_zip({"bootstrap": boot}, {"bootstrap": 0o755})},
        MemorySize=memory,
    )
    return lam.public_url(name)


def run(quick: bool) -> dict:
    boot = runtime_builds.go_bootstrap().read_bytes()
    rounds = 3 if quick else 7
    seconds = 2 if quick else 4
    out: dict = {"rounds": rounds}
    lam = Lambdalet()
    try:
        urls = {
            "python fast path": lam.function("hello", memory=1024),
            "provided.al2023 (aws-lambda-go)": _go_function(lam, "go-hello", boot),
        }
        for url in urls.values():
            http_get_once(url)
            load(url, 16, 1)  # start the instances the run will use
        runs: dict = {label: {"c1": [], "c16": [], "cpu_us": []} for label in urls}
        for i in range(rounds):
            for label in list(urls) if i % 2 == 0 else list(reversed(urls)):
                before = harness.cpu_seconds(lam.proc.pid)
                run16 = load(urls[label], 16, seconds)
                runs[label]["cpu_us"].append((harness.cpu_seconds(lam.proc.pid) - before) / (run16["rps"] * seconds) * 1e6)
                runs[label]["c16"].append(run16)
                runs[label]["c1"].append(load(urls[label], 1, seconds))
        for label, r in runs.items():
            out[label] = {
                "c16": {
                    "rps": median([x["rps"] for x in r["c16"]]),
                    "p99_ms": median([x["p99_ms"] for x in r["c16"]]),
                    "gateway_cpu_us": median(r["cpu_us"]),
                },
                "c1": {"p50_ms": median([x["p50_ms"] for x in r["c1"]]), "rps": median([x["rps"] for x in r["c1"]])},
            }
    finally:
        lam.stop()
    n = 15 if quick else 40
    floor = peers.python_start_ms(30)
    out["python -I -S -c pass"] = {"p50_ms": median(floor), "p99_ms": percentile(floor, 99)}
    for label, args in (("spare sandbox", ()), ("no spare (full spawn)", ("--spare-sandboxes", "0"))):
        lam = Lambdalet(*args)
        try:
            http_get_once(_go_function(lam, "go-warmup", boot))  # the first call wakes the spare pool
            cold = [_go_function(lam, f"go-cold-{i}", boot) for i in range(n if not args else max(5, n // 4))]
            times = []
            for url in cold:
                time.sleep(0.25)  # let the spare pool refill: a cold start, not a burst
                times.append(http_get_once(url) * 1000)
            out[f"cold, {label}"] = {"p50_ms": median(times), "p99_ms": percentile(times, 99), "n": len(times)}
        finally:
            lam.stop()
    return out


def rows(g: dict) -> list[str]:
    py, go = g.get("python fast path"), g.get("provided.al2023 (aws-lambda-go)")
    out = []
    if py and go:
        out.append(
            f"| provided.al2023 (aws-lambda-go) warm URL req/s, c=16 (vs Python fast path) | {go['c16']['rps']:.0f} | {py['c16']['rps']:.0f} | {go['c16']['rps'] / py['c16']['rps']:.2f}× |"
        )
        out.append(
            f"| provided.al2023 (aws-lambda-go) warm URL p50 ms, c=1 (vs Python fast path) | {go['c1']['p50_ms']:.3f} | {py['c1']['p50_ms']:.3f} | {go['c1']['p50_ms'] / py['c1']['p50_ms']:.2f}× |"
        )
        out.append(
            f"| provided.al2023 (aws-lambda-go) gateway CPU µs per warm request, c=16 (vs Python fast path) | {go['c16']['gateway_cpu_us']:.0f} | {py['c16']['gateway_cpu_us']:.0f} | {go['c16']['gateway_cpu_us'] / py['c16']['gateway_cpu_us']:.2f}× |"
        )
    floor = g.get("python -I -S -c pass")
    for label in ("spare sandbox", "no spare (full spawn)"):
        cold = g.get(f"cold, {label}")
        if cold and floor:
            out.append(
                f"| provided.al2023 (aws-lambda-go) cold start p50 ms ({label}) | {cold['p50_ms']:.2f} | {floor['p50_ms']:.2f} (python -I -S) | {cold['p50_ms'] / floor['p50_ms']:.2f}× |"
            )
            out.append(
                f"| provided.al2023 (aws-lambda-go) cold start p99 ms ({label}) | {cold['p99_ms']:.2f} | {floor['p99_ms']:.2f} | {cold['p99_ms'] / floor['p99_ms']:.2f}× |"
            )
    return out
