"""The powervm and kvm host kinds, end to end against their emulated twins.

Each twin is a QEMU TCG machine on 127.0.0.1 with an SSH server (see
powernest.twins); the suites reach it through an inventory entry written as
for the real host, and know nothing else about it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from powernest import twins
from powernest.cli import main
from powernest.hosts import HostLost, HostSession
from powernest.inventory import Kind, load_inventory
from powernest.lab import LabImages
from powernest.lease import HostHold
from powernest.shell import ConnectError
from runs import green_run, suite_properties, suites


def inventory_of(*twin: twins.Twin, **override: object) -> str:
    return yaml.safe_dump({"hosts": [{**t.inventory_entry(), **override} for t in twin]})


@pytest.fixture
def lpar_twin(lab: LabImages, tmp_path: Path) -> Iterator[twins.Twin]:
    twin = twins.start(Kind.POWERVM, lab, tmp_path / "twin", "lpar-twin")
    yield twin
    twin.stop()


def test_powervm_twin_l1_l2_and_kexec_over_ssh(tmp_path: Path, lpar_twin: twins.Twin) -> None:
    """The LPAR is the L1: kvm-hv checked, an L2 booted with its own QEMU, one kexec
    into its own kernel with a reconnect over SSH to the new boot."""
    run, results = green_run(
        tmp_path, inventory_of(lpar_twin), "-k",
        "test_l1_ or test_l2_runs or (test_kexec and 6.12-to-6.12 and not running)",
        run_id="e2e-lpar")
    junit = run / "junit.xml"
    case = "lpar-twin-nested-papr"
    for name in ("test_l1_boots", "test_l1_kvm_hv_loads", "test_l1_dev_kvm",
                 "test_l1_uses_offered_api", "test_l2_runs_under_kvm"):
        assert results[f"{name}[{case}]"] == "passed", name
    assert results[f"test_first_kernel[{case}-6.12-to-6.12]"] == "passed"
    # The twin's L0 is QEMU, which has the set-capabilities-once deviation: a strict xfail.
    assert results[f"test_after_kexec_or_reload[{case}-6.12-to-6.12]"] == "skipped"
    assert "known deviation qemu-v2-set-capabilities-once" in junit.read_text()
    l0 = suite_properties(junit, "lpar-twin/nested-papr")["l0"]
    # what the L0's answers depend on: its platform, processor (mode) and firmware level
    assert "emulated by qemu" in l0 and "processor POWER10 (architected)" in l0, l0
    assert "firmware " in l0, l0
    log = (run / "consoles" / "lpar-twin.lpar.log").read_text()
    boot_ids = {line.split("boot id ")[1].split(",")[0] for line in log.splitlines()
                if "connected:" in line}
    assert "kexec -e" in log and "back after" in log and len(boot_ids) == 2, log


def test_dead_lpar_is_detected_within_the_timeouts(lpar_twin: twins.Twin,
                                                   tmp_path: Path) -> None:
    """A hung host fails its connection within connect_timeout; a host that does
    not come back after a kexec is reported after the bounded wait."""
    path = tmp_path / "hosts.yaml"
    path.write_text(inventory_of(lpar_twin, ssh={**lpar_twin.inventory_entry()["ssh"],
                                                 "connect_timeout": 3}))
    host = load_inventory(path).hosts[0]
    session = HostSession.open(host, "e2e-dead", lease_timeout=10)
    old_boot = session.boot_id()
    session.close()
    pid = lpar_twin.console.proc.pid
    os.kill(pid, signal.SIGSTOP)   # hung: TCP still accepts, SSH never answers
    try:
        started = time.monotonic()
        with pytest.raises(ConnectError, match="within 3"):
            HostSession.open(host, "e2e-dead", lease_timeout=10)
        assert time.monotonic() - started < 3 + 2
    finally:
        os.kill(pid, signal.SIGCONT)
    lpar_twin.stop()   # gone for good
    session = HostSession(host, session.shell, session.l0_qemu,
                          HostHold(host.name, "e2e-dead", timeout=10))
    started = time.monotonic()
    with pytest.raises(HostLost, match="did not come back with a new kernel within 5 s"):
        session.wait_for_new_boot(old_boot, timeout=5)
    assert time.monotonic() - started < 5 + 3 + 2


@pytest.fixture(scope="module")
def kvm_twin(lab: LabImages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[twins.Twin]:
    twin = twins.start(Kind.KVM, lab, tmp_path_factory.mktemp("kvm-twin"), "kvm-twin")
    yield twin
    twin.stop()


def _remote_images(twin: twins.Twin, tmp_path: Path) -> str:
    """`name mtime` of every image the suite uploaded to the twin."""
    path = tmp_path / "hosts.yaml"
    path.write_text(inventory_of(twin))
    shell = HostSession.open(load_inventory(path).hosts[0], "e2e-probe", 10).shell
    try:
        script = 'find "$HOME/.cache/powernest/images" -type f -exec stat -c "%n %Y" {} + | sort'
        return shell.run(["sh", "-c", script], check=True).stdout
    finally:
        shell.close()


def test_kvm_twin_three_levels_over_ssh(tmp_path: Path, kvm_twin: twins.Twin) -> None:
    """powernv L0 (TCG) -> kvm host -> L1 under -accel kvm -> L2: nested-hv works,
    nested-papr is refused with QEMU's KVM error, and the images are uploaded once."""
    for run_dir in ("first", "second"):
        (tmp_path / run_dir).mkdir()
    run, results = green_run(tmp_path / "first", inventory_of(kvm_twin), "-k",
                             "test_caps or test_l1_ or test_l2_runs or test_l2_shell",
                             run_id="e2e-kvm")
    junit = run / "junit.xml"
    assert results["test_cap_acceptance[kvm-twin-power9-nested-hv]"] == "passed"
    assert results["test_cap_acceptance[kvm-twin-power9-nested-papr]"] == "passed"
    for name in ("test_l1_boots", "test_l1_kvm_hv_loads", "test_l1_uses_offered_api",
                 "test_l2_runs_under_kvm", "test_l2_shell_answers"):
        assert results[f"{name}[kvm-twin-nested-hv]"] == "passed", name
    assert suite_properties(junit, "kvm-twin/nested-hv")["l0"].endswith("(KVM)")
    uploaded = _remote_images(kvm_twin, tmp_path)
    assert "vmlinux-6.12" in uploaded and "l1.cpio" in uploaded

    done, _ = suites(tmp_path / "second", inventory_of(kvm_twin), "-k", "test_l1_boots",
                     run_id="e2e-kvm-again")
    assert done.returncode == 0, done.stdout[-3000:]
    assert _remote_images(kvm_twin, tmp_path) == uploaded, "the second run uploaded again"


@pytest.mark.parametrize(("kinds", "said"), [
    ("foo", "'foo': give powervm, kvm or both"),
    ("tcg", "tcg hosts need no twin"),
])
def test_twin_command_names_a_wrong_kind(kinds: str, said: str) -> None:
    result = CliRunner().invoke(main, ["lab", "twin", kinds])
    assert result.exit_code == 2 and said in result.output
