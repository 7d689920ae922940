"""The web console at /console: pages for functions, their monitor charts,
logs, queues and schedules, served by the server itself on the same port.

A map:
    core.py         the console as the server builds it: the service objects
                    it works with, sessions, templates, assets, surfaces
    surface.py      where /console meets the router: whether the console is
                    on (and why not), sign-in gate before a body is read,
                    security headers, the live log stream
    policy.py       whether the console is served on this host and port
    sessions.py     session cookies, CSRF tokens, failed sign-in limits
    password.py     the console password (scrypt), `lambdalet console-password`
    pages.py        the pages (a quart Blueprint on the control-plane app),
                    built on the server's own service objects
    forms.py        form fields to Lambda request bodies, errors to fields
    rollup.py       per-minute rollup of the meter's cumulative counters
    rollup_store.py the rollup's SQLite tables, retention, series queries
    series.py       chart series: buckets, percentiles, cost after free tier
    test_events.py  saved test events per function
    live_tail.py    server-sent events for the live log tail
    assets.py       static files, fingerprinted and cached
    templates/      Jinja2 templates (autoescaped)
    static/         console.css, console.js and the vendored chart library
"""
