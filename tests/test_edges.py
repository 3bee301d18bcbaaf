"""Nothing lost at the edges: names that are not UTF-8, result files that
cannot be written, a full disk. Each case was seen to lose results (or
crash the run) before; here every result is accounted for, what could not
be written is said, and the exit status is not 0."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import load_result, report, run_cli, statuses, write_suite

EXIT_UNRECORDED = 3


def test_names_that_are_not_utf8_survive(tmp_path):
    root = write_suite(tmp_path / "suite", {"ok/test.yaml": "cmd: 'true'\n", "zz/test.yaml": "cmd: 'false'\n"})
    odd = os.path.join(os.fsencode(root), b"a\xff")
    os.mkdir(odd)
    with open(os.path.join(odd, b"test.yaml"), "w") as handle:
        handle.write("cmd: 'false'\n")
    out = tmp_path / "out"
    run = run_cli(root, out, "-j", "2", "--junit-xml", tmp_path / "junit.xml")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    # The name shows the byte it could not decode; the directory is still found.
    assert statuses(run.index) == {"ok": ("PASS", None), "a\\xff": ("FAIL", "EXIT_CODE"), "zz": ("FAIL", "EXIT_CODE")}
    assert run.index["complete"] is True
    result = load_result(out, "a\\xff", run.index)
    assert os.fsencode(result["spec_file"]) == os.path.join(odd, b"test.yaml")
    assert "FAIL  a\\xff [EXIT_CODE]" in run.stdout
    assert (out / "new" / "report.html").stat().st_size > 0
    assert b"a\\xff" in (tmp_path / "junit.xml").read_bytes()
    later = report(out)
    assert later.returncode == 0 and "a\\xff" in later.stdout, later.stderr
    # The name selects it, as printed.
    again = run_cli(root, tmp_path / "out2", names=["a\\xff"])
    assert statuses(again.index) == {"a\\xff": ("FAIL", "EXIT_CODE")}


def test_a_result_file_that_cannot_be_written_is_said_and_fails_the_run(tmp_path):
    """A test that attacks its runner: it puts a directory where its own
    result file will go. Its verdict stays in the index, every other result
    is written, and the run says what it lost."""
    root, out = tmp_path / "suite", tmp_path / "out"
    write_suite(
        root,
        {
            "attacker/test.yaml": f"cmd: mkdir {out}/new/results/attacker.json\n",
            "after/test.yaml": "cmd: 'true'\ndepends: [attacker]\n",
            **{f"t{n}/test.yaml": "cmd: 'true'\n" for n in range(5)},
        },
    )
    run = run_cli(root, out, "-j", "2")
    assert run.returncode == EXIT_UNRECORDED, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "results/attacker.json (attacker): EISDIR" in run.stderr
    index = run.index
    assert index["complete"] is True
    assert statuses(index) == {name: ("PASS", None) for name in ["attacker", "after", *(f"t{n}" for n in range(5))]}
    (entry,) = [e for e in index["results"] if e["name"] == "attacker"]
    assert entry["unwritten"].startswith("EISDIR")
    assert any("attacker.json" in problem for problem in index["write_errors"])
    for name in ["after", "t0", "t4"]:
        load_result(out, name, index)


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs, mounted for the test (root only)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", f"rts-{uuid.uuid4().hex[:8]}", str(mount)],
                       check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}): the full-disk test needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def test_a_full_disk_gives_errors_naming_it_and_no_traceback(tmp_path, small_disk):
    root = write_suite(
        tmp_path / "suite",
        {f"t{n:02}/test.yaml": "cmd: python3 -c \"print('x' * 40000)\"\n" for n in range(30)},
    )
    out = small_disk / "out"
    run = run_cli(root, out, "-j", "2")
    assert run.returncode == EXIT_UNRECORDED, run.stdout + run.stderr
    text = run.stdout + run.stderr
    assert "Traceback" not in text and "exited unexpectedly" not in text
    assert "[SYSTEM]: the run could not go on here: no space left on device (ENOSPC)" in run.stdout
    assert "of the run's record could not be written" in run.stderr and "ENOSPC" in run.stderr
    # Whatever result file exists is whole: none was left empty or cut.
    for path in (out / "new" / "results").glob("*.json"):
        assert path.stat().st_size > 0
        assert Path(path).read_text().endswith("}")
