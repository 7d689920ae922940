"""The control plane's domain: functions and what belongs to them, no HTTP.

- service.py       FunctionService: create, read, update and delete functions
                   (the in-memory registry backed by SQLite and the code store).

validation.py (semantic checks), versions.py, function_settings.py,
codestore.py and storage.py join this package when gateway/ is split into
rooms (see the project's layout notes).
"""
from .service import ACCOUNT_LIMITS, ZIP_MAX, FunctionService, pick_version

__all__ = ["ACCOUNT_LIMITS", "ZIP_MAX", "FunctionService", "pick_version"]
