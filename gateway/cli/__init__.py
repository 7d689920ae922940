"""The `lambdalet` command. The server never imports this package.

- commands.py      the parser, main(), and the subcommands that are boto3
                   clients of a running server (deploy, invoke, ls, rm).
- serve_cli.py     `lambdalet serve`: the server's options.
- client.py        the server's address and keys, a botocore client that
                   reads no AWS config, UserError and a refusal's hint.
- packaging.py     a directory or .zip as a deployment package.
- arg_types.py     option values checked as parsed; help with defaults.
- usage_cli.py     `lambdalet usage` and `lambdalet logs`.
- async_cli.py     `lambdalet schedule ...` and `lambdalet dlq ...`.
- runtimes_cli.py  `lambdalet runtimes [install]`.
- url_cli.py       `lambdalet url create|get|rm`.
- signing_cli.py   `lambdalet signing-profile ...` and `lambdalet sign`.
- console_cli.py   `lambdalet console-password`.
- doctor.py        `lambdalet doctor`: what this host supports.
- loadgen.py       `lambdalet bench`: a closed- or open-loop load generator.
"""

from .commands import main

__all__ = ["main"]
