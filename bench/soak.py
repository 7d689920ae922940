"""(soak) A long run at steady load, then function churn: does the server
stay flat?

Load: 16 connections on one function URL for --soak-minutes (30 by
default), from lambdalet's own load generator in a separate process. Every
few seconds the server's RSS, open fds and the bytes its data directory
takes are sampled. Reported: the RSS slope over the second half (MiB per
minute, least squares: the first half is warm-up, caches filling), fds at
start and end, errors, and bytes on disk per call, per file. Then rounds of
create + invoke + delete functions, with the RSS after each round: what
churn takes and whether it is given back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from . import harness
from .harness import Lambdalet

SAMPLES = 60  # per run, whatever its length (at least one every 10 s)
CHURN_ROUNDS = 6
CHURN_FUNCTIONS = 20


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def disk_bytes(root: str) -> dict[str, int]:
    """Bytes allocated on disk per top-level entry of the data directory (a
    database counts with its -wal and -shm files)."""
    out: dict[str, int] = {}
    for entry in os.scandir(root):
        key = entry.name.split("-wal")[0].split("-shm")[0]
        total = 0
        if entry.is_dir(follow_symlinks=False):
            for dirpath, _dirs, files in os.walk(entry.path):
                for name in files:
                    try:
                        total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
                    except FileNotFoundError:
                        pass  # a journal file rotated away while we walked
        else:
            total = entry.stat(follow_symlinks=False).st_blocks * 512
        out[key] = out.get(key, 0) + total
    return out


def slope_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB), in MiB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in samples) / var * 60


def _load(url: str, seconds: int) -> subprocess.Popen:
    return subprocess.Popen(
        [harness.PY, "-m", "lambdalet.gateway.cli", "bench", url, "-c", "16", "-d", str(seconds), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _churn(lam: Lambdalet) -> list[float]:
    """RSS after each round of creating, calling and deleting functions."""
    code = harness.zip_of({"app.py": harness.HELLO})
    after = []
    for r in range(CHURN_ROUNDS):
        names = [f"churn-{r}-{i}" for i in range(CHURN_FUNCTIONS)]
        for name in names:
            lam.client.create_function(
                FunctionName=name, Runtime=harness.RUNTIME, Role=harness.ROLE, Handler="app.handler", Code={"ZipFile": code}
            )
            lam.client.invoke(FunctionName=name)
        for name in names:
            lam.client.delete_function(FunctionName=name)
        time.sleep(2)  # let retired instances go
        after.append(rss_mib(lam.proc.pid))
    return after


def run(minutes: float) -> dict:
    seconds = max(20, int(minutes * 60))
    every = min(10.0, seconds / SAMPLES)
    lam = Lambdalet()
    try:
        url = lam.function("soak", memory=1024)
        harness.http_get_once(url)
        pid = lam.proc.pid
        disk_before = disk_bytes(lam.tmp)
        rss: list[tuple[float, float]] = []
        fds: list[int] = []
        load = _load(url, seconds)
        started = time.monotonic()
        while load.poll() is None:
            rss.append((time.monotonic() - started, rss_mib(pid)))
            fds.append(open_fds(pid))
            time.sleep(every)
        assert load.stdout is not None  # stdout=PIPE
        summary = json.loads(load.stdout.read() or "{}")
        load.stdout.close()
        time.sleep(5)  # let the last batches reach SQLite
        disk_after = disk_bytes(lam.tmp)
        calls = summary.get("requests", 0)
        idle_rss = rss_mib(pid)
        second_half = [(t, v) for t, v in rss if t >= seconds / 2]
        churn = _churn(lam)
        per_call = (
            {k: (disk_after.get(k, 0) - disk_before.get(k, 0)) / calls for k in sorted(set(disk_after) | set(disk_before)) if calls}
            if calls
            else {}
        )
        return {
            "minutes": seconds / 60,
            "calls": calls,
            "rps": summary.get("rps", 0.0),
            "errors": summary.get("errors", -1),
            "status": summary.get("status", {}),
            "p99_ms": summary.get("latency_ms", {}).get("p99"),
            "rss_start_mib": rss[0][1] if rss else 0.0,
            "rss_end_mib": rss[-1][1] if rss else 0.0,
            "rss_max_mib": max((v for _, v in rss), default=0.0),
            "rss_slope_mib_per_min_second_half": slope_per_min(second_half),
            "rss_after_load_idle_mib": idle_rss,
            "fds_start": fds[0] if fds else 0,
            "fds_end": fds[-1] if fds else 0,
            "fds_max": max(fds, default=0),
            "disk_bytes_per_call": per_call,
            "disk_bytes_per_call_total": sum(per_call.values()),
            "disk_after_bytes": disk_after,
            "churn_rss_after_rounds_mib": churn,
            "churn_functions_per_round": CHURN_FUNCTIONS,
            "rss_samples": rss,
        }
    finally:
        lam.stop()


def render(s: dict) -> list[str]:
    if "calls" not in s:
        return []
    rows = [
        f"| soak {s['minutes']:.0f} min, URL at c=16: calls / req/s / errors | {s['calls']} / {s['rps']:.0f} / {s['errors']} | | |",
        f"| soak: server RSS start → end (max), MiB | {s['rss_start_mib']:.1f} → {s['rss_end_mib']:.1f} ({s['rss_max_mib']:.1f}) | | |",
        f"| soak: server RSS slope, second half | {s['rss_slope_mib_per_min_second_half']:+.3f} MiB/min | target ~0 | |",
        f"| soak: open fds start → end (max) | {s['fds_start']} → {s['fds_end']} ({s['fds_max']}) | | |",
    ]
    parts = ", ".join(f"{k} {v:.0f}" for k, v in s["disk_bytes_per_call"].items() if abs(v) >= 0.5)
    rows.append(f"| soak: bytes on disk per call | {s['disk_bytes_per_call_total']:.0f} ({parts}) | | |")
    churn = s["churn_rss_after_rounds_mib"]
    if churn:
        rows.append(
            f"| churn: RSS after each round of {s['churn_functions_per_round']} create+invoke+delete, MiB | "
            f"{' → '.join(f'{v:.1f}' for v in churn)} | | |"
        )
    return rows


if __name__ == "__main__":
    print(json.dumps(run(float(sys.argv[1]) if len(sys.argv) > 1 else 2), indent=2))
