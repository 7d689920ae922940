"""A Runtime API client for the tests, on raw HTTP so that it can misbehave
on purpose. Run by a shell `bootstrap` with the host's Python (the sandbox
binds the interpreter's prefix) as `probe_runtime.py [MODE]`.

MODE (the bootstrap's argument):
  events   each event's "do" says what to do (below); the default
  handler  a tiny runtime client: calls app.handler(event, None) for each
           event and posts what it returns (hostile rows through a custom
           runtime)
  exit:N   exit with status N before asking for any event
  init_error  post /runtime/init/error, then wait to be killed
  hang     never ask for an event

Event actions ({"do": ...}):
  echo      answer with the event, the context headers and the environment
  error     post to /error with Lambda-Runtime-Function-Error-Type: event["type"]
  exit      print a line, then exit with event["code"]
  sleep     sleep event["s"] seconds, then answer
  late      answer, then sleep event["s"] before asking for the next event
  big       answer with event["n"] bytes; note the status the API gave
  misuse    try what the API must refuse while this call is open, note each
            answer, then answer the call and try to answer it again
  report    answer with what was noted so far
  stream    a streamed (chunked) response, with error trailers if event["fail"]
  memory    hold event["mb"] MiB while answering
  print     write event["lines"] to stdout and stderr, then answer
"""

import base64
import http.client
import json
import os
import sys
import time

HOST, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
API = "/2018-06-01/runtime"
noted = []
held = []


def connect():
    return http.client.HTTPConnection(HOST, int(PORT), timeout=900)


main = connect()


def call(method, path, body=None, headers=None, conn=None):
    conn = conn or main
    conn.request(method, API + path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, dict(resp.getheaders()), data


def note(what, status, data):
    noted.append({"what": what, "status": status, "body": json.loads(data) if data.strip().startswith(b"{") else data.decode()})


def respond(rid, payload):
    return call("POST", f"/invocation/{rid}/response", json.dumps(payload).encode())


def streamed(rid, chunks, trailers):
    conn = connect()
    conn.putrequest("POST", f"{API}/invocation/{rid}/response")
    conn.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader("Trailer", ", ".join(trailers))
    conn.endheaders()
    for chunk in chunks:
        conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        time.sleep(0.01)
    conn.send(b"0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in trailers.items()) + b"\r\n")
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status


def run_events():
    pause = 0
    while True:
        if pause:
            time.sleep(pause)
            pause = 0
        status, headers, body = call("GET", "/invocation/next")
        rid = headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(body) if body else None
        do = event.get("do", "echo") if isinstance(event, dict) else "echo"
        if do == "echo":
            respond(rid, {"event": event, "headers": {k.lower(): v for k, v in headers.items()}, "env": dict(os.environ)})
        elif do == "error":
            call(
                "POST",
                f"/invocation/{rid}/error",
                json.dumps({"errorMessage": "it failed", "errorType": "ProbeError"}).encode(),
                {"Lambda-Runtime-Function-Error-Type": event["type"]},
            )
        elif do == "exit":
            print("exiting now", flush=True)
            os._exit(event["code"])
        elif do == "sleep":
            time.sleep(event["s"])
            respond(rid, {"slept": event["s"]})
        elif do == "late":
            respond(rid, {"late": event["s"]})
            pause = event["s"]
        elif do == "big":
            status, _, data = call("POST", f"/invocation/{rid}/response", b"x" * event["n"])
            note("big", status, data)
        elif do == "misuse":
            other = connect()
            note("unknown id", *call("POST", "/invocation/no-such-id/response", b"{}", conn=other)[::2])
            note("error for an unknown id", *call("POST", "/invocation/no-such-id/error", b"{}", conn=other)[::2])
            s, h, data = call("GET", "/invocation/next", conn=other)
            noted.append({"what": "next while open", "status": s, "id": h.get("Lambda-Runtime-Aws-Request-Id"), "same": data == body})
            note("init error after init", *call("POST", "/init/error", b"{}", conn=other)[::2])
            note("response", *respond(rid, {"misused": True})[::2])
            note("response again", *respond(rid, {"again": True})[::2])
            note("error after response", *call("POST", f"/invocation/{rid}/error", b"{}")[::2])
            other.close()
        elif do == "report":
            respond(rid, noted)
        elif do == "stream":
            trailers = {}
            if event.get("fail"):
                doc = json.dumps({"errorMessage": "stream broke", "errorType": "StreamError"}).encode()
                trailers = {
                    "Lambda-Runtime-Function-Error-Type": "Function.StreamBroke",
                    "Lambda-Runtime-Function-Error-Body": base64.b64encode(doc).decode(),
                }
            noted.append({"what": "stream", "status": streamed(rid, [b"part-1 ", b"part-2 ", b"part-3"], trailers)})
        elif do == "memory":
            held.append(bytearray(os.urandom(1024)) * (event["mb"] * 1024))
            respond(rid, {"held_mb": event["mb"]})
            held.clear()
        elif do == "print":
            for line in event["lines"]:
                print(line, flush=True)
                print("err: " + line, file=sys.stderr, flush=True)
            respond(rid, {"printed": len(event["lines"])})


def run_handler():
    sys.path.insert(0, os.environ.get("LAMBDA_TASK_ROOT", "/var/task"))
    import app  # noqa: PLC0415

    while True:
        status, headers, body = call("GET", "/invocation/next")
        rid = headers["Lambda-Runtime-Aws-Request-Id"]
        try:
            result = app.handler(json.loads(body) if body else None, None)
        except Exception as exc:  # the row's own failure, posted as Lambda's error
            call("POST", f"/invocation/{rid}/error", json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__}).encode())
            continue
        respond(rid, result)


mode = sys.argv[1] if len(sys.argv) > 1 else "events"
print(f"probe runtime starting ({mode})", flush=True)
if mode.startswith("exit:"):
    sys.exit(int(mode[5:]))
elif mode == "init_error":
    print("posting init/error", flush=True)
    status, _, data = call(
        "POST",
        "/init/error",
        json.dumps({"errorMessage": "cannot start", "errorType": "Probe.Init"}).encode(),
        {"Lambda-Runtime-Function-Error-Type": "Runtime.ProbeInit"},
    )
    print(f"init/error answered {status}", flush=True)
    time.sleep(600)
elif mode == "hang":
    time.sleep(600)
elif mode == "handler":
    run_handler()
else:
    run_events()
