"""The sans-IO HTTP/1.1 codec, driven without sockets."""

from __future__ import annotations

import random

import pytest

from lambdalet.gateway.http import http1


def parse_all(data: bytes, limit: int = 1 << 20, step: int | None = None):
    """Feeds data (optionally in small steps) and returns [(head, body)]."""
    p = http1.RequestParser()
    out = []
    chunks = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    head = None
    for chunk in chunks:
        p.feed(chunk)
        while True:
            if head is None:
                head = p.read_head()
                if head is None:
                    break
                p.set_body_limit(limit)
            body = p.read_body()
            if body is None:
                break
            out.append((head, body))
            head = None
    return out


def test_content_length_body_and_pipelining():
    data = b"POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: h\r\n\r\n"
    for step in (None, 1, 3, 7):
        reqs = parse_all(data, step=step)
        assert [(h.method, h.path, h.query, b) for h, b in reqs] == [("POST", "/a", "x=1", b"hello"), ("GET", "/b", "", b"")]
        assert reqs[0][0].header("host") == "h"
        assert reqs[0][0].keep_alive


def test_chunked_body_with_extensions_and_trailers():
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    for step in (None, 1, 2, 5):
        ((head, body),) = parse_all(data, step=step)
        assert body == b"hello world"
        assert head.chunked


def test_http10_and_connection_close():
    ((head, _),) = parse_all(b"GET / HTTP/1.0\r\n\r\n")
    assert not head.keep_alive
    ((head, _),) = parse_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert head.keep_alive
    ((head, _),) = parse_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert not head.keep_alive


