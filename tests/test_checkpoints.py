"""L1 checkpoints on the emulated lab: real QEMU saves an L1 at its prompt, later L1s of
the same configuration are restored from that state, and a bad state falls back to a boot."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from powernest.guests import L1, CheckpointWarning, L1Guest
from powernest.hosts import HostSession
from powernest.inventory import Inventory
from powernest.kinds import Target
from powernest.lab import LabImages
from powernest.nested import API, l1_expectation, mismatches, observed_api
from powernest.pool import GuestPool


@pytest.fixture
def pool(tmp_path: Path, lab: LabImages, monkeypatch: pytest.MonkeyPatch) -> Iterator[GuestPool]:
    """A pool on this machine whose checkpoints go to an empty cache."""
    monkeypatch.setenv("POWERNEST_CACHE", str(tmp_path / "cache"))
    sessions: dict[str, HostSession] = {}

    def session_for(host: object) -> HostSession:
        name = host.name   # type: ignore[attr-defined]
        if name not in sessions:
            sessions[name] = HostSession.open(host, "ckpt", 30)   # type: ignore[arg-type]
        return sessions[name]

    guests = GuestPool("ckpt", tmp_path / "consoles", lab, session_for)
    yield guests
    guests.close()
    for session in sessions.values():
        session.close()


def target(api: API) -> Target:
    inventory = Inventory.model_validate(
        {"hosts": [{"name": "ckpt-p9", "kind": "tcg", "cpu": "power9", "memory": "2G"}]})
    return Target(inventory.hosts[0], api)


def l1_checks(l1: L1, api: API) -> dict[str, object]:
    """What suites/test_l1.py checks of an L1, as values to compare."""
    result = l1.load_kvm()
    dmesg = l1.dmesg()
    expected = l1_expectation(api, l1.kernel)
    return {"release": l1.kernel_release, "kvm_hv_loads": result.ok == expected.kvm,
            "kvm_hv_loaded": l1.kvm_hv_loaded(), "dev_kvm": l1.has_dev_kvm(),
            "problems": mismatches(expected, observed_api(dmesg, l1.kernel,
                                                          l1.kvm_hv_loaded()), dmesg)}


@pytest.mark.parametrize("api", list(API))
def test_restored_l1_passes_the_l1_checks_of_a_booted_one(pool: GuestPool, api: API) -> None:
    first = pool.l1(target(api))     # no checkpoint yet: booted, then saved
    assert isinstance(first, L1Guest) and first.started_from == "boot"
    booted = l1_checks(first, api)
    restored_l1 = pool.l1(target(api))
    # (restore against boot times: make bench; an L1 now boots in about 3 s, a restore
    # takes 1 to 3 s on a busy machine, so the two are no order to assert here)
    assert isinstance(restored_l1, L1Guest) and restored_l1.started_from == "checkpoint"
    restored = l1_checks(restored_l1, api)
    assert restored == booted
    assert booted["kvm_hv_loads"] and booted["dev_kvm"] and not booted["problems"]
    # the restored L1 has the controller's clock, not the checkpoint's
    now = restored_l1.run(["date", "+%s"], check=True).stdout.split()[-1]
    assert abs(int(now) - time.time()) < 30


def test_unloadable_checkpoint_falls_back_to_a_boot(pool: GuestPool, tmp_path: Path) -> None:
    first = pool.l1(target(API.V1))
    assert isinstance(first, L1Guest)
    pool.stop(first)
    states = list((tmp_path / "cache" / "checkpoints").glob("*.state"))
    assert len(states) == 1 and states[0].stat().st_size > 1 << 20
    states[0].write_bytes(b"QEVM not a state at all")
    with pytest.warns(CheckpointWarning, match="not used .*booting"):
        second = pool.l1(target(API.V1))
    assert isinstance(second, L1Guest) and second.started_from == "boot"
    assert "not used" in second.log_path.read_text()
    assert second.run(["true"]).ok
    assert states[0].stat().st_size > 1 << 20   # saved again, whole
    third = pool.l1(target(API.V1))
    assert isinstance(third, L1Guest) and third.started_from == "checkpoint"


@pytest.mark.parametrize(("qemu", "mapped_ram"), [(None, True),
                                                  ("qemu-system-ppc64-7.2", False)])
def test_state_format_follows_the_l0(pool: GuestPool, tmp_path: Path, lab: LabImages,
                                     qemu: str | None, mapped_ram: bool) -> None:
    """QEMU 10 saves in its mapped-ram format (a sparse file, pages at fixed offsets),
    QEMU 7.2 (a file of the lab build), which lacks it, as a stream; each restores
    its own."""
    host = {"name": "ckpt-p9", "kind": "tcg", "cpu": "power9", "memory": "2G"}
    if qemu:
        host |= {"qemu": str(lab.root / qemu), "qemu_data_dir": "/usr/share/qemu"}
    chosen = Target(Inventory.model_validate({"hosts": [host]}).hosts[0], API.V1)
    pool.stop(pool.l1(chosen))
    [state] = (tmp_path / "cache" / "checkpoints").glob("*.state")
    sparse = state.stat().st_blocks * 512 < state.stat().st_size
    assert sparse == mapped_ram
    restored = pool.l1(chosen)
    assert isinstance(restored, L1Guest) and restored.started_from == "checkpoint"
    assert restored.spec.mapped_ram == mapped_ram
    assert restored.run(["true"]).ok
