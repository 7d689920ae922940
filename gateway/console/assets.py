"""The console's static files: read once, fingerprinted, cached by browsers.

Each page names an asset with its content hash (console.js?v=3f2a...), so a
browser may keep it a year (immutable) and a new release is fetched at once.
"""

from __future__ import annotations

import hashlib
import pathlib

STATIC_DIR = pathlib.Path(__file__).parent / "static"
PREFIX = "/console/static/"
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
    ".ico": "image/x-icon",
}
YEAR_S = 365 * 86400


class Assets:
    def __init__(self, root: pathlib.Path = STATIC_DIR) -> None:
        self._files: dict[str, tuple[bytes, str, str]] = {}  # name -> (bytes, content type, hash)
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in _TYPES:
                data = path.read_bytes()
                name = path.relative_to(root).as_posix()
                self._files[name] = (data, _TYPES[path.suffix], hashlib.sha256(data).hexdigest()[:16])

    def url(self, name: str) -> str:
        return f"{PREFIX}{name}?v={self._files[name][2]}"

    def names(self) -> list[str]:
        return sorted(self._files)

    def reply(self, path: str, query: str, if_none_match: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
        name = path[len(PREFIX) :]
        found = self._files.get(name)
        if found is None:
            return 404, [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")], b"not found"
        data, content_type, digest = found
        etag = f'"{digest}"'
        # Named by its current hash: cached for good. Named otherwise (an
        # old page, or by hand): revalidated each time.
        cache = f"public, max-age={YEAR_S}, immutable" if query == f"v={digest}" else "no-cache"
        headers = [("Content-Type", content_type), ("Cache-Control", cache), ("ETag", etag)]
        if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
            return 304, headers, b""
        return 200, headers, data
