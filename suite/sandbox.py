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
- ``--tmpfs /tmp``: a private, empty /tmp, gone when the command ends, and
  ``$TMPDIR`` (``TMP``, ``TEMP``, ``TEMPDIR``), where set, points there.
  What the testcase is told about that lives under the real /tmp or
  /dev/shm (the suite, the output directory, PATH or PYTHONPATH entries, a
  resource, any path in its environment) is bound back read-only.
- ``--dev /dev``, ``--proc /proc``, a private /dev/shm: what a normal test
  needs of them; /proc/sys read-only and no capabilities, even for root
  (see _PROC_COVERED).
- ``--unshare-pid`` (and IPC): the test sees only its own processes, so it
  cannot signal its runner; when the command ends, the kernel kills
  whatever it left in the namespace.
- ``--json-status-fd``: bwrap says which process it started. bwrap leads
  the command's process group and dies at the first SIGTERM, so on a
  timeout the worker waits for that process, not for bwrap: the command
  gets its grace, as without a sandbox. (``--die-with-parent`` would
  SIGKILL it the moment bwrap died.) A bwrap that fails before starting it
  is an ERROR, not the command's status (``SandboxError``).
- ``network: false`` adds ``--unshare-net``: only a loopback of its own.

No shell runs between the worker and bwrap, and the worker still leads the
command's process group: timeouts, the kill of the group, output capture,
``--tee``, CPU pinning and resource variables work as without a sandbox.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass

BWRAP = "bwrap"
PACKAGE = "bubblewrap"  # Debian's, Fedora's and Arch's name for it
PRIVATE_TMP = "/tmp"


class SandboxUnavailable(Exception):
    """bwrap is missing or cannot make a sandbox on this machine."""


class SandboxError(Exception):
    """bwrap could not set a command's sandbox up: the command never ran.
    A machine's problem (its verdict is ERROR), never the command's exit
    status: `exit_code: 1` must not pass because bwrap failed."""


# Where the sandbox mounts something of its own over the host's (/run only
# without network): what lives below these on the host is hidden unless
# bound back.
HIDDEN = (PRIVATE_TMP, "/dev/shm", "/run")
# Variables that name a directory for temporary files: inside, the private /tmp.
TEMP_VARIABLES = ("TMPDIR", "TMP", "TEMP", "TEMPDIR")
# Variables of the shell run-testsuite was started from, which say nothing
# the testcase needs: binding them back would make results depend on it.
SHELL_NOISE = frozenset({"PWD", "OLDPWD", "_", *TEMP_VARIABLES})


@dataclass(frozen=True)
class Sandbox:
    """How one testcase's commands are sandboxed (carried by its fragments)."""

    writable: str  # the work directory
    network: bool = True
    readable: tuple[str, ...] = ()  # hidden (under /tmp, /dev/shm): bound back read-only

    def wrap(self, argv: list[str], cwd: str, env: dict[str, str], status_fd: int) -> list[str]:
        """The argv that runs ``argv`` in this sandbox, bwrap writing its
        status (the sandboxed process's pid) to ``status_fd``.

        The program is looked up first, on the command's PATH or from
        ``cwd``, so a missing one fails as it does without a sandbox
        (FileNotFoundError: status 127, "cannot run"), not as bwrap's
        status 1. ``env`` is the command's whole environment: paths in it
        that the sandbox would hide (a resource's directory, a PYTHONPATH
        entry under /tmp) are bound back, read-only."""
        _check_program(argv[0], cwd, env)
        bwrap = [_bwrap_path(), "--unshare-pid", "--unshare-ipc", "--cap-drop", "ALL"]
        if not self.network:
            bwrap.append("--unshare-net")
        bwrap += ["--json-status-fd", str(status_fd)]
        bwrap += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *_PROC_COVERED]
        bwrap += ["--tmpfs", "/dev/shm", "--tmpfs", PRIVATE_TMP]
        if not self.network:
            # Services listen on Unix sockets in /run (D-Bus, Docker,
            # systemd): no network means none of those either.
            bwrap += ["--tmpfs", "/run"]
        for path in _outermost([*self.readable, *_hidden_paths(env, sockets=self.network)]):
            bwrap += ["--ro-bind-try", path, path]
        for name in TEMP_VARIABLES:
            if name in env:
                bwrap += ["--setenv", name, PRIVATE_TMP]
        bwrap += ["--bind", self.writable, self.writable, "--chdir", cwd, "--"]
        return bwrap + argv


def readable_paths(also: tuple[str, ...] = ()) -> tuple[str, ...]:
    """What every sandbox of a run binds back, read-only, if it is hidden:
    ``also`` (the suite root, the output directory, the work directories'
    root) and this interpreter's prefix (a suite's Python tools, a driver
    run by it). The same for every testcase: computed once per run."""
    real = [_real(p) for p in (*also, sys.prefix, sys.base_prefix)]
    return _outermost(p for p in real if _hidden(p))


