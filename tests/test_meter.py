"""The shared counters: exact under concurrent writer processes, consistent
for lock-free readers, and still there after the mapping is reopened."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from lambdalet.csrc._native import lib
from lambdalet.gateway.metering import meter as meter_mod
from lambdalet.gateway.metering.meter import OUTCOME_INDEX, Meter, hist_upper_bounds_ns

WRITERS = 4
CALLS_PER_WRITER = 20_000


def _hammer(path: str, writer: int, calls: int, start) -> None:
    m = Meter(path)
    start.wait()
    # Half the writers share one key from the start, the others also race to
    # claim a key no one has used yet.
    shared = m.slot("hot")
    fresh = m.slot(f"fresh-{writer % 2}")
    for i in range(calls):
        outcome = OUTCOME_INDEX["error"] if i % 10 == 0 else OUTCOME_INDEX["success"]
        m.record(shared, 1000 + i, 1, 128, 5 if i == 0 else 0, outcome, i == 0)
        m.enter(fresh)
        m.throttle(fresh)
        m.leave(fresh)
    m.close()


def test_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "meter.bin")
    Meter(path).close()
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(WRITERS + 1)
    procs = [ctx.Process(target=_hammer, args=(path, w, CALLS_PER_WRITER, start)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    reader = Meter(path)
    start.wait()
    # Read while they write: every copy must hold whole records only.
    seen_consistent = 0
    while any(p.is_alive() for p in procs):
        for snap in reader.snapshot():
            if snap.function == "hot" and snap.consistent:
                seen_consistent += 1
                assert sum(snap.histogram) == snap.invocations
                assert snap.billed_ms == snap.invocations
                assert snap.mb_ms == 128 * snap.invocations
    for p in procs:
        p.join()
        assert p.exitcode == 0
    snaps = {s.function: s for s in reader.snapshot()}
    reader.close()
    total = WRITERS * CALLS_PER_WRITER
    hot = snaps["hot"]
    assert hot.consistent
    assert hot.invocations == total
    assert hot.outcomes["error"] == WRITERS * (CALLS_PER_WRITER // 10)
    assert hot.outcomes["success"] == total - hot.outcomes["error"]
    assert hot.duration_ns == WRITERS * sum(1000 + i for i in range(CALLS_PER_WRITER))
    assert hot.cold_starts == WRITERS and hot.init_ns == 5 * WRITERS
    assert sum(hot.histogram) == total
    # Two keys raced for by two writers each: one slot per key, nothing lost.
    assert {k for k in snaps} == {"hot", "fresh-0", "fresh-1"}
    for key in ("fresh-0", "fresh-1"):
        assert snaps[key].throttles == 2 * CALLS_PER_WRITER
        assert snaps[key].concurrent == 0
    assert seen_consistent > 0


def test_counters_survive_reopen_and_recover_repairs_a_torn_record(tmp_path):
    path = tmp_path / "meter.bin"
    with Meter(path) as m:
        s = m.slot("f", "$LATEST")
        m.record(s, 12_345_678, 13, 256, 0, OUTCOME_INDEX["timeout"], False)
        m.enter(s)
        # A writer killed mid-record: BEGIN moved, END did not.
        lib.ll_counter_add(s, 1)
        _, consistent = m.read(s)
        assert not consistent
    with Meter(path) as m:
        assert m.recover() == 1
        (snap,) = m.snapshot()
        assert snap.consistent
        assert (snap.function, snap.version) == ("f", "$LATEST")
        assert snap.outcomes["timeout"] == 1 and snap.invocations == 1
        assert snap.billed_ms == 13 and snap.mb_ms == 13 * 256
        assert snap.concurrent == 0


def test_histogram_is_log_linear():
    bounds = hist_upper_bounds_ns()
    assert len(bounds) == meter_mod.HIST_BUCKETS - 1
    assert bounds[:4] == [1000, 2000, 3000, 4000] and bounds[9:11] == [10_000, 20_000]
    # Each value lands in the bucket whose bounds hold it.
    for value in (0, 999, 1000, 1999, 2000, 9999, 10_000, 12_345_678, 10**12, 10**13 - 1):
        b = lib.ll_hist_bucket(value)
        lower = 0 if b == 0 else bounds[b - 1]
        upper = bounds[b] if b < len(bounds) else float("inf")
        assert lower <= value < upper, (value, b)
    assert lib.ll_hist_bucket(10**13) == meter_mod.HIST_BUCKETS - 1


def test_a_file_of_another_layout_is_refused(tmp_path):
    path = tmp_path / "meter.bin"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(meter_mod.MeterError):
        Meter(path)


def test_snapshot_refuses_bad_arguments(tmp_path):
    with Meter(tmp_path / "meter.bin") as m:
        s = m.slot("f")
        assert lib.ll_meter_snapshot(s, m._snap, 1, 1) == -22  # EINVAL


def test_a_full_table_spills_into_the_overflow_slot(tmp_path):
    with Meter(tmp_path / "meter.bin", slots=2) as m:
        a, b, c, d = m.slot("a"), m.slot("b"), m.slot("c"), m.slot("d")
        assert c == d  # both past the table: one shared slot
        for s in (a, b, c, d):
            m.record(s, 1000, 1, 128, 0, OUTCOME_INDEX["success"], False)
        snaps = {s.function: s.invocations for s in m.snapshot()}
    assert snaps == {"a": 1, "b": 1, meter_mod.OVERFLOW_FUNCTION: 2}


@pytest.mark.parametrize("sanitizer", ["thread", "address,undefined"])
def test_c_core_under_sanitizers(tmp_path, sanitizer):
    """The C side alone, threads instead of processes, under TSan and
    ASan/UBSan: no data race the compiler can see, no lost increment."""
    import pathlib
    import shutil
    import subprocess

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    csrc = pathlib.Path(__file__).resolve().parents[1] / "csrc"
    exe = tmp_path / "meter_stress"
    build = subprocess.run(
        [
            cc,
            "-O1",
            "-g",
            f"-fsanitize={sanitizer}",
            "-std=gnu11",
            "-Wall",
            "-Wextra",
            "-Werror",
            f"-I{csrc}",
            str(pathlib.Path(__file__).with_name("meter_stress.c")),
            str(csrc / "meter.c"),
            "-o",
            str(exe),
            "-lpthread",
        ],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0 and "sanitize" in build.stderr:
        pytest.skip(f"{cc} cannot build with -fsanitize={sanitizer}")
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
