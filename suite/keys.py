"""Keys for incremental runs: a hash of everything that decides a verdict.

A testcase's key is made of parts, each kept so that ``--explain`` can say
which one changed:

- ``spec``: its merged spec, driver, timeout, expected failure, the
  suite's parameters and the framework's version;
- ``files``: the files of its own directory (what the work copy is made of);
- ``shared``: the suite's shared files, everything under the root outside
  testcase directories and the output (programs, data, suite.yaml, driver
  sources), less hidden files, ``__pycache__`` and suite.yaml's ``key_ignore``;
- ``inputs``: files, directories and globs its spec lists in ``inputs``;
- ``executables``: what each command's program resolves to on the
  testcase's PATH (argv[0], or a ``sh -c`` string's first plain word), and
  that file's contents, so that rebuilding a compiler re-runs its tests;
- ``environment``: the outer variables named in ``key_env`` (hashed, as
  they may hold secrets);
- ``upstream``: the keys of the testcases it depends on and set-ups it needs.

Files are hashed through ``FileHashes``, which reads a file again only
when its stat changed.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field

from run_testsuite import __version__
from run_testsuite.discovery import SPEC_FILE, SUITE_FILE
from run_testsuite.file_hashes import FileHashes
from run_testsuite.fragment import Fragment
from run_testsuite.history import HistoryView
from run_testsuite.jsonio import INDEX_FILE
from run_testsuite.parts_spool import PartsSpool
from run_testsuite.plan import SETUP_PREFIX, CachedPass, Planned
from run_testsuite.spec import SpecError

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from run_testsuite.suite_config import SuiteConfig

    # A set-up's name -> its expanded inputs and the environment it sets.
    SetupReads = Callable[[str], tuple[list[str], dict[str, str]]]

SALT_FILE = "key-salt"
PARTS = ("spec", "files", "shared", "inputs", "executables", "environment", "upstream")

# First words of a shell string that are the shell's own, not a program.
SHELL_WORDS = frozenset(
    (  # noqa: SIM905 (a list literal of 58 words would fill a page)
        "! { } [ [[ ]] . : alias bg break case cd command continue do done elif else esac eval exec exit export "
        "false fg for function getopts hash if in jobs local printf pwd read readonly return set shift source test "
        "then times trap true type ulimit umask unalias unset until wait while echo"
    ).split()
)
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./+@%,-]+")
_GLOB_CHARS = re.compile(r"[*?[]")


@dataclass
class KeyParts:
    spec: str = ""
    files: dict[str, str] = field(default_factory=dict)
    shared: str = ""
    inputs: dict[str, str] = field(default_factory=dict)
    executables: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    upstream: dict[str, str] = field(default_factory=dict)

    def key(self) -> str:
        return _hash(self.to_json())

    def to_json(self) -> str:
        # Not dataclasses.asdict: its deep copy cost 50 us a testcase, half
        # a second of planning 10,000 of them.
        return json.dumps({name: getattr(self, name) for name in PARTS}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> KeyParts | None:
        try:
            data = json.loads(text)
            return cls(**{name: data[name] for name in PARTS})
        except (ValueError, TypeError, KeyError):
            return None


def spec_digest(planned: Planned, merged: dict, params: dict[str, str]) -> str:
    """The ``spec`` part of a testcase's key: its merged spec, with what
    was decided from it (driver, expected failure, timeout) and the run's
    parameters."""
    spec = {
        "name": planned.name,  # a copy of a testcase is not its original
        "spec": merged,
        "driver": planned.driver,
        "xfail": planned.xfail,
        "timeout": planned.timeout,
        "params": params,
        "version": __version__,
    }
    return _hash(json.dumps(spec, sort_keys=True, default=str))


def _hash(text: str | bytes) -> str:
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def tree_manifest(
    directory: str,
    hashes: FileHashes,
    skip_nested: bool = True,
    excluded: frozenset[str] = frozenset(),
    seen: set[tuple[int, int]] | None = None,
) -> dict[str, str]:
    """Each file of ``directory`` (relative name -> hash), as the work copy
    sees it: hidden entries skipped, nested testcases too, and any output
    of a run (a directory in ``excluded``, or holding ``new/_index.json``).
    A link is its target, and what it reaches when that is a file, or a
    directory not walked already (``seen``, by device and inode: a link
    to ``.`` is not a way round forever)."""
    manifest: dict[str, str] = {}
    seen = set() if seen is None else seen
    stack = [("", directory)]
    while stack:
        rel, path = stack.pop()
        try:
            info = os.stat(path)
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            entries = list(os.scandir(path))  # unsorted: the manifest's JSON sorts its keys
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith(".") or entry.name == "__pycache__" or entry.path in excluded:
                continue
            name = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_symlink():
                try:
                    target = os.readlink(entry.path)
                except OSError:
                    target = "?"
                inside = hashes.digest(entry.path)
                if inside == "directory":
                    reached = tree_manifest(entry.path, hashes, skip_nested, excluded, seen)
                    inside = "directory " + _manifest_digest(reached) if reached else "directory walked already"
                manifest[name] = f"link to {target}: {inside}"
            elif entry.is_dir():
                if skip_nested and os.path.exists(os.path.join(entry.path, SPEC_FILE)):
                    continue
                if os.path.exists(os.path.join(entry.path, "new", INDEX_FILE)):
                    continue  # a run's output directory
                subdirs.append((name, entry.path))
            else:
                manifest[name] = hashes.digest(entry.path, entry.stat(follow_symlinks=False))
        stack.extend(subdirs)
    return manifest


def _manifest_digest(manifest: dict[str, str]) -> str:
    return _hash(json.dumps(manifest, sort_keys=True))


def command_word(cmd: str | list[str]) -> str | None:
    """The program a command runs: argv[0], or the first word of a shell
    string when it is a plain word that is not the shell's own."""
    if isinstance(cmd, list):
        return str(cmd[0]) if cmd else None
    words = cmd.split(None, 1)
    if not words or not _PLAIN_WORD.fullmatch(words[0]) or words[0] in SHELL_WORDS:
        return None
    return words[0]


