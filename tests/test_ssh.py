"""`SshShell` against a real OpenSSH server on 127.0.0.1 (the `sshd` fixture)."""

from __future__ import annotations

import io
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from powernest.shell import CommandFailed, CommandTimeout, ConnectError
from powernest.ssh import SshShell
from sshd import Sshd, free_port, keygen, running_sshd

pytestmark = pytest.mark.timeout(30)  # a regression fails instead of hanging


def shell_to(server: Sshd, name: str = "target", **options: object) -> SshShell:
    """An SshShell to `server` with its key and known_hosts, overridable by `options`."""
    settings: dict[str, object] = {"user": server.user, "key_file": server.key_file,
                                   "known_hosts": server.known_hosts, "connect_timeout": 5.0}
    settings.update(options)
    return SshShell(name, server.host, server.port, **settings)  # type: ignore[arg-type]


@pytest.fixture
def ssh(sshd: Sshd) -> Iterator[SshShell]:
    shell = shell_to(sshd)
    yield shell
    shell.close()


@pytest.fixture(scope="module")
def sshd_no_forwarding(tmp_path_factory: pytest.TempPathFactory, sshd: Sshd) -> Iterator[Sshd]:
    """A second sshd, which refuses to forward connections (a useless jump host)."""
    with running_sshd(tmp_path_factory.mktemp("sshd-nofwd"), ["AllowTcpForwarding no"]) as server:
        yield server


def wait_gone(shell: SshShell, pid: str, within: float = 5.0) -> bool:
    """True once process `pid` on `shell` no longer exists."""
    deadline = time.monotonic() + within
    while shell.run(["kill", "-0", pid]).ok:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_run_returns_output_and_exit_code(ssh: SshShell) -> None:
    result = ssh.run(["sh", "-c", "echo out; echo err >&2"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "out\n", "err\n")
    assert result.command == "sh -c 'echo out; echo err >&2'"


def test_awkward_arguments_arrive_verbatim(ssh: SshShell, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    awkward = ["two words", "it's", '"double"', f"$(touch {pwned})", f"`touch {pwned}`",
               "a;b", "x\ny", "*", "\\", "-n", ""]
    result = ssh.run(["printf", "%s\\0", *awkward], check=True)
    assert result.stdout.split("\0")[:-1] == awkward
    assert not pwned.exists()


def test_string_commands_are_refused(ssh: SshShell) -> None:
    with pytest.raises(TypeError):
        ssh.run("echo hi")  # type: ignore[arg-type]


def test_nonzero_exit_is_a_result(ssh: SshShell) -> None:
    result = ssh.run(["sh", "-c", "echo oops >&2; exit 3"])
    assert (result.exit_code, result.ok, result.stderr) == (3, False, "oops\n")


def test_check_raises_command_failed(ssh: SshShell) -> None:
    with pytest.raises(CommandFailed, match="exited 3: oops") as failed:
        ssh.run(["sh", "-c", "echo oops >&2; exit 3"], check=True)
    assert failed.value.result.exit_code == 3


def test_timeout_stops_waiting_and_connection_survives(ssh: SshShell) -> None:
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match="ran past 1 s"):
        ssh.run(["sleep", "30"], timeout=1)
    assert time.monotonic() - start < 5
    assert ssh.run(["echo", "still here"]).stdout == "still here\n"


def test_connection_is_reused_and_reopened_after_a_drop(ssh: SshShell) -> None:
    client_end = ["sh", "-c", 'echo "${SSH_CONNECTION% * *}"']
    first = ssh.run(client_end).stdout
    assert ssh.run(client_end).stdout == first
    with pytest.raises(ConnectError, match="target: .*127.0.0.1"):
        ssh.run(["sh", "-c", "kill -9 $PPID; sleep 5"], timeout=10)
    assert ssh.run(client_end).stdout not in ("", first)


def test_unknown_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    with pytest.raises(ConnectError) as refused:
        shell_to(sshd, known_hosts=known_hosts).run(["true"])
    message = str(refused.value)
    assert f"{sshd.host}:{sshd.port}" in message
    assert "unknown" in message and str(known_hosts) in message
    assert f"ssh-keyscan -p {sshd.port} {sshd.host} >> {known_hosts}" in message


def test_missing_known_hosts_file_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "known_hosts"
    with pytest.raises(ConnectError, match=f"{missing}, which does not exist"):
        shell_to(sshd, known_hosts=missing).run(["true"])


def test_changed_host_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    other = keygen(tmp_path / "other_host_key").with_suffix(".pub").read_text()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{sshd.host}]:{sshd.port} {other}")
    with pytest.raises(ConnectError) as refused:
        shell_to(sshd, known_hosts=known_hosts).run(["true"])
    message = str(refused.value)
    assert f"{sshd.host}:{sshd.port}" in message and "does NOT match" in message
    assert f"ssh-keygen -R '[{sshd.host}]:{sshd.port}' -f {known_hosts}" in message


