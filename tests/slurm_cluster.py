"""A real one-node SLURM cluster on 127.0.0.1, started and stopped by a test.

``slurm_cluster(path)`` is a context manager: it starts a private ``munged``,
``slurmctld`` and ``slurmd`` (Debian's ``munge`` and ``slurm-wlm`` packages),
each time with fresh state, spool and log directories under ``path``, waits
until the node is idle, and yields a ``SlurmCluster``. ``SLURM_CONF`` is set
in ``os.environ`` meanwhile, so ``sbatch``, ``srun``, ``squeue`` and
dask-jobqueue's ``SLURMCluster`` talk to this cluster and no other. On exit it
cancels every job, shuts the daemons down, kills whatever they left (job
steps, a job's processes) and checks that nothing is left running.

``slurm`` is the same as a pytest fixture; import it into a test module or a
conftest (``from slurm_cluster import slurm``).

Without the tools the fixture skips, unless ``CI`` is set: CI installs them
(``apt-get install --no-install-recommends slurm-wlm munge``), and a skip
there would hide their loss. The daemons run as root (``slurmd`` starts jobs
as their user), as they do in the project's containers.

No systemd is needed and none is used; the system's ``/etc/munge`` and
``/etc/slurm`` are never read or written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# The daemons, then the client commands the harness itself runs.
TOOLS = ("slurmctld", "slurmd", "munged", "sbatch", "srun", "scontrol", "sinfo", "squeue", "scancel")
PARTITION = "debug"
# How long the cluster may take to come up, or a daemon to stop.
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Short: each command talks to a daemon on 127.0.0.1.
COMMAND_TIMEOUT = 20.0


def missing() -> str | None:
    """Why this machine cannot run the cluster, or None when it can."""
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    if absent:
        return f"{', '.join(absent)} not on PATH (apt-get install --no-install-recommends slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the SLURM test cluster runs its daemons as root (slurmd starts jobs as their user)"
    return None


def require() -> None:
    """Skip the calling test when the cluster cannot run; fail instead under CI."""
    reason = missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI must run this test")
    pytest.skip(reason)


@dataclass
class SlurmCluster:
    """The running cluster: its files and an environment that reaches it."""

    root: Path  # everything of this cluster but the munge socket
    conf: Path  # slurm.conf, also in env["SLURM_CONF"]
    env: dict[str, str]  # os.environ plus SLURM_CONF, for subprocesses
    node: str  # the one node's name
    partition: str  # the one (default) partition
    munge_socket: Path
    logs: Path
    daemons: dict[str, subprocess.Popen] = field(default_factory=dict)

    def run(self, *cmd: str, check: bool = True, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
        """Run a command against this cluster, with its output captured."""
        result = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited with {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def squeue(self) -> list[str]:
        """The ids of the jobs SLURM still lists (pending, running, completing)."""
        out = self.run("squeue", "--noheader", "--format=%i").stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def wait_no_jobs(self, timeout: float = STOP_TIMEOUT) -> list[str]:
        """Wait until ``squeue`` lists no job; return what it still lists."""
        deadline = time.monotonic() + timeout
        jobs = self.squeue()
        while jobs and time.monotonic() < deadline:
            time.sleep(0.2)
            jobs = self.squeue()
        return jobs

    def node_state(self) -> str:
        out = self.run("sinfo", "--noheader", "--Node", "--format=%T", check=False).stdout
        return out.strip()

    def log_tails(self, lines: int = 25) -> str:
        """The end of every daemon log, for a failure message."""
        parts = []
        for path in sorted(self.logs.iterdir()):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(parts)


def _free_ports(count: int) -> list[int]:
    """Ports free on this host now (bound together, so distinct)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _node_line() -> tuple[str, str]:
    """This host as ``slurmd -C`` describes it: its name and its NodeName= line."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("NodeName="))
    name = line.split()[0].partition("=")[2]
    return name, line


def write_conf(root: Path, munge_socket: Path) -> tuple[Path, str]:
    """Write slurm.conf for a one-node cluster under ``root``; return its path and the node's name."""
    node, node_line = _node_line()
    ctld_port, slurmd_port = _free_ports(2)
    conf = root / "slurm.conf"
    conf.write_text(
        f"""\
# A one-node test cluster on 127.0.0.1 (tests/slurm_cluster.py).
ClusterName=testcluster
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
# No cgroups in a container: track job processes by parentage.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
# A cancelled job's processes get SIGKILL 2 s after SIGTERM (not 30 s).
KillWait=2
{node_line} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""",
        encoding="utf-8",
    )
    return conf, node


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead: PID 1 here may never reap orphans)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def processes_of(conf: Path) -> list[int]:
    """Running processes that carry ``SLURM_CONF=conf`` in their environment:
    the daemons, every ``slurmstepd`` and every job process of this cluster
    (a job inherits its submitter's environment), and nothing else, since
    ``conf`` is a fresh path."""
    marker = f"SLURM_CONF={conf}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
        except OSError:
            continue
        if marker in environ and _alive(int(entry)):
            found.append(int(entry))
    return found


