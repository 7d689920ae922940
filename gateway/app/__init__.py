"""The composition root: the server assembled from the rooms below it.

- assembly.py    Assembly: every part built in dependency order, their
                 background tasks, one exit stack that closes what was opened.
- root.py        Lambdalet (an Assembly): the embedding API (deploy, invoke
                 without HTTP, serve_http), exported as `lambdalet.Lambdalet`.
- relay.py       Relay: a feedback edge (a part telling one built after it),
                 connected once, in the root.
- http_front.py  the HTTP surfaces over a Lambdalet (the app and its routes,
                 console, function URLs, S3, SQS, the router, the ports).
- backend.py     the sandbox backend (choose_backend) and the runtime roots.
- server.py      `lambdalet serve`: a Lambdalet serving HTTP, the start-up
                 lines, stop on SIGTERM/SIGINT.
- config.py      ServerConfig (every `serve` option), ConfigError, the
                 default data and cache directories.
- datadir.py     the data directory's lock (one server per directory) and modes.
- toplevel/      the installed `lambdalet` package's __init__.py (pyproject.toml's
                 package-dir says why it lives here).
"""
