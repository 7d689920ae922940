"""Running calls in sandboxes.

- pool.py           warm instances per function revision and the one call
                    each runs at a time: start, call, reclaim, destroy.
- instance.py       one warm worker as the gateway sees it: a sandbox and
                    its control channel (everything on it is untrusted).
- admission.py      whether one more instance fits the host (memory budget,
                    tasks cap) and which idle ones make room. Pure policy.
- idle_freezer.py   idle instances frozen between calls.
- spares.py         sandboxes started before anyone asks, handed to the
                    first cold start.
- spawner.py        spawns run on one dedicated thread, off the event loop.
- specs.py          FunctionSpec per revision (code, environment, runtime),
                    the one every path that calls a function asks.
- call_stream.py    a call's answer as it streams out of its runtime
                    (response streaming), filled by the call, read by api/.
- languages.py      how a Node.js, Java or C# function's runtime program
                    starts in its sandbox (it speaks the Runtime API).
- java_build.py     the Java runtime's files (AWS's runtime interface client,
                    the launcher, class-data sharing archives), built once.
- dotnet_build.py   the C# runtime's files, compiled with Mono's mcs.
- accounting.py     where each finished call is counted, billed and logged
                    (the pool's on_call hook into metering/).
- runtime_setup.py  the server's interpreters and runtime roots at start-up.
- runtime_api/      the Lambda Runtime API (2018-06-01) that custom runtimes
                    (provided.al2023, provided.al2) speak from inside their
                    sandbox; Python functions keep the msgspec frames of
                    runtime/protocol.py.
"""
