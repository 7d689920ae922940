"""Node.js functions (nodejs20.x) on a real server, deployed with boto3: the
handler forms AWS's runtime accepts (CommonJS, ES modules by extension and
by package.json, async and callback handlers, node_modules), the context
object, console logging in AWS's TEXT and JSON formats, NODE_OPTIONS, and
the error shapes and Runtime.X errors AWS's runtime gives.

Runs on the host's Node.js (a machine of this project's kind has Node.js
20); a host without it fails here rather than skipping.
"""

from __future__ import annotations

import base64
import json
import re

import pytest
from helpers import make_zip

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
RUNTIME = "nodejs20.x"
LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\t(\S+)\t(TRACE|DEBUG|INFO|WARN|ERROR|FATAL)\t(.*)$")

CJS = r"""
const helper = require('left-pad-ish');
exports.handler = async (event, context) => {
  console.log('hello from', context.functionName, {nested: [1, 2]});
  console.info('info line');
  console.warn('warn line');
  console.error('error line');
  console.debug('debug line');
  process.stdout.write('raw stdout\n');
  return {
    echo: event, padded: helper('7', 3),
    requestId: context.awsRequestId, functionName: context.functionName, version: context.functionVersion,
    memory: context.memoryLimitInMB, arn: context.invokedFunctionArn, logGroup: context.logGroupName,
    logStream: context.logStreamName, remaining: context.getRemainingTimeInMillis(),
    waits: context.callbackWaitsForEmptyEventLoop, env: process.env.AWS_EXECUTION_ENV,
    handlerEnv: process.env._HANDLER, taskRoot: process.env.LAMBDA_TASK_ROOT, cwd: process.cwd(),
    api: process.env.AWS_LAMBDA_RUNTIME_API, preloaded: globalThis.preloaded === true,
    nodeVersion: process.version, stdinIsEmpty: require('fs').readFileSync(0).length === 0,
  };
};
exports.nested = { deeper: { fn: async () => 'nested ok' } };
exports.callbackWaits = (event, context, callback) => {
  callback(null, {waited: true});
  setTimeout(() => console.log('timer after callback'), 200);
};
exports.callbackAtOnce = (event, context, callback) => {
  if (event.again) {
    return callback(null, {again: true}); // waits, the default, for whatever is pending
  }
  context.callbackWaitsForEmptyEventLoop = false;
  setTimeout(() => console.log('late timer'), 300);
  callback(null, {waited: false});
};
exports.callbackError = (event, context, callback) => callback(new RangeError('out of range'));
exports.succeed = (event, context) => { context.succeed({succeeded: 1}); };
exports.syncNoAnswer = (event) => { setTimeout(() => {}, 20); };
exports.neverSettles = async () => new Promise(() => {});
exports.throws = async (event) => { const e = new TypeError('bad thing: ' + event.why); e.code = 'E_BAD'; throw e; };
exports.rejectsString = async () => { throw 'plain string'; };
exports.circular = async () => { const o = {}; o.self = o; return o; };
exports.notAFunction = 42;
exports.timerThrows = async () => { setTimeout(() => { throw new Error('from a timer'); }, 5); return 'answered first'; };
"""

ESM = "export const handler = async (event) => ({ esm: true, kind: import.meta.url.endsWith('.mjs') ? 'mjs' : 'js', event });\n"
LEFT_PAD = "module.exports = (s, n) => String(s).padStart(n, '0');\n"


def _zip(**extra: str | bytes) -> bytes:
    files = {
        "index.js": CJS,
        "esm.mjs": ESM,
        "node_modules/left-pad-ish/package.json": json.dumps({"name": "left-pad-ish", "main": "pad.js"}),
        "node_modules/left-pad-ish/pad.js": LEFT_PAD,
        "preload.js": "globalThis.preloaded = true;\n",
        "syntax.js": "exports.handler = async () => { return {;\n",
    }
    files.update(extra)
    return make_zip(files)


@pytest.fixture(scope="module")
def node_fn(lam):
    name = "node-features"
    lam.create_function(
        FunctionName=name, Runtime=RUNTIME, Role=ROLE, Handler="index.handler", Code={"ZipFile": _zip()}, Timeout=10, MemorySize=256
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    yield name
    lam.delete_function(FunctionName=name)


def _use(lam, name: str, handler: str, **config) -> None:
    lam.update_function_configuration(FunctionName=name, Handler=handler, **config)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def _invoke(lam, name: str, payload: object = None):
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(payload if payload is not None else {}).encode(), LogType="Tail")
    return resp, json.loads(resp["Payload"].read() or b"null"), base64.b64decode(resp["LogResult"]).decode()


def _records(log: str) -> list[tuple[str, str, str]]:
    """(request id, level, message) of each console record in a tail."""
    return [m.groups()[1:] for m in map(LINE.match, log.splitlines()) if m]


