"""Running calls in sandboxes.

- runtime_api/   the Lambda Runtime API (2018-06-01) that custom runtimes
                 (provided.al2023, provided.al2) speak from inside their
                 sandbox; Python functions keep the msgspec frames of
                 runtime/protocol.py.

The pool, instances, spares and the spawner join this package when
gateway/ is split into rooms (see the project's layout notes).
"""
