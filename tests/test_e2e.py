"""End to end on the emulated lab: real QEMU, real kernels, locally and over SSH.

Each test runs the conformance suites in a child pytest against an inventory
written for it and reads back the JUnit it produced.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from powernest.console import ConsoleTimeout, GuestCrash
from powernest.guests import L1Guest
from powernest.lab import LabImages
from powernest.local import LocalShell
from powernest.qemu import GuestSpec
from runs import (
    PYTEST,
    REPO,
    green_run,
    outcomes,
    qemu_running,
    suite_properties,
    suites,
    validate,
)
from sshd import Sshd, running_sshd


def ssh_section(server: Sshd, indent: str) -> str:
    """The inventory fields that reach a test sshd, indented for a YAML mapping."""
    fields = {"host": server.host, "port": server.port, "user": server.user,
              "key_file": server.key_file, "known_hosts": server.known_hosts}
    return "".join(f"{indent}{key}: {value}\n" for key, value in fields.items())


def test_l1_and_l2_under_v2_locally(tmp_path: Path, lab: LabImages) -> None:
    inventory = "hosts:\n  - {name: p9-local, kind: tcg, cpu: power9, apis: [nested-papr]}\n"
    # the L1 and L2 suites (a bare "test_l2" would also pick the lifecycle cases)
    run, results = green_run(tmp_path, inventory, "-k", "test_l1.py or test_l2.py")
    junit = run / "junit.xml"
    assert results["test_l1_uses_offered_api[p9-local-nested-papr]"] == "passed"
    assert results["test_l2_runs_under_kvm[p9-local-nested-papr]"] == "passed"
    assert results["test_l2_vpa_registered[p9-local-nested-papr]"] == "skipped"  # xfail
    props = suite_properties(junit, "p9-local/nested-papr")
    assert props["api"] == "nested-papr" and props["cpu"] == "power9"
    assert props["l0"].startswith("QEMU ") and props["run_id"] == "e2e"
    text = junit.read_text()
    assert "known deviation qemu-v2-vpa-element" in text
    attachments = [line.split("|", 1)[1].rstrip("]") for line in text.splitlines()
                   if "[[ATTACHMENT|" in line]
    assert attachments and all((run / a).is_file() for a in attachments)
    assert any("l2-1.log" in a for a in attachments)
    assert not qemu_running("e2e")


def test_l1_and_l2_under_v1_over_ssh(tmp_path: Path, lab: LabImages, sshd: Sshd) -> None:
    inventory = f"""