def test_commonjs_async_handler_context_and_text_logs(lam, node_fn):
    _use(lam, node_fn, "index.handler")
    resp, body, log = _invoke(lam, node_fn, {"hello": "node"})
    assert "FunctionError" not in resp
    rid = resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    arn = lam.get_function_configuration(FunctionName=node_fn)["FunctionArn"]
    assert body["echo"] == {"hello": "node"} and body["padded"] == "007"
    assert body["requestId"] == rid and body["functionName"] == node_fn and body["version"] == "$LATEST"
    assert body["memory"] == "256" and body["arn"] == arn and body["logGroup"] == f"/aws/lambda/{node_fn}"
    assert body["logStream"] and 0 < body["remaining"] <= 10_000 and body["waits"] is True
    assert body["env"] == "AWS_Lambda_nodejs20.x" and body["handlerEnv"] == "index.handler"
    assert body["taskRoot"] == "/var/task" and body["cwd"] == "/var/task"
    assert body["api"] == "127.0.0.1:9001" and body["nodeVersion"].startswith("v20.")
    assert body["preloaded"] is False and body["stdinIsEmpty"] is True
    records = _records(log)
    assert (rid, "INFO", "hello from " + node_fn + " { nested: [ 1, 2 ] }") in records
    assert [(lvl, msg) for _r, lvl, msg in records if msg.endswith(" line")] == [
        ("INFO", "info line"),
        ("WARN", "warn line"),
        ("ERROR", "error line"),
        ("DEBUG", "debug line"),
    ]
    assert "\nraw stdout\n" in log and "\nEND RequestId: " + rid in log


def test_es_modules_by_extension_and_by_package_json(lam, node_fn):
    _use(lam, node_fn, "esm.handler")
    _resp, body, _log = _invoke(lam, node_fn, {"n": 1})
    assert body == {"esm": True, "kind": "mjs", "event": {"n": 1}}
    name = "node-esm-pkg"
    code = make_zip({"package.json": json.dumps({"type": "module"}), "app.js": ESM})
    lam.create_function(FunctionName=name, Runtime=RUNTIME, Role=ROLE, Handler="app.handler", Code={"ZipFile": code})
    try:
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        _resp, body, _log = _invoke(lam, name, {"n": 2})
        assert body == {"esm": True, "kind": "js", "event": {"n": 2}}
    finally:
        lam.delete_function(FunctionName=name)


def test_nested_export_path(lam, node_fn):
    _use(lam, node_fn, "index.nested.deeper.fn")
    assert _invoke(lam, node_fn)[1] == "nested ok"


def test_callback_waits_for_an_empty_event_loop_unless_told_not_to(lam, node_fn):
    _use(lam, node_fn, "index.callbackWaits")
    _resp, body, log = _invoke(lam, node_fn)
    # The timer set after callback() ran before the answer went out.
    assert body == {"waited": True}
    assert log.index("timer after callback") < log.index("END RequestId")
    _use(lam, node_fn, "index.callbackAtOnce")
    _resp, body, log = _invoke(lam, node_fn)
    assert body == {"waited": False} and "late timer" not in log
    # The instance lives on with its timer pending: a call that waits for
    # an empty event loop waits for that timer too, which logs into it.
    _resp, body, later = _invoke(lam, node_fn, {"again": True})
    assert body == {"again": True} and "late timer" in later and "Init Duration" not in later


def test_context_succeed_and_sync_handler_without_answer(lam, node_fn):
    _use(lam, node_fn, "index.succeed")
    assert _invoke(lam, node_fn)[1] == {"succeeded": 1}
    _use(lam, node_fn, "index.syncNoAnswer")
    resp, body, _log = _invoke(lam, node_fn)
    assert body is None and "FunctionError" not in resp


def _error(lam, name: str, handler: str, payload: object = None) -> tuple[dict, str]:
    _use(lam, name, handler)
    resp, body, log = _invoke(lam, name, payload)
    assert resp["FunctionError"] == "Unhandled", body
    return body, log


def test_errors_in_aws_shape(lam, node_fn):
    body, log = _error(lam, node_fn, "index.throws", {"why": "testing"})
    assert body["errorType"] == "TypeError" and body["errorMessage"] == "bad thing: testing"
    assert body["trace"][0] == "TypeError: bad thing: testing" and any("/var/task/index.js" in t for t in body["trace"])
    err = next(msg for _rid, level, msg in _records(log) if level == "ERROR")
    assert err.startswith("Invoke Error \t{")
    logged = json.loads(err.split("\t", 1)[1])
    assert logged["errorType"] == "TypeError" and logged["code"] == "E_BAD" and isinstance(logged["stack"], list)
    body, _log = _error(lam, node_fn, "index.callbackError")
    assert (body["errorType"], body["errorMessage"]) == ("RangeError", "out of range")
    body, _log = _error(lam, node_fn, "index.rejectsString")
    assert body == {"errorType": "string", "errorMessage": "plain string", "trace": []}
    body, _log = _error(lam, node_fn, "index.circular")
    assert (body["errorType"], body["errorMessage"]) == ("Error", "Unable to stringify response body")
    # A promise never settled, and nothing else to wait for: on Node.js 20,
    # as aws-lambda-ric 3 does, the answer is null (22 and later: NodeJsExit).
    _use(lam, node_fn, "index.neverSettles")
    resp, body, _log = _invoke(lam, node_fn)
    assert body is None and "FunctionError" not in resp


