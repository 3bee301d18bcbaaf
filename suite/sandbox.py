"""Sandboxed commands: each command of a testcase with ``sandbox: true``
runs under bubblewrap (``bwrap``), which sees the machine's file system
read-only except the testcase's own work directory and a private /tmp.

What the command gets, and why:

- ``--ro-bind / /``: every path is where it was (the suite, the tools on
  PATH, a set-up's directory), so commands, PATH and the environment are
  the same as without the sandbox; nothing outside is writable: not the
  testcase's source directory (its baseline), not the output directory
  (other results, the history), not the home directory.
- ``--bind WORK WORK``: its own work directory, writable.
- ``--tmpfs /tmp``: a private, empty /tmp, gone when the command ends. What
  the testcase is told about that lives under the real /tmp (the suite, the
  output directory, PATH entries, a path in its environment) is bound back
  read-only; ``$TMPDIR`` under /tmp is made, empty and writable, in the
  private one.
- ``--dev /dev``, ``--proc /proc``, a private /dev/shm: what a normal test
  needs of them; /proc/sys read-only and no capabilities, even for root
  (see _PROC_COVERED).
- ``--unshare-pid`` (and IPC): the test sees only its own processes, so it
  cannot signal its runner; when the command ends, the kernel kills
  whatever it left in the namespace.
- ``--die-with-parent``: the sandbox goes with the worker.
- ``network: false`` adds ``--unshare-net``: only a loopback of its own.

No shell runs between the worker and bwrap, and the worker still leads the
command's process group: timeouts, the kill of the group, output capture,
``--tee``, CPU pinning and resource variables work as without a sandbox.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

BWRAP = "bwrap"
PACKAGE = "bubblewrap"  # Debian's, Fedora's and Arch's name for it
PRIVATE_TMP = "/tmp"


class SandboxUnavailable(Exception):
    """bwrap is missing or cannot make a sandbox on this machine."""


@dataclass(frozen=True)
class Sandbox:
    """How one testcase's commands are sandboxed (carried by its fragments)."""

    writable: str  # the work directory
    network: bool = True
    readable: tuple[str, ...] = ()  # under /tmp: bound back read-only
    tmpdir: str | None = None  # $TMPDIR under /tmp: made in the private one

    def wrap(self, argv: list[str], cwd: str, env: dict[str, str]) -> list[str]:
        """The argv that runs ``argv`` in this sandbox. The program is
        looked up on the command's PATH first, so a missing one fails as
        it does without a sandbox (FileNotFoundError), not as bwrap's
        status 1."""
        program = argv[0]
        if os.sep not in program:
            found = shutil.which(program, path=env.get("PATH", os.defpath))
            if found is None:
                raise FileNotFoundError(2, "No such file or directory", program)
        bwrap = [_bwrap_path(), "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--cap-drop", "ALL"]
        if not self.network:
            bwrap.append("--unshare-net")
        bwrap += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *_PROC_COVERED, "--tmpfs", "/dev/shm"]
        bwrap += ["--tmpfs", PRIVATE_TMP]
        for path in self.readable:
            bwrap += ["--ro-bind-try", path, path]
        if self.tmpdir:
            bwrap += ["--dir", self.tmpdir]
        bwrap += ["--bind", self.writable, self.writable, "--chdir", cwd, "--"]
        return bwrap + argv


def sandbox_for(work_dir: str, network: bool, env: dict[str, str], also: tuple[str, ...] = ()) -> Sandbox:
    """The sandbox of a testcase whose commands run in ``work_dir`` with the
    variables ``env`` (its own, over this process's); ``also``: more paths
    it must read (the suite root, the output directory)."""
    merged = {**os.environ, **env}
    candidates = list(also)
    candidates += merged.get("PATH", "").split(os.pathsep)
    candidates += [sys.prefix, sys.base_prefix]
    tmpdir = merged.get("TMPDIR", "")
    tmpdir = tmpdir if _under_tmp(tmpdir) else ""
    candidates += [value for key, value in merged.items() if key != "TMPDIR" and value.startswith("/")]
    return Sandbox(work_dir, network, _outermost(p for p in candidates if _under_tmp(p)), tmpdir or None)


def _under_tmp(path: str) -> bool:
    return os.path.isabs(path) and os.path.normpath(path).startswith(PRIVATE_TMP + os.sep)


def _outermost(paths) -> tuple[str, ...]:
    """The paths, each once, without those inside another of them."""
    kept: list[str] = []
    for path in sorted({os.path.normpath(p) for p in paths}):
        if not any(path == k or path.startswith(k + os.sep) for k in kept):
            kept.append(path)
    return tuple(kept)


# Run by root, bwrap keeps every capability and a fresh /proc's sysctls
# writable (it covers /proc/sys only where the caller could not write it):
# a test could remount / read-write, or set the host's name through
# /proc/sys/kernel/hostname, as it did here before these. Dropping every
# capability and covering these makes root's sandbox an unprivileged one.
_PROC_COVERED = (
    "--ro-bind-try",
    "/proc/sys",
    "/proc/sys",
    "--ro-bind-try",
    "/proc/sysrq-trigger",
    "/proc/sysrq-trigger",
)

_FOUND: list[str] = []


def _bwrap_path() -> str:
    if not _FOUND:
        _FOUND.append(shutil.which(BWRAP) or BWRAP)
    return _FOUND[0]


def check_available() -> None:
    """Raise SandboxUnavailable, saying why and what to install, unless
    bwrap is here and can make a sandbox (user namespaces may be off)."""
    path = shutil.which(BWRAP)
    if path is None:
        raise SandboxUnavailable(
            f"sandboxed testcases need bubblewrap ('{BWRAP}' is not on PATH): install the '{PACKAGE}' package"
            " (apt-get install bubblewrap), or run without --sandbox / sandbox: true"
        )
    try:
        probe = subprocess.run(
            [path, "--unshare-pid", "--ro-bind", "/", "/", "--proc", "/proc", "--", "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"bubblewrap ({path}) could not be started: {exc}") from None
    if probe.returncode != 0:
        said = probe.stderr.strip() or f"exit status {probe.returncode}"
        raise SandboxUnavailable(
            f"bubblewrap ({path}) cannot make a sandbox here: {said} (unprivileged user namespaces may be disabled:"
            " sysctl kernel.unprivileged_userns_clone=1, or a container started without them)"
        )
