"""Inventory loading: good files load, bad ones name the file, line, field and problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from powernest.inventory import InventoryError, Kind, load_inventory
from powernest.kinds import kind_of
from powernest.nested import API

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(InventoryError) as exc:
        load_inventory(write(tmp_path, text))
    return str(exc.value)


def test_default_inventory_is_the_emulated_lab() -> None:
    inv = load_inventory(REPO / "hosts.yaml")
    assert [(h.name, h.kind, h.cpu) for h in inv.hosts] == [
        ("p9-emulated", Kind.TCG, "power9"), ("p10-emulated", Kind.TCG, "power10"),
        ("p9-qemu7.2", Kind.TCG, "power9")]
    assert all(kind_of(h).apis(h) == (API.V1, API.V2) for h in inv.hosts)
    assert [kind_of(h).allows_kexec(h) for h in inv.hosts] == [True, True, False]
    assert inv.hosts[2].qemu == "lab:qemu-system-ppc64-7.2"


def test_kinds_default_apis_and_kexec(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, """
hosts:
  - {name: k, kind: kvm, cpu: power9, ssh: {host: k.example}}
  - {name: l, kind: powervm, cpu: power10, allow_kexec: true, ssh: {host: l.example}}
"""))
    kvm, lpar = inv.hosts
    assert kind_of(kvm).apis(kvm) == (API.V1,) and not kind_of(kvm).allows_kexec(kvm)
    assert kind_of(lpar).apis(lpar) == (API.V1, API.V2) and kind_of(lpar).allows_kexec(lpar)
    assert lpar.ssh is not None and lpar.ssh.verify_host_key


def test_unknown_cpu_names_line_field_and_value(tmp_path: Path) -> None:
    message = error_of(tmp_path, "hosts:\n  - name: a\n    kind: tcg\n    cpu: power7\n")
    assert "hosts.yaml:4:" in message
    assert "hosts['a'].cpu" in message
    assert "'power7'" in message


def test_missing_field(tmp_path: Path) -> None:
    message = error_of(tmp_path, "hosts:\n  - name: a\n    cpu: power9\n")
    assert "hosts['a'].kind: Field required" in message
    assert ":2:" in message


def test_unknown_field_is_refused(tmp_path: Path) -> None:
    message = error_of(tmp_path, "hosts:\n  - name: a\n    kind: tcg\n    cpu: power9\n"
                                 "    cpus: 4\n")
    assert "hosts.yaml:5:" in message and "hosts['a'].cpus" in message
    assert "Extra inputs are not permitted" in message


def test_remote_kind_needs_ssh(tmp_path: Path) -> None:
    message = error_of(tmp_path, "hosts:\n  - {name: a, kind: kvm, cpu: power9}\n")
    assert "needs an 'ssh' section" in message


def test_bad_port_in_nested_section(tmp_path: Path) -> None:
    message = error_of(tmp_path, "hosts:\n  - name: a\n    kind: kvm\n    cpu: power9\n"
                                 "    ssh:\n      host: x\n      port: 70000\n")
    assert "hosts.yaml:7:" in message and "hosts['a'].ssh.port" in message


def test_duplicate_names(tmp_path: Path) -> None:
    message = error_of(tmp_path, "hosts:\n  - {name: a, kind: tcg, cpu: power9}\n"
                                 "  - {name: a, kind: tcg, cpu: power10}\n")
    assert "'a' is used twice" in message


def test_not_yaml(tmp_path: Path) -> None:
    message = error_of(tmp_path, "hosts:\n  - name: [unclosed\n")
    assert message.startswith(f"{tmp_path / 'hosts.yaml'}:") and "not valid YAML" in message


def test_missing_file(tmp_path: Path) -> None:
    message = error_of_path(tmp_path / "nope.yaml")
    assert "nope.yaml: cannot read inventory" in message


def error_of_path(path: Path) -> str:
    with pytest.raises(InventoryError) as exc:
        load_inventory(path)
    return str(exc.value)


def test_select_unknown_host() -> None:
    inv = load_inventory(REPO / "hosts.yaml")
    assert [h.name for h in inv.select(["p10-emulated"])] == ["p10-emulated"]
    with pytest.raises(InventoryError, match="no host named p11"):
        inv.select(["p11"])


def test_bad_inventory_stops_pytest_before_any_test_without_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path, "hosts:\n  - {name: a, kind: tcg, cpu: power7}\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "suites"), "--inventory", str(bad),
         "--reports", str(tmp_path / "reports"), "-q"],
        capture_output=True, text=True, cwd=REPO, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert f"{bad}:2: hosts['a'].cpu" in output
    assert "Traceback" not in output and "passed" not in output


def test_cli_inventory_check(tmp_path: Path) -> None:
    bad = write(tmp_path, "hosts:\n  - {name: a, kind: tcg, cpu: power9, memory: 2G, x: 1}\n")
    powernest = str(Path(sys.executable).parent / "powernest")
    done = subprocess.run([powernest, "inventory", "check", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "hosts['a'].x" in done.stderr
    assert "Traceback" not in done.stderr


def test_jump_host_section(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, """
hosts:
  - name: k
    kind: kvm
    cpu: power10
    ssh: {host: k.lab, via: {host: bastion.lab, port: 2222, via: {host: outer.lab}}}
"""))
    ssh = inv.hosts[0].ssh
    assert ssh is not None and ssh.via is not None and ssh.via.via is not None
    assert (ssh.via.host, ssh.via.port, ssh.via.via.host) == ("bastion.lab", 2222, "outer.lab")
    message = error_of(tmp_path, "hosts:\n  - name: k\n    kind: kvm\n    cpu: power9\n"
                                 "    ssh:\n      host: k\n      via:\n        port: 22\n")
    assert "hosts['k'].ssh.via.host: Field required" in message


def test_pytest_outside_the_suites_starts_no_run(tmp_path: Path) -> None:
    """The plugin (loaded by the root conftest: its options are known) has no side
    effect unless suites run: no inventory read, no run directory."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_nested.py",
         "--inventory", str(tmp_path / "missing.yaml"), "--reports", str(tmp_path / "reports"),
         "-q"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (tmp_path / "reports").exists()
