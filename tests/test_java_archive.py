"""The Java runtime's class-data sharing archive (gateway/execution/java_training.py):
recorded by the platform from its own run of the runtime serving calls, so
that what a function's first calls load (the RIC, its serializer, the JDK's
classes they use) comes from the archive, not from jars and the JDK's image.
"""

from __future__ import annotations

import json
import re

import language_builds
import pytest

from lambdalet.gateway.execution import java_build, java_training, languages
from lambdalet.sandbox import languages as toolchains

# Classes a JVM spins at run time (lambda forms, lambdas' classes, proxies):
# no archive holds them all; JFR's event classes no archive holds.
NOT_ARCHIVABLE = re.compile(r"source: (__JVM_LookupDefineClass__|__dynamic_proxy__)|\$\$Lambda\$|\] jdk\.internal\.event\.")


@pytest.fixture(scope="module")
def built():
    try:
        return language_builds.java_runtime()
    except language_builds.ToolMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def java17():
    found = toolchains.discover()[0].get("java17")
    assert found is not None, "this project's machines have Java 17 (docs/architecture.md)"
    return found


def test_the_training_run_serves_calls_and_an_error(built, java17, tmp_path):
    out = tmp_path / "java17.jsa"
    answers = java_training.record(built, java17, out)
    assert out.stat().st_size > 1_000_000
    paths = [path for path, _ in answers]
    assert paths == [
        "/2018-06-01/runtime/invocation/warm-up-0/response",
        "/2018-06-01/runtime/invocation/warm-up-1/response",
        "/2018-06-01/runtime/invocation/warm-up-2/error",
    ]
    first = json.loads(answers[0][1])
    assert first["statusCode"] == 200 and first["echo"]["body"] == "hello"
    assert json.loads(answers[2][1])["errorType"] == "java.lang.IllegalStateException"


def test_a_cold_starts_classes_come_from_the_archive(built, java17, tmp_path):
    """A cold start's own options (languages.py), with its class loading
    logged: every class of the JDK and of the runtime's jars the calls load
    is in the archive."""
    assert (built / "cds" / java_build.archive_name(java17)).exists()
    log = tmp_path / "classes.log"
    argv = list(languages.launch_for(java17, 1024).argv)
    argv.insert(0, f"-Xlog:class+load=info:file={log}")
    answers = java_training.serve_calls(built, java17, argv)
    assert len(answers) == len(java_training.EVENTS)
    loaded = [line for line in log.read_text().splitlines() if "source:" in line]
    assert len(loaded) > 1000
    elsewhere = [line for line in loaded if "source: shared objects file" not in line and not NOT_ARCHIVABLE.search(line)]
    assert elsewhere == []
