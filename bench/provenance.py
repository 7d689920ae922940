"""What a bench run ran on: the machine, the commit, and the peers' versions.

Printed above the table and kept in the run's JSON, so that a figure in the
README can be traced to the machine and the code that gave it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess

REPO = pathlib.Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    return {
        "host": platform.node(),
        "arch": platform.machine(),
        "cpu_model": model or platform.processor() or "?",
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
    }


def _git(repo: pathlib.Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def commit(repo: pathlib.Path = REPO) -> dict:
    """The checked-out commit; ``dirty`` when tracked files differ from it
    (the figures then belong to no commit exactly)."""
    sha = _git(repo, "rev-parse", "HEAD")
    return {
        "sha": sha or "unknown",
        "describe": _git(repo, "describe", "--always", "--dirty") or "unknown",
        "dirty": bool(_git(repo, "status", "--porcelain", "--untracked-files=no")),
    }


def _dist(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _node_package(home: pathlib.Path | None, name: str) -> str | None:
    if home is None:
        return None
    try:
        return json.loads((home / "node_modules" / name / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def _command_version(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout + out.stderr).strip()
    found = re.search(r"\d+\.\d+(\.\d+)?", text)
    return found.group(0) if found else None


def peers() -> dict:
    """Each peer's and each load tool's version as installed (None: not there)."""
    from . import peers as peer_module

    home = peer_module.CACHE / "serverless-offline"
    return {
        "serverless": _node_package(home, "serverless"),
        "serverless-offline": _node_package(home, "serverless-offline"),
        "node": _command_version(["node", "--version"]),
        "trio": _dist("trio"),
        "h11": _dist("h11"),
        "wrk": _command_version(["wrk", "--version"]),
        "python": platform.python_version(),
    }


def header_lines(info: dict) -> list[str]:
    m, c, p = info["machine"], info["commit"], info["peers"]
    load = ", ".join(f"{x:.2f}" for x in m["load_average"])
    versions = ", ".join(f"{name} {version}" for name, version in p.items() if version)
    missing = ", ".join(name for name, version in p.items() if not version)
    return [
        f"machine: {m['cpu_model']}, {m['cores']} cores, {m['arch']}, kernel {m['kernel']}, Python {m['python']}; "
        f"load average at start {load}",
        f"commit: {c['describe']} ({c['sha'][:12]}{', dirty: uncommitted changes' if c['dirty'] else ''})",
        f"peers and tools: {versions}" + (f" (not installed: {missing})" if missing else ""),
    ]


def results_path(started_utc: str, info: dict) -> pathlib.Path:
    """bench/results/<date>-<sha>.json; the time of day keeps two runs of a
    day apart, and a dirty tree says so in the name."""
    stamp = started_utc.replace(" UTC", "").replace(" ", "-").replace(":", "")
    sha = info["commit"]["sha"][:12]
    return RESULTS / f"{stamp}-{sha}{'-dirty' if info['commit']['dirty'] else ''}.json"
