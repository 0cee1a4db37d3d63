"""Host leases: exclusive, released when the holder dies, stale guests reaped."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from powernest import lease
from powernest.local import LocalShell
from powernest.ssh import SshShell
from sshd import Sshd

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def host() -> str:
    name = f"t-lease-{secrets.token_hex(3)}"
    yield name
    for path in (lease.lock_path(name), lease.record_path(name)):
        Path(path).unlink(missing_ok=True)


def test_second_run_waits_then_is_told_who_holds_it(host: str) -> None:
    first = lease.acquire(LocalShell(), host, "run-a", timeout=5)
    started = time.monotonic()
    with pytest.raises(lease.LeaseBusy) as busy:
        lease.acquire(LocalShell(), host, "run-b", timeout=1)
    assert 0.9 < time.monotonic() - started < 10
    assert "host leased by" in str(busy.value) and "(run run-a)" in str(busy.value)
    first.release()
    assert not Path(lease.record_path(host)).exists(), "a released lease leaves no record"
    second = lease.acquire(LocalShell(), host, "run-b", timeout=5)
    assert second.took_over == "", "nothing to take over from a run that let go"
    second.release()


def test_a_killed_holder_frees_the_lease(host: str) -> None:
    """A controller SIGKILLed while holding a lease leaves a record, not a lock."""
    holder = _holder(host, "run-dead")
    holder.kill()
    holder.wait()
    started = time.monotonic()
    taken = lease.acquire(LocalShell(), host, "run-new", timeout=10)
    assert time.monotonic() - started < 5
    assert "run-dead" in taken.took_over
    taken.release()


def test_reap_kills_only_guests_of_other_runs(host: str, tmp_path: Path) -> None:
    def guest(name: str) -> None:
        subprocess.run(["qemu-system-ppc64", "-name", name, "-M", "pseries", "-S",
                        "-daemonize", "-display", "none", "-vga", "none", "-monitor", "none",
                        "-serial", "none", "-m", "256M", "-pidfile", str(tmp_path / name)],
                       check=True, timeout=60)

    mine, stale, other_host = (f"pn.run-now.{host}-nested-hv.l1-1",
                               f"pn.run-gone.{host}-nested-papr.l1-3",
                               f"pn.run-gone.{host}x-nested-hv.l1-1")
    for name in (mine, stale, other_host):
        guest(name)
    try:
        assert lease.reap(LocalShell(), host, "run-now") == [stale]
        time.sleep(0.5)
        alive = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True,
                               text=True).stdout
        assert stale not in alive and mine in alive and other_host in alive
    finally:
        subprocess.run(["pkill", "-9", "-f", "--", f"-name pn.run-(now|gone).{host}"])


def test_lease_over_ssh_ends_with_the_connection(host: str, sshd: Sshd) -> None:
    def shell() -> SshShell:
        return SshShell("lab", sshd.host, port=sshd.port, user=sshd.user,
                        key_file=sshd.key_file, known_hosts=sshd.known_hosts)

    holder_shell = shell()
    held = lease.acquire(holder_shell, host, "run-ssh", timeout=5)
    assert held.holder.isalive()
    with pytest.raises(lease.LeaseBusy, match="run-ssh"):
        lease.acquire(shell(), host, "run-other", timeout=1)
    holder_shell.close()  # the controller's connection drops: the remote holder hangs up
    assert not held.holder.isalive()
    taken = lease.acquire(shell(), host, "run-other", timeout=10)
    assert "run-ssh" in taken.took_over
    taken.release()


def _holder(host: str, run_id: str) -> subprocess.Popen[str]:
    """Another controller: a process that takes the host's lease and keeps it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time\n"
         "from powernest import lease\nfrom powernest.local import LocalShell\n"
         f"held = lease.acquire(LocalShell(), {host!r}, {run_id!r}, 5)\n"
         "print('held', flush=True)\ntime.sleep(600)\n"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_skips_a_leased_host_then_takes_it_over(tmp_path: Path) -> None:
    """While another run holds a host, a run skips it naming the holder; once it is gone,
    the next run takes the host over."""
    host = f"p9-shared-{secrets.token_hex(2)}"
    (tmp_path / "hosts.yaml").write_text(
        f"hosts:\n  - {{name: {host}, kind: tcg, cpu: power9, apis: [nested-hv]}}\n")
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(REPO / "suites"),
            "--inventory", str(tmp_path / "hosts.yaml"), "--reports", str(tmp_path / "r"),
            "-q", "-k", "test_cap", "--lease-timeout", "2", "-rs"]
    other = _holder(host, "other-run")
    try:
        blocked = subprocess.run([*base, "--run-id", "second"], cwd=REPO,
                                 capture_output=True, text=True, timeout=300)
    finally:
        other.kill()
        other.wait()
    after = subprocess.run([*base, "--run-id", "third"], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    for path in (lease.lock_path(host), lease.record_path(host)):
        Path(path).unlink(missing_ok=True)
    assert blocked.returncode == 0, blocked.stdout[-2000:]
    assert "host leased by" in blocked.stdout and "(run other-run)" in blocked.stdout
    assert "passed" not in blocked.stdout.splitlines()[-1]
    assert after.returncode == 0 and "12 passed" in after.stdout, after.stdout[-2000:]
    junit = (tmp_path / "r" / "third" / "junit.xml").read_text()
    assert "lease_taken_over_from" in junit and "other-run" in junit
