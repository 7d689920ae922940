"""The native core: meter counters and sandbox spawn, built with cffi."""