def _check_program(program: str, cwd: str, env: dict[str, str]) -> None:
    if os.sep in program:
        path = os.path.join(cwd, program)
        if not os.path.isfile(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def _hidden_paths(env: dict[str, str], sockets: bool = True) -> list[str]:
    """Absolute paths in the command's environment (each entry of a list
    like PATH or PYTHONPATH too) that the sandbox hides; without
    ``sockets``, not those that are Unix sockets (SSH_AUTH_SOCK) nor
    inside /run."""
    found = []
    for name, value in env.items():
        if name in SHELL_NOISE or os.sep not in value:
            continue
        for part in value.split(os.pathsep):
            if part.startswith(os.sep):
                real = _real(part)
                if _hidden(real) and (sockets or not _is_socket(real)):
                    found.append(real)
    return found


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _real(path: str) -> str:
    """Where the path leads (`//tmp/x` and a link into /tmp are /tmp/x)."""
    return os.path.realpath(path)


def _hidden(path: str) -> bool:
    return any(path.startswith(root + os.sep) for root in HIDDEN)


def _outermost(paths) -> tuple[str, ...]:
    """The paths, each once, without those inside another of them."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not any(path == k or path.startswith(k + os.sep) for k in kept):
            kept.append(path)
    return tuple(kept)


class BwrapStatus:
    """What bwrap says of a sandboxed command on its status pipe: the pid of
    the process it started (in our PID namespace), once it started it."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        self.text = b""

    def child_fd(self, sole_runner: bool) -> int:
        """The descriptor bwrap is told to write to: 3 where the command is
        spawned with file actions (see commands._spawn), else our own
        write end, passed down as it is."""
        return STATUS_FD if sole_runner else self.write_end

    def spawned(self) -> None:
        """The command started: bwrap holds the write end now."""
        os.close(self.write_end)
        os.set_blocking(self.read_end, False)

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.read_end, 4096)
            except BlockingIOError:
                return
            if not chunk:
                return
            self.text += chunk

    def child_pid(self) -> int | None:
        """The sandboxed process (PID 1 of its namespace): it lives as long
        as the command, while bwrap itself dies with the first SIGTERM."""
        self._read()
        match = re.search(rb'"child-pid":\s*(\d+)', self.text)
        return int(match.group(1)) if match else None

    def close(self) -> None:
        os.close(self.read_end)

    def discard(self) -> None:
        """The command never started: both ends go."""
        os.close(self.write_end)
        os.close(self.read_end)


def bwrap_failure(returncode: int | None, output: bytes) -> str | None:
    """What bwrap said when it could not set the sandbox up, or None when
    the command ran. bwrap then exits 1 having printed one line of its own
    ("bwrap: Can't mkdir /x: Read-only file system") and nothing else: the
    command never started, so nothing else could be printed. (Its status
    pipe cannot tell: bwrap reports the child's pid before that child sets
    the mounts up.) A test printing only such a line and exiting 1 would be
    taken for this: an ERROR, never a false PASS."""
    if returncode != 1 or not output.startswith(b"bwrap: ") or output.count(b"\n") > 1:
        return None
    return output.decode("utf-8", "replace").strip()


# bwrap's status descriptor in the command's process (commands._spawn puts it there).
STATUS_FD = 3


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
        found = shutil.which(BWRAP)
        if found is None:  # checked before the run, but a cluster node may lack it
            raise SandboxError(f"bubblewrap ('{BWRAP}') is not installed where this fragment runs: install '{PACKAGE}'")
        _FOUND.append(found)
    return _FOUND[0]


def check_available(network: bool = True) -> None:
    """Raise SandboxUnavailable, saying why and what to install, unless
    bwrap is here and can make a sandbox (user namespaces may be off): the
    probe runs `true` with the very options the testcases' commands get
    (without ``network``, the network namespace too)."""
    path = shutil.which(BWRAP)
    if path is None:
        raise SandboxUnavailable(
            f"sandboxed testcases need bubblewrap ('{BWRAP}' is not on PATH): install the '{PACKAGE}' package"
            " (apt-get install bubblewrap), or run without --sandbox / sandbox: true"
        )
    import tempfile

    status = BwrapStatus()
    try:
        with tempfile.TemporaryDirectory(prefix="run-testsuite-probe-") as work:
            argv = Sandbox(work, network).wrap(["true"], work, dict(os.environ), status.write_end)
            probe = subprocess.run(argv, capture_output=True, text=True, timeout=30, pass_fds=(status.write_end,))
    except (OSError, subprocess.TimeoutExpired, SandboxError) as exc:
        raise SandboxUnavailable(f"bubblewrap ({path}) could not be started: {exc}") from None
    finally:
        status.discard()
    if probe.returncode != 0:
        said = probe.stderr.strip() or f"exit status {probe.returncode}"
        raise SandboxUnavailable(
            f"bubblewrap ({path}) cannot make a sandbox here: {said} (unprivileged user namespaces may be disabled:"
            " sysctl kernel.unprivileged_userns_clone=1, or a container started without them)"
        )
