"""bench/provenance.py: what `python -m bench` says it ran on, checked
against git and the kernel (the bench itself times things; this does not)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _provenance(code: str) -> object:
    """Runs code with bench.provenance imported as p; returns what it prints (JSON)."""
    out = subprocess.run(
        [sys.executable, "-c", "import json\nfrom bench import provenance as p\n" + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def _git(repo: pathlib.Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_commit_is_the_checked_out_one_and_dirty_only_when_a_tracked_file_differs(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "one")
    sha = _git(repo, "rev-parse", "HEAD")
    ask = f"import pathlib\nc = p.commit(pathlib.Path({str(repo)!r}))\nprint(json.dumps([c, str(p.results_path('2026-12-05 17:00:28 UTC', {{'commit': c}}))]))"
    clean, clean_path = _provenance(ask)
    assert clean["sha"] == sha and not clean["dirty"]
    assert clean_path.endswith(f"bench/results/2026-12-05-170028-{sha[:12]}.json")
    (repo / "untracked.txt").write_text("not part of the code\n")
    assert not _provenance(ask)[0]["dirty"]
    (repo / "a.txt").write_text("two\n")
    dirty, dirty_path = _provenance(ask)
    assert dirty["sha"] == sha and dirty["dirty"] and dirty["describe"].endswith("-dirty")
    assert dirty_path.endswith(f"-{sha[:12]}-dirty.json")


def test_machine_line_names_cpu_cores_kernel_and_load():
    info, lines = _provenance(
        "info = {'machine': p.machine(), 'commit': p.commit(), 'peers': p.peers()}\nprint(json.dumps([info, p.header_lines(info)]))"
    )
    machine = info["machine"]
    assert machine["cores"] == os.cpu_count() and machine["kernel"] == os.uname().release
    assert len(machine["load_average"]) == 3 and all(x >= 0 for x in machine["load_average"])
    assert info["commit"]["sha"] == _git(ROOT, "rev-parse", "HEAD")
    assert info["peers"]["trio"] and info["peers"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert f"{machine['cores']} cores" in lines[0] and f"kernel {machine['kernel']}" in lines[0]
    assert "load average at start" in lines[0]
    assert lines[1].startswith("commit: ") and info["commit"]["sha"][:12] in lines[1]
    assert f"trio {info['peers']['trio']}" in lines[2]
