"""What the server keeps in memory stays bounded: no cache grows with every
batch size, every function name ever called or every code ever deployed.
(The soak in bench/ measures the RSS itself; these pin down the causes.)"""

from __future__ import annotations

import sqlite3
import sys

import trio
from helpers import make_zip

from lambdalet.gateway.functions.code_gc import CodeCollector, CodeHolds
from lambdalet.gateway.functions.codestore import CodeStore
from lambdalet.gateway.functions.function_settings import FunctionSettings
from lambdalet.gateway.functions.service import FunctionService
from lambdalet.gateway.functions.storage import SQLiteStorage
from lambdalet.gateway.metering.ledger import ROWS_PER_STATEMENT, insert_rows
from lambdalet.gateway.metering.meter import OUTCOME_INDEX, Meter


def test_batches_of_any_size_use_a_few_statements():
    # Each distinct statement is prepared and cached by the connection; a
    # 200-row INSERT alone holds ~290 KB of SQLite memory. Batch sizes vary
    # with the load, so statements per size filled the cache (128 of them,
    # ~25 MB per connection) over many minutes.
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    statements: set[str] = set()

    class Recording:
        def execute(self, sql: str, params=()):
            statements.add(sql)
            return db.execute(sql, params)

    total = 0
    db.execute("BEGIN")
    for n in range(1, 2 * ROWS_PER_STATEMENT + 50):
        insert_rows(Recording(), "INSERT INTO t (a, b) VALUES ", 2, [(total + i, "x") for i in range(n)])
        total += n
    db.execute("COMMIT")
    assert len(statements) <= 1 + ROWS_PER_STATEMENT.bit_length()
    assert db.execute("SELECT count(*), count(DISTINCT a) FROM t").fetchone() == (total, total)
    db.close()


def test_the_meter_forgets_lookups_of_deleted_functions_but_keeps_their_counts(tmp_path):
    meter = Meter(tmp_path / "meter.bin")
    try:
        for i in range(50):
            meter.record(meter.slot(f"gone-{i}"), 1000, 1, 128, 0, OUTCOME_INDEX["success"], False)
        meter.slot("kept")
        assert meter.statistics()["slots_cached"] == 51
        for i in range(50):
            meter.forget(f"gone-{i}")
        assert meter.statistics()["slots_cached"] == 1
        counts = {s.function: s.invocations for s in meter.snapshot()}
        assert counts["gone-7"] == 1  # the history stays in the file
    finally:
        meter.close()


def test_url_ids_of_deleted_functions_are_forgotten(tmp_path):
    storage = SQLiteStorage(tmp_path / "db")
    runtime = f"python{sys.version_info[0]}.{sys.version_info[1]}"

    async def main():
        settings_box: list[FunctionSettings] = []

        def on_change(name: str) -> None:
            if settings_box and name not in service.registry:
                settings_box[0].forget(name)

        service = FunctionService(
            storage, CodeStore(tmp_path / "code"), region="us-east-1", account="123456789012", concurrency_limit=10, on_change=on_change
        )
        settings = FunctionSettings(service, "http://127.0.0.1:1")
        settings_box.append(settings)
        zipped = __import__("base64").b64encode(make_zip({"app.py": "def handler(e, c):\n    return 1\n"})).decode()
        for i in range(20):
            await service.create(
                {
                    "FunctionName": f"f{i}",
                    "Runtime": runtime,
                    "Role": "arn:aws:iam::123456789012:role/r",
                    "Handler": "app.handler",
                    "Code": {"ZipFile": zipped},
                }
            )
            await settings.create_url(f"f{i}", None, {"AuthType": "NONE"})
        assert len(settings.by_url_id) == 20
        for i in range(15):
            await service.delete(f"f{i}", None)
        assert sorted(settings.by_url_id.values()) == [f"f{i}" for i in range(15, 20)]

    try:
        trio.run(main)
    finally:
        storage.close()


def test_removed_code_is_reported_to_caches_kept_per_code(tmp_path):
    store = CodeStore(tmp_path / "code")
    sha = store.put(make_zip({"a.py": "1"})).sha256_hex
    removed: list[str] = []

    async def main():
        collector = CodeCollector(store, CodeHolds(), set, trio.Lock(), on_removed=removed.append)
        collector.suspect(sha)
        assert await collector.collect() == [sha]
        assert removed == [collector.path(sha)]

    trio.run(main)
