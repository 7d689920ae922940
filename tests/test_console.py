"""The web console over HTTP against a real server: sign-in, sessions,
CSRF, the security headers, escaping, the pages' changes through the
server's own services, the live tail (server-sent events), the DLQ and
schedules. tests/test_console_browser.py drives the same in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time

import pytest
import requests
from console_client import ConsoleUser, csrf_of
from helpers import ServerProcess, free_port, lambdalet_argv, make_test_cert, make_zip, wait_for

RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/console-test"
XSS = "<script>alert(1)</script>"
PAGES = [
    "/console",
    "/console/functions",
    "/console/functions/new",
    "/console/monitor",
    "/console/queues",
    "/console/schedules",
    "/console/api/chart?range=1h",
]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("console"), "--retry-delay-s", "0.2").start()
    yield server
    assert server.stop() == 0, "".join(server.output)


@pytest.fixture
def user(srv):
    u = ConsoleUser(srv)
    assert u.sign_in().status_code == 303
    yield u
    u.close()


@pytest.fixture
def fn(srv, request):
    """A deployed function that logs a script tag and echoes its event."""
    name = "c-" + re.sub(r"[^A-Za-z0-9]", "-", request.node.name)[:50]
    code = (
        "import json\n"
        "import os\n"
        "def handler(event, context):\n"
        f"    print({XSS!r})\n"
        "    print(json.dumps(event))\n"
        "    if isinstance(event, dict) and event.get('fail'):\n"
        "        raise ValueError('failed <b>on purpose</b>')\n"
        "    return {'echo': event, 'env': os.environ.get('GREETING')}\n"
    )
    srv.client().create_function(
        FunctionName=name, Role=ROLE, Handler="app.handler", Runtime=RUNTIME, Code={"ZipFile": make_zip({"app.py": code})}
    )
    return name


def _no_inline_code(html: str) -> None:
    """Every script is a file of ours, and no element carries inline style
    or an event handler attribute (the CSP would block them anyway)."""
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert re.search(r'src="/console/static/', tag), tag
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html)
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)


# -- signed out ----------------------------------------------------------------------


def test_a_signed_out_user_gets_only_the_sign_in_page(srv):
    http = requests.Session()
    try:
        for path in PAGES + ["/console/functions/anything", "/console/functions/x/logs/stream", "/console/unknown"]:
            r = http.get(srv.url + path, allow_redirects=False, timeout=10)
            if path == "/console":
                assert r.status_code == 303
                continue
            assert r.status_code == 303, path
            assert r.headers["Location"].startswith("/console/sign-in"), path
            assert "text/html" not in r.headers.get("content-type", "") or "Sign in" in r.text
        page = http.get(srv.url + "/console/functions", timeout=10)  # following the redirect
        assert page.url.startswith(srv.url + "/console/sign-in") and "Secret access key" in page.text
        # A change without a session is refused before its body is read.
        r = http.post(srv.url + "/console/functions/new", data={"name": "sneaky"}, allow_redirects=False, timeout=10)
        assert r.status_code == 403 and "Sign in" in r.text
        assert "sneaky" not in [f["FunctionName"] for f in srv.client().list_functions()["Functions"]]
    finally:
        http.close()


def test_sign_in_sets_a_strict_http_only_expiring_cookie_and_sign_out_ends_it(srv):
    u = ConsoleUser(srv)
    try:
        r = u.sign_in()
        assert r.status_code == 303 and r.headers["Location"] == "/console/functions"
        cookie = next(c for c in r.raw.headers.getlist("Set-Cookie") if c.startswith("lambdalet_console="))
        attrs = [a.strip() for a in cookie.split(";")]
        assert "HttpOnly" in attrs and "SameSite=Strict" in attrs and "Path=/console" in attrs
        assert any(a.startswith("Max-Age=") and 0 < int(a[8:]) <= 12 * 3600 for a in attrs)
        assert "Secure" not in attrs  # plain HTTP on loopback; the TLS port adds it
        token = cookie.split(";")[0].split("=", 1)[1]
        page = u.get("/console/functions")
        assert page.status_code == 200 and "Functions" in page.text
        _, secret = srv.credentials()
        for path in PAGES:
            body = u.get(path).text
            assert secret not in body, path
        out = u.post("/console/sign-out")
        assert out.status_code == 303 and out.headers["Location"] == "/console/sign-in"
        # The old cookie no longer opens anything.
        replay = requests.get(srv.url + "/console/functions", cookies={"lambdalet_console": token}, allow_redirects=False, timeout=10)
        assert replay.status_code == 303 and replay.headers["Location"].startswith("/console/sign-in")
    finally:
        u.close()


def test_wrong_secrets_are_refused_and_never_echoed(srv):
    u = ConsoleUser(srv)
    try:
        key, _ = srv.credentials()
        r = u.sign_in(key, "wrong-secret-value-123")
        assert r.status_code == 401 and "did not match" in r.text
        assert "wrong-secret-value-123" not in r.text
        assert u.sign_in("AKIDNOTAKEY", "x").status_code == 401
        assert requests.get(srv.url + "/console/functions", allow_redirects=False, timeout=10).status_code == 303
    finally:
        u.close()


def test_the_sign_in_form_needs_its_own_token(srv):
    key, secret = srv.credentials()
    r = requests.post(
        srv.url + "/console/sign-in",
        data={"method": "key", "access_key_id": key, "secret_access_key": secret},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 403 and "lambdalet_console=" not in r.headers.get("Set-Cookie", "")


def test_failed_sign_ins_are_rate_limited(tmp_path):
    server = ServerProcess(tmp_path / "limited").start()
    u = ConsoleUser(server)
    try:
        key, _ = server.credentials()
        codes = [u.sign_in(key, f"guess-{i}").status_code for i in range(5)]
        assert codes == [401] * 5
        r = u.sign_in()  # even the right secret waits its turn
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and "Too many failed sign-ins" in r.text
    finally:
        u.close()
        assert server.stop() == 0


def test_console_password_signs_in_and_can_be_cleared(srv):
    cli = [*lambdalet_argv("console-password", "--stdin"), "--data-dir", str(srv.data_dir)]
    short = subprocess.run(cli, input="short\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 1 and "10 to 1024 characters" in short.stderr
    done = subprocess.run(cli, input="correct horse battery\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (srv.data_dir / "console-password").stat().st_mode & 0o777 == 0o600
    assert "correct horse" not in (srv.data_dir / "console-password").read_text()
    u = ConsoleUser(srv)
    try:
        assert "console password" in u.get("/console/sign-in").text
        assert u.sign_in(password="not the password").status_code == 401
        assert u.sign_in(password="correct horse battery").status_code == 303
        assert "console password" in u.get("/console/functions").text
    finally:
        u.close()
        cleared = subprocess.run(
            [*lambdalet_argv("console-password", "--clear"), "--data-dir", str(srv.data_dir)], capture_output=True, text=True, timeout=60
        )
        assert cleared.returncode == 0
    again = ConsoleUser(srv)
    try:
        assert again.sign_in(password="correct horse battery").status_code == 401
    finally:
        again.close()


# -- what every page carries ------------------------------------------------------------


def test_security_headers_and_no_inline_script_on_every_page(user, fn):
    for path in PAGES + [
        f"/console/functions/{fn}",
        f"/console/functions/{fn}/{{}}".format("test"),
        f"/console/functions/{fn}/code",
        f"/console/functions/{fn}/monitor",
        f"/console/functions/{fn}/logs",
        f"/console/functions/{fn}/versions",
        f"/console/functions/{fn}/delete",
        "/console/sign-in",
    ]:
        r = user.get(path)
        assert r.status_code == 200, (path, r.status_code)
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
        if "text/html" in r.headers["Content-Type"]:
            assert r.headers["Cache-Control"] == "no-store"
            _no_inline_code(r.text)


def test_static_assets_are_fingerprinted_and_cached(user):
    page = user.get("/console/functions").text
    src = re.search(r'src="(/console/static/console\.js\?v=[0-9a-f]+)"', page).group(1)
    r = requests.get(user.base + src, timeout=10)  # assets need no session
    assert r.status_code == 200 and "immutable" in r.headers["Cache-Control"] and r.headers["Content-Type"].startswith("text/javascript")
    again = requests.get(user.base + src, headers={"If-None-Match": r.headers["ETag"]}, timeout=10)
    assert again.status_code == 304
    unversioned = requests.get(user.base + "/console/static/console.js", timeout=10)
    assert unversioned.headers["Cache-Control"] == "no-cache"
    lib = re.search(r'src="(/console/static/vendor/uPlot\.iife\.min\.js\?v=[0-9a-f]+)"', page).group(1)
    assert requests.get(user.base + lib, timeout=10).text.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32)")


# -- CSRF ---------------------------------------------------------------------------------


def test_changes_without_the_csrf_token_or_from_another_origin_are_refused(srv, user, fn):
    before = srv.client().get_function_configuration(FunctionName=fn)["MemorySize"]
    page = user.get(f"/console/functions/{fn}")
    assert page.status_code == 200
    missing = user.post(f"/console/functions/{fn}/config/general", {"memory": "512"}, csrf=False)
    assert missing.status_code == 403 and "did not come from the console" in missing.text
    wrong = user.post(f"/console/functions/{fn}/config/general", [("memory", "512"), ("csrf", "x" * 43)], csrf=False)
    assert wrong.status_code == 403
    foreign = user.post(f"/console/functions/{fn}/config/general", {"memory": "512"}, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    cross_site = user.post(f"/console/functions/{fn}/config/general", {"memory": "512"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403
    assert srv.client().get_function_configuration(FunctionName=fn)["MemorySize"] == before
    ok = user.post(
        f"/console/functions/{fn}/config/general", {"memory": "512"}, headers={"Origin": srv.url, "Sec-Fetch-Site": "same-origin"}
    )
    assert ok.status_code == 303
    assert srv.client().get_function_configuration(FunctionName=fn)["MemorySize"] == 512


# -- escaping -------------------------------------------------------------------------------


def test_what_functions_control_renders_as_text(srv, user, fn):
    lam = srv.client()
    lam.update_function_configuration(FunctionName=fn, Environment={"Variables": {"GREETING": '"><img src=x onerror=alert(2)>'}})
    lam.invoke(FunctionName=fn, Payload=json.dumps({"x": XSS}).encode())
    config = user.get(f"/console/functions/{fn}").text
    assert "<img src=x" not in config and "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in config
    logs = wait_for(lambda: t if "&lt;script&gt;alert(1)&lt;/script&gt;" in (t := user.get(f"/console/functions/{fn}/logs").text) else None)
    assert XSS not in logs
    user.get(f"/console/functions/{fn}/test")
    result = user.post(f"/console/functions/{fn}/test", {"payload": json.dumps({"fail": True, "x": XSS}), "action": "invoke"})
    assert result.status_code == 200
    assert (
        XSS not in result.text and "&lt;b&gt;on purpose&lt;/b&gt;" in result.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in result.text
    )


# -- functions ------------------------------------------------------------------------------------


def test_create_from_a_zip_and_from_the_editor(srv, user):
    user.get("/console/functions/new")
    zipped = make_zip({"main.py": "def run(event, context):\n    return {'zip': True}\n"})
    r = user.post(
        "/console/functions/new",
        {"name": "from-zip", "runtime": RUNTIME, "handler": "main.run", "memory": "256", "timeout": "5", "source": "zip"},
        files={"zip": ("fn.zip", zipped, "application/zip")},
    )
    assert r.status_code == 303 and r.headers["Location"] == "/console/functions/from-zip?done=created"
    conf = srv.client().get_function_configuration(FunctionName="from-zip")
    assert conf["MemorySize"] == 256 and conf["Timeout"] == 5 and conf["Handler"] == "main.run"
    assert json.loads(srv.client().invoke(FunctionName="from-zip")["Payload"].read()) == {"zip": True}
    user.get("/console/functions/new")
    r = user.post(
        "/console/functions/new",
        {
            "name": "from-editor",
            "runtime": RUNTIME,
            "handler": "lambda_function.lambda_handler",
            "memory": "128",
            "timeout": "3",
            "source": "editor",
            "filename": "lambda_function.py",
            "code": "def lambda_handler(event, context):\n    return 'typed'\n",
        },
    )
    assert r.status_code == 303
    assert json.loads(srv.client().invoke(FunctionName="from-editor")["Payload"].read()) == "typed"
    listing = user.get("/console/functions?q=from-&sort=name&order=desc").text
    assert listing.index("from-zip") < listing.index("from-editor")
    assert "from-zip" not in user.get("/console/functions?q=editor").text


def test_bad_input_is_refused_with_lambdas_message_beside_its_field(srv, user, fn):
    user.get("/console/functions/new")
    r = user.post(
        "/console/functions/new",
        {
            "name": "bad name!",
            "runtime": RUNTIME,
            "handler": "app.handler",
            "memory": "128",
            "timeout": "3",
            "source": "editor",
            "filename": "app.py",
            "code": "x = 1\n",
        },
    )
    assert r.status_code == 400
    assert re.search(r'id="name-error"[^>]*>1 validation error detected: Value &#39;bad name!&#39; at &#39;functionName&#39;', r.text)
    user.get(f"/console/functions/{fn}")
    r = user.post(f"/console/functions/{fn}/config/general", {"memory": "99999", "timeout": "3"})
    assert r.status_code == 400
    assert re.search(
        r'id="general-memory-error"[^>]*>1 validation error detected: Value &#39;99999&#39; at &#39;memorySize&#39; failed to satisfy constraint: Member must have value less than or equal to 32768',
        r.text,
    )
    assert 'value="99999"' in r.text  # what was typed stays in the field
    r = user.post(f"/console/functions/{fn}/config/general", {"memory": "lots", "timeout": "3"})
    # Text where the model wants a number cannot be read (InvalidRequestContentException).
    assert r.status_code == 400 and 'id="general-memory-error"' in r.text and "at &#39;memorySize&#39; from String &#34;lots&#34;" in r.text
    r = user.post(f"/console/functions/{fn}/config/environment", [("env_key[]", "AWS_REGION"), ("env_value[]", "x")])
    assert r.status_code == 400 and "Reserved keys used in this request: AWS_REGION" in r.text
    r = user.post(f"/console/functions/{fn}/config/concurrency", {"reserved": "-1"})
    assert r.status_code == 400 and "at &#39;reservedConcurrentExecutions&#39;" in r.text
    r = user.post(f"/console/functions/{fn}/config/async", {"retries": "5", "max_age": "60"})
    assert r.status_code == 400 and 'id="async-retries-error"' in r.text
    assert srv.client().get_function_configuration(FunctionName=fn)["MemorySize"] == 128


def test_configuration_changes_reach_the_function(srv, user, fn):
    lam = srv.client()
    user.get(f"/console/functions/{fn}")
    assert (
        user.post(
            f"/console/functions/{fn}/config/general",
            {"memory": "1024", "timeout": "30", "ephemeral": "1024", "handler": "app.handler", "description": "from the console"},
        ).status_code
        == 303
    )
    assert (
        user.post(
            f"/console/functions/{fn}/config/environment",
            [("env_key[]", "GREETING"), ("env_value[]", "hi"), ("env_key[]", ""), ("env_value[]", "")],
        ).status_code
        == 303
    )
    assert user.post(f"/console/functions/{fn}/config/concurrency", {"reserved": "3"}).status_code == 303
    assert user.post(f"/console/functions/{fn}/config/tags", [("tag_key[]", "team"), ("tag_value[]", "edge")]).status_code == 303
    assert user.post(f"/console/functions/{fn}/config/url", {"auth_type": "NONE"}).status_code == 303
    dest = lam.get_function_configuration(FunctionName=fn)["FunctionArn"]
    assert (
        user.post(
            f"/console/functions/{fn}/config/async", {"retries": "1", "max_age": "600", "on_failure": "", "on_success": ""}
        ).status_code
        == 303
    )
    conf = lam.get_function_configuration(FunctionName=fn)
    assert (conf["MemorySize"], conf["Timeout"], conf["EphemeralStorage"]["Size"], conf["Description"]) == (
        1024,
        30,
        1024,
        "from the console",
    )
    assert conf["Environment"]["Variables"] == {"GREETING": "hi"}
    assert lam.get_function_concurrency(FunctionName=fn)["ReservedConcurrentExecutions"] == 3
    assert lam.list_tags(Resource=dest)["Tags"] == {"team": "edge"}
    url = lam.get_function_url_config(FunctionName=fn)
    assert url["AuthType"] == "NONE"
    # As the AWS console does, a public URL comes with the two statements
    # AWS requires of it.
    assert [s["Sid"] for s in json.loads(lam.get_policy(FunctionName=fn)["Policy"])["Statement"]] == [
        "FunctionURLAllowPublicAccess",
        "FunctionURLAllowInvokeAction",
    ]
    assert json.loads(requests.post(url["FunctionUrl"], data=b"{}", timeout=30).text)["env"] == "hi"
    assert lam.get_function_event_invoke_config(FunctionName=fn)["MaximumRetryAttempts"] == 1
    page = user.get(f"/console/functions/{fn}").text
    assert url["FunctionUrl"] in page and 'value="1024"' in page
    # Removing: the tag, the URL and the reservation.
    assert user.post(f"/console/functions/{fn}/config/tags", [("tag_key[]", ""), ("tag_value[]", "")]).status_code == 303
    assert user.post(f"/console/functions/{fn}/config/url", {"action": "delete", "auth_type": "NONE"}).status_code == 303
    assert user.post(f"/console/functions/{fn}/config/concurrency", {"action": "remove", "reserved": ""}).status_code == 303
    assert lam.list_tags(Resource=dest)["Tags"] == {}
    assert lam.list_function_url_configs(FunctionName=fn)["FunctionUrlConfigs"] == []
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=fn)


def test_versions_aliases_code_and_delete(srv, user, fn):
    lam = srv.client()
    user.get(f"/console/functions/{fn}/versions")
    assert user.post(f"/console/functions/{fn}/versions", {"description": "first"}).status_code == 303
    assert (
        user.post(f"/console/functions/{fn}/aliases", {"action": "create", "alias": "live", "version": "1", "description": ""}).status_code
        == 303
    )
    assert lam.get_alias(FunctionName=fn, Name="live")["FunctionVersion"] == "1"
    page = user.get(f"/console/functions/{fn}/versions").text
    assert "first" in page and "live" in page
    code = user.get(f"/console/functions/{fn}/code").text
    assert "def handler(event, context):" in code  # a one-file function opens in the editor
    r = user.post(
        f"/console/functions/{fn}/code",
        {"source": "editor", "filename": "app.py", "code": "def handler(event, context):\n    return 'v2'\n"},
    )
    assert r.status_code == 303
    assert json.loads(lam.invoke(FunctionName=fn)["Payload"].read()) == "v2"
    assert json.loads(lam.invoke(FunctionName=fn, Qualifier="live")["Payload"].read())["echo"] == {}
    assert (
        user.post(
            f"/console/functions/{fn}/aliases", {"action": "update", "alias": "live", "version": "$LATEST", "description": ""}
        ).status_code
        == 303
    )
    assert lam.get_alias(FunctionName=fn, Name="live")["FunctionVersion"] == "$LATEST"
    user.get(f"/console/functions/{fn}/delete")
    wrong = user.post(f"/console/functions/{fn}/delete", {"confirm": "not-it"})
    assert wrong.status_code == 400 and "to delete it" in wrong.text
    lam.get_function(FunctionName=fn)
    gone = user.post(f"/console/functions/{fn}/delete", {"confirm": fn})
    assert gone.status_code == 303 and gone.headers["Location"] == "/console/functions?done=deleted"
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=fn)
    assert user.get(f"/console/functions/{fn}").status_code == 404


# -- test invoke, monitor, logs ---------------------------------------------------------------------


def test_test_events_invoke_and_show_the_result_and_report(srv, user, fn):
    user.get(f"/console/functions/{fn}/test")
    saved = user.post(f"/console/functions/{fn}/test", {"payload": '{"hello": "console"}', "event_name": "greeting", "action": "save"})
    assert saved.status_code == 303
    page = user.get(f"/console/functions/{fn}/test?event=greeting").text
    assert "&#34;hello&#34;: &#34;console&#34;" in page and '<option value="greeting" selected>' in page
    bad = user.post(f"/console/functions/{fn}/test", {"payload": "{not json", "action": "invoke"})
    assert bad.status_code == 400 and "Could not parse request body into json" in bad.text
    r = user.post(f"/console/functions/{fn}/test", {"payload": '{"hello": "console"}', "action": "invoke", "chosen": "greeting"})
    assert r.status_code == 200 and "Succeeded" in r.text
    assert re.search(r'id="response">\{\s*&#34;echo&#34;: \{\s*&#34;hello&#34;: &#34;console&#34;', r.text)
    report = re.search(r'id="report">([^<]*)<', r.text).group(1)
    assert report.startswith("REPORT RequestId: ") and "Billed Duration: " in report and "Max Memory Used: " in report
    assert "START RequestId:" in r.text and "END RequestId:" in r.text
    # The call went through the pool and the meter: it is in the charts at once.
    chart = user.get(f"/console/api/chart?function={fn}&range=1h").json()
    assert sum(chart["invocations"]) >= 1 and chart["p99_ms"][-1] is not None and len(chart["t"]) == 60
    assert sum(user.get("/console/api/chart?range=24h").json()["invocations"]) >= 1
    week = user.get(f"/console/api/chart?function={fn}&range=7d").json()
    assert len(week["t"]) == 168 and sum(week["invocations"]) >= 1 and week["cost_usd"][-1] == 0  # well within the free tier
    listing = user.get("/console/functions?sort=invocations&order=desc").text
    assert re.search(rf'<a href="/console/functions/{fn}">{fn}</a>', listing)
    assert 'class="spark"' in listing
    deleted = user.post(f"/console/functions/{fn}/test", {"payload": "{}", "action": "delete", "chosen": "greeting"})
    assert deleted.status_code == 303 and "greeting" not in user.get(f"/console/functions/{fn}/test").text


def test_logs_search_by_time_range_and_filter(srv, user, fn):
    lam = srv.client()
    lam.invoke(FunctionName=fn, Payload=b'{"marker": "first-call"}')
    page = wait_for(lambda: t if "REPORT RequestId" in (t := user.get(f"/console/functions/{fn}/logs").text) else None)
    assert "START RequestId" in page
    filtered = user.get(f"/console/functions/{fn}/logs", params={"filter": "REPORT"}).text
    assert "REPORT RequestId" in filtered and "START RequestId" not in filtered
    future = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 3600))
    empty = user.get(f"/console/functions/{fn}/logs", params={"since": future, "tz": "0"}).text
    assert "0 events" in empty
    past = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 600))
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 5))
    ranged = user.get(f"/console/functions/{fn}/logs", params={"since": past, "until": now, "tz": "0"}).text
    assert "REPORT RequestId" in ranged
    assert "is not a date and time" in user.get(f"/console/functions/{fn}/logs", params={"since": "yesterday"}).text


def test_live_tail_streams_new_log_lines_as_server_sent_events(srv, user, fn):
    lam = srv.client()
    with user.http.get(f"{srv.url}/console/functions/{fn}/logs/stream", params={"filter": "tail-marker"}, stream=True, timeout=30) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        assert r.headers.get("Transfer-Encoding") == "chunked"
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        lam.invoke(FunctionName=fn, Payload=b'{"tail-marker": 1}')
        seen = []
        deadline = time.monotonic() + 30
        for line in r.iter_lines(decode_unicode=True):
            assert time.monotonic() < deadline, f"no tail-marker line within 30 s: {seen}"
            if line.startswith("data: "):
                event = json.loads(line[6:])
                seen.append(event)
                if "tail-marker" in event["message"]:
                    break
        assert any("tail-marker" in e["message"] for e in seen)
        assert all("tail-marker" in e["message"] for e in seen)  # the filter holds


def test_a_signed_out_user_gets_no_live_tail(srv, fn):
    r = requests.get(f"{srv.url}/console/functions/{fn}/logs/stream", allow_redirects=False, timeout=10)
    assert r.status_code == 303


# -- queues and schedules ------------------------------------------------------------------------------


def test_dead_letters_are_redriven_and_deleted_from_the_console(srv, user):
    lam = srv.client()
    name = "c-dlq-source"
    lam.create_function(
        FunctionName=name,
        Role=ROLE,
        Handler="app.handler",
        Runtime=RUNTIME,
        Code={"ZipFile": make_zip({"app.py": "def handler(event, context):\n    raise RuntimeError('always')\n"})},
    )
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    for i in range(2):
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"n": i}).encode())

    def dead():
        page = user.get("/console/queues").text
        return re.findall(r'name="id\[\]" value="([^"]+)"', page) if page.count(f'<th scope="row">{name}') >= 2 else None

    ids = wait_for(dead, timeout=30)
    assert len(ids) == 2
    r = user.post("/console/queues/lambdalet-dlq/redrive", [("id[]", ids[0])])
    assert r.status_code == 303 and r.headers["Location"] == "/console/queues?done=redriven"
    # The redriven event runs again, fails again, and comes back as a new record.
    wait_for(lambda: ids[0] not in user.get("/console/queues").text)
    r = user.post("/console/queues/lambdalet-dlq/delete", [("id[]", ids[1])])
    assert r.status_code == 303
    assert ids[1] not in user.get("/console/queues").text
    nothing = user.post("/console/queues/lambdalet-dlq/redrive", [])
    assert nothing.status_code == 400


def test_schedules_enable_and_disable(srv, user, fn):
    cli = [
        *lambdalet_argv("schedule", "add", "c-every-hour", "rate(1 hour)", "--function", fn),
        "--endpoint",
        srv.url,
        "--data-dir",
        str(srv.data_dir),
    ]
    assert subprocess.run(cli, capture_output=True, text=True, timeout=60).returncode == 0
    page = user.get("/console/schedules").text
    assert "c-every-hour" in page and "ENABLED" in page
    r = user.post("/console/schedules/c-every-hour/disable")
    assert r.status_code == 303
    assert re.search(r'c-every-hour</th>.*?state-disabled">DISABLED', user.get("/console/schedules").text, re.S)
    assert user.post("/console/schedules/c-every-hour/enable").status_code == 303
    assert re.search(r'c-every-hour</th>.*?state-enabled">ENABLED', user.get("/console/schedules").text, re.S)
    assert user.post("/console/schedules/c-every-hour/delete").status_code == 303
    assert "c-every-hour" not in user.get("/console/schedules").text


# -- off, and why --------------------------------------------------------------------------------------


def test_console_off_says_why(tmp_path):
    server = ServerProcess(tmp_path / "off", "--console", "off").start()
    try:
        assert any("console: off. the console is turned off (--console off)" in line for line in server.output)
        r = requests.get(server.url + "/console/functions", timeout=10)
        assert r.status_code == 404 and "turned off (--console off)" in r.text
        assert "Content-Security-Policy" in r.headers
    finally:
        assert server.stop() == 0


def test_the_start_up_lines_print_the_console_url(srv):
    assert any(line.strip() == f"console: {srv.url}/console" for line in srv.output)


def test_policy_keeps_the_console_off_a_network_in_clear():
    from lambdalet.gateway.console.policy import banner_lines, decide

    local = decide("auto", "127.0.0.1", True, None)
    assert local.plain and not local.tls
    exposed = decide("auto", "192.0.2.10", False, None)
    assert not exposed.plain and not exposed.tls
    assert "not a loopback address, without TLS" in exposed.plain_note and "--console on" in exposed.plain_note
    assert banner_lines(exposed, "http://192.0.2.10:9000", None) == [f"console: off. {exposed.plain_note}"]
    tls = decide("auto", "192.0.2.10", False, "https://192.0.2.10:9443")
    assert tls.tls and not tls.plain and "TLS only: https://192.0.2.10:9443/console" in tls.plain_note
    forced = decide("on", "192.0.2.10", False, None)
    assert forced.plain and "cross the network in clear" in forced.plain_note
    assert banner_lines(forced, "http://192.0.2.10:9000", None)[1].startswith("WARNING ")
    off = decide("off", "127.0.0.1", True, "https://127.0.0.1:9443")
    assert not off.plain and not off.tls
    with pytest.raises(ValueError):
        decide("maybe", "127.0.0.1", True, None)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
def test_over_tls_the_session_cookie_is_secure(tmp_path):
    key, crt = make_test_cert(tmp_path)
    tls_port = free_port()
    server = ServerProcess(tmp_path / "d", "--tls-port", str(tls_port), "--tls-cert", str(crt), "--tls-key", str(key)).start()
    http = requests.Session()
    http.trust_env = False  # REQUESTS_CA_BUNDLE would take the place of the test's certificate
    http.verify = str(crt)
    try:
        assert any(line.strip() == f"console: https://127.0.0.1:{tls_port}/console" for line in server.output)
        base = f"https://127.0.0.1:{tls_port}"
        page = http.get(base + "/console/sign-in", timeout=10)
        assert page.status_code == 200 and "Secure" in page.headers["Set-Cookie"]
        key_id, secret = server.credentials()
        r = http.post(
            base + "/console/sign-in",
            data={"csrf": csrf_of(page.text), "method": "key", "access_key_id": key_id, "secret_access_key": secret, "next": ""},
            allow_redirects=False,
            timeout=10,
        )
        assert r.status_code == 303
        cookie = next(c for c in r.raw.headers.getlist("Set-Cookie") if c.startswith("lambdalet_console="))
        assert "Secure" in [a.strip() for a in cookie.split(";")]
        assert http.get(base + "/console/functions", timeout=10).status_code == 200
        # The same session means nothing on the plain port's cookie jar (Secure),
        # and the plain port on loopback serves its own sign-in.
        assert requests.get(server.url + "/console/functions", allow_redirects=False, timeout=10).status_code == 303
    finally:
        http.close()
        assert server.stop() == 0