def test_expect_continue_is_reported():
    p = http1.RequestParser()
    p.feed(b"PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    head = p.read_head()
    assert head.expect_continue
    p.set_body_limit(10)
    assert p.read_body() is None
    p.feed(b"abc")
    assert p.read_body() == b"abc"


@pytest.mark.parametrize(
    "raw,status",
    [
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET  / HTTP/1.1\r\n\r\n", 400),
        (b"GET http://x/ HTTP/1.1\r\n\r\n", 400),
        (b"G(T / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
        # A name seen (and remembered as valid) before is still refused without its colon.
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nExpect: magic\r\n\r\n", 417),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", 431),
        # str.isdigit() is true for superscripts; int() is not.
        (b"POST / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n+a\r\n", 400),
        (b"GET /a\x01b HTTP/1.1\r\n\r\n", 400),
        (b"GET /a\nb HTTP/1.1\r\n\r\n", 400),
    ],
)
def test_protocol_errors(raw, status):
    with pytest.raises(http1.ProtocolError) as exc:
        parse_all(raw)
    assert exc.value.status == status


@pytest.fixture
def fresh_names(monkeypatch):
    # The table is process-wide: leave it as other tests expect it.
    monkeypatch.setattr(http1, "_NAMES", {})


def test_remembered_header_names_are_bounded(fresh_names):
    for i in range(2 * http1._NAMES_MAX):
        ((head, _body),) = parse_all(f"GET / HTTP/1.1\r\nX-Name-{i}: v\r\n\r\n".encode())
        assert head.headers == [(f"x-name-{i}", "v")]
    assert len(http1._NAMES) <= http1._NAMES_MAX
    # Full tables are emptied, so a common name is learned again.
    ((head, _body),) = parse_all(b"GET / HTTP/1.1\r\nX-Amz-Date: v\r\n\r\n")
    assert head.headers == [("x-amz-date", "v")] and http1._NAMES.get("X-Amz-Date") == "x-amz-date"


def test_long_header_names_are_parsed_but_never_remembered(fresh_names):
    name = "X-" + "a" * 60_000
    for _ in range(3):
        ((head, _body),) = parse_all(f"GET / HTTP/1.1\r\n{name}: v\r\n\r\n".encode())
        assert head.headers == [(name.lower(), "v")]
    assert name not in http1._NAMES


def test_oversized_head_is_refused_before_its_end():
    p = http1.RequestParser()
    p.feed(b"GET / HTTP/1.1\r\nX: " + b"a" * (http1.MAX_HEAD + 10))
    with pytest.raises(http1.ProtocolError) as exc:
        p.read_head()
    assert exc.value.status == 431


def test_body_limits_for_declared_and_chunked_bodies():
    p = http1.RequestParser()
    p.feed(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n")
    p.read_head()
    with pytest.raises(http1.BodyTooLarge):
        p.set_body_limit(10)
    with pytest.raises(http1.BodyTooLarge):
        parse_all(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello!\r\n0\r\n\r\n", limit=5)


def test_render_response():
    raw = http1.render_response(200, [("X-A", "b")], b"hi", keep_alive=True)
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: 2" in head and b"X-A: b" in head and b"Connection: close" not in head
    assert body == b"hi"
    assert b"Connection: close" in http1.render_response(404, [], b"", keep_alive=False)
    assert b"Content-Length" not in http1.render_response(204, [], b"", keep_alive=True)
    with pytest.raises(ValueError):
        http1.render_response(200, [("X", "a\r\nInjected: 1")], b"", keep_alive=True)
    # A 204 or 304 never carries a body, whatever the handler returned.
    assert http1.render_response(204, [], b"HTTP/1.1 200 OK\r\n\r\nsmuggled", keep_alive=True).endswith(b"\r\n\r\n")


def test_fuzz_garbage_gives_requests_or_protocol_errors():
    """Whatever the bytes, the parser yields requests or ProtocolError/BodyTooLarge, nothing else."""
    rng = random.Random(1234)
    seeds = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ]
    alphabet = b"\r\n :;GETPOST/HTTP1.0chunkedContent-Length\x00\xff0123456789abcdef"
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            pos = rng.randint(0, len(data))
            if op < 0.4:
                data[pos:pos] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
            elif op < 0.8 and data:
                del data[pos : pos + rng.randint(1, 4)]
            else:
                data[pos:pos] = rng.choice(seeds)
        try:
            parse_all(bytes(data), limit=1000, step=rng.choice([None, 1, 3]))
        except (http1.ProtocolError, http1.BodyTooLarge):
            pass


# Request smuggling: bytes that a proxy in front could frame one way and
# this parser another. Each is refused, never guessed at.
@pytest.mark.parametrize(
    "raw,status",
    [
        # Content-Length beside Transfer-Encoding, in either order.
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
        # Two lengths, as two fields or as a list in one.
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello", 400),
        # Obsolete line folding: a proxy that unfolds sees a Content-Length here.
        (b"POST / HTTP/1.1\r\nX: a\r\n Content-Length: 5\r\n\r\nhello", 400),
        (b"POST / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 400),
        # Bare LF as a line end, in the request line, a header, a chunk size, after chunk data.
        (b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\nContent-Length: 5\r\n\r\nhello", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", 400),
        # Transfer-Encoding spelled so that one reader sees it and another does not.
        (b"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501),
    ],
)
def test_request_smuggling_is_refused(raw, status):
    for step in (None, 1):
        with pytest.raises(http1.ProtocolError) as exc:
            parse_all(raw, step=step)
        assert exc.value.status == status


def test_identical_content_lengths_are_one_length():
    """RFC 9112 6.3 lets a recipient take a repeated, identical length as
    one; the next request is framed after exactly that many bytes."""
    data = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\n\r\n"
    assert [(h.path, b) for h, b in parse_all(data)] == [("/", b"hello"), ("/next", b"")]


@pytest.mark.parametrize("step", [None, 1, 4])
def test_a_head_with_bare_lf_line_ends_is_refused_at_once(step):
    """Not held until the head timeout as a head that has not ended: its
    CRLF CRLF never comes, and a reader that accepts bare LF has framed it
    already."""
    with pytest.raises(http1.ProtocolError) as exc:
        parse_all(b"GET / HTTP/1.1\nHost: a\n\n", step=step)
    assert exc.value.status == 400
