"""Work directories: a fresh copy of the testcase directory per run of it,
and a spare empty directory kept ready so that making one costs a rename.

A sole runner (see ``runner``) keeps empty directories ready beside the
work directories, made while a command runs: a testcase's fresh work
directory is then a rename (0.02 ms here) instead of a mkdir (0.1-0.35 ms),
at the moment when fragments end together and every slot wants the CPUs at
once.

With ``--cleanup passed``, the empty work directories of passed testcases
are those spares, up to SPARE_POOL of them per worker: each one kept is an
rmdir and a mkdir not made. Both free or take an inode, which on ext4 goes
through the file system's orphan list under one lock for all processes:
removing them instead cost 2,000 trivial testcases at -j 16 0.3 s of wall
time and 0.5 s of system time, in 3,500 more waits.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import sys

from run_testsuite.discovery import SPEC_FILE
from run_testsuite.runner import STATE

SPARE_PREFIX = ".spare-"
# Passes are handed one per fragment sent (see ``cleanup``), which is what a
# fragment takes: a worker's spares rarely grow past one or two, and a pool
# this deep absorbs the rest while costing at most this many rmdirs at the
# end.
SPARE_POOL = 8


def make_spare(root: str) -> None:
    """Have an empty directory ready in ``root`` (see SPARE_PREFIX), and
    remove the work directories handed over to be discarded: an empty one
    joins the spares by a rename, in place of an rmdir now and a mkdir
    later."""
    while STATE.discard:
        old = STATE.discard.pop()
        if len(STATE.spares) < SPARE_POOL and os.path.dirname(old) == root and _as_if_new(old):
            path = _spare_name(root)
            try:
                os.rename(old, path)
            except OSError:
                pass
            else:
                STATE.spares.append(path)
                continue
        remove_tree(old)
    if not STATE.spares:
        path = _spare_name(root)
        try:
            os.mkdir(path)
        except OSError:  # taken (say, left by a dead worker with our pid)
            return
        STATE.spares.append(path)


def _spare_name(root: str) -> str:
    STATE.spares_made += 1
    return os.path.join(root, f"{SPARE_PREFIX}{os.getpid()}-{STATE.spares_made}")


def discard(paths: tuple[str, ...]) -> None:
    """Work directories of testcases that passed (``--cleanup``): a sole
    runner removes them while its next command runs (``make_spare``);
    any other removes them now."""
    if STATE.sole_runner:
        STATE.discard.extend(paths)
        return
    for path in paths:  # a Dask worker's threads each remove their own
        remove_tree(path)


def _as_if_new(path: str) -> bool:
    """A real directory (not a link to one) with nothing in it, ours, with
    the mode a mkdir gives: what the next testcase would get anyway. One a
    test made read-only (`chmod a-w .`) or handed to another user is
    removed, not passed on."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    # The permission bits only: a setgid work root gives every mkdir its bit.
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o777 != _fresh_mode():
        return False
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except OSError:
        return False


