"""Running calls in sandboxes.

- pool.py           warm instances per function revision and the one call
                    each runs at a time: take an idle one or start one, call,
                    release, reclaim. Its jobs are the modules below it.
- outcomes.py       FunctionSpec and CallOutcome, and the answer and log of
                    each way a call ends (success, error, timeout, OOM,
                    crash, failed init). Pure.
- concurrency.py    concurrency slots: the account's limit and reserved
                    concurrency, refused at once past them (429).
- memory_budget.py  the host's budget as the pool spends it: memory of live
                    and starting instances, tasks, evictions to make room.
- admission.py      whether one more instance fits the host (memory budget,
                    tasks cap) and which idle ones make room. Pure policy.
- lifecycle.py      an instance from spawn (or a spare) and init, with its
                    INIT_START line, to destroy; replaced revisions' instances.
- deadlines.py      calls past their Timeout killed, on trio's clock.
- provisioned.py    provisioned concurrency: instances kept initialised.
- instance.py       one warm worker as the gateway sees it: a sandbox and
                    its control channel (everything on it is untrusted), and
                    its states STARTING -> IDLE <-> BUSY -> DEAD.
- log_memfd.py      the one check of a log descriptor a worker hands over
                    (SCM_RIGHTS): a memfd, or refused.
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
- java_training.py  the platform's run of the Java runtime that records its
                    class-data sharing archive.
- dotnet_build.py   the C# runtime's files, compiled with Mono's mcs.
- accounting.py     where each finished call is counted, billed and logged
                    (the pool's on_call hook into metering/).
- runtime_setup.py  the server's interpreters and runtime roots at start-up.
- runtime_api/      the Lambda Runtime API (2018-06-01) that custom runtimes
                    (provided.al2023, provided.al2) speak from inside their
                    sandbox; Python functions keep the msgspec frames of
                    runtime/protocol.py.
"""
