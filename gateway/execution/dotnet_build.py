"""The C# runtime's files, compiled with Mono's mcs when a server starts.

`<cache>/dotnet/<key>` (key: a hash of runtime/dotnet's sources and the
Mono version) holds, mounted at /var/runtime/dotnet in C# functions'
sandboxes:

- Amazon.Lambda.Core.dll                       the contract handlers compile against;
- Amazon.Lambda.Serialization.SystemTextJson.dll and
  Amazon.Lambda.Serialization.Json.dll         serializers under AWS's names (Json.NET inside);
- LambdaletRuntime.exe                         the runtime host.

Compiling takes a few seconds, once per host and source version. What it
needs from Debian: mono-mcs (mcs) and libnewtonsoft-json5.0-cil (Json.NET);
assemblies built for netstandard2.0 elsewhere also need Mono's facades
(mono-devel) to load.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile

import lambdalet.runtime

SOURCES = pathlib.Path(lambdalet.runtime.__file__).parent / "dotnet"
NETSTANDARD_FACADE = "/usr/lib/mono/4.5/Facades/netstandard.dll"
COMPILE_TIMEOUT_S = 300
READY = "LambdaletRuntime.exe"


class BuildError(RuntimeError):
    pass


def newtonsoft() -> str | None:
    found = sorted(glob.glob("/usr/lib/cli/Newtonsoft.Json*/Newtonsoft.Json.dll"))
    return found[-1] if found else None


def mcs() -> str | None:
    return shutil.which("mcs") or next((p for p in ("/usr/bin/mcs",) if os.access(p, os.X_OK)), None)


def missing() -> str | None:
    """What the host lacks to build the runtime, or None."""
    if mcs() is None:
        return "no C# compiler (apt-get install mono-mcs)"
    if newtonsoft() is None:
        return "no Json.NET (apt-get install libnewtonsoft-json5.0-cil)"
    return None


def key(mono_version: str) -> str:
    h = hashlib.sha256(mono_version.encode() + b"\0" + (newtonsoft() or "").encode() + b"\0")
    for path in sorted(SOURCES.glob("*.cs")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _compile(argv: list[str], cwd: pathlib.Path) -> None:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"{argv[0]}: {exc}") from None
    if proc.returncode != 0:
        raise BuildError(f"mcs failed:\n{(proc.stdout + proc.stderr).strip()[-2000:]}")


def build(cache: pathlib.Path, mono_version: str) -> pathlib.Path:
    """The built directory (compiled now if need be). Raises BuildError."""
    why = missing()
    if why is not None:
        raise BuildError(why)
    final = pathlib.Path(cache) / "dotnet" / key(mono_version)
    if (final / READY).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / READY).exists():
            return final
        work = pathlib.Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
        try:
            compiler = mcs()
            if compiler is None:  # removed since missing() looked
                raise BuildError("no C# compiler (apt-get install mono-mcs)")
            json_net = newtonsoft()
            src = {p.name: str(p) for p in SOURCES.glob("*.cs")}
            _compile([compiler, "-nologo", "-target:library", "-out:Amazon.Lambda.Core.dll", src["Amazon.Lambda.Core.cs"]], work)
            for name, files in (
                ("Amazon.Lambda.Serialization.SystemTextJson", ["JsonNet.cs", "SystemTextJson.cs"]),
                ("Amazon.Lambda.Serialization.Json", ["JsonNet.cs", "Json.cs"]),
            ):
                _compile(
                    [
                        compiler,
                        "-nologo",
                        "-target:library",
                        f"-out:{name}.dll",
                        "-r:Amazon.Lambda.Core.dll",
                        f"-r:{json_net}",
                        *(src[f] for f in files),
                    ],
                    work,
                )
            _compile(
                [
                    compiler,
                    "-nologo",
                    "-target:exe",
                    "-out:LambdaletRuntime.exe",
                    "-r:Amazon.Lambda.Core.dll",
                    f"-r:{json_net}",
                    "-r:System.Core",
                    src["LambdaletRuntime.cs"],
                ],
                work,
            )
            for path in work.iterdir():
                os.chmod(path, 0o644)
            os.chmod(work, 0o755)
            os.rename(work, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final
