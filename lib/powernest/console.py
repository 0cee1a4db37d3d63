"""A guest console as the test's eyes: expect-style reading, logged as it
arrives, that fails at once on a kernel panic, oops, lockup, RCU stall or hung task.

`Console` wraps any pexpect object (a local pty or an SSH channel);
`ConsoleShell` runs commands at a shell prompt on a console and returns
their output and exit code, so an L1 is driven like any other `Shell`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import itertools
import re
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pexpect
from pexpect.spawnbase import SpawnBase

from powernest.errors import PowernestError
from powernest.shell import CommandFailed, CommandTimeout, Result, ShellError, quote

FAILURES: dict[str, str] = {
    "kernel panic": r"Kernel panic - not syncing",
    "oops": r"Oops: |Unable to handle kernel paging request|kernel BUG at ",
    "soft lockup": r"BUG: soft lockup",
    "hard lockup": r"hard LOCKUP",
    "RCU stall": r"rcu: INFO: \S+ (?:self-)?detected stalls?|rcu_\w+ self-detected stall",
    "hung task": r"INFO: task \S+ blocked for more than \d+ seconds",
}
_FAILURE = re.compile("|".join(f"(?P<f{i}>{p})" for i, p in enumerate(FAILURES.values())))
_B64 = re.compile(r"[A-Za-z0-9+/]+=*")
_MD5 = re.compile(r"^[0-9a-f]{32}  ")
NOTE = "# powernest: "   # lines the controller itself adds to a console log
TRACE_QUIET = 1.5   # seconds of silence that end a crash trace
TRACE_MAX = 8.0     # seconds spent collecting a crash trace at most
PROMPT_AFTER_INTERRUPT = 5.0   # seconds a shell may take to prompt again after Ctrl-C


class ConsoleError(PowernestError):
    """A console wait failed; the message ends with the last console lines."""

    def __init__(self, message: str, log: Path | None) -> None:
        self.log = log
        super().__init__(message + (f"\n(console log: {log})" if log else ""))


class GuestCrash(ConsoleError):
    """The guest kernel panicked, oopsed, locked up or stalled."""

    def __init__(self, guest: str, kind: str, trace: str, log: Path | None) -> None:
        self.kind = kind
        self.trace = trace
        super().__init__(f"{guest}: {kind} on the console:\n{trace}", log)


class ConsoleTimeout(ConsoleError):
    """The expected output did not come in time."""


class ConsoleClosed(ConsoleError):
    """The guest process went away while we waited; `output` is what it printed since
    the last match, `ended` how the process ended ("exit 1", "killed by SIGABRT")."""

    def __init__(self, message: str, log: Path | None, output: str = "",
                 ended: str = "") -> None:
        self.output = output
        self.ended = ended
        super().__init__(message, log)


def intact(printed: str) -> str | None:
    """What a file held that a script printed with `base64 FILE; md5sum FILE` (base64: no
    text in the file can be taken for a crash on the console); None if it did not cross
    the console intact (the kernel may print on it at any moment)."""
    lines = printed.replace("\r", "").split("\n")
    digest = next((line.split()[0] for line in lines if _MD5.match(line)), "")
    try:
        data = base64.b64decode("".join(line for line in lines if _B64.fullmatch(line)))
    except binascii.Error:
        return None
    if hashlib.md5(data).hexdigest() != digest:  # noqa: S324 - integrity, not security
        return None
    return data.decode("utf-8", "replace")


def find_failure(text: str) -> tuple[str, int] | None:
    """The first failure in `text`: its kind and where it starts."""
    match = _FAILURE.search(text)
    if not match:
        return None
    kind = list(FAILURES)[int(match.lastgroup[1:])]  # type: ignore[index]
    return kind, match.start()


def begin_marker(marker: str) -> str:
    """A command's begin marker as printed, not as echoed (`marker;` is the echo).

    Nothing else is asked of what follows: the kernel may print right after it.
    """
    return rf"{marker}(?!;)(?=[\s\S])"


def end_marker(prefix: str) -> str:
    """A command's end marker with its exit status, however the line goes on."""
    return rf"{prefix}(\d+)(?=\D)"


@dataclass(frozen=True)
class Frame:
    """A command framed for a shell prompt: the line to type, and its two markers."""

    line: str
    begin: str   # regex: the begin marker as printed
    end: str     # regex: the end marker; group 1 is the exit status


