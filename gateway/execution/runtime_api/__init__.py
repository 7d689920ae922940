"""The Lambda Runtime API, served by the gateway to a custom runtime.

A `bootstrap` (aws-lambda-go, Rust lambda_runtime, awslambdaric, a shell
script) finds the API at AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001 inside its
sandbox. The listening socket lives in the sandbox's network namespace but
belongs to the gateway: the runtime worker creates it there before it execs
the bootstrap and hands it over the control channel, and the gateway's trio
loop serves it. No process runs beside the function.

- wire.py     HTTP/1.1 from a runtime as events, replies as bytes (sans-IO)
- state.py    the API's rules: which call is open, what `next` returns,
              what each misuse gets (sans-IO, driven by tests without sockets)
- server.py   the trio side: accepts, reads, applies state.py's outputs
- session.py  what the pool calls for a custom-runtime instance: launch the
              bootstrap, hand it calls, take its log
"""
