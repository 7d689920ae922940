"""The composition root: the server assembled from the rooms below it.

- server.py   `lambdalet serve`: the parts built in dependency order, the
              listening ports, the start-up lines, stop on SIGTERM/SIGINT.
- config.py   ServerConfig (every `serve` option), the default data and
              cache directories.
- datadir.py  the data directory's lock (one server per directory) and modes.
"""
