"""`LocalShell`: the `Shell` protocol on this machine, through subprocess."""

from __future__ import annotations

import ctypes
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pexpect

from powernest.lab.cache import default_cache
from powernest.shell import CommandFailed, CommandTimeout, Result, ShellError, quote

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In a child: ask the kernel to SIGKILL us when the controller dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class LocalShell:
    """Runs commands on the controller's own machine."""

    def __init__(self, name: str = "localhost") -> None:
        self.name = name

    def run(self, argv: Sequence[str], timeout: float | None = None,
            check: bool = False) -> Result:
        command = quote(argv)
        try:
            done = subprocess.run(list(argv), capture_output=True, text=True,
                                  errors="replace", timeout=timeout,
                                  start_new_session=True)
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeout(f"{self.name}: `{command}` ran past {timeout} s") from exc
        except OSError as exc:
            raise ShellError(f"{self.name}: cannot run `{command}`: {exc}") from exc
        result = Result(command, done.returncode, done.stdout, done.stderr)
        if check and not result.ok:
            raise CommandFailed(result)
        return result

    def spawn(self, argv: Sequence[str]) -> pexpect.spawn:
        """Start argv on a pty; it is SIGKILLed if this process dies."""
        if shutil.which(argv[0]) is None:
            raise ShellError(f"{self.name}: `{argv[0]}` not found on PATH")
        proc = pexpect.spawn(argv[0], list(argv[1:]), encoding="utf-8",
                             codec_errors="replace", echo=False, dimensions=(50, 400),
                             preexec_fn=_die_with_parent)
        # pexpect sleeps 50 ms before each send (for programs that are slow to turn echo
        # off after a password prompt); a guest's console takes input at any time, and
        # those sleeps were a tenth of a case's wall time, its L1 idle.  Its 0.1 s after
        # each signal and after the hang-up, which made a guest's stop take 0.3 s, is
        # cut too: whatever is still alive after the signals gets SIGKILL.
        proc.delaybeforesend = None
        proc.delayafterterminate = proc.ptyproc.delayafterterminate = 0.02
        proc.ptyproc.delayafterclose = 0.02
        return proc

    def put(self, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def cache_dir(self) -> str:
        return str(default_cache())

    def stage(self, local: Path) -> str:
        return str(local)

    def close(self) -> None:
        pass
