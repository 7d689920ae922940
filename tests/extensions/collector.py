#!/usr/bin/env python3
"""A collector on the sandbox's loopback, run as an extension (as the
OpenTelemetry collector layer runs): it keeps every batch POSTed to
/collect and answers GET /dump with all of them, in arrival order."""

import http.client
import http.server
import json
import os
import socketserver
import sys
import threading

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
NAME = os.path.basename(sys.argv[0])
PORT = int(os.environ.get("COLLECTOR_PORT", "4318"))
received: list = []
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with lock:
            received.extend(body)
        self._answer(b"{}")

    def do_GET(self):
        with lock:
            self._answer(json.dumps(received).encode())

    def _answer(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


server = Server(("127.0.0.1", PORT), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
conn = http.client.HTTPConnection(API)
conn.request("POST", "/2020-01-01/extension/register", body=json.dumps({"events": ["SHUTDOWN"]}), headers={"Lambda-Extension-Name": NAME})
resp = conn.getresponse()
resp.read()
ident = resp.getheader("Lambda-Extension-Identifier")
while True:
    conn.request("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": ident})
    resp = conn.getresponse()
    event = json.loads(resp.read())
    if event["eventType"] == "SHUTDOWN":
        break
