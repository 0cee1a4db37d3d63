"""A throwaway OpenSSH server on 127.0.0.1, run as the current user, for the SSH tests."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
_START_TIMEOUT = 10.0


@dataclass(frozen=True)
class Sshd:
    """How to reach a running test sshd; `log` is its stderr (LogLevel VERBOSE)."""

    host: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path
    host_key_pub: str
    log: Path


def keygen(path: Path) -> Path:
    """A new passphrase-less ed25519 key pair at `path` and `path`.pub."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "powernest-test",
                    "-f", str(path)], check=True)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(workdir: Path, port: int, host_key: Path, authorized_keys: Path,
            extra: Sequence[str]) -> Path:
    lines = [
        "ListenAddress 127.0.0.1",
        f"Port {port}",
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized_keys}",
        f"PidFile {workdir / 'sshd.pid'}",
        "StrictModes no",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "LogLevel VERBOSE",
        f"Subsystem sftp {SFTP_SERVER}",
        *extra,
    ]
    path = workdir / f"sshd_config.{port}"
    path.write_text("\n".join(lines) + "\n")
    return path


def _wait_listening(proc: subprocess.Popen[bytes], port: int) -> bool:
    """True once sshd accepts on `port`; False if it exited (e.g. the port was taken)."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"sshd did not listen on 127.0.0.1:{port} within {_START_TIMEOUT} s")


@contextmanager
def running_sshd(workdir: Path, extra: Sequence[str] = ()) -> Iterator[Sshd]:
    """Run sshd with fresh host and client keys in `workdir`; `extra` adds config lines."""
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
    host_key = keygen(workdir / "host_key")
    client_key = keygen(workdir / "client_key")
    authorized_keys = workdir / "authorized_keys"
    authorized_keys.write_text(client_key.with_suffix(".pub").read_text())
    log = workdir / "sshd.log"
    for _attempt in range(3):
        port = free_port()
        config = _config(workdir, port, host_key, authorized_keys, extra)
        with log.open("ab") as log_file:
            proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)],
                                    stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
        if _wait_listening(proc, port):
            break
    else:
        raise RuntimeError(f"sshd would not start; see {log}:\n{log.read_text()}")
    host_key_pub = host_key.with_suffix(".pub").read_text().strip()
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key_pub}\n")
    try:
        yield Sshd("127.0.0.1", port, getpass.getuser(), client_key, known_hosts,
                   host_key_pub, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
