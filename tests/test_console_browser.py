"""The console in a real browser: Debian's chromium driven by Playwright
(the system browser, never `playwright install`), against a real server.

A screenshot of each main page is saved under $LAMBDALET_TEST_ARTIFACTS
(default: test-artifacts/console in the checkout); with
LAMBDALET_UPDATE_SCREENSHOTS=1 the functions list and the monitor page
are also written to docs/ for the README.
"""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import shutil
import sys
import threading
import time

import pytest
import requests
from helpers import ServerProcess, make_zip, wait_for

CHROMIUM = "/usr/bin/chromium"
REPO = pathlib.Path(__file__).resolve().parent.parent
ARTIFACTS = pathlib.Path(os.environ.get("LAMBDALET_TEST_ARTIFACTS") or REPO / "test-artifacts") / "console"
RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/browser"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does it)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api", reason="the [test] extra installs playwright")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("browser"), "--retry-delay-s", "0.2").start()
    yield server
    assert server.stop() == 0, "".join(server.output)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=ARGS, viewport={"width": 1280, "height": 860}
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context):
    """A tab that fails the test on any dialog (an XSS that ran) and
    records what the console complains about (CSP violations)."""
    tab = browser_context.new_page()
    tab.dialogs = []
    tab.problems = []
    tab.on("dialog", lambda d: (tab.dialogs.append(d.message), d.dismiss()))
    tab.on("console", lambda m: tab.problems.append(m.text) if m.type in ("error", "warning") else None)
    tab.on("pageerror", lambda exc: tab.problems.append(str(exc)))
    yield tab
    tab.close()
    assert tab.dialogs == [], f"a dialog opened: {tab.dialogs}"
    assert not [p for p in tab.problems if "Content Security Policy" in p or "Refused to" in p], tab.problems


