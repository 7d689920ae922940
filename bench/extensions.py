"""(t) What an attached extension costs a warm call: the same hello-world
function through its URL with no layer, with an extension that only asks
for its next event (INVOKE), and with one subscribed to the Telemetry API
(platform and function events, 100 ms buffering, a listener that
acknowledges and drops what it gets, as a forwarder with a quiet backend
does). req/s at c=16 and p50 at c=1, median of runs, one server.

A call with extensions ends for the sandbox once each has asked for its
next event, so the figures hold the extensions' own round trip through the
Extensions API, and the telemetry deliveries (a POST into the sandbox per
batch, and what the last call left before the next one starts).
"""

from __future__ import annotations

import io
import zipfile

from . import harness
from .harness import HELLO, ROLE, RUNTIME, Lambdalet, load

NEXT_ONLY = """#!/usr/bin/python3
import http.client, json, os, sys
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
c = http.client.HTTPConnection(api)
c.request("POST", "/2020-01-01/extension/register", body=json.dumps({"events": ["INVOKE", "SHUTDOWN"]}),
          headers={"Lambda-Extension-Name": os.path.basename(sys.argv[0])})
r = c.getresponse(); r.read()
h = {"Lambda-Extension-Identifier": r.getheader("Lambda-Extension-Identifier")}
@SUBSCRIBE@
while True:
    c.request("GET", "/2020-01-01/extension/event/next", headers=h)
    r = c.getresponse()
    if json.loads(r.read())["eventType"] == "SHUTDOWN":
        break
"""

SUBSCRIBE = """
import http.server, threading
class Drop(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a):
        pass
server = http.server.HTTPServer(("sandbox.localdomain", 4243), Drop)
threading.Thread(target=server.serve_forever, daemon=True).start()
c.request("PUT", "/2022-07-01/telemetry", headers=h, body=json.dumps({
    "schemaVersion": "2022-12-13", "types": ["platform", "function"], "buffering": {"timeoutMs": 100},
    "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4243"}}))
c.getresponse().read()
"""

VARIANTS = {
    "no extension": None,
    "extension, next only": NEXT_ONLY.replace("@SUBSCRIBE@", ""),
    "extension subscribed to telemetry": NEXT_ONLY.replace("@SUBSCRIBE@", SUBSCRIBE),
}


def _layer_zip(program: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("extensions/bench-extension")
        info.external_attr = (0o100755) << 16
        zf.writestr(info, program)
    return buf.getvalue()


def run(quick: bool) -> dict:
    seconds = 3 if quick else 5
    runs = 1 if quick else 3
    out: dict = {}
    lam = Lambdalet()
    try:
        urls = {}
        for n, (label, program) in enumerate(VARIANTS.items()):
            name = f"ext-bench-{n}"
            layers = []
            if program is not None:
                layer = lam.client.publish_layer_version(LayerName=name, Content={"ZipFile": _layer_zip(program)})
                layers = [layer["LayerVersionArn"]]
            lam.client.create_function(
                FunctionName=name,
                Runtime=RUNTIME,
                Role=ROLE,
                Handler="app.handler",
                Code={"ZipFile": harness.zip_of({"app.py": HELLO})},
                MemorySize=1024,
                Layers=layers,
            )
            urls[label] = lam.public_url(name)
        for label, url in urls.items():
            harness.http_get_once(url)
            load(url, 16, 1)  # every instance the run will use, started
            out[label] = {
                "c1": harness.best_of([load(url, 1, seconds) for _ in range(runs)]),
                "c16": harness.best_of([load(url, 16, seconds) for _ in range(runs)]),
            }
    finally:
        lam.stop()
    return out


def render(t: dict) -> list[str]:
    base = t.get("no extension")
    rows: list[str] = []
    if not base:
        return rows
    for label in ("extension, next only", "extension subscribed to telemetry"):
        fig = t.get(label)
        if not fig:
            continue
        rows.append(
            f"| warm URL req/s, c=16, {label} (vs no extension) | {fig['c16']['rps']:.0f} | {base['c16']['rps']:.0f} | "
            f"{fig['c16']['rps'] / base['c16']['rps']:.2f}× |"
        )
        rows.append(
            f"| warm URL p50 ms, c=1, {label} (vs no extension) | {fig['c1']['p50_ms']:.3f} | {base['c1']['p50_ms']:.3f} | "
            f"{fig['c1']['p50_ms'] / base['c1']['p50_ms']:.2f}× |"
        )
    return rows
