"""The in-sandbox runtime. Imports nothing outside the stdlib and msgspec
(msgspec_fallback.py stands in on an interpreter without a msgspec build),
and runs on every Python that Lambda offers (3.9 and later)."""
