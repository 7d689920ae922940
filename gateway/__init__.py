"""The gateway: Lambda API, data plane, scheduler."""
