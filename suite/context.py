"""``RunContext``: what a driver's ``run`` uses to execute a fragment's
commands, wherever the fragment runs."""

from __future__ import annotations

from run_testsuite.capture import OutputCapture
from run_testsuite.commands import run_command
from run_testsuite.fragment import Command, Fragment
from run_testsuite.results import CommandRecord
from run_testsuite.runner import STATE


class RunContext:
    """What a driver's ``run`` uses to execute a fragment's commands."""

    def __init__(self, fragment: Fragment, slot: int, on_output=None) -> None:
        self.fragment = fragment
        self.slot = slot
        self.records: list[CommandRecord] = []
        self.env = {**STATE.base_environment(), **fragment.standard_env(), **fragment.env}
        self.env["SLOT"] = str(slot)
        if STATE.slot_cpus:
            self.env["SLOT_CPUS"] = STATE.slot_cpus
        self.work_dir = fragment.work_dir
        self.capture = OutputCapture(fragment.log_path, fragment.keep_log, on_output)

    def run(self, command: Command) -> CommandRecord:
        """Run ``command`` in the work directory, capturing its output."""
        record = run_command(command, self.work_dir, self.env, self.capture, self.fragment.sandbox)
        self.records.append(record)
        return record

    def output(self) -> bytes:
        """Everything this fragment's commands printed so far."""
        return self.capture.data()

    def output_sources(self) -> list[str | bytes]:
        """The testcase's output so far, in order, as log paths (earlier
        fragments, see ``Driver.combine_output``, and this one if large)
        or bytes: what a driver compares in bounded memory."""
        sources: list[str | bytes] = list(self.fragment.data.get("earlier_logs", ()))
        self.capture.flush()
        sources.append(self.capture.log_path if self.capture.spilled else self.capture.data())
        return sources

    def combined_output(self) -> bytes:
        """The testcase's whole output so far, in memory."""
        parts = []
        for source in self.output_sources():
            if isinstance(source, bytes):
                parts.append(source)
            else:
                with open(source, "rb") as handle:
                    parts.append(handle.read())
        return b"".join(parts)
