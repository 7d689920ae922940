"""The Lambda Runtime API, served by the gateway to a custom runtime.

A `bootstrap` (aws-lambda-go, Rust lambda_runtime, awslambdaric, a shell
script) finds the API at AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001 inside its
sandbox. The listening socket lives in the sandbox's network namespace but
belongs to the gateway: the runtime worker creates it there before it execs
the bootstrap and hands it over the control channel, and the gateway's trio
loop serves it. No process runs beside the function. The same port serves
the Extensions and Telemetry APIs to the extensions a function's layers
bring (/opt/extensions).

The rules, sans-IO (driven by tests without sockets):
- wire.py             HTTP/1.1 from a runtime as events, replies as bytes
- outputs.py          what the state machines hand back: Send and Close for
                      the server, the rest for a session or the extensions'
                      host
- state.py            the Runtime API's rules: which call is open, what
                      `next` returns, what each misuse gets
- runtime_errors.py   a runtime's error reports as the caller gets them
- extensions.py       the Extensions API's rules and telemetry subscriptions
- extension_agents.py one extension as that API tracks it: its states
- dispatch.py         one port, three APIs: which machine reads a request
- telemetry.py        the Telemetry API's records, subscriptions, buffers
- platform_events.py  the platform.* records, from what the pool knows (the
                      function's figures, init, calls, what was billed)

The trio side:
- server.py           accepts, reads, applies the machines' outputs (the
                      only module that reads or writes the sandbox's API
                      sockets)
- connections.py      a connection and who reads it; the free ones' epoll
                      set; the lingering close of one that broke HTTP
- session.py          what the pool calls for a custom-runtime instance:
                      launch the bootstrap, hand it calls, take its log
- handover.py         what a worker hands over when it starts a runtime or
                      the extensions: its answer and fds, each checked
- extension_start.py  the external extensions started for the pool's init
                      (StartExtensions), and init with them
- extension_host.py   the started extensions, served: waited for at init
                      and after each call, told SHUTDOWN, their log read
- telemetry_delivery.py  each subscriber's buffer POSTed to its listener
"""
