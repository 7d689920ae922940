"""/proc/<pid>/stat, parsed in one place (sandbox/proc_stat.py)."""

from __future__ import annotations

import os

import pytest

from lambdalet.sandbox import proc_stat


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields():
    # A process may name itself anything: ") S 1 2" in its name must not be
    # read as its state and parent.
    line = b"4242 (evil) S 1 2 (x) R 77 4242 4242 0 -1 4194304 100 0 0 0 31 17 0 0 20 0 1 0 123456 0 0\n"
    stat = proc_stat.parse(line)
    assert stat == proc_stat.ProcStat(state="R", ppid=77, utime=31, stime=17, starttime=123456)


def test_this_process_reads_as_itself():
    stat = proc_stat.read(os.getpid())
    assert stat is not None
    assert stat.ppid == os.getppid()
    assert stat.state in ("R", "S")


def test_a_cut_line_is_a_value_error_and_a_gone_process_is_none():
    with pytest.raises(ValueError):
        proc_stat.parse(b"4242 (short) S 1")
    with pytest.raises(ValueError):
        proc_stat.parse(b"no parenthesis at all")
    assert proc_stat.read(2**22 + 1) is None  # above pid_max's ceiling: never a process
