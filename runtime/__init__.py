"""The in-sandbox runtime. Imports nothing outside the stdlib and msgspec."""