def test_opting_out_of_host_key_checks_connects_with_a_warning(
        sshd: Sshd, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    other = keygen(tmp_path / "other_host_key").with_suffix(".pub").read_text()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{sshd.host}]:{sshd.port} {other}")
    shell = shell_to(sshd, known_hosts=known_hosts, verify_host_key=False)
    with caplog.at_level(logging.WARNING, logger="powernest.ssh"):
        assert shell.run(["echo", "in"]).stdout == "in\n"
    shell.close()
    assert f"NOT verifying the SSH host key of [{sshd.host}]:{sshd.port}" in caplog.text


def test_closed_port_fails_fast() -> None:
    port = free_port()
    shell = SshShell("dead", "127.0.0.1", port)
    start = time.monotonic()
    with pytest.raises(ConnectError, match=f"dead: cannot connect to .*127.0.0.1:{port}: "
                                           "Connection refused"):
        shell.run(["true"])
    assert time.monotonic() - start < 1


def test_server_that_never_answers_times_out() -> None:
    """A port whose SYNs are dropped (full accept queue): like a blackholed host."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())
        shell = SshShell("hole", "127.0.0.1", listener.getsockname()[1], connect_timeout=1.0)
        start = time.monotonic()
        with pytest.raises(ConnectError, match="hole: .*no answer within 1.0 s"):
            shell.run(["true"])
        assert time.monotonic() - start < 2.5


def test_server_that_never_sends_a_banner_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        shell = SshShell("mute", "127.0.0.1", port, connect_timeout=1.0)
        start = time.monotonic()
        with pytest.raises(ConnectError, match=f"mute: cannot connect to .*:{port}: "
                                               "no SSH handshake within 1.0 s"):
            shell.run(["true"])
        assert time.monotonic() - start < 2.5


def test_spawn_drives_an_interactive_shell(ssh: SshShell) -> None:
    child = ssh.spawn(["sh"])
    child.logfile_read = io.StringIO()
    child.sendline("echo $((6 * 7))")
    child.expect("42", timeout=5)
    assert child.after == "42"
    child.sendline("stty size")
    child.expect(r"(\d+) (\d+)", timeout=5)
    assert child.match.group(2) == "400"
    child.sendline("exit 5")
    child.expect(pexpect.EOF, timeout=5)
    assert not child.isalive() and child.exitstatus == 5
    assert "42" in child.logfile_read.getvalue()
    child.close()


def test_spawn_close_hangs_up_the_remote_process(ssh: SshShell, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    child = ssh.spawn(["sh", "-c", f"echo $$ > {pidfile}; echo started; exec sleep 300"])
    child.expect("started", timeout=5)
    pid = pidfile.read_text().strip()
    assert child.isalive() and ssh.run(["kill", "-0", pid]).ok
    child.close()
    assert not child.isalive() and child.exitstatus is None
    assert wait_gone(ssh, pid)


def test_spawn_read_times_out(ssh: SshShell) -> None:
    child = ssh.spawn(["sleep", "30"])
    start = time.monotonic()
    with pytest.raises(pexpect.TIMEOUT):
        child.expect("never", timeout=0.5)
    assert time.monotonic() - start < 2
    child.close()


def test_put_copies_a_file(ssh: SshShell, tmp_path: Path) -> None:
    local = tmp_path / "local.bin"
    local.write_bytes(bytes(range(256)) * 100)
    remote = tmp_path / "remote.bin"
    ssh.put(local, str(remote))
    assert ssh.run(["cmp", str(local), str(remote)]).ok


def test_jump_host_carries_the_connection(sshd: Sshd) -> None:
    jump = shell_to(sshd, "jump")
    target = shell_to(sshd, gateway=jump)
    assert target.run(["echo", "through"]).stdout == "through\n"
    target.close()
    jump.close()


def test_jump_host_that_refuses_to_forward_fails(sshd: Sshd, sshd_no_forwarding: Sshd) -> None:
    """Proof that the gateway really carries the connection: one that won't, breaks it."""
    jump = shell_to(sshd_no_forwarding, "jump")
    target = shell_to(sshd, gateway=jump)
    with pytest.raises(ConnectError, match=f"target: cannot connect to .*:{sshd.port} "
                                           r"\(via jump\): jump did not open .*prohibited"):
        target.run(["true"])
    assert jump.run(["echo", "jump ok"]).ok
    jump.close()


def test_password_env_unset_is_a_clear_error(sshd: Sshd,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POWERNEST_TEST_PASSWORD", raising=False)
    shell = shell_to(sshd, password_env="POWERNEST_TEST_PASSWORD")
    with pytest.raises(ConnectError, match=r"\$POWERNEST_TEST_PASSWORD, which is not set"):
        shell.run(["true"])


def test_password_never_shows(sshd: Sshd, monkeypatch: pytest.MonkeyPatch,
                              caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cret-Pa55word"
    monkeypatch.setenv("POWERNEST_TEST_PASSWORD", secret)
    shell = shell_to(sshd, key_file=None, password_env="POWERNEST_TEST_PASSWORD")
    with caplog.at_level(logging.DEBUG), pytest.raises(ConnectError) as refused:
        shell.run(["true"])
    assert "authentication" in str(refused.value)
    for text in (str(refused.value), repr(shell), caplog.text):
        assert secret not in text


def test_close_is_idempotent(ssh: SshShell) -> None:
    ssh.run(["true"])
    ssh.close()
    ssh.close()
    assert ssh.run(["echo", "again"]).stdout == "again\n"
