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
    pages.py        the pages' quart Blueprint on the control-plane app:
                    Lambda's errors as pages, the CSRF check, the 404 page;
                    the pages themselves, built on the server's own service
                    objects, are in:
      page_kit.py       what every page is built with (render, redirect, links)
      sign_in_pages.py  signing in and out
      function_pages.py the functions list, creating, configuring, deleting
      code_pages.py     the code tab (inline editor, .zip upload)
      invoke_pages.py   the test tab (saved events, invoking)
      monitor_pages.py  charts, the month's bill, a function's logs
      version_pages.py  versions and aliases
      queue_pages.py    the built-in queues and the schedules
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
