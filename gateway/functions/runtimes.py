"""Which Lambda runtimes this server runs, and on which interpreter.

A function runs on the interpreter its Runtime names, or it does not run:
python3.12 on a Python 3.12, never on another version that reports 3.12.
For a version the host lacks, CreateFunction and UpdateFunctionConfiguration
say so (InvalidParameterValueException, listing what the host has), unless
the operator maps it onto one that is there (`lambdalet serve --runtime-map
python3.14=python3.13`); a mapped function says what it runs on in its
environment (AWS_EXECUTION_ENV), the first line of each init in its log, the
server's start-up lines and `lambdalet doctor`.

Node.js, Java and C# (nodejs20.x, java17, dotnet8, ...) run on the host's
own toolchains (sandbox/languages.py finds them) over the Runtime API,
each on the version its name says: a nodejs22.x function on a host with
only Node.js 20 is refused the same way, or mapped (`--runtime-map
nodejs22.x=nodejs20.x`) and then says so.

Pure: the interpreters come from sandbox/interpreters.py, the language
toolchains from sandbox/languages.py.
"""

from __future__ import annotations

import msgspec

from lambdalet.sandbox import interpreters, languages
from lambdalet.sandbox.interpreters import Interpreter
from lambdalet.sandbox.languages import LANGUAGE_RUNTIMES, Toolchain

from ..errors import LambdaError, invalid

# Every Python runtime in botocore's Lambda model (shape Runtime), oldest
# first; tests/test_runtimes.py checks this against the installed model.
MODEL_PYTHON_RUNTIMES = (
    "python2.7",
    "python3.6",
    "python3.7",
    "python3.8",
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "python3.15",
)
# The Node.js, Java and .NET runtimes in the model that are still offered
# (those a toolchain can serve are sandbox/languages.py's LANGUAGE_RUNTIMES);
# tests/test_languages.py checks them against the installed model.
MODEL_LANGUAGE_RUNTIMES = (
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "nodejs24.x",
    "nodejs26.x",
    "java8.al2",
    "java11",
    "java17",
    "java21",
    "java25",
    "dotnet6",
    "dotnet8",
    "dotnet10",
)
# The OS-only runtimes: a `bootstrap` at the code's root (or in a layer at
# /opt) is exec'd and speaks the Runtime API (gateway/execution/runtime_api).
# Its sandbox is a Python function's, so it starts on the default interpreter's
# worker, which becomes the bootstrap (runtime/bootstrap.py).
CUSTOM_RUNTIMES = ("provided.al2023", "provided.al2")
# Those AWS no longer lets anyone create or update a function with.
BLOCKED_BY_AWS = ("python2.7", "python3.6", "python3.7", "python3.8")
# Deprecated by AWS (python3.9 in December 2025), and so blocked there in
# turn, but still run here: the start-up lines and doctor say so.
DEPRECATED_BY_AWS = ("python3.9",)
RETIRED_CUSTOM = ("provided",)  # Amazon Linux 1's, gone with it
MAP_OPTION = "--runtime-map"
PYTHON_OPTION = "--python"


class Resolved(msgspec.Struct, frozen=True):
    """What a function's Runtime runs on here."""

    runtime: str  # what the function asked for
    interpreter: Interpreter  # what runs it (a custom or language runtime: the worker that execs it)
    mapped: bool  # True when the operator mapped runtime onto interpreter.runtime (or toolchain.runtime)
    toolchain: Toolchain | None = None  # a Node.js, Java or C# function's

    @property
    def custom(self) -> bool:
        """provided.al2023 or provided.al2: the code brings its runtime."""
        return self.runtime in CUSTOM_RUNTIMES

    @property
    def execution_env(self) -> str:
        """AWS_EXECUTION_ENV: names the interpreter that really runs, so
        that it always agrees with sys.version inside. AWS sets none for
        the OS-only runtimes ("")."""
        if self.custom:
            return ""
        if self.toolchain is not None:
            return f"AWS_Lambda_{self.toolchain.runtime}"
        return f"AWS_Lambda_{self.interpreter.runtime}"

    @property
    def runtime_version(self) -> str:
        """As INIT_START's `Runtime Version:` shows it (AWS: python:3.13.v14,
        provided:al2023.v57)."""
        if self.custom:
            return "provided:" + self.runtime.split(".", 1)[1]
        if self.toolchain is not None:
            return f"{self.toolchain.language}:{self.toolchain.version}"
        return f"python:{self.interpreter.version}"

    def version_arn(self, region: str) -> str:
        """RuntimeVersionConfig's ARN: AWS's form (arn:aws:lambda:<region>::
        runtime:<id>), its id naming the interpreter that really runs."""
        return f"arn:aws:lambda:{region}::runtime:{self.runtime_version}"

    def note(self) -> str:
        """How a mapped runtime runs, for INIT_START and doctor; else ""."""
        if not self.mapped:
            return ""
        target = self.toolchain.runtime if self.toolchain is not None else self.interpreter.runtime
        return f"{self.runtime} -> {target} (lambdalet serve {MAP_OPTION} {self.runtime}={target})"


