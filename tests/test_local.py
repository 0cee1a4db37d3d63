"""`LocalShell`: the `Shell` protocol on the controller itself."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pexpect
import pytest

from powernest.local import LocalShell
from powernest.shell import CommandFailed, CommandTimeout, Shell, ShellError


@pytest.fixture
def local() -> LocalShell:
    return LocalShell("here")

pytestmark = pytest.mark.timeout(30)  # a regression fails instead of hanging


def _use_a_machine(shell: Shell, workdir: Path) -> tuple[str, str, int]:
    """What the library does with any `Shell`: copy a file there, run a command on it,
    drive a program on a terminal, hang up."""
    source = workdir / "sent"
    source.write_text("payload\n")
    shell.put(source, str(workdir / "received"))
    out = shell.run(["cat", str(workdir / "received")], check=True).stdout
    child = shell.spawn(["sh", "-c", "read line; echo got:$line; exit 4"])
    child.sendline("typed")
    child.expect(r"got:(\w+)", timeout=5)
    typed = child.match.group(1)
    child.expect(pexpect.EOF, timeout=5)
    child.close()
    shell.close()
    return out, typed, child.exitstatus


def test_serves_as_a_shell(local: LocalShell, tmp_path: Path) -> None:
    assert _use_a_machine(local, tmp_path) == ("payload\n", "typed", 4)


def test_run_returns_output_and_exit_code(local: LocalShell) -> None:
    result = local.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.exit_code, result.ok) == (3, False)
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    assert result.command == "sh -c 'echo out; echo err >&2; exit 3'"


def test_awkward_arguments_arrive_verbatim(local: LocalShell, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    awkward = ["two words", "it's", '"double"', f"$(touch {pwned})", "a;b", "x\ny", "*", ""]
    result = local.run(["printf", "%s\\0", *awkward], check=True)
    assert result.stdout.split("\0")[:-1] == awkward
    assert not pwned.exists()


def test_check_raises_command_failed(local: LocalShell) -> None:
    with pytest.raises(CommandFailed, match="exited 3: oops") as failed:
        local.run(["sh", "-c", "echo oops >&2; exit 3"], check=True)
    assert failed.value.result.exit_code == 3


def test_missing_program_is_a_shell_error(local: LocalShell) -> None:
    with pytest.raises(ShellError, match="here: cannot run `no-such-program-xyz`"):
        local.run(["no-such-program-xyz"])


def test_timeout_kills_the_command(local: LocalShell, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match="ran past 1 s"):
        local.run(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"], timeout=1)
    assert time.monotonic() - start < 5
    with pytest.raises(ProcessLookupError):
        os.kill(int(pidfile.read_text()), 0)


def test_spawn_drives_an_interactive_shell(local: LocalShell) -> None:
    child = local.spawn(["sh"])
    child.sendline("echo $((6 * 7))")
    child.expect("42", timeout=5)
    child.sendline("stty size")
    child.expect(r"(\d+) (\d+)", timeout=5)
    assert child.match.group(2) == "400"
    child.sendline("exit 5")
    child.expect(pexpect.EOF, timeout=5)
    child.close()
    assert child.exitstatus == 5


def test_spawn_missing_program_is_a_shell_error(local: LocalShell) -> None:
    with pytest.raises(ShellError, match="`no-such-program-xyz` not found"):
        local.spawn(["no-such-program-xyz"])


def test_put_copies_a_file(local: LocalShell, tmp_path: Path) -> None:
    source = tmp_path / "a"
    source.write_bytes(b"\x00payload\xff")
    local.put(source, str(tmp_path / "b"))
    assert (tmp_path / "b").read_bytes() == b"\x00payload\xff"