def _kill(pids: list[int], timeout: float) -> list[int]:
    """SIGTERM then SIGKILL ``pids``; return those still running."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [pid for pid in pids if _alive(pid)]
        if not pids:
            break
    return pids


def _start(cluster: SlurmCluster, name: str, cmd: list[str]) -> None:
    out = open(cluster.logs / f"{name}.out", "wb")
    try:
        cluster.daemons[name] = subprocess.Popen(
            cmd, env=cluster.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        out.close()


def _wait_ready(cluster: SlurmCluster, what: str, ready, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        dead = {name: proc.returncode for name, proc in cluster.daemons.items() if proc.poll() is not None}
        if dead:
            pytest.fail(f"SLURM test cluster: {dead} exited while waiting for {what}\n{cluster.log_tails()}")
        if ready():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"SLURM test cluster: no {what} after {timeout:.0f} s\n{cluster.log_tails()}")
        time.sleep(0.1)


def _stop(cluster: SlurmCluster) -> list[int]:
    """Cancel every job, stop the daemons and what they left; return what still runs."""
    ctld = cluster.daemons.get("slurmctld")
    if ctld is not None and ctld.poll() is None:
        try:
            jobs = cluster.squeue()
            if jobs:
                cluster.run("scancel", *jobs, check=False)
                cluster.wait_no_jobs()
            cluster.run("scontrol", "shutdown", check=False)
        except (subprocess.TimeoutExpired, AssertionError):
            pass  # killed below
    # scontrol shutdown stops slurmctld and slurmd; munged is stopped last,
    # since they need it until the end.
    for name in ("slurmctld", "slurmd", "munged"):
        proc = cluster.daemons.get(name)
        if proc is None:
            continue
        try:
            proc.wait(STOP_TIMEOUT if name != "munged" else 0)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    # Job steps and job processes: slurmstepd daemonizes, so they are no
    # children of ours.
    return _kill(processes_of(cluster.conf), STOP_TIMEOUT / 2)


@contextlib.contextmanager
def slurm_cluster(path: Path) -> Iterator[SlurmCluster]:
    """Run a one-node SLURM cluster with its files under ``path`` (see the module)."""
    require()
    root = Path(path) / "slurm"
    logs = root / "log"
    for sub in ("state", "spool", "run", "log"):
        (root / sub).mkdir(parents=True)
    # munged wants every directory above its socket searchable by all, and
    # a socket path is short: pytest's tmp_path is neither.
    munge_dir = Path(tempfile.mkdtemp(prefix="munge-"))
    os.chmod(munge_dir, 0o755)
    munge_socket = munge_dir / "munge.socket"
    key = munge_dir / "munge.key"
    # munged refuses a key readable by others; it runs as us (root), so
    # the key is ours.
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(fd, "wb") as handle:
        handle.write(os.urandom(1024))

    conf, node = write_conf(root, munge_socket)
    old_conf = os.environ.get("SLURM_CONF")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    cluster = SlurmCluster(root, conf, env, node, PARTITION, munge_socket, logs)
    os.environ["SLURM_CONF"] = str(conf)
    left: list[int] = []
    try:
        _start(
            cluster,
            "munged",
            [
                "munged",
                "--foreground",
                f"--socket={munge_socket}",
                f"--key-file={key}",
                f"--pid-file={munge_dir}/munged.pid",
                f"--seed-file={munge_dir}/munged.seed",
            ],
        )
        _wait_ready(cluster, "munge socket", munge_socket.exists, READY_TIMEOUT)
        # -i: the state directory is empty, ignore the missing state files.
        _start(cluster, "slurmctld", ["slurmctld", "-D", "-i", "-f", str(conf)])
        _start(cluster, "slurmd", ["slurmd", "-D", "-N", node, "-f", str(conf)])

        def controller_up() -> bool:
            return "is UP" in cluster.run("scontrol", "ping", check=False).stdout

        def node_idle() -> bool:
            return cluster.node_state() == "idle"

        _wait_ready(cluster, "slurmctld answering scontrol ping", controller_up, READY_TIMEOUT)
        _wait_ready(cluster, f"node {node} idle in sinfo", node_idle, READY_TIMEOUT)
        yield cluster
    finally:
        try:
            left = _stop(cluster)
        finally:
            if old_conf is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old_conf
            shutil.rmtree(munge_dir, ignore_errors=True)
    if left:
        raise AssertionError(f"SLURM test cluster: processes {left} survived SIGKILL")


@pytest.fixture
def slurm(tmp_path: Path) -> Iterator[SlurmCluster]:
    """A fresh one-node SLURM cluster for one test (see ``slurm_cluster``)."""
    with slurm_cluster(tmp_path) as cluster:
        yield cluster
