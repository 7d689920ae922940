"""Bytes <-> requests, nothing of Lambda.

- body.py  response bodies that are not held in memory (a file's range),
           sent by the listener and the TLS front as they read them.

http1, rawio, listener, asgi and tls_front join this package when gateway/
is split into rooms (see the project's layout notes).
"""
