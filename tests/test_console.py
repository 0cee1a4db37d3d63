"""The console reader: logs as it reads, fails at once on crashes, times out with the tail."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from powernest.console import (
    Console,
    ConsoleClosed,
    ConsoleShell,
    ConsoleTimeout,
    GuestCrash,
    find_failure,
)
from powernest.local import LocalShell
from powernest.shell import CommandTimeout

OOPS = ("BUG: Unable to handle kernel data access on read at 0x00000008\n"
        "Oops: Kernel access of bad area, sig: 11 [#1]\n"
        "NIP [c000000000123456] kvmppc_run_vcpu+0x40/0x1f0 [kvm_hv]\n"
        "Call Trace:\n [c00000000abcdef0] kvmppc_vcpu_run_hv+0x1c4/0x650 [kvm_hv]\n")


def console_of(tmp_path: Path, script: str) -> Console:
    return Console(LocalShell().spawn(["sh", "-c", script]), tmp_path / "con.log", "guest")


@pytest.mark.parametrize(("text", "kind"), [
    ("Kernel panic - not syncing: VFS: Unable to mount root fs", "kernel panic"),
    (OOPS, "oops"),
    ("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [sh:1]", "soft lockup"),
    ("watchdog: CPU 1 detected hard LOCKUP on other CPUs 0", "hard lockup"),
    ("rcu: INFO: rcu_sched self-detected stall on CPU", "RCU stall"),
    ("rcu: INFO: rcu_sched detected stalls on CPUs/tasks:", "RCU stall"),
])
def test_failure_kinds(text: str, kind: str) -> None:
    found = find_failure("ok line\n" + text)
    assert found is not None and found[0] == kind


def test_clean_boot_text_is_no_failure() -> None:
    assert find_failure("kvm-hv: nestedv2 get capabilities hcall failed\nNMI watchdog: ok\n") \
        is None


def test_panic_fails_the_wait_at_once_with_the_trace(tmp_path: Path) -> None:
    console = Console(LocalShell().spawn(["sh", "-c", "echo booting; sleep 0.2; "
                                          "printf '%s' \"$1\"; sleep 60", "sh", OOPS]),
                      tmp_path / "con2.log", "guest")
    started = time.monotonic()
    with pytest.raises(GuestCrash) as exc:
        console.expect("LOGIN-PROMPT", timeout=60)
    elapsed = time.monotonic() - started
    console.close()
    assert exc.value.kind == "oops"
    assert "kvmppc_vcpu_run_hv" in exc.value.trace  # the trace after the first line
    assert elapsed < 15, f"crash noticed only after {elapsed:.1f} s"
    assert "Oops: Kernel access" in (tmp_path / "con2.log").read_text()


def test_timeout_names_the_pattern_and_shows_the_tail(tmp_path: Path) -> None:
    console = console_of(tmp_path, "for i in 1 2 3; do echo line-$i; done; sleep 60")
    with pytest.raises(ConsoleTimeout) as exc:
        console.expect("NEVER", timeout=1)
    console.close()
    assert "NEVER" in str(exc.value) and "line-3" in str(exc.value)
    assert str(tmp_path / "con.log") in str(exc.value)


def test_process_exit_is_reported(tmp_path: Path) -> None:
    console = console_of(tmp_path, "echo qemu-system-ppc64: cannot start; exit 1")
    with pytest.raises(ConsoleClosed, match="cannot start"):
        console.expect("READY", timeout=10)
    console.close()


def test_close_kills_the_process(tmp_path: Path) -> None:
    console = console_of(tmp_path, "sleep 300")
    pid = console.proc.pid
    console.close()
    console.close()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status") \
        .read_text().lower()


def test_console_shell_runs_commands(tmp_path: Path) -> None:
    # the shell as a terminal gets it, whatever this process ignores (a job started with &
    # by a shell without job control ignores SIGINT, and so would its children)
    proc = LocalShell().spawn(["env", "--default-signal=INT", "PS1=powernest-l1# ", "sh", "-i"])
    shell = ConsoleShell(Console(proc, tmp_path / "sh.log", "l1"), "l1", timeout=10)
    shell.attach("powernest-l1# ", timeout=10)
    result = shell.run(["sh", "-c", 'printf "%s\\n" "$1"; exit 3', "sh", "a b;$(x)"])
    assert result.exit_code == 3 and result.stdout == "a b;$(x)\n"
    assert shell.run(["true"]).ok
    with pytest.raises(CommandTimeout):
        shell.run(["sleep", "30"], timeout=1)
    assert shell.run(["echo", "still-usable"]).stdout == "still-usable\n"
    shell.console.close()


NOISY_GUEST = r"""
import re, sys
sys.stdout.write("powernest-l1# "); sys.stdout.flush()
for line in sys.stdin:
    n = re.search(r"__PN(\d+)B__", line)[1]
    noise = "[    7.418800] KVM-NESTEDv2: couldn't register the L2 VPA (rc=-56)\r\n"
    sys.stdout.write(f"__PN{n}B__{noise}out-{n}\r\n__PN{n}RC=3{noise}powernest-l1# ")
    sys.stdout.flush()
"""


def test_console_shell_survives_kernel_lines_right_after_its_markers(tmp_path: Path) -> None:
    """The guest kernel may print at any moment, even between a marker and its newline."""
    script = tmp_path / "noisy.py"
    script.write_text(NOISY_GUEST)
    proc = LocalShell().spawn([sys.executable, str(script)])
    shell = ConsoleShell(Console(proc, tmp_path / "noisy.log", "l1"), "l1", timeout=10)
    shell.attach("powernest-l1# ", timeout=10)
    result = shell.run(["true"])
    assert result.exit_code == 3
    assert "out-2" in result.stdout
    shell.console.close()
