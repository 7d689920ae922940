"""The control plane's domain: functions and what belongs to them, no HTTP.

- service.py       FunctionService: create, read, update and delete functions
                   (the in-memory registry backed by SQLite and the code store).
- lambda_model.py  botocore's Lambda service model, loaded once, and its
                   Java regular expressions as Python's.
- constraints.py   the checks that model declares (patterns, lengths,
                   ranges, enums, required members), worded as AWS's
                   ValidationException words them.
- policy.py        resource-based policy statements in AWS's JSON, and
                   whether one lets anyone call a function URL (pure).
- permissions.py   AddPermission, RemovePermission, GetPolicy.

validation.py (semantic checks), versions.py, function_settings.py,
codestore.py and storage.py join this package when gateway/ is split into
rooms (see the project's layout notes).
"""
from .service import ACCOUNT_LIMITS, ZIP_MAX, FunctionService, pick_version

__all__ = ["ACCOUNT_LIMITS", "ZIP_MAX", "FunctionService", "pick_version"]