class RuntimeConfigError(ValueError):
    """A --runtime-map the server cannot honour."""


def parse_pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """`A=B` strings (a repeatable option) into a dict; the last one wins."""
    out: dict[str, str] = {}
    for value in values or []:
        left, sep, right = value.partition("=")
        if not sep or not left or not right:
            raise RuntimeConfigError(f"{option} {value}: expected NAME=VALUE")
        out[left.strip()] = right.strip()
    return out


class RuntimeCatalog:
    """The interpreters found on this host and the operator's mappings."""

    def __init__(
        self,
        interpreters: dict[str, Interpreter],
        mapping: dict[str, str] | None = None,
        default: str | None = None,
        toolchains: dict[str, Toolchain] | None = None,
        unready: dict[str, str] | None = None,
    ) -> None:
        if not interpreters:
            raise RuntimeConfigError("no Python interpreter found")
        self.interpreters = dict(interpreters)
        # unready: language runtimes whose toolchain is here but whose
        # runtime files are not built yet, and what builds them.
        self.unready = dict(unready or {})
        # Every toolchain found, ready or not: what a refusal says the host has.
        self.host_toolchains = dict(toolchains or {})
        self.toolchains = {name: t for name, t in self.host_toolchains.items() if name not in self.unready}
        self.default = default or next(iter(self.interpreters))
        self.mapping: dict[str, str] = {}
        for source, target in (mapping or {}).items():
            if source in LANGUAGE_RUNTIMES:
                self._map_language(source, target)
                continue
            if source not in MODEL_PYTHON_RUNTIMES:
                raise RuntimeConfigError(
                    f"{MAP_OPTION} {source}={target}: {source} is not a Lambda Python runtime "
                    f"({', '.join(r for r in MODEL_PYTHON_RUNTIMES if r not in BLOCKED_BY_AWS)})"
                )
            if source in BLOCKED_BY_AWS:
                raise RuntimeConfigError(
                    f"{MAP_OPTION} {source}={target}: AWS Lambda no longer accepts {source} "
                    "for new or updated functions, and neither does this server"
                )
            if target not in self.interpreters:
                raise RuntimeConfigError(f"{MAP_OPTION} {source}={target}: this host has no {target} (it has {self.available()})")
            self.mapping[source] = target

    def _map_language(self, source: str, target: str) -> None:
        if languages.language_of(target) != languages.language_of(source):
            raise RuntimeConfigError(f"{MAP_OPTION} {source}={target}: {source} can only be mapped onto another version of its language")
        if target not in self.toolchains:
            why = self.unready.get(target) or languages.missing_reason(target, self.host_toolchains)
            raise RuntimeConfigError(f"{MAP_OPTION} {source}={target}: this host cannot run {target} ({why})")
        self.mapping[source] = target

    @classmethod
    def own_only(cls) -> RuntimeCatalog:
        """This server's own interpreter and nothing else."""
        mine = interpreters.own()
        return cls({mine.runtime: mine})

    def available(self) -> str:
        """'python3.9 (3.9.18), python3.12 (3.12.1), nodejs20.x (20.20.2)': what this host runs."""
        return ", ".join(
            [
                *(f"{name} ({i.version})" for name, i in self.interpreters.items()),
                *(f"{name} ({t.version})" for name, t in self.toolchains.items()),
            ]
        )

    def resolve(self, runtime: str) -> Resolved | None:
        """The interpreter for a runtime name, or None if it cannot run here."""
        if runtime in CUSTOM_RUNTIMES:
            return Resolved(runtime=runtime, interpreter=self.interpreters[self.default], mapped=False)
        if runtime in LANGUAGE_RUNTIMES:
            target = self.mapping.get(runtime, runtime)
            toolchain = self.toolchains.get(target)
            if toolchain is None:
                return None
            return Resolved(runtime=runtime, interpreter=self.interpreters[self.default], mapped=target != runtime, toolchain=toolchain)
        mapped = self.mapping.get(runtime)
        if mapped is not None:
            return Resolved(runtime=runtime, interpreter=self.interpreters[mapped], mapped=True)
        interpreter = self.interpreters.get(runtime)
        if interpreter is None:
            return None
        return Resolved(runtime=runtime, interpreter=interpreter, mapped=False)

    def refusal(self, runtime: str) -> str:
        """Why a runtime cannot run here, and what the operator can do."""
        if runtime in BLOCKED_BY_AWS or runtime in RETIRED_CUSTOM:
            newest = CUSTOM_RUNTIMES[0] if runtime in RETIRED_CUSTOM else list(self.interpreters)[-1]
            return (
                f"The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda "
                f"functions. We recommend you use the new runtime ({newest}) while creating or updating functions."
            )
        if runtime in LANGUAGE_RUNTIMES:
            why = self.unready.get(self.mapping.get(runtime, runtime)) or languages.missing_reason(runtime, self.host_toolchains)
            return f"The runtime parameter of {runtime} is not available on this server: {why}."
        if not runtime.startswith("python"):
            return (
                f"The runtime parameter of {runtime} is not supported by this server: it runs "
                f"{', '.join(LANGUAGE_RUNTIMES)}, Python and custom runtimes ({', '.join(CUSTOM_RUNTIMES)}). "
                f"This host can run {self.available()}."
            )
        return (
            f"The runtime parameter of {runtime} is not available on this server: no {runtime} interpreter was "
            f"found on this host. This host can run {self.available()}. Install {runtime} (it is found on PATH, "
            f"in /usr/local/bin, /usr/bin or pyenv's versions, or named with `lambdalet serve {PYTHON_OPTION} "
            f"{runtime}=/path/to/{runtime}`), or run it on one of these with `lambdalet serve {MAP_OPTION} "
            f"{runtime}={list(self.interpreters)[-1]}`."
        )

    def check(self, runtime: str) -> str:
        """For CreateFunction and UpdateFunctionConfiguration: the runtime,
        or InvalidParameterValueException."""
        if self.resolve(runtime) is None or runtime in BLOCKED_BY_AWS:
            raise invalid(self.refusal(runtime))
        return runtime

    def for_invoke(self, runtime: str) -> Resolved:
        """For a call: a function stored earlier whose runtime this server
        (as started now) cannot run gets InvalidRuntimeException (502)."""
        resolved = self.resolve(runtime)
        if resolved is None:
            raise LambdaError("InvalidRuntimeException", self.refusal(runtime))
        return resolved

    def lines(self) -> list[str]:
        """For the start-up lines and doctor: one per runtime."""
        out = []
        for name, i in self.interpreters.items():
            default = ", the default" if name == self.default else ""
            out.append(f"{name}: Python {i.version} at {i.path} ({i.found}{default})")
        for name, t in self.toolchains.items():
            out.append(f"{name}: {languages.DISPLAY[t.language]} {t.version} at {t.path} ({t.found})")
        for source, target in self.mapping.items():
            what = (
                f"Python {self.interpreters[target].version}"
                if target in self.interpreters
                else f"{languages.DISPLAY[self.toolchains[target].language]} {self.toolchains[target].version}"
            )
            out.append(f"{source}: MAPPED to {target} ({what}) by {MAP_OPTION} {source}={target}")
        return out
