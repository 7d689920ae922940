"""(l) A row per language: Python, Node.js, Java, C# and provided.al2023.

Warm: one server holds a hello function per language, each behind a
function URL (MemorySize 1024), loaded in alternation so that a busy
machine's noise falls on all alike: req/s at c=16 and p50 at c=1. Idle:
PSS per warm instance, by the processes' program (the Python worker, node,
java, mono, the Go bootstrap). Cold: new functions' first calls through
their URLs (a spare sandbox whose worker becomes the runtime), beside each
runtime's own bare start: `python3 -I -S -c pass`, `node -e 0`,
`java -version`, `mono --version`.

The Java and C# functions are tests/languages' samples (built once per
source by tests/language_builds.py); their handlers do a little more than
hello (Java's logs three lines, C#'s echoes the event back).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

from . import harness, peers
from .harness import Lambdalet, http_get_once, load, median, percentile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
import language_builds  # noqa: E402
import runtime_builds  # noqa: E402
from helpers import make_zip  # noqa: E402

NODE_HELLO = "exports.handler = async () => ({ statusCode: 200, body: 'hello' });\n"
PROGRAMS = {"python": "python", "node": "node", "java": "java", "dotnet": "mono", "provided.al2023 (aws-lambda-go)": "bootstrap"}


def _functions() -> dict[str, tuple[str, str, bytes, dict]]:
    """label -> (runtime, handler, zip, modes)."""
    jar, _lib = language_builds.java_sample()
    language_builds.java_runtime()
    go = runtime_builds.go_bootstrap().read_bytes()
    return {
        "python": (harness.RUNTIME, "app.handler", harness.zip_of({"app.py": harness.HELLO}), {}),
        "node": ("nodejs20.x", "index.handler", make_zip({"index.js": NODE_HELLO}), {}),
        "java": ("java17", "example.Hello::handleRequest", jar, {}),
        "dotnet": ("dotnet8", "Sample::Sample.Functions::Dict", language_builds.dotnet_sample(), {}),
        "provided.al2023 (aws-lambda-go)": (
            "provided.al2023",
            "hello",
            make_zip({"bootstrap": go}, {"bootstrap": 0o755}),
            {"bootstrap": 0o755},
        ),
    }


def _create(lam: Lambdalet, name: str, spec: tuple, memory: int = 1024) -> str:
    runtime, handler, code, _modes = spec
    lam.client.create_function(
        FunctionName=name, Runtime=runtime, Role=harness.ROLE, Handler=handler, Code={"ZipFile": code}, MemorySize=memory, Timeout=30
    )
    return lam.public_url(name)  # AuthType NONE needs the two public statements, as on AWS


def _floor_ms(argv: list[str], n: int) -> dict:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": median(times), "p99_ms": percentile(times, 99)}


def _warm_up(url: str, limit_s: float = 60.0) -> None:
    """Load at c=16 until 16 instances are warm: until a second's req/s
    stops growing (a JVM's or Mono's cold starts take that long)."""
    deadline = time.monotonic() + limit_s
    last = 0.0
    while time.monotonic() < deadline:
        rps = load(url, 16, 1)["rps"]
        if last and rps < last * 1.2:
            return
        last = rps


def _python_worker(pid: int, argv: list[bytes]) -> bool:
    """A Python instance: a worker started as one, or a fork of the runtime
    zygote (the zygote's own argv) that is a sandbox's PID 1 (NSpid names a
    second pid), which the zygote itself is not."""
    joined = b" ".join(argv)
    if b"lambdalet.runtime.worker" in joined:
        return True
    if b"lambdalet.sandbox.zygote" not in joined:
        return False
    try:
        with open(f"/proc/{pid}/status") as f:
            nspid = next((line.split()[1:] for line in f if line.startswith("NSpid:")), [])
    except OSError:
        return False
    return len(nspid) > 1


def _pss_by_program(root: int) -> dict[str, tuple[int, int]]:
    """program -> (processes, PSS kB) among root's descendants."""
    from .__main__ import _descendants, _pss_kb

    out: dict[str, tuple[int, int]] = {}
    for pid in _descendants(root):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        exe = os.path.basename(argv[0].decode(errors="replace")) if argv and argv[0] else ""
        kind = next(
            (
                label
                for label, program in PROGRAMS.items()
                if exe == program
                or (program == "mono" and exe.startswith("mono"))
                or (program == "python" and exe.startswith("python") and _python_worker(pid, argv))
            ),
            None,
        )
        if kind is None:
            continue
        n, kb = out.get(kind, (0, 0))
        out[kind] = (n + 1, kb + _pss_kb(pid))
    return out


def run(quick: bool) -> dict:
    specs = _functions()
    rounds = 3 if quick else 5
    seconds = 2 if quick else 4
    out: dict = {"rounds": rounds}
    # Five functions with 16 warm instances each at 1024 MB add up to 80 GB of
    # MemorySize: under the default budget (the host's available memory) each
    # language's load would evict the others' idle instances and measure
    # their cold starts. MemorySize is a cap, not what they use, so the
    # budget holds them all; no spares, so every sandbox is an instance.
    budget_mb = len(specs) * 17 * 1024
    lam = Lambdalet("--memory-budget-mb", str(budget_mb), "--spare-sandboxes", "0")
    try:
        urls = {label: _create(lam, f"warm-{i}", spec) for i, (label, spec) in enumerate(specs.items())}
        for url in urls.values():
            http_get_once(url)
            _warm_up(url)
        runs: dict = {label: {"c1": [], "c16": []} for label in urls}
        for i in range(rounds):
            for label in list(urls) if i % 2 == 0 else list(reversed(urls)):
                runs[label]["c16"].append(load(urls[label], 16, seconds))
                runs[label]["c1"].append(load(urls[label], 1, seconds))
        time.sleep(1.0)
        pss = _pss_by_program(lam.proc.pid)
        for label, r in runs.items():
            n, kb = pss.get(label, (0, 0))
            out[label] = {
                "c16_rps": median([x["rps"] for x in r["c16"]]),
                "c1_p50_ms": median([x["p50_ms"] for x in r["c1"]]),
                "idle_instances": n,
                "pss_mb_per_instance": kb / 1024 / n if n else None,
            }
    finally:
        lam.stop()
    n = 8 if quick else 25
    floors = {
        "python": ["python3", "-I", "-S", "-c", "pass"],
        "node": ["node", "-e", "0"],
        "java": ["java", "-version"],
        "dotnet": ["mono", "--version"],
    }
    for label, argv in floors.items():
        real = [
            os.path.realpath(subprocess.run(["sh", "-c", f"command -v {argv[0]}"], capture_output=True, text=True).stdout.strip()),
            *argv[1:],
        ]
        out[label]["bare start"] = {"argv": " ".join(argv), **_floor_ms(real, 15)}
    out["python"]["bare start"] = {
        "argv": "python3 -I -S -c pass",
        "p50_ms": median(peers.python_start_ms(15)),
        "p99_ms": percentile(peers.python_start_ms(15), 99),
    }
    lam = Lambdalet()
    try:
        for k, (label, spec) in enumerate(specs.items()):
            http_get_once(_create(lam, f"wake-{k}", spec))  # wakes the spare pool
            times = []
            for i in range(n):
                url = _create(lam, f"cold-{k}-{i}", spec)
                time.sleep(0.3)  # the spare pool refills: a cold start, not a burst
                times.append(http_get_once(url) * 1000)
            out[label]["cold"] = {"p50_ms": median(times), "p99_ms": percentile(times, 99), "n": n}
    finally:
        lam.stop()
    return out


def rows(d: dict) -> list[str]:
    out = ["| runtime | warm req/s c=16 | p50 c=1 | cold p50 / p99 | bare start p50 | idle PSS / instance |", "|---|---|---|---|---|---|"]
    for label, r in d.items():
        if not isinstance(r, dict) or "c16_rps" not in r:
            continue
        bare = r.get("bare start")
        cold = r.get("cold", {})
        pss = r.get("pss_mb_per_instance")
        bare_text = f"{bare['p50_ms']:.0f} ms (`{bare['argv']}`)" if bare else "-"
        pss_text = f"{pss:.1f} MB" if pss else "-"
        out.append(
            f"| {label} | {r['c16_rps']:.0f} | {r['c1_p50_ms']:.2f} ms | "
            f"{cold.get('p50_ms', 0):.0f} / {cold.get('p99_ms', 0):.0f} ms | {bare_text} | {pss_text} |"
        )
    return out