hosts:
  - name: p10-ssh
    kind: tcg
    cpu: power10
    apis: [nested-hv]
    ssh:
{ssh_section(sshd, "      ")}"""
    done, run = suites(tmp_path, inventory, "-k", "test_l1 or test_l2_runs or test_l2_shell",
                       run_id="e2e-ssh")
    assert done.returncode == 0, done.stdout[-3000:]
    results = outcomes(run / "junit.xml")
    assert results["test_l2_runs_under_kvm[p10-ssh-nested-hv]"] == "passed"
    assert results["test_l2_shell_answers[p10-ssh-nested-hv]"] == "passed"
    assert results["test_l1_uses_offered_api[p10-ssh-nested-hv]"] == "passed"
    log = sshd.log.read_text()
    assert "Accepted publickey" in log
    assert "qemu-system-ppc64" in (run / "consoles").joinpath(
        next(p.name for p in (run / "consoles").iterdir() if p.name.endswith("l1-1.log"))
    ).read_text().splitlines()[0]
    assert not qemu_running("e2e-ssh")


def test_cap_off_on_l0_turns_l1_and_l2_red(tmp_path: Path, lab: LabImages) -> None:
    """The suites would notice a broken L0: offer nested-hv, then switch it off again."""
    inventory = ("hosts:\n  - {name: p9-broken, kind: tcg, cpu: power9, apis: [nested-hv],"
                 " l1_machine: [cap-nested-hv=off]}\n")
    done, run = suites(tmp_path, inventory, "-k", "test_l1 or test_l2_runs", run_id="e2e-off")
    assert done.returncode == 1, done.stdout[-3000:]
    results = outcomes(run / "junit.xml")
    case = "[p9-broken-nested-hv]"
    assert results["test_l1_boots" + case] == "passed"
    assert results["test_l1_kvm_hv_loads" + case] == "failure"
    assert results["test_l1_uses_offered_api" + case] == "failure"
    assert results["test_l2_runs_under_kvm" + case] in ("failure", "error")
    assert "KVM_CREATE_VM" in (run / "junit.xml").read_text()


def _l1(tmp_path: Path, lab: LabImages, append: str, boot_timeout: float) -> L1Guest:
    spec = GuestSpec(name="pn.e2e-console.l1", kernel=str(lab.kernels["6.12"]),
                     initrd=str(lab.l1_initrd), append=append,
                     machine_props=("cap-nested-hv=on",), pidfile=str(tmp_path / "l1.pid"))
    return L1Guest(LocalShell(), spec, tmp_path / "l1.log", boot_timeout, 30)


def test_real_kernel_panic_fails_the_boot_at_once(tmp_path: Path, lab: LabImages) -> None:
    guest = _l1(tmp_path, lab, "console=hvc0 rdinit=/no-such-init", boot_timeout=180)
    started = time.monotonic()
    try:
        with pytest.raises(GuestCrash) as exc:
            guest.start()
    finally:
        guest.stop()
    assert exc.value.kind == "kernel panic"
    assert "Unable to mount root fs" in exc.value.trace  # no init: the kernel gives up
    assert "PID: 1" in exc.value.trace  # and the lines after the panic line are kept
    assert time.monotonic() - started < 60
    assert "Kernel panic - not syncing" in (tmp_path / "l1.log").read_text()
    assert not qemu_running("e2e-console")


def test_hung_guest_times_out_with_its_console_saved(tmp_path: Path, lab: LabImages) -> None:
    guest = _l1(tmp_path, lab, "console=hvc0", boot_timeout=2)
    try:
        with pytest.raises(ConsoleTimeout) as exc:
            guest.start()
    finally:
        guest.stop()
    assert "POWERNEST-L1-READY" in str(exc.value) and str(tmp_path / "l1.log") in str(exc.value)
    assert (tmp_path / "l1.log").read_text().startswith("# qemu-system-ppc64")
    assert not qemu_running("e2e-console")


def test_killed_controller_leaves_results_and_no_guest(tmp_path: Path, lab: LabImages) -> None:
    """SIGKILL the controller while an L1 boots: guests die with it, the journal survives."""
    (tmp_path / "hosts.yaml").write_text(
        "hosts:\n  - {name: p9-kill, kind: tcg, cpu: power9, apis: [nested-hv]}\n")
    run = tmp_path / "reports" / "e2e-kill"
    proc = subprocess.Popen(
        [*PYTEST, str(REPO / "suites"), "--inventory", str(tmp_path / "hosts.yaml"),
         "--reports", str(tmp_path / "reports"), "--run-id", "e2e-kill", "-q",
         "-k", "test_caps or test_l1"], cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not qemu_running("e2e-kill.p9-kill") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert qemu_running("e2e-kill.p9-kill"), "the L1 never started"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while qemu_running("e2e-kill") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not qemu_running("e2e-kill"), "a guest outlived its controller"
    assert not (run / "junit.xml").exists()
    rebuilt = subprocess.run([str(Path(sys.executable).parent / "powernest"), "report",
                              "rebuild", str(run)], capture_output=True, text=True, timeout=60)
    assert rebuilt.returncode == 0, rebuilt.stderr
    junit = run / "junit.xml"
    validate(junit)
    results = outcomes(junit)
    assert sum(v == "passed" for k, v in results.items() if k.startswith("test_cap")) == 12
    interrupted = [e for e in ET.parse(junit).iter("error") if e.get("message") ==
                   "run interrupted"]
    assert len(interrupted) == 1
    attached = [Path(line.split("|", 1)[1].rstrip("]")) for line in junit.read_text().splitlines()
                if "[[ATTACHMENT|" in line]
    assert attached and all(p.is_absolute() and p.is_file() for p in attached)  # run outside cwd


def test_flipped_expectation_fails_against_a_real_l1(tmp_path: Path, lab: LabImages,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A v1-only 6.1 L1 really boots; the table passes it, and a table claiming v2 fails it."""
    from powernest import nested

    spec = GuestSpec(name="pn.e2e-flip.l1", kernel=str(lab.kernels["6.1"]),
                     initrd=str(lab.l1_initrd), machine_props=("cap-nested-hv=on",),
                     pidfile=str(tmp_path / "l1.pid"))
    guest = L1Guest(LocalShell(), spec, tmp_path / "l1.log", 180, 60)
    try:
        guest.start()
        loaded = guest.load_kvm().ok
        dmesg = guest.dmesg()
    finally:
        guest.stop()
    assert guest.kernel == "6.1"
    observed = nested.observed_api(dmesg, "6.1", loaded)
    assert nested.mismatches(nested.l1_expectation(nested.API.V1, "6.1"), observed, dmesg) == []

    flipped = [r if (r.offered, r.kernel) != (nested.API.V1, "6.1") else nested.L1Rule(
        r.offered, r.kernel, nested.L1Expectation(nested.API.V2, (), (), "flipped on purpose"))
        for r in nested.L1_RULES]
    monkeypatch.setattr(nested, "L1_RULES", tuple(flipped))
    problems = nested.mismatches(nested.l1_expectation(nested.API.V1, "6.1"), observed, dmesg)
    assert problems == ["uses nested-hv, expected nested-papr"]


def test_caps_through_a_jump_host(tmp_path: Path, sshd: Sshd,
                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    """A host reached only through `via:` (a second sshd as the bastion) runs the caps suite."""
    with running_sshd(tmp_path_factory.mktemp("bastion")) as bastion:
        inventory = f"""
hosts:
  - name: p9-behind
    kind: tcg
    cpu: power9
    ssh:
{ssh_section(sshd, "      ")}      via:
{ssh_section(bastion, "        ")}"""
        done, run = suites(tmp_path, inventory, "-k", "test_cap", run_id="e2e-jump")
        bastion_log = bastion.log.read_text()
    assert done.returncode == 0, done.stdout[-3000:]
    results = outcomes(run / "junit.xml")
    assert sum(v == "passed" for v in results.values()) == 12, results
    assert "Accepted publickey" in bastion_log  # the connection went through the bastion
