"""How a Node.js, Java or C# function's runtime starts in its sandbox.

Every language runtime speaks the Runtime API (runtime_api/), like a
custom runtime's bootstrap: the sandbox's worker execs the language's
program (node, java, mono) instead of a `bootstrap` from the code
(runtime/bootstrap.py), with the control channel as the program's fd 0.
On it the gateway then sends one JSON line, {"env": {...}}: the
function's whole environment, which the runtime takes as its own before
it loads the handler. So a runtime may start before its function is known
(a spare), and a fresh one starts the same way.

What each program runs, all of it under /var/runtime (the runtime root):
- node:   runtime/node/index.js, Lambdalet's lean runtime client;
- java:   AWS's aws-lambda-java-runtime-interface-client, unmodified,
          behind a small launcher that takes the configuration first
          (runtime/java/, built by `lambdalet runtimes install java`);
- dotnet: a runtime host for Mono with Amazon.Lambda.Core's contract
          (runtime/dotnet/, compiled with mcs when the server starts).

Some variables take effect only when a process starts (NODE_OPTIONS,
JAVA_TOOL_OPTIONS, ...): a function that sets one gets them at exec, and
never a runtime started before its function was known.

Pure: no I/O.
"""

from __future__ import annotations

import json

import msgspec

from lambdalet.sandbox.languages import Toolchain

RUNTIME_DIR = "/var/runtime"
NODE_ENTRY = f"{RUNTIME_DIR}/lambdalet/runtime/node/index.js"
JAVA_DIR = f"{RUNTIME_DIR}/java"  # runtime/java's build: the RIC's jars, the launcher, CDS archives
DOTNET_DIR = f"{RUNTIME_DIR}/dotnet"  # runtime/dotnet's build: the host, Amazon.Lambda.Core, Mono's config
CONFIG_SWITCH = "LAMBDALET_CONFIG"  # =stdin: the configuration comes on fd 0

# Variables only a process's start reads.
START_ONLY = {
    "node": ("NODE_OPTIONS", "NODE_EXTRA_CA_CERTS", "UV_THREADPOOL_SIZE", "AWS_LAMBDA_EXEC_WRAPPER"),
    "java": ("JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "AWS_LAMBDA_EXEC_WRAPPER"),
    "dotnet": ("MONO_ENV_OPTIONS", "MONO_GC_PARAMS", "MONO_PATH", "AWS_LAMBDA_EXEC_WRAPPER"),
}

# The same at each start and when the CDS archive is recorded (java_build.py),
# or the JVM refuses part of the archive. The launcher sets the function's
# environment, which the JDK keeps in private maps; the RIC loads its native
# client, which newer JDKs warn about unless allowed.
JAVA_MODULE_OPTIONS = (
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--enable-native-access=ALL-UNNAMED",
)

_LD_LIBRARY_PATH = "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib"
_PATH = "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"


class Launch(msgspec.Struct, frozen=True):
    """One language runtime's start, as the worker execs it."""

    language: str  # "node", "java", "dotnet"
    program: str  # the executable, at the same path inside the sandbox
    argv: list[str]  # what follows the program's name
    env: dict[str, str]  # the runtime's own variables (the function's own win)


def runtime_version(toolchain: Toolchain) -> str:
    """INIT_START's `Runtime Version:` (AWS: nodejs:20.v48, java:17.v32)."""
    return f"{toolchain.language}:{toolchain.version}"


def _node(toolchain: Toolchain, memory_mb: int) -> Launch:
    major = toolchain.runtime[len("nodejs") : -2]
    env = {
        "PATH": _PATH,
        "LD_LIBRARY_PATH": _LD_LIBRARY_PATH,
        "NODE_PATH": f"/opt/nodejs/node{major}/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task",
    }
    # V8 sizes its heap from the cgroup's limit when it starts; the limit
    # itself (an OOM kill, Runtime.OutOfMemory) is the platform's.
    return Launch("node", toolchain.path, ["--max-http-header-size=81920", NODE_ENTRY], env)


def _java(toolchain: Toolchain, memory_mb: int) -> Launch:
    major = toolchain.runtime[len("java") :]
    heap_mb = max(32, memory_mb * 85 // 100)
    argv = [
        # The JVM's own cold-start measures: class data sharing from an
        # archive made for this JDK with the runtime's classes in it, C1 only.
        f"-XX:SharedArchiveFile={JAVA_DIR}/cds/java{major}.jsa",
        "-Xshare:auto",
        "-XX:+TieredCompilation",
        "-XX:TieredStopAtLevel=1",
        # The function's log is no place for the JVM's notes on the archive.
        "-Xlog:cds*=off",
        *(["-Xlog:aot*=off"] if int(major) >= 24 else []),
        "-XX:+UseSerialGC",
        f"-Xmx{heap_mb}m",
        "-Djava.net.preferIPv4Stack=true",
        "-Dfile.encoding=UTF-8",
        # The RIC's native client, unpacked ahead of time instead of into /tmp at each start.
        f"-Dcom.amazonaws.services.lambda.runtime.api.client.runtimeapi.NativeClient.JNI={JAVA_DIR}/jni/libaws-lambda-jni.so",
        *JAVA_MODULE_OPTIONS,
        "-cp",
        f"{JAVA_DIR}/lib/lambdalet-launcher.jar",
        "lambdalet.runtime.Launcher",
    ]
    env = {"PATH": _PATH, "LD_LIBRARY_PATH": _LD_LIBRARY_PATH, "JAVA_HOME": toolchain.home}
    return Launch("java", toolchain.path, argv, env)


def _dotnet(toolchain: Toolchain, memory_mb: int) -> Launch:
    env = {
        "PATH": _PATH,
        "LD_LIBRARY_PATH": _LD_LIBRARY_PATH,
        "DOTNET_ROOT": "/var/lang/bin",
    }
    return Launch("dotnet", toolchain.path, ["--gc=sgen", f"{DOTNET_DIR}/LambdaletRuntime.exe"], env)


_LAUNCHERS = {"node": _node, "java": _java, "dotnet": _dotnet}


def launch_for(toolchain: Toolchain, memory_mb: int) -> Launch:
    return _LAUNCHERS[toolchain.language](toolchain, memory_mb)


def exec_env(launch: Launch, function_env: dict[str, str]) -> dict[str, str]:
    """The environment the program starts with: the function's own wins."""
    return {**launch.env, **function_env, CONFIG_SWITCH: "stdin"}


def config_line(launch: Launch, function_env: dict[str, str], runtime_api: str) -> bytes:
    """The configuration the runtime reads from its fd 0."""
    env = {**launch.env, **function_env, "AWS_LAMBDA_RUNTIME_API": runtime_api}
    return json.dumps({"env": env}, separators=(",", ":")).encode() + b"\n"


# Languages whose runtime a spare sandbox starts ahead of its function.
# Java's runtime takes its working directory from the start (its task root
# is mounted later), and a JVM's heap is sized at its start: not these.
PRESTARTED = ("node",)


def prestarts(launch: Launch, function_env: dict[str, str]) -> bool:
    """Whether this function may take a runtime a spare started early."""
    return launch.language in PRESTARTED and starts_early(launch, function_env)


def starts_early(launch: Launch, function_env: dict[str, str]) -> bool:
    """Whether a runtime started before its function was known can serve
    this function: not when it sets a variable only a start reads."""
    return not any(name in function_env for name in START_ONLY[launch.language])
