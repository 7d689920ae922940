"""A console user over HTTP (requests): signs in as a browser would, and
finds the CSRF token in the page it is on."""

from __future__ import annotations

import re

import requests

_CSRF_RE = re.compile(r'name="csrf" value="([^"]*)"')


def csrf_of(html: str) -> str:
    m = _CSRF_RE.search(html)
    assert m is not None, "no CSRF token in the page"
    return m.group(1)


class ConsoleUser:
    def __init__(self, server) -> None:
        self.server = server
        self.base = server.url
        self.http = requests.Session()
        self.csrf = ""

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **kw) -> requests.Response:
        r = self.http.get(self.base + path, timeout=30, **kw)
        if "text/html" in r.headers.get("content-type", "") and 'name="csrf"' in r.text:
            self.csrf = csrf_of(r.text)
        return r

    def post(self, path: str, data: dict | list | None = None, *, csrf: bool = True, **kw) -> requests.Response:
        data = list(data.items()) if isinstance(data, dict) else list(data or [])
        if csrf:
            data.append(("csrf", self.csrf))
        kw.setdefault("allow_redirects", False)
        return self.http.post(self.base + path, data=data, timeout=60, **kw)

    def sign_in(self, key: str | None = None, secret: str | None = None, *, password: str | None = None) -> requests.Response:
        page = self.get("/console/sign-in")
        token = csrf_of(page.text)
        if password is not None:
            form = {"method": "password", "password": password}
        else:
            k, s = self.server.credentials()
            form = {
                "method": "key",
                "access_key_id": key if key is not None else k,
                "secret_access_key": secret if secret is not None else s,
            }
        r = self.http.post(self.base + "/console/sign-in", data={**form, "csrf": token, "next": ""}, allow_redirects=False, timeout=30)
        if r.status_code == 303:
            self.get("/console/functions")
        return r
