"""`python -m lambdalet.gateway.cli`: the `lambdalet` command."""

import sys

from lambdalet.gateway.cli.commands import main

sys.exit(main())
