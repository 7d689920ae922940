#!/usr/bin/env python3
"""A telemetry extension as vendors write them: it registers with the
Extensions API, runs an HTTP listener on sandbox.localdomain, subscribes it
to the Telemetry API, and forwards every batch it receives to a collector
(COLLECTOR_URL, on the sandbox's loopback) before it acknowledges it.
Only the standard library, as a layer would ship it."""

import http.client
import http.server
import json
import os
import socketserver
import sys
import threading
import time
import urllib.request

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
NAME = os.path.basename(sys.argv[0])
COLLECTOR = os.environ.get("COLLECTOR_URL", "http://127.0.0.1:4318/collect")
LISTEN_PORT = int(os.environ.get("FORWARDER_PORT", "4243"))
TYPES = os.environ.get("FORWARDER_TYPES", "platform,function,extension").split(",")


def forward(body: bytes) -> None:
    for _ in range(100):  # the collector may still be starting
        try:
            req = urllib.request.Request(COLLECTOR, data=body, method="POST", headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=2).read()
            return
        except OSError:
            time.sleep(0.02)


class Listener(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        forward(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def call(method: str, path: str, body=None, headers=None):
    conn = http.client.HTTPConnection(API, timeout=None)
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    return resp, data


def main() -> None:
    resp, _ = call("POST", "/2020-01-01/extension/register", {"events": ["INVOKE", "SHUTDOWN"]}, {"Lambda-Extension-Name": NAME})
    ident = resp.getheader("Lambda-Extension-Identifier")
    server = Server(("sandbox.localdomain", LISTEN_PORT), Listener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    resp, data = call(
        "PUT",
        "/2022-07-01/telemetry",
        {
            "schemaVersion": "2022-12-13",
            "types": TYPES,
            "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
            "destination": {"protocol": "HTTP", "URI": f"http://sandbox.localdomain:{LISTEN_PORT}"},
        },
        {"Lambda-Extension-Identifier": ident},
    )
    assert resp.status == 200, data
    print(f"{NAME} subscribed", flush=True)
    while True:
        resp, data = call("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": ident})
        event = json.loads(data)
        if event["eventType"] == "SHUTDOWN":
            return


main()