class KeyMaker:
    """Makes the parts of each testcase's and set-up's key for one plan."""

    def __init__(
        self,
        suite: SuiteConfig,
        hashes: FileHashes,
        shared_files: list[tuple[str, str]],
        excluded: frozenset[str] = frozenset(),
        salt_dir: str | None = None,
    ):
        """``excluded``: what the run itself writes (its output and work
        directories, report files), never part of a key; ``salt_dir``:
        where the salt of key_env's hashes is kept (the output directory)."""
        self.suite = suite
        self.hashes = hashes
        self.excluded = excluded
        self.salt_dir = salt_dir
        self._salt: bytes | None = None
        self.shared_files = [(rel, path) for rel, path in shared_files if not _within(path, excluded)]
        self._shared: tuple[str, dict[str, str]] | None = None
        self._inputs: dict[str, dict[str, str]] = {}
        self._programs: dict[tuple[str, str, str], str] = {}
        self._setups: dict[str, KeyParts | SpecError] = {}
        self.params: dict[str, str] = {}
        self.spool = PartsSpool()  # each testcase's parts, as JSON

    def keep_parts(self, planned: Planned, parts: str) -> str:
        """Keep a testcase's key parts (JSON) and return its key."""
        planned.parts_at = self.spool.keep(parts)
        planned.key = _hash(parts)
        return planned.key

    def parts_of(self, planned: Planned) -> str | None:
        """A testcase's key parts (JSON), if it has a key."""
        return None if planned.parts_at is None else self.spool.get(planned.parts_at)

    def forget_files(self) -> None:
        """Let the file-hash cache go, once saved (the run needs only the
        shared files' manifest from here on, made already)."""
        self._shared_pair()
        self.hashes = FileHashes(None)

    # The suite's shared files, hashed once per plan.
    def shared_manifest(self) -> dict[str, str]:
        return self._shared_pair()[1]

    def shared_digest(self) -> str:
        return self._shared_pair()[0]

    def _shared_pair(self) -> tuple[str, dict[str, str]]:
        if self._shared is None:
            ignore = self.suite.key_ignore
            manifest = {
                rel: self._suite_digest() if rel == SUITE_FILE else self.hashes.digest(path)
                for rel, path in self.shared_files
                if not (ignore and _ignored(rel, ignore))
            }
            self._shared = (_manifest_digest(manifest), manifest)
        return self._shared

    def _suite_digest(self) -> str:
        """suite.yaml by what it says, less its ``quarantine`` and
        ``cluster``: which testcases are quarantined changes how their
        failures count, and the batch jobs' settings where they run, not
        what they do; neither must run the whole suite again."""
        suite = self.suite
        said = [
            suite.name,
            suite.defaults,
            suite.drivers,
            suite.setup,
            suite.resources,
            suite.cpus_per_slot,
            suite.params,
            suite.max_variants,
            suite.key_ignore,
        ]
        return "suite:" + hashlib.sha256(json.dumps(said, sort_keys=True, default=str).encode()).hexdigest()

    def inputs(self, patterns: tuple[str, ...] | list[str]) -> dict[str, str]:
        """Each file an ``inputs`` entry names (expanded already), hashed;
        a directory by its files; a pattern that matches nothing as such."""
        found: dict[str, str] = {}
        for pattern in patterns:
            known = self._inputs.get(pattern)
            if known is None:
                known = self._inputs[pattern] = self._input(pattern)
            found.update(known)
        return found

    def _input(self, pattern: str) -> dict[str, str]:
        root = self.suite.root
        absolute = os.path.normpath(os.path.join(root, pattern))
        shown = os.path.relpath(absolute, root) if _under(absolute, root) else absolute
        if not _GLOB_CHARS.search(pattern):
            return {shown: self._path_digest(absolute)}
        matches = sorted(glob.glob(absolute, recursive=True))
        if not matches:
            return {shown: "no match"}
        return {(os.path.relpath(m, root) if _under(m, root) else m): self._path_digest(m) for m in matches}

    def _path_digest(self, path: str) -> str:
        value = self.hashes.digest(path)
        if value == "directory":
            return "directory " + _manifest_digest(tree_manifest(path, self.hashes, False, self.excluded))
        return value

    def executables(self, fragments: list[Fragment], source_dir: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for fragment in fragments:
            search = fragment.env.get("PATH", os.environ.get("PATH", os.defpath))
            for command in fragment.commands:
                word = command_word(command.cmd)
                if word and word not in found:
                    found[word] = self._program(word, search, fragment.source_dir or source_dir)
        return found

    def _program(self, word: str, search: str, base: str) -> str:
        known = self._programs.get((word, search, base))
        if known is None:
            if "/" in word:
                path: str | None = os.path.normpath(os.path.join(base or self.suite.root, word))
            else:
                path = shutil.which(word, path=search)
            known = f"{path} {self.hashes.digest(path)}" if path else "not found on PATH"
            self._programs[(word, search, base)] = known
        return known

    def environment(self, names: tuple[str, ...] | list[str]) -> dict[str, str]:
        """The outer variables ``names``, by a hash of their values keyed
        with this output directory's salt: history, often kept as a CI
        artifact, must not let a short secret be found by trying values."""
        if not names:
            return {}
        salt = self.salt()
        return {
            name: hashlib.blake2b(
                os.environ[name].encode("utf-8", "surrogateescape"), key=salt, digest_size=20
            ).hexdigest()
            if name in os.environ
            else "unset"
            for name in sorted(set(names))
        }

    def salt(self) -> bytes:
        """32 random bytes kept in OUTPUT/key-salt, made when first needed."""
        if self._salt is None:
            path = os.path.join(self.salt_dir, SALT_FILE) if self.salt_dir else None
            try:
                assert path is not None
                with open(path, "rb") as handle:
                    salt = handle.read()
                if len(salt) != 32:
                    raise ValueError("not a salt")
            except (AssertionError, OSError, ValueError):
                salt = os.urandom(32)
                if path is not None:
                    try:
                        os.makedirs(os.path.dirname(path), exist_ok=True)
                        with open(path, "wb") as handle:
                            handle.write(salt)
                    except OSError:
                        pass  # kept for this run only: the next one runs these again
            self._salt = salt
        return self._salt

    def testcase(self, planned: Planned, fragments: list[Fragment], upstream: dict[str, str]) -> KeyParts:
        return KeyParts(
            spec=planned.spec_digest or "",
            files=tree_manifest(planned.source_dir, self.hashes, excluded=self.excluded),
            shared=self.shared_digest(),
            inputs=self.inputs(planned.inputs),
            executables=self.executables(fragments, planned.source_dir),
            environment=self.environment(planned.key_env),
            upstream=upstream,
        )

    def setup(self, name: str, reads: SetupReads, seen: frozenset[str] = frozenset()) -> KeyParts:
        """A set-up's parts: its spec, the shared files, its inputs, its
        program, the outer variables named in the defaults, and the keys
        of the set-ups it needs. ``reads(name)`` gives its expanded inputs and environment
        (a SpecError, raised again each time it is asked for)."""
        known = self._setups.get(name)
        if known is None:
            try:
                known = self._setup(name, reads, seen)
            except SpecError as exc:
                known = exc
            self._setups[name] = known
        if isinstance(known, SpecError):
            raise known.with_traceback(None)
        return known

    def _setup(self, name: str, reads: SetupReads, seen: frozenset[str]) -> KeyParts:
        setups = self.suite.setup
        spec = setups[name]
        upstream = {}
        for needed in spec.get("needs", []):
            if needed in setups and needed not in seen:
                try:
                    upstream[SETUP_PREFIX + needed] = self.setup(needed, reads, seen | {name}).key()
                except SpecError:
                    upstream[SETUP_PREFIX + needed] = ""  # it is an ERROR of its own
        cmd = spec["cmd"] if isinstance(spec["cmd"], str) else [str(p) for p in spec["cmd"]]
        defaults = self.suite.defaults
        word = command_word(cmd)
        inputs, env = reads(name)
        search = env.get("PATH", os.environ.get("PATH", os.defpath))  # looked up where it will run
        described = {"spec": spec, "defaults": {k: defaults.get(k) for k in ("env", "timeout")}, "version": __version__}
        return KeyParts(
            spec=_hash(json.dumps(described, sort_keys=True, default=str)),
            shared=self.shared_digest(),
            inputs=self.inputs(inputs),
            executables={word: self._program(word, search, self.suite.root)} if word else {},
            environment=self.environment(list(defaults.get("key_env", []))),
            upstream=upstream,
        )


def _within(path: str, excluded: frozenset[str]) -> bool:
    return any(path == top or path.startswith(top + os.sep) for top in excluded)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _ignored(rel: str, patterns: list[str]) -> bool:
    """Whether a shared file, or a directory above it, matches key_ignore."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(fnmatch.fnmatchcase(c, p.rstrip("/")) for c in candidates for p in patterns)


def compute_keys(
    testcases: list[Planned],
    fragments: list[Fragment],
    maker: KeyMaker,
    setup_reads: SetupReads,
    resolve: Callable[[str, Planned], list[int]],
) -> None:
    """Each testcase's key parts and key; ``resolve(dependency, testcase)``
    gives the testcases a name stands for. A testcase in a cycle, or whose
    spec did not load, has no key (and is never taken from the cache)."""
    done: dict[int, str | None] = {}

    def key_of(number: int, seen: frozenset[int]) -> str | None:
        if number in done:
            return done[number]
        planned = testcases[number]
        if number in seen or not planned.spec_digest:
            return None
        upstream: dict[str, str] = {}
        for name in planned.needs:
            if name in maker.suite.setup:
                try:
                    upstream[SETUP_PREFIX + name] = maker.setup(name, setup_reads).key()
                except SpecError:
                    upstream[SETUP_PREFIX + name] = ""  # the set-up is an ERROR of its own
        for dep in planned.depends:
            for other in resolve(dep, planned):
                key = key_of(other, seen | {number})
                if key is None:
                    done[number] = None
                    return None
                upstream[testcases[other].name] = key
        parts = maker.testcase(planned, [fragments[i] for i in planned.fragments], upstream).to_json()
        planned.spec_digest = ""  # in the parts now
        done[number] = key = maker.keep_parts(planned, parts)
        return key

    for number in range(len(testcases)):
        key_of(number, frozenset())


def use_cache(testcases: list[Planned], history: HistoryView) -> None:
    """--incremental: a testcase whose key passed before is not run,
    unless it failed last time."""
    wanted = {p.key for p in testcases if p.result is None and p.key and not history.failed_last_time(p.name)}
    runs = history.passed_runs(wanted)
    verdicts: dict[int, CachedPass] = {}  # one per run
    for planned in testcases:
        if planned.result is None and planned.key in runs and not history.failed_last_time(planned.name):
            run = runs[planned.key]
            verdict = verdicts.get(run)
            if verdict is None:
                verdict = verdicts[run] = CachedPass(
                    f"passed in run {run} with the same key; not run again (--incremental)"
                )
            planned.result = verdict
