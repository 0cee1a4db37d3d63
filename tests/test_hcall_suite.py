"""The hcall suite end to end: a row that kills QEMU's L0 is reported as an L0 death
with QEMU's own message, and its reproducer replays the death without the suite."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from powernest.lab import LabImages
from powernest.reporting import journal
from runs import suites, validate

# QEMU 10.0.2 asserts linear vCPU ids (hw/ppc/spapr_nested.c h_guest_create_vcpu).
CASE = "v2-create-vcpu-not-sequential"
ASSERTION = "h_guest_create_vcpu: Assertion `vcpuid == guest->nr_vcpus' failed."
INVENTORY = "hosts:\n  - {name: p10-local, kind: tcg, cpu: power10, apis: [nested-papr]}\n"


def test_l0_death_is_its_own_verdict_and_replays(tmp_path: Path, lab: LabImages) -> None:
    # --runxfail: as on an L0 where this death is not a known deviation yet
    done, run = suites(tmp_path, INVENTORY, "-k", CASE, "--runxfail", run_id="death")
    assert done.returncode == 1, done.stdout[-3000:]
    (end,) = [e for e in journal.events(run / journal.JOURNAL) if e["event"] == "end"]
    assert end["outcome"] == "failed"
    assert "L0 DIED during H_GUEST_CREATE_VCPU(0x0, guest=" in end["message"]
    died = end["properties"]["l0_died"]
    assert ASSERTION in died and "killed by SIGABRT" in died
    validate(run / "junit.xml")
    (failure,) = ET.parse(run / "junit.xml").iter("failure")
    assert failure.get("type") == "l0-died" and ASSERTION in failure.get("message", "")
    reproducer = run / end["properties"]["reproducer"]
    assert reproducer.is_file() and reproducer.read_text().startswith("#!/bin/sh")

    powernest = str(Path(sys.executable).parent / "powernest")
    replayed = subprocess.run([powernest, "hcall", "replay", str(reproducer),
                               "--dir", str(tmp_path / "replays")],
                              capture_output=True, text=True, timeout=600)
    assert replayed.returncode == 2, replayed.stdout + replayed.stderr
    assert f"PNBEGIN {CASE}" in replayed.stdout
    assert "replay: the L0 died (killed by SIGABRT): " in replayed.stdout
    assert ASSERTION in replayed.stdout
    assert "PNEND" not in replayed.stdout
