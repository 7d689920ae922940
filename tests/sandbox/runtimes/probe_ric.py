"""awslambdaric (AWS's Python runtime interface client, a C++ extension on
libcurl) under the sandbox, against a one-call Runtime API served from the
same sandbox. Reports what the client posted as the call's response."""

import http.server
import json
import os
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
posted = {}
answered = threading.Event()


class RuntimeAPI(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path != "/2018-06-01/runtime/invocation/next" or "next" in posted:
            answered.wait(60)  # no second call: wait until the probe ends
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        posted["next"] = True
        body = json.dumps({"hello": "ric"}).encode()
        self.send_response(200)
        for key, value in {
            "Lambda-Runtime-Aws-Request-Id": "req-1",
            "Lambda-Runtime-Deadline-Ms": "9999999999999",
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        }.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        posted[self.path] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        answered.set()


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeAPI)
threading.Thread(target=server.serve_forever, daemon=True).start()
env = dict(
    os.environ,
    AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
    PYTHONPATH=f"{HERE}/ric:{HERE}",
    LAMBDA_TASK_ROOT=HERE,
    _HANDLER="ric_app.handler",
)
client = subprocess.Popen(
    [sys.executable, "-m", "awslambdaric", "ric_app.handler"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
)
answered.wait(60)
client.kill()
log = client.communicate()[0].decode(errors="replace")
posted.pop("next", None)
os.write(3, (json.dumps({"posted": posted, "log": log[-400:]}) + "\n").encode())
