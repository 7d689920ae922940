"""Sandboxes: how a worker process starts and is contained."""
