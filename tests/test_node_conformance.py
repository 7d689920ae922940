"""Conformance: Lambdalet's Node.js runtime against AWS's own, aws-lambda-ric.

aws-lambda-ric (npm, unmodified; its native client built from source by its
install scripts, once per run at most: tests/language_builds.py) runs as a
provided.al2023 bootstrap; the same handlers run as nodejs20.x on
Lambdalet's runtime (runtime/node). For each handler, both must give the
same answer: the payload, the error's type, message and first trace line,
the init errors, the console records (level and message, per line), the
JSON log records, and a streamed response.
"""

from __future__ import annotations

import base64
import json
import re

import language_builds
import pytest
from helpers import make_zip

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"

HANDLERS = r"""
exports.echo = async (event, context) => ({ event, version: context.functionVersion,
  fn: context.functionName === process.env.AWS_LAMBDA_FUNCTION_NAME,
  memory: context.memoryLimitInMB, group: context.logGroupName === '/aws/lambda/' + context.functionName,
  waits: context.callbackWaitsForEmptyEventLoop, arn: context.invokedFunctionArn.endsWith(':' + context.functionName),
  remainingType: typeof context.getRemainingTimeInMillis(), idLength: context.awsRequestId.length });
exports.logs = async () => {
  console.log('plain %s and %d', 'format', 42, { obj: [1, 'two'] });
  console.info('info'); console.warn('warn'); console.error('error', new Error('logged error'));
  console.debug('debug'); console.trace('trace line');
  console.log('multi\nline');
  return 'logged';
};
exports.callback = (event, context, callback) => { setTimeout(() => callback(null, { late: true }), 10); };
exports.callbackError = (event, context, callback) => callback(new SyntaxError('cb syntax'));
exports.throws = async () => { class MyError extends Error {}; const e = new MyError('custom'); e.name = 'MyError'; throw e; };
exports.rejectsObject = async () => { throw { not: 'an error' }; };
exports.returnsUndefined = async () => undefined;
exports.succeed = (event, context) => context.succeed('done');
exports.failString = (event, context) => context.fail('failed by string');
exports.never = async () => new Promise(() => {});
exports.stream = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.setContentType('text/plain');
  responseStream.write('a');
  responseStream.write(Buffer.from('b'));
  responseStream.end('c');
});
exports.notAFunction = 1;
"""

CASES = [
    "echo",
    "logs",
    "callback",
    "callbackError",
    "throws",
    "rejectsObject",
    "returnsUndefined",
    "succeed",
    "failString",
    "never",
    "notAFunction",
    "missing",
    "nomodule",
]
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t[0-9a-f-]{36}\t(TRACE|DEBUG|INFO|WARN|ERROR|FATAL)\t(.*)$")


def _handler(case: str) -> str:
    return {"missing": "index.missing", "nomodule": "nomodule.handler"}.get(case, f"index.{case}")


@pytest.fixture(scope="module")
def pair(lam):
    try:
        ric = language_builds.aws_lambda_ric()
    except language_builds.ToolMissing as exc:
        pytest.fail(str(exc))
    bootstrap = (
        "#!/bin/sh\n# AWS's Node.js runtime interface client, as a custom runtime.\n"
        'cd /var/task\nexec /usr/bin/node /var/task/node_modules/aws-lambda-ric/bin/index.mjs "$_HANDLER"\n'
    )
    theirs = make_zip({"bootstrap": bootstrap, "index.js": HANDLERS, **ric}, {"bootstrap": 0o755})
    ours = make_zip({"index.js": HANDLERS})
    names = {"ours": "conf-node-ours", "ric": "conf-node-ric"}
    lam.create_function(
        FunctionName=names["ours"],
        Runtime="nodejs20.x",
        Role=ROLE,
        Handler="index.echo",
        Code={"ZipFile": ours},
        MemorySize=256,
        Timeout=10,
    )
    lam.create_function(
        FunctionName=names["ric"],
        Runtime="provided.al2023",
        Role=ROLE,
        Handler="index.echo",
        Code={"ZipFile": theirs},
        MemorySize=256,
        Timeout=10,
    )
    for name in names.values():
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    yield names
    for name in names.values():
        lam.delete_function(FunctionName=name)


