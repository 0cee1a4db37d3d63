"""The `Shell` protocol: run a command on a machine and get its `Result`.

Every command is an argv list; a shell quotes it (`shlex.join`) before it
reaches a remote `sh`, so no caller builds command strings by hand.  A script
that needs pipes or redirections is passed explicitly as
`["sh", "-c", script]`, where `script` is the caller's responsibility.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from pexpect.spawnbase import SpawnBase

from powernest.errors import PowernestError


class ShellError(PowernestError):
    """A command could not be run (as opposed to running and failing)."""


class CommandTimeout(ShellError):
    """A command ran past its timeout and was stopped."""


class ConnectError(ShellError):
    """The machine could not be reached, or it refused us (e.g. unknown host key)."""


class CommandFailed(ShellError):
    """A command run with `check=True` exited non-zero."""

    def __init__(self, result: Result) -> None:
        self.result = result
        tail = (result.stderr or result.stdout).strip()[-2000:]
        super().__init__(f"`{result.command}` exited {result.exit_code}: {tail}")


@dataclass(frozen=True)
class Result:
    """What a command did: its quoted form, exit code and output."""

    command: str
    exit_code: int
    stdout: str
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def quote(argv: Sequence[str]) -> str:
    """The argv as one string a POSIX shell splits back into the same argv."""
    if isinstance(argv, str):
        raise TypeError("commands are argv lists, not strings: use ['sh', '-c', script]")
    return shlex.join(argv)


@runtime_checkable
class Runner(Protocol):
    """Anything that runs commands: a shell, or a guest through its shell."""

    def run(self, argv: Sequence[str], timeout: float | None = None,
            check: bool = False) -> Result:
        """Run argv to completion; raise CommandTimeout past `timeout` seconds."""
        ...


class Shell(Runner, Protocol):
    """A machine we can run commands on."""

    name: str

    def spawn(self, argv: Sequence[str]) -> SpawnBase:
        """Start argv on a pseudo-terminal and return a pexpect object driving it."""
        ...

    def put(self, local: Path, remote: str) -> None:
        """Copy a local file to `remote` on the machine."""
        ...

    def cache_dir(self) -> str:
        """The machine's powernest cache (lab images, saved L1 states)."""
        ...

    def stage(self, local: Path) -> str:
        """Where a local file is on the machine: the file itself if the machine is this
        one, else a copy in its cache, uploaded once per content."""
        ...

    def close(self) -> None:
        """Release the connection; safe to call twice."""
        ...


def kill_pidfile(runner: Runner, pidfile: str, wait: float = 0.0) -> None:
    """SIGKILL the process a pidfile names, if it is still there; then wait up to `wait`
    seconds until it has exited (its /proc cmdline is empty once its memory is gone).
    Only /proc and busybox are needed: an L1 has no pgrep."""
    script = ('pid=$(cat "$1" 2>/dev/null); [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; '
              'rm -f "$1"; i=0; while [ -n "$pid" ] && [ "$i" -lt "$2" ] '
              '&& grep -q . "/proc/$pid/cmdline" 2>/dev/null; do sleep 0.1; i=$((i + 1)); '
              'done; true')
    with contextlib.suppress(Exception):  # teardown must not mask the test's own error
        runner.run(["sh", "-c", script, "sh", pidfile, str(round(wait * 10))],
                   timeout=30 + wait)
