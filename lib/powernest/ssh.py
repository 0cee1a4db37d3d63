"""`SshShell`: the `Shell` protocol on a remote machine, over SSH (fabric on paramiko).

Host keys are checked against a known_hosts file and unknown or changed keys are
refused, unless the caller explicitly opts out with `verify_host_key=False`.
"""

from __future__ import annotations

import getpass
import logging
import os
import select
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut
from paramiko.ssh_exception import NoValidConnectionsError
from pexpect import EOF, TIMEOUT
from pexpect.spawnbase import SpawnBase

from powernest.lab.cache import file_digest
from powernest.shell import CommandFailed, CommandTimeout, ConnectError, Result, ShellError, quote

log = logging.getLogger(__name__)
# paramiko's transport thread logs a traceback for a failed handshake, which
# would reach the terminal through logging's last resort; ConnectError says it.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

_PTY_COLS, _PTY_ROWS = 400, 50
REMOTE_CACHE = ".cache/powernest"   # under the remote user's home
_EXIT_WAIT = 2.0  # seconds to wait for the exit status after the end of output
_SSH_ERRORS = (paramiko.SSHException, OSError, EOFError)


class _Reject(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, remembering the key it refused for the error message."""

    def __init__(self) -> None:
        self.refused: paramiko.PKey | None = None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> NoReturn:
        self.refused = key
        super().missing_host_key(client, hostname, key)


class _Trust(paramiko.MissingHostKeyPolicy):
    """Accept any host key, with a logged warning (the `verify_host_key=False` opt-out)."""

    def __init__(self, shell: str) -> None:
        self.shell = shell

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        log.warning("%s: NOT verifying the SSH host key of %s (%s %s): verify_host_key is off",
                    self.shell, hostname, key.get_name(), key.fingerprint)


class ChannelSpawn(SpawnBase):
    """pexpect on a command running on a remote pty, through a paramiko channel.

    `expect`, `before`/`after`, `logfile_read` and `sendline` behave as with
    `pexpect.spawn`.  `close()` hangs up the pty, so the remote process gets
    SIGHUP; `exitstatus` is None while it runs, or if it died of a signal.
    """

    def __init__(self, channel: paramiko.Channel, name: str, timeout: float | None = 30) -> None:
        super().__init__(timeout=timeout, encoding="utf-8", codec_errors="replace")
        self.channel = channel
        self.name = f"<{name}>"
        self.closed = False
        self.terminated = False

    def read_nonblocking(self, size: int = 1, timeout: float | None = -1) -> str:
        """Up to `size` characters; TIMEOUT if none come within `timeout`, EOF at the end."""
        if self.closed:
            raise ValueError(f"{self.name}: I/O operation on a closed channel")
        if timeout == -1:
            timeout = self.timeout
        ready, _, _ = select.select([self.channel], [], [], timeout)
        if not ready:
            raise TIMEOUT(f"{self.name}: no output within {timeout} s")
        data = self.channel.recv(size)
        if not data:
            self.flag_eof = True
            self.channel.status_event.wait(_EXIT_WAIT)
            self._reap()
            raise EOF(f"{self.name}: end of output")
        text = self._decoder.decode(data, final=False)
        self._log(text, "read")
        return text

    def send(self, s: str | bytes) -> int:
        s = self._coerce_send_string(s)
        self._log(s, "send")
        data = self._encoder.encode(s, final=False)
        self.channel.sendall(data)
        return len(data)

    def sendline(self, s: str = "") -> int:
        return self.send(self._coerce_send_string(s) + self.linesep)

    def write(self, s: str) -> None:
        self.send(s)

    def writelines(self, sequence: Sequence[str]) -> None:
        for s in sequence:
            self.send(s)

    def _reap(self) -> None:
        """Record the exit status once the remote command has finished."""
        if not self.terminated and self.channel.exit_status_ready():
            status = self.channel.recv_exit_status()
            self.exitstatus = self.status = None if status == -1 else status
            self.terminated = True

    def isalive(self) -> bool:
        """True until the remote command exits or the channel is closed."""
        self._reap()
        return not self.terminated

    def terminate(self, force: bool = False) -> bool:
        """Hang up, as `close()`, and return True; `force` is there for pexpect's API.

        There is nothing stronger to send: OpenSSH ignores SSH "signal" requests
        in root sessions.
        """
        self.close()
        return not self.isalive()

    def close(self) -> None:
        """Close the channel: sshd hangs up the pty and the remote process gets SIGHUP."""
        if not self.closed:
            self.channel.close()
            self.closed = True
            self._reap()


class SshShell:
    """Runs commands on a remote machine over one SSH connection, reopened if it drops.

    Authentication uses `key_file`, the ssh agent and ~/.ssh keys (paramiko's
    defaults), and a password only if `password_env` names an environment
    variable holding it.  `gateway` is a jump host (OpenSSH's ProxyJump); closing
    this shell leaves the gateway open.
    """

    def __init__(self, name: str, host: str, port: int = 22, user: str | None = None,
                 key_file: Path | None = None, password_env: str | None = None,
                 known_hosts: Path | None = None, verify_host_key: bool = True,
                 connect_timeout: float = 10.0, keepalive: int = 15,
                 gateway: SshShell | None = None) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.user = user or getpass.getuser()
        self.key_file = key_file
        self.password_env = password_env
        self.known_hosts = known_hosts or Path("~/.ssh/known_hosts").expanduser()
        self.verify_host_key = verify_host_key
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.gateway = gateway
        self._conn: Connection | None = None
        self._cache_dir = ""
        self._staged: dict[Path, str] = {}

    def __repr__(self) -> str:
        via = f" via {self.gateway.name}" if self.gateway else ""
        return f"SshShell({self.name!r}, {self._where}{via})"

    @property
    def _where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def _known_hosts_name(self) -> str:
        """How known_hosts names this host (as paramiko and OpenSSH look it up)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def run(self, argv: Sequence[str], timeout: float | None = None,
            check: bool = False) -> Result:
        """Run argv without a pty; past `timeout` its channel is closed (CommandTimeout).

        Closing the channel does not kill the remote command: it only dies of SIGPIPE
        when it next writes.  Bound long remote commands themselves if that matters,
        e.g. ["timeout", "60", ...].
        """
        command = quote(argv)
        conn = self._connection()
        started = time.monotonic()
        try:
            done = conn.run(command, hide=True, warn=True, pty=False, in_stream=False,
                            timeout=timeout)
        except CommandTimedOut as exc:
            raise CommandTimeout(f"{self.name}: `{command}` ran past {timeout} s") from exc
        except _SSH_ERRORS as exc:
            raise ConnectError(f"{self.name}: lost {self._where} running `{command}`: "
                               f"{exc}") from exc
        # invoke only says "timed out" once its timer thread has finished; on a busy
        # machine the closed channel can return first, with no exit status
        if done.exited == -1 and timeout is not None and time.monotonic() - started >= timeout:
            raise CommandTimeout(f"{self.name}: `{command}` ran past {timeout} s")
        if done.exited == -1 and not conn.is_connected:
            raise ConnectError(f"{self.name}: the connection to {self._where} dropped "
                               f"while running `{command}`")
        result = Result(command, done.exited, done.stdout, done.stderr)
        if check and not result.ok:
            raise CommandFailed(result)
        return result

    def spawn(self, argv: Sequence[str]) -> ChannelSpawn:
        """Start argv on a remote pty (400 columns); closing the result hangs it up."""
        command = quote(argv)
        conn = self._connection()
        try:
            channel = conn.transport.open_session(timeout=self.connect_timeout)
            channel.get_pty(width=_PTY_COLS, height=_PTY_ROWS)
            channel.exec_command(command)
        except _SSH_ERRORS as exc:
            raise ConnectError(f"{self.name}: cannot start `{command}` on {self._where}: "
                               f"{exc}") from exc
        return ChannelSpawn(channel, f"{self.name}: {command}")

    def put(self, local: Path, remote: str) -> None:
        """Copy `local` to `remote` over SFTP."""
        conn = self._connection()
        try:
            conn.sftp().put(str(local), remote)
        except _SSH_ERRORS as exc:
            raise ShellError(f"{self.name}: cannot copy {local} to {remote}: {exc}") from exc

    def cache_dir(self) -> str:
        """~/.cache/powernest of the remote user."""
        if not self._cache_dir:
            home = self.run(["sh", "-c", 'printf "%s" "$HOME"'], check=True).stdout
            self._cache_dir = f"{home}/{REMOTE_CACHE}"
        return self._cache_dir

    def stage(self, local: Path) -> str:
        """`local` in the remote cache under its SHA-256, uploaded if it is not there yet
        (through a `.part` file, so a dropped upload is never taken for a copy)."""
        if local not in self._staged:
            remote_dir = f"{self.cache_dir()}/images/{file_digest(local)[:32]}"
            remote = f"{remote_dir}/{local.name}"
            if not self.run(["test", "-f", remote]).ok:
                self.run(["mkdir", "-p", remote_dir], check=True)
                self.put(local, remote + ".part")
                self.run(["mv", remote + ".part", remote], check=True)
            self._staged[local] = remote
        return self._staged[local]

    def close(self) -> None:
        """Close the connection (it reopens on the next command); safe to call twice."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> Connection:
        """The open connection; opens one if there is none or the last one dropped."""
        if self._conn is None or not self._conn.is_connected:
            self.close()
            self._conn = self._open()
        return self._conn

    def _open(self) -> Connection:
        """A new, authenticated connection with host keys checked (unless opted out)."""
        timeout = self.connect_timeout
        kwargs: dict[str, object] = {"timeout": timeout, "banner_timeout": timeout,
                                     "auth_timeout": timeout, "channel_timeout": timeout}
        if self.key_file is not None:
            kwargs["key_filename"] = str(self.key_file)
        if self.password_env is not None:
            password = os.environ.get(self.password_env)
            if password is None:
                raise ConnectError(f"{self.name}: the password for {self._where} comes from "
                                   f"${self.password_env}, which is not set")
            kwargs["password"] = password
        # An empty SSHConfig and lazy=True: no ~/.ssh/config or fabric config files.
        config = Config(ssh_config=paramiko.SSHConfig(), lazy=True)
        gateway = self.gateway._connection() if self.gateway else None
        conn = Connection(self.host, user=self.user, port=self.port, config=config,
                          connect_kwargs=kwargs, gateway=gateway)
        policy: _Reject | None = None
        if self.verify_host_key:
            if self.known_hosts.exists():
                # "system" keys: paramiko never writes them back to the file
                conn.client.load_system_host_keys(str(self.known_hosts))
            policy = _Reject()
            conn.client.set_missing_host_key_policy(policy)
        else:
            conn.client.set_missing_host_key_policy(_Trust(self.name))
        start = time.monotonic()
        try:
            conn.open()
        except _SSH_ERRORS as exc:
            conn.client.close()
            slow = time.monotonic() - start >= timeout
            raise self._connect_error(exc, policy, slow) from exc
        if self.keepalive:
            conn.transport.set_keepalive(self.keepalive)
        return conn

    def _connect_error(self, exc: Exception, policy: _Reject | None,
                       slow: bool) -> ConnectError:
        """A ConnectError for a failed `Connection.open`, naming the host and what to do.

        `slow`: it failed after connect_timeout, whatever paramiko says (a handshake
        that timed out can surface as "No existing session").
        """
        where = self._where + (f" (via {self.gateway.name})" if self.gateway else "")
        known = self.known_hosts
        keyscan = f"ssh-keyscan -p {self.port} {self.host} >> {known}"
        if self.gateway:
            keyscan += f" (run on {self.gateway.name}, or anywhere that reaches {self.host})"
        if isinstance(exc, paramiko.BadHostKeyException):
            return ConnectError(
                f"{self.name}: the host key of {where} ({exc.key.get_name()} "
                f"{exc.key.fingerprint}) does NOT match the one for {self._known_hosts_name} "
                f"in {known}. If the machine was reinstalled, check the new key and replace "
                f"the old one: ssh-keygen -R '{self._known_hosts_name}' -f {known} && {keyscan}")
        if policy is not None and policy.refused is not None:
            missing = "" if known.exists() else ", which does not exist"
            return ConnectError(
                f"{self.name}: the host key of {where} ({policy.refused.get_name()} "
                f"{policy.refused.fingerprint}) is unknown: {self._known_hosts_name} is not in "
                f"{known}{missing}. Check the fingerprint, then add the key: {keyscan}")
        if isinstance(exc, paramiko.AuthenticationException):
            tried = ["ssh agent and ~/.ssh keys"]
            if self.key_file is not None:
                tried.insert(0, f"key {self.key_file}")
            if self.password_env is not None:
                tried.append(f"password from ${self.password_env}")
            return ConnectError(f"{self.name}: authentication to {where} failed "
                                f"(tried {', '.join(tried)}): {exc}")
        if isinstance(exc, TimeoutError):
            return ConnectError(f"{self.name}: cannot connect to {where}: no answer within "
                                f"{self.connect_timeout} s")
        if slow and isinstance(exc, paramiko.SSHException):
            return ConnectError(f"{self.name}: cannot connect to {where}: no SSH handshake "
                                f"within {self.connect_timeout} s")
        if isinstance(exc, paramiko.ChannelException) and self.gateway:
            return ConnectError(f"{self.name}: cannot connect to {where}: {self.gateway.name} "
                                f"did not open a connection to it: {exc.text}")
        if isinstance(exc, NoValidConnectionsError):
            reasons = sorted({str(getattr(e, "strerror", e)) for e in exc.errors.values()})
            return ConnectError(f"{self.name}: cannot connect to {where}: {'; '.join(reasons)}")
        return ConnectError(f"{self.name}: cannot connect to {where}: {exc}")