def shot(page, name: str, *, docs: str | None = None) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs and os.environ.get("LAMBDALET_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(path, REPO / "docs" / docs)


def until(page, expression: str, timeout: float = 15.0):
    """Polls a JavaScript expression in the page until it is true. (Not
    page.wait_for_function: it evaluates strings with eval, which the
    console's CSP forbids, as it should.)"""
    return wait_for(lambda: page.evaluate(expression), timeout=timeout, interval=0.1)


def sign_in_by_keyboard(page, srv) -> None:
    key, secret = srv.credentials()
    page.context.clear_cookies()  # a tab of an earlier test may have signed in
    page.goto(srv.url + "/console")
    assert page.url.startswith(srv.url + "/console/sign-in")
    # Keyboard only: Tab from the top of the page to the key field.
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "access_key_id":
            break
    assert page.evaluate("document.activeElement.id") == "access_key_id"
    page.keyboard.type(key)
    page.keyboard.press("Tab")
    page.keyboard.type(secret)
    page.keyboard.press("Enter")
    page.wait_for_url(srv.url + "/console/functions")


def test_a_user_deploys_tests_watches_changes_redrives_and_deletes(srv, page, tmp_path):
    lam = srv.client()
    page.goto(srv.url + "/console/functions")
    shot(page, "sign-in")
    assert page.locator("#secret_access_key").count() == 1
    sign_in_by_keyboard(page, srv)

    # Create from a zip.
    package = tmp_path / "browser.zip"
    package.write_bytes(
        make_zip(
            {
                "app.py": (
                    "import json, os\n"
                    "def handler(event, context):\n"
                    "    print('hello from the browser', json.dumps(event))\n"
                    "    return {'got': event, 'memory': int(context.memory_limit_in_mb)}\n"
                )
            }
        )
    )
    page.get_by_role("link", name="Create function").click()
    page.fill("#name", "browser-fn")
    page.select_option("#runtime", RUNTIME)
    page.fill("#handler", "app.handler")
    page.check("input[name=source][value=zip]")
    page.set_input_files("#zip", str(package))
    shot(page, "create")
    page.get_by_role("button", name="Create function").click()
    page.wait_for_url(srv.url + "/console/functions/browser-fn?done=created")
    assert page.get_by_role("status").inner_text() == "Function created."
    assert lam.get_function_configuration(FunctionName="browser-fn")["Handler"] == "app.handler"
    shot(page, "configuration")

    # Invoke with a saved test event: the result, the REPORT line and the log.
    page.get_by_role("link", name="Test", exact=True).click()
    page.fill("#payload", '{"from": "a saved event"}')
    page.fill("#event_name", "saved-one")
    page.get_by_role("button", name="Save event").click()
    page.wait_for_url("**/test?done=event-saved&event=saved-one")
    assert page.locator("#event").input_value() == "saved-one"
    page.get_by_role("button", name="Invoke").click()
    page.wait_for_selector("#result")
    assert "Succeeded" in page.locator("#result h2").inner_text()
    assert page.locator("#report").inner_text().startswith("REPORT RequestId: ")
    assert 'hello from the browser {"from": "a saved event"}' in page.locator("#log-output").inner_text()
    assert json.loads(page.locator("#response").inner_text()) == {"got": {"from": "a saved event"}, "memory": 128}
    shot(page, "test")

    # The log line in the live tail, and a later one as it is logged.
    page.get_by_role("link", name="Logs").click()
    page.get_by_role("button", name="Start live tail").click()
    until(page, "document.getElementById('tail').innerText.includes('hello from the browser')")
    lam.invoke(FunctionName="browser-fn", Payload=b'{"live": "tail"}')
    until(page, """document.getElementById('tail').innerText.includes('{"live": "tail"}')""")
    assert "Live" in page.locator("#tail-state").inner_text()
    shot(page, "logs")
    page.get_by_role("button", name="Stop live tail").click()

    # A chart point: the calls just made, in the monitor's charts.
    page.locator("nav.tabs").get_by_role("link", name="Monitor").click()
    page.wait_for_url("**/functions/browser-fn/monitor")
    until(page, "Number(document.getElementById('chart-calls').dataset.total) >= 2")
    assert page.locator("#chart-calls canvas").count() >= 1
    assert page.locator("#chart-duration canvas").count() >= 1
    page.locator("#chart-calls summary").click()
    assert page.locator("#chart-calls table.data tbody tr").count() >= 1
    shot(page, "monitor", docs="console-monitor.png")
    page.get_by_role("link", name="24h").click()
    until(
        page,
        "Number(document.getElementById('chart-calls').dataset.total) >= 2 && document.getElementById('chart-calls').dataset.points === '288'",
    )

    # Change memory (a refusal first, shown beside the field), then a function URL.
    page.get_by_role("link", name="Configuration").click()
    page.fill("#general-memory", "99999")
    page.locator("#general").get_by_role("button", name="Save").click()
    assert "Member must have value less than or equal to 32768" in page.locator("#general-memory-error").inner_text()
    assert page.locator("#general-memory").get_attribute("aria-invalid") == "true"
    page.fill("#general-memory", "512")
    page.locator("#general").get_by_role("button", name="Save").click()
    page.wait_for_url("**/functions/browser-fn?done=general#general")
    assert lam.get_function_configuration(FunctionName="browser-fn")["MemorySize"] == 512
    page.select_option("#url-auth_type", "NONE")
    page.get_by_role("button", name="Create function URL").click()
    page.wait_for_url("**/functions/browser-fn?done=url#url")
    url = page.locator("#function-url").inner_text()
    assert url == lam.get_function_url_config(FunctionName="browser-fn")["FunctionUrl"]
    assert requests.post(url, data=b'{"via": "url"}', timeout=30).json()["memory"] == 512

    # A dead letter, redriven from the queues page.
    lam.create_function(
        FunctionName="browser-failing",
        Role=ROLE,
        Handler="app.handler",
        Runtime=RUNTIME,
        Code={"ZipFile": make_zip({"app.py": "def handler(event, context):\n    raise RuntimeError('nope')\n"})},
    )
    lam.put_function_event_invoke_config(FunctionName="browser-failing", MaximumRetryAttempts=0)
    lam.invoke(FunctionName="browser-failing", InvocationType="Event", Payload=b'{"dead": "letter"}')

    def dead_letter():
        page.goto(srv.url + "/console/queues")
        box = page.locator("#queue-lambdalet-dlq input[name='id[]']")
        return box.first.get_attribute("value") if box.count() else None

    first_id = wait_for(dead_letter, timeout=30, interval=0.3)
    shot(page, "queues")
    page.locator(f"#m-{first_id}").check()
    page.locator("#queue-lambdalet-dlq").get_by_role("button", name="Redrive chosen").click()
    page.wait_for_url("**/queues?done=redriven")
    assert page.get_by_role("status").inner_text() == "Records sent back to their functions."
    assert page.locator(f"#m-{first_id}").count() == 0
    # It ran again (and failed again): a new record, not the old one.
    wait_for(lambda: (dead_letter() or first_id) != first_id, timeout=30, interval=0.3)

    # The other main pages: versions, the account's monitor, schedules.
    page.goto(srv.url + "/console/functions/browser-fn/versions")
    page.get_by_role("button", name="Publish new version").click()
    page.wait_for_url("**/versions?done=published")
    assert lam.list_versions_by_function(FunctionName="browser-fn")["Versions"][-1]["Version"] == "1"
    shot(page, "versions")
    page.goto(srv.url + "/console/monitor")
    until(page, "Number(document.getElementById('chart-calls').dataset.total) >= 3")
    shot(page, "account-monitor")
    page.goto(srv.url + "/console/schedules")
    shot(page, "schedules")

    # The list, with the calls of the last hour.
    page.goto(srv.url + "/console/functions")
    row = page.locator("tr[data-name='browser-fn']")
    assert row.locator("td").nth(1).inner_text() == "512"
    assert int(row.locator("td").nth(3).inner_text().split()[0]) >= 3
    assert row.locator(".spark canvas").count() >= 1
    shot(page, "functions", docs="console-functions.png")
    page.fill("#q", "failing")
    assert page.locator("tr[data-name='browser-fn']").is_hidden()

    # Delete, with its confirmation.
    page.goto(srv.url + "/console/functions/browser-fn/delete")
    page.fill("#confirm", "wrong")
    page.get_by_role("button", name="Delete function").click()
    assert "to delete it" in page.locator("#confirm-error").inner_text()
    page.fill("#confirm", "browser-fn")
    page.get_by_role("button", name="Delete function").click()
    page.wait_for_url("**/console/functions?done=deleted")
    assert page.locator("tr[data-name='browser-fn']").count() == 0
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName="browser-fn")

    # Sign out: nothing but the sign-in page after it.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/sign-in")
    page.goto(srv.url + "/console/queues")
    assert page.url.startswith(srv.url + "/console/sign-in")
    assert page.locator("#secret_access_key").count() == 1