@functools.cache
def _fresh_mode() -> int:
    """The mode os.mkdir gives a directory here (0o777 less the umask)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o777 & ~umask


def _take_spare(target: str) -> bool:
    """Make ``target`` a fresh empty directory from a spare, if one is
    ready beside it (False: do it the usual way)."""
    if not STATE.spares:
        return False
    spare = STATE.spares.pop()
    if os.path.dirname(spare) == os.path.dirname(target):
        try:
            os.rename(spare, target)  # also replaces an empty directory there
        except OSError:  # a stale tree there, say: the usual way deals with it
            pass
        else:
            # The spare sits where tests can write: one may have put a link
            # (to anywhere) in its place, or files in it. What was renamed is
            # checked, not what was there before: no race can slip in between.
            if _as_if_new(target):
                return True
            if _is_real_directory(target):
                remove_tree(target)
            else:
                os.unlink(target)  # the link itself, never what it points to
            return False
    _remove_empty(spare)
    return False


def _is_real_directory(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def discard_spare() -> None:
    """Remove this process's spare directories (a worker's, when it stops)."""
    spares, STATE.spares = STATE.spares, []
    for spare in spares:
        _remove_empty(spare)


def _remove_empty(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:  # gone, or not empty: not a spare of ours to remove
        pass


def remove_spares(root: str) -> None:
    """Remove spare directories left in ``root`` by workers that died."""
    try:
        names = [name for name in os.listdir(root) if name.startswith(SPARE_PREFIX)]
    except OSError:
        return
    for name in names:
        _remove_empty(os.path.join(root, name))


def prepare_work_dir(source: str | None, target: str, private: tuple[str, ...] = ()) -> None:
    """Make ``target`` a fresh copy of the testcase directory ``source``.

    Left out: the framework's own files (``private``: the spec, a baseline),
    nested testcase directories (they belong to other testcases),
    hidden entries (version control), and any directory holding the copy
    being made or a run's output (an output directory inside a testcase).
    Symbolic links are kept as links; a relative one that points outside
    the testcase is re-aimed at its target in the suite, so it still
    resolves from the copy.
    """
    try:
        if not _take_spare(target):
            os.mkdir(target)
    except FileExistsError:  # a retry, or a stale tree from an earlier run
        shutil.rmtree(target)
        os.mkdir(target)
    except FileNotFoundError:  # names with '/' or a work root not made yet
        os.makedirs(target)
    if source is None:
        return
    skip = {os.path.join(source, name) for name in private}
    _copy_entries(source, target, source, os.path.realpath(target), skip)


def _copy_entries(src: str, dst: str, top: str, real_target: str, skip: set[str]) -> None:
    for entry in os.scandir(src):
        if entry.name.startswith(".") or entry.path in skip:
            continue
        dest = os.path.join(dst, entry.name)
        if entry.is_symlink():
            os.symlink(_link_target(entry.path, top), dest)
        elif entry.is_dir():
            real = os.path.realpath(entry.path)
            if (
                real_target == real
                or real_target.startswith(real + os.sep)
                or os.path.exists(os.path.join(entry.path, SPEC_FILE))
                or os.path.exists(os.path.join(entry.path, "new", "_index.json"))
            ):
                continue
            os.mkdir(dest)
            _copy_entries(entry.path, dest, top, real_target, skip)
        elif entry.is_file():
            shutil.copy(entry.path, dest)
        else:
            _copy_special(entry.path, dest)


def _copy_special(path: str, dest: str) -> None:
    """A FIFO is made anew in the copy (reading the original would wait for
    a writer, forever); a device node too where this process may make one;
    a socket is left out: it cannot be copied, only connected to."""
    info = os.lstat(path)
    if stat.S_ISFIFO(info.st_mode):
        os.mkfifo(dest, stat.S_IMODE(info.st_mode))
    elif stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
        try:
            os.mknod(dest, info.st_mode, info.st_rdev)
        except PermissionError:  # not root: the device stays in the source only
            pass


def _link_target(link: str, top: str) -> str:
    target = os.readlink(link)
    if os.path.isabs(target):
        return target
    resolved = os.path.normpath(os.path.join(os.path.dirname(link), target))
    if resolved == top or resolved.startswith(top.rstrip(os.sep) + os.sep):
        return target  # stays inside the testcase: valid in the copy too
    return resolved


def remove_tree(path: str) -> str | None:
    """Remove a work directory; None, or what kept it. A read-only
    directory inside is made writable first; a link is not followed."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None  # never made (a SKIP), or a test removed it
    except OSError as exc:
        return exc.strerror
    if not stat.S_ISDIR(info.st_mode):
        return "not a directory any more (a test replaced it); left as it is"

    def writable_and_again(function, failed: str, error: BaseException) -> None:
        try:
            os.chmod(os.path.dirname(failed), 0o700)
            if function is os.rmdir or function is os.unlink:
                function(failed)
            elif os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
                shutil.rmtree(failed)
        except OSError:
            raise error from None

    try:
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=writable_and_again)
        else:
            shutil.rmtree(path, onerror=lambda f, p, info: writable_and_again(f, p, info[1]))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None
