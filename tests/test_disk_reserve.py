"""The data disk's reserve: real blocks, held only when the disk has room
for them twice over, given back once for a delete."""

from __future__ import annotations

import os

import pytest
from helpers import fill_disk, small_tmpfs

from lambdalet.gateway.functions.disk_reserve import DiskReserve

MB = 1024 * 1024


@pytest.fixture
def disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a disk that really fills) takes root")
    with small_tmpfs(tmp_path / "disk", 16 * 1024) as path:
        yield path


def test_the_reserve_holds_real_blocks_and_gives_them_back(disk):
    reserve = DiskReserve(disk / "disk-reserve", 4 * MB)
    assert reserve.ensure() and reserve.held
    assert os.stat(reserve.path).st_blocks * 512 >= 4 * MB  # not a sparse hole
    filler = fill_disk(disk)
    with pytest.raises(OSError):
        (disk / "more").write_bytes(b"x" * 65536)
    assert reserve.release() and not reserve.held
    (disk / "more").write_bytes(b"x" * 65536)  # the room is there
    assert not reserve.release()  # nothing left to give
    # Not taken back while the disk lacks room for it twice over.
    assert not reserve.ensure() and not reserve.held
    assert not list(disk.glob("*.partial"))
    filler.unlink()
    assert reserve.ensure() and reserve.held


def test_a_reserve_bigger_than_half_the_free_space_is_not_taken(disk):
    reserve = DiskReserve(disk / "disk-reserve", 10 * MB)
    assert not reserve.ensure() and not reserve.held