@pytest.mark.parametrize(
    "handler, error_type, message",
    [
        ("missing.handler", "Runtime.ImportModuleError", "Error: Cannot find module 'missing'"),
        ("index.nope", "Runtime.HandlerNotFound", "index.nope is undefined or not exported"),
        ("index.notAFunction", "Runtime.HandlerNotFound", "index.notAFunction is not a function"),
        ("noDot", "Runtime.MalformedHandlerName", "Bad handler"),
        ("../etc.handler", "Runtime.MalformedHandlerName", "'../etc.handler' is not a valid handler name."),
        ("syntax.handler", "Runtime.UserCodeSyntaxError", "SyntaxError: Unexpected token"),
    ],
)
def test_init_errors(lam, node_fn, handler, error_type, message):
    body, log = _error(lam, node_fn, handler)
    assert body["errorType"] == error_type and body["errorMessage"].startswith(message), body
    assert body["trace"][0].startswith(f"{error_type}: ")
    # Logged as AWS's runtime logs it, before any request.
    assert re.search(r"\tundefined\tERROR\tUncaught Exception \t\{\"errorType\":\"" + re.escape(error_type), log), log


def test_an_uncaught_exception_after_the_answer_ends_the_instance(lam, node_fn):
    _use(lam, node_fn, "index.timerThrows")
    resp, body, _log = _invoke(lam, node_fn)
    assert body == "answered first" and "FunctionError" not in resp
    # Its timer threw: that process is gone, and the next call starts afresh.
    _use(lam, node_fn, "index.nested.deeper.fn")
    assert "Init Duration" in _invoke(lam, node_fn)[2].splitlines()[-1]


def test_node_options_are_honoured(lam, node_fn):
    _use(lam, node_fn, "index.handler", Environment={"Variables": {"NODE_OPTIONS": "--require /var/task/preload.js"}})
    try:
        assert _invoke(lam, node_fn)[1]["preloaded"] is True
    finally:
        _use(lam, node_fn, "index.handler", Environment={"Variables": {}})


def test_json_log_format_and_level(lam, node_fn):
    _use(lam, node_fn, "index.handler", LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "WARN"})
    try:
        resp, _body, log = _invoke(lam, node_fn)
        rid = resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
        records = [json.loads(line) for line in log.splitlines() if line.startswith('{"timestamp"')]
        assert [(r["level"], r["message"]) for r in records] == [("WARN", "warn line"), ("ERROR", "error line")]
        assert all(r["requestId"] == rid and re.fullmatch(r"\d{4}-.+\.\d{3}Z", r["timestamp"]) for r in records)
        _use(lam, node_fn, "index.throws")
        _resp, _body, log = _invoke(lam, node_fn, {"why": "json"})
        error = next(json.loads(line) for line in log.splitlines() if '"level":"ERROR"' in line)
        assert error["message"]["errorType"] == "TypeError" and error["message"]["errorMessage"] == "bad thing: json"
        assert isinstance(error["message"]["stackTrace"], list)
    finally:
        _use(lam, node_fn, "index.handler", LoggingConfig={"LogFormat": "Text"})


STARTED = """
exports.handler = async () => ({ startedMs: Date.now() - process.uptime() * 1000, cwd: process.cwd(),
  mine: process.env.MINE || null, options: process.env.NODE_OPTIONS || null, stdin: require('fs').readFileSync(0).length });
"""


def _first_call_started(lam, name: str, env: dict) -> tuple[float, float, dict]:
    """(when the test created the function, when its runtime's process started, its answer)."""
    import time

    created = time.time() * 1000
    lam.create_function(
        FunctionName=name,
        Runtime=RUNTIME,
        Role=ROLE,
        Handler="index.handler",
        Code={"ZipFile": make_zip({"index.js": STARTED})},
        Environment={"Variables": env},
    )
    try:
        body = json.loads(lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())
    finally:
        lam.delete_function(FunctionName=name)
    return created, body["startedMs"], body


def test_a_cold_start_takes_a_node_runtime_a_spare_started_early(lam, fn_name):
    from helpers import wait_for

    # The first Node.js cold start asks the spare pool for started runtimes;
    # one that came before its function existed was a spare's.
    seen = []

    def early() -> bool:
        created, started, body = _first_call_started(lam, f"{fn_name}-{len(seen)}", {"MINE": "yes"})
        seen.append(body)
        return started < created

    wait_for(early, timeout=60, interval=0.5)
    body = seen[-1]
    # Given the function's environment and code, as a fresh start would be.
    assert body["mine"] == "yes" and body["cwd"] == "/var/task" and body["stdin"] == 0
    # A variable only a start reads keeps a function off the early runtimes.
    created, started, body = _first_call_started(lam, f"{fn_name}-opts", {"NODE_OPTIONS": "--no-warnings"})
    assert started > created and body["options"] == "--no-warnings"