def _run(lam, name: str, handler: str, **config):
    lam.update_function_configuration(FunctionName=name, Handler=handler, **config)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    resp = lam.invoke(FunctionName=name, Payload=b'{"k": [1, "x"]}', LogType="Tail")
    return resp.get("FunctionError"), json.loads(resp["Payload"].read() or b"null"), base64.b64decode(resp["LogResult"]).decode()


_FRAME = re.compile(r"[\r\n] +at [^\r\n]*")


def _records(log: str) -> list[tuple[str, str]]:
    """(level, message) of each console record, stack frames left out (they
    name each runtime's own files)."""
    return [(level, _FRAME.sub("", message)) for level, message in (m.groups() for m in map(LINE.match, log.splitlines()) if m)]


def _comparable(payload):
    """An error's type, message and first trace line (later lines name each
    runtime's own files); anything else as it is."""
    if isinstance(payload, dict) and "errorType" in payload:
        trace = payload.get("trace") or []
        message = payload.get("errorMessage", "")
        if payload["errorType"] == "Runtime.ImportModuleError":
            message = message.split("\n")[0]  # the require stack names each runtime's files
            trace = trace[:1] and [trace[0].split("\n")[0]]
        return payload["errorType"], message, trace[:1]
    return payload


@pytest.mark.parametrize("case", CASES)
def test_same_answer_as_aws_lambda_ric(lam, pair, case):
    ours = _run(lam, pair["ours"], _handler(case))
    theirs = _run(lam, pair["ric"], _handler(case))
    assert ours[0] == theirs[0], (ours, theirs)
    assert _comparable(ours[1]) == _comparable(theirs[1]), (ours[1], theirs[1])
    if case == "logs":
        assert _records(ours[2]) == _records(theirs[2]), (ours[2], theirs[2])


def test_same_json_log_records(lam, pair):
    config = {"LoggingConfig": {"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG"}}
    try:
        logs = {}
        for side in ("ours", "ric"):
            _error, _payload, log = _run(lam, pair[side], "index.logs", **config)
            records = [json.loads(line) for line in log.splitlines() if line.startswith('{"timestamp"')]
            for r in records:
                r.pop("timestamp"), r.pop("requestId")
                for trace_key in ("stackTrace",):
                    if trace_key in r:
                        r[trace_key] = r[trace_key][:1]
                if isinstance(r.get("message"), dict) and "stackTrace" in r["message"]:
                    r["message"]["stackTrace"] = r["message"]["stackTrace"][:1]
                if isinstance(r.get("message"), str):
                    r["message"] = _FRAME.sub("", r["message"])
            logs[side] = records
        assert logs["ours"] == logs["ric"]
        assert [r["level"] for r in logs["ours"]] == ["INFO", "INFO", "WARN", "ERROR", "DEBUG", "INFO"]
    finally:
        for side in ("ours", "ric"):
            lam.update_function_configuration(FunctionName=pair[side], LoggingConfig={"LogFormat": "Text"})
            lam.get_waiter("function_updated_v2").wait(FunctionName=pair[side], WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def test_same_streamed_response(lam, pair):
    seen = {}
    for side in ("ours", "ric"):
        lam.update_function_configuration(FunctionName=pair[side], Handler="index.stream")
        lam.get_waiter("function_updated_v2").wait(FunctionName=pair[side], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        resp = lam.invoke_with_response_stream(FunctionName=pair[side], Payload=b"{}")
        events = list(resp["EventStream"])
        body = b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e)
        seen[side] = (resp["ResponseStreamContentType"], body, "ErrorCode" in events[-1]["InvokeComplete"])
    assert seen["ours"] == seen["ric"] == ("text/plain", b"abc", False)
