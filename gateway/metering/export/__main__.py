"""`python -m lambdalet.gateway.metering.export`: the export's worker
process (worker.py). Run as the package's __main__, which nothing
imports, so that runpy finds no module of that name already loaded."""

import sys

from .worker import main

sys.exit(main())