class Framing:
    """Frames commands as `echo B; CMD; echo RC=$?` with a fresh number each time,
    so neither echoed input nor earlier output can be taken for a command's result."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self._ids = itertools.count(1)

    def frame(self, script: str) -> Frame:
        n = next(self._ids)
        begin, end = f"{self.tag}{n}B__", f"{self.tag}{n}RC="
        return Frame(f"echo {begin}; {script}; echo {end}$?", begin_marker(begin),
                     end_marker(end))


def tail(text: str, lines: int = 30) -> str:
    """The last lines of console text, carriage returns removed."""
    return "\n".join(text.replace("\r", "").splitlines()[-lines:])


class Console:
    """One guest's console: everything read is appended to `log_path` at once."""

    def __init__(self, proc: SpawnBase, log_path: Path, guest: str) -> None:
        self.proc = proc
        self.guest = guest
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[str] = open(log_path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        proc.logfile_read = self._log
        self._seen = ""   # text read since the last failure check, for crash detection

    def expect(self, patterns: str | Sequence[str], timeout: float) -> re.Match[str]:
        """Wait for the first of `patterns`; fail on a crash, EOF or timeout."""
        wanted = [patterns] if isinstance(patterns, str) else list(patterns)
        compiled = [re.compile(p) for p in wanted] + [_FAILURE, pexpect.EOF, pexpect.TIMEOUT]
        started = time.monotonic()
        index = self.proc.expect_list(compiled, timeout=timeout)
        if index < len(wanted):
            return self.proc.match
        if index == len(wanted):
            self._raise_crash()
        if index == len(wanted) + 1:
            ended = self.ended()
            if not self._log.closed:
                self._log.write(f"\n{NOTE}{self.guest}'s process ended ({ended})\n")
            raise ConsoleClosed(
                f"{self.guest}: console closed ({ended}) while waiting for {wanted!r}; "
                f"last lines:\n{self.tail()}", self.log_path, str(self.proc.before or ""),
                ended)
        waited = time.monotonic() - started
        raise ConsoleTimeout(
            f"{self.guest}: no {wanted!r} within {waited:.0f} s; last console lines:\n"
            f"{self.tail()}", self.log_path)

    def _raise_crash(self) -> None:
        """Collect the rest of the trace (until the console goes quiet) and raise."""
        match = self.proc.match
        trace = match.string[match.start():]
        deadline = time.monotonic() + TRACE_MAX
        while time.monotonic() < deadline:
            try:
                trace += self.proc.read_nonblocking(65536, timeout=TRACE_QUIET)
            except (pexpect.TIMEOUT, pexpect.EOF):
                break
        kind, _ = find_failure(trace) or ("crash", 0)
        raise GuestCrash(self.guest, kind, tail(trace, 60), self.log_path)

    def send(self, text: str) -> None:
        self.proc.send(text)

    def sendline(self, line: str) -> None:
        self.proc.send(line + "\r")

    def tail(self, lines: int = 30) -> str:
        """The last lines of everything this console printed."""
        if not self._log.closed:
            self._log.flush()
        try:
            return tail(self.log_path.read_text(errors="replace"), lines)
        except OSError:
            return ""

    def alive(self) -> bool:
        return bool(self.proc.isalive())

    def ended(self) -> str:
        """How the process behind the console ended, once its output has ended."""
        with contextlib.suppress(OSError, pexpect.ExceptionPexpect):
            deadline = time.monotonic() + 5
            while self.proc.isalive() and time.monotonic() < deadline:
                time.sleep(0.05)
        signum = getattr(self.proc, "signalstatus", None)
        if signum:
            return f"killed by {signal.Signals(signum).name}"
        status = getattr(self.proc, "exitstatus", None)
        return "still running" if self.proc.isalive() else (
            f"exit {status}" if status is not None else "ended, status unknown")

    def close(self) -> None:
        """Hang up the console and end the process behind it; safe to call twice."""
        try:
            if self.proc.isalive():
                self.proc.terminate(force=True)
            self.proc.close()
        except (OSError, pexpect.ExceptionPexpect):
            pass
        finally:
            if not self._log.closed:
                self._log.close()


class ConsoleShell:
    """Runs commands at a shell prompt on a console (the `Shell` protocol).

    Each command is framed (`Framing`).  Output is the console's: stdout and
    stderr merged, and kernel messages the guest printed meanwhile may stand
    between its lines (parse accordingly).
    """

    def __init__(self, console: Console, name: str, timeout: float = 120.0) -> None:
        self.console = console
        self.name = name
        self.timeout = timeout
        self._framing = Framing("__PN")
        self._prompt = ""

    def attach(self, prompt: str, timeout: float) -> None:
        """Wait for the prompt, then turn echo off so output is only output."""
        self._prompt = prompt
        self.console.expect(re.escape(prompt), timeout)
        self.run(["stty", "-echo"], timeout=timeout)

    def run(self, argv: Sequence[str], timeout: float | None = None,
            check: bool = False) -> Result:
        command = quote(argv)
        return self.run_script(command, timeout, check, shown=command)

    def run_script(self, script: str, timeout: float | None = None, check: bool = False,
                   shown: str | None = None) -> Result:
        """Run a shell script line as typed (for kexec -e and the like)."""
        frame = self._framing.frame(script)
        wait = timeout or self.timeout
        self.console.sendline(frame.line)
        try:
            self.console.expect(frame.begin, wait)
            match = self.console.expect(frame.end, wait)
        except ConsoleTimeout as exc:
            self.console.send("\x03")  # leave the console at a prompt for the next command
            self._await_prompt()
            raise CommandTimeout(f"{self.name}: `{shown or script}` ran past {wait:.0f} s\n"
                                 f"{exc}") from None
        output = self.console.proc.before.replace("\r", "").removeprefix("\n")
        result = Result(shown or script, int(match[1]), output)
        if check and not result.ok:
            raise CommandFailed(result)
        return result

    def _await_prompt(self) -> None:
        """After an interrupt, wait a moment for the shell's next prompt: a line typed
        while the shell still handles the interrupt may be dropped with its input."""
        if self._prompt:
            with contextlib.suppress(ConsoleTimeout):
                self.console.expect(re.escape(self._prompt), PROMPT_AFTER_INTERRUPT)

    def spawn(self, argv: Sequence[str]) -> SpawnBase:
        raise ShellError(f"{self.name}: a console shell cannot spawn a second terminal")

    def put(self, local: Path, remote: str) -> None:
        raise ShellError(f"{self.name}: copying files over a console is not supported")

    def cache_dir(self) -> str:
        raise ShellError(f"{self.name}: a console shell keeps no cache")

    def stage(self, local: Path) -> str:
        raise ShellError(f"{self.name}: copying files over a console is not supported")

    def close(self) -> None:
        pass
