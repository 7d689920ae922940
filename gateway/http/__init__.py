"""Bytes <-> requests, nothing of Lambda.

- handler.py    what both fronts ask of whoever answers requests: one
                Handler protocol and one Reply (api/router.py implements it).
- http1.py      a strict HTTP/1.1 server codec (sans-IO): request heads,
                bodies, responses.
- rawio.py      non-blocking socket I/O that yields to trio only when the
                kernel would block (the data plane's hot path).
- limits.py     what a client may hold before it is authenticated: one byte
                budget and one connection cap for both ports.
- listener.py   the lean HTTP/1.1 connection loop (plain port).
- slow_client.py  the listener's waits on a slow or refused client: a body
                that did not come with its head, a response taken slowly,
                a refusal and its linger.
- watchdog.py   the connections' deadlines, checked by one task; idle
                connections closed to make room at the cap.
- tls_front.py  hypercorn (TLS, HTTP/2) in front of the same handler.
- asgi.py       runs an ASGI app for one already-read request, in process.
- body.py       response bodies that are not held in memory (a file's
                range), sent by the listener and the TLS front as they read
                them.
"""