def test_xss_from_a_function_renders_as_text(srv, page):
    lam = srv.client()
    lam.create_function(
        FunctionName="browser-xss",
        Role=ROLE,
        Handler="app.handler",
        Runtime=RUNTIME,
        Environment={"Variables": {"EVIL": '"><img src=x onerror=alert(2)>'}},
        Code={
            "ZipFile": make_zip(
                {
                    "app.py": (
                        "def handler(event, context):\n"
                        "    print('<script>alert(1)</script>')\n"
                        "    print('<img src=x onerror=alert(3)>')\n"
                        "    raise ValueError('<svg onload=alert(4)>')\n"
                    )
                }
            )
        },
    )
    lam.invoke(FunctionName="browser-xss", Payload=b'{"<b>": "<i>payload</i>"}')
    sign_in_by_keyboard(page, srv)
    page.goto(srv.url + "/console/functions/browser-xss")
    assert page.locator("input[name='env_value[]']").first.input_value() == '"><img src=x onerror=alert(2)>'
    assert page.locator("img").count() == 0
    page.goto(srv.url + "/console/functions/browser-xss/logs")
    page.wait_for_selector("text=<script>alert(1)</script>")
    page.get_by_role("button", name="Start live tail").click()
    until(page, "document.getElementById('tail').innerText.includes('<img src=x onerror=alert(3)>')")
    assert page.locator("#tail img, #tail script, main script").count() == 0
    page.get_by_role("button", name="Stop live tail").click()
    page.goto(srv.url + "/console/functions/browser-xss/test")
    page.fill("#payload", '{"<b>": "<script>alert(5)</script>"}')
    page.get_by_role("button", name="Invoke").click()
    page.wait_for_selector("#result")
    assert "<svg onload=alert(4)>" in page.locator("#response").inner_text()
    assert page.locator("main svg, main img, main b").count() == 0
    time.sleep(0.2)  # an injected handler, had one run, would have opened its dialog by now
    assert page.dialogs == []
    shot(page, "xss-as-text")


class _Attacker(http.server.BaseHTTPRequestHandler):
    """Another origin, serving a page whose form posts a change to the console."""

    target = ""

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = (
            f'<!doctype html><form id="f" method="post" action="{self.target}">'
            '<input name="confirm" value="browser-victim"><input name="csrf" value="guessed">'
            '<button id="go">win a prize</button></form>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_csrf_from_another_origin_fails(srv, page):
    lam = srv.client()
    lam.create_function(
        FunctionName="browser-victim",
        Role=ROLE,
        Handler="app.handler",
        Runtime=RUNTIME,
        Code={"ZipFile": make_zip({"app.py": "def handler(event, context):\n    return 1\n"})},
    )
    sign_in_by_keyboard(page, srv)
    handler = type("Attacker", (_Attacker,), {"target": f"{srv.url}/console/functions/browser-victim/delete"})
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=evil.serve_forever, daemon=True)
    thread.start()
    try:
        # 127.0.0.1 on another port is the same site (SameSite lets the
        # cookie go) but another origin: the token and Origin checks stop it.
        for host in ("127.0.0.1", "localhost"):
            page.goto(f"http://{host}:{evil.server_address[1]}/")
            with page.expect_navigation():
                page.click("#go")
            assert page.url.startswith(srv.url + "/console/")
            status = page.locator("h1").inner_text()
            assert status in ("Refused", "Signed out", "Sign in"), status
        assert lam.get_function(FunctionName="browser-victim")["Configuration"]["FunctionName"] == "browser-victim"
        # The session itself still works from the console's own pages.
        page.goto(srv.url + "/console/functions")
        assert page.locator("tr[data-name='browser-victim']").count() == 1
    finally:
        evil.shutdown()
        evil.server_close()
        thread.join(timeout=5)


def test_phone_sized_screens(srv, browser_context):
    tab = browser_context.new_page()
    try:
        tab.set_viewport_size({"width": 390, "height": 844})
        sign_in_by_keyboard(tab, srv)
        for path, name in (
            ("/console/functions", "phone-functions"),
            ("/console/monitor", "phone-monitor"),
            ("/console/queues", "phone-queues"),
        ):
            tab.goto(srv.url + path)
            overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} is {overflow}px wider than the screen"
            shot(tab, name)
    finally:
        tab.close()
