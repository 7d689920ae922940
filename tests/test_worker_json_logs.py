"""The worker's JSON log records (LogFormat JSON), built from logging's records."""

from __future__ import annotations

import json
import logging

from lambdalet.runtime.worker import _JsonFormatter


def _record(exc_info) -> logging.LogRecord:
    return logging.getLogger("app").makeRecord("app", logging.ERROR, "app.py", 7, "it went wrong", (), exc_info)


def test_logger_exception_outside_an_except_block_keeps_its_line():
    # logger.exception() with no exception being handled gives the record
    # exc_info (None, None, None): the line is written without error fields.
    doc = json.loads(_JsonFormatter().format(_record((None, None, None))))
    assert doc["message"] == "it went wrong"
    assert doc["level"] == "ERROR"
    assert "errorType" not in doc


def test_an_exception_gives_its_type_and_message():
    try:
        raise KeyError("missing")
    except KeyError as exc:
        doc = json.loads(_JsonFormatter().format(_record((type(exc), exc, exc.__traceback__))))
    assert doc["errorType"] == "KeyError"
    assert doc["errorMessage"] == "'missing'"
