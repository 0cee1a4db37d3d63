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


@pytest.mark.parametrize(("content", "expected"), [
    (b"hosts:\n  - {name: a, kind: tcg, cpu: power7}\n", ":2: hosts['a'].cpu"),
    (b"hosts:\n  - {name: caf\xe9, kind: tcg, cpu: power9}\n", ":2: not UTF-8 text"),
    (b"hosts: " + b"[" * 3000 + b"]" * 3000 + b"\n", ":1: nested deeper than 32 levels"),
], ids=["bad-cpu", "not-utf8", "deep"])
def test_bad_inventory_stops_pytest_before_any_test_without_traceback(
        tmp_path: Path, content: bytes, expected: str) -> None:
    bad = tmp_path / "hosts.yaml"
    bad.write_bytes(content)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "suites"), "--inventory", str(bad),
         "--reports", str(tmp_path / "reports"), "-q"],
        capture_output=True, text=True, cwd=REPO, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert f"{bad}{expected}" in output
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


def host_with(fields: str) -> str:
    """An inventory of one kvm host `a` with extra flow-mapping `fields`."""
    return f"hosts:\n  - {{name: a, kind: kvm, cpu: power9, ssh: {{host: h}}, {fields}}}\n"


def test_not_utf8_names_line_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yaml"
    path.write_bytes(b"hosts:\n  - {name: caf\xe9, kind: tcg, cpu: power9}\n")
    assert error_of_path(path) == (f"{path}:2: not UTF-8 text: byte 0xe9 at offset 21 "
                                   "(invalid continuation byte)")


def test_too_large_or_not_a_file(tmp_path: Path) -> None:
    path = tmp_path / "hosts.yaml"
    path.write_bytes(b"#" * (1 << 20) + b"\n")
    assert error_of_path(path) == f"{path}: over 1 MiB, too large for an inventory"
    assert error_of_path(tmp_path) == f"{tmp_path}: cannot read inventory: Is a directory"


@pytest.mark.parametrize(("text", "expected"), [
    ("hosts: " + "[" * 5000 + "]" * 5000, "hosts.yaml:1: nested deeper than 32 levels"),
    ("hosts:\n" + "".join("  " * i + "a:\n" for i in range(1, 40)),
     "hosts.yaml:32: nested deeper than 32 levels"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
     + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n"
               for p, c in zip("abcd", "bcde", strict=True))
     + "hosts: *e\n",
     "hosts.yaml:5: more than 100000 values or 32 levels once its aliases are expanded"),
    ("hosts: &a [*a]\n", "hosts.yaml:1: an alias refers to a value that holds it"),
], ids=["deep-list", "deep-map", "billion-laughs", "self-alias"])
def test_deep_or_huge_yaml_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    assert error_of(tmp_path, text).endswith(expected)


@pytest.mark.parametrize(("text", "expected"), [
    ("hosts: [{name: a, cpu: 2024-13-45}]", ":1: not valid YAML: '2024-13-45' is not a valid "
                                            "timestamp (month must be in 1..12)"),
    ("hosts: [{name: !!timestamp x}]", ":1: not valid YAML: 'x' is not a valid timestamp"),
    ("hosts: [{name: !!bool maybe}]", ":1: not valid YAML: 'maybe' is not a valid bool"),
    ("hosts: [{port: " + "9" * 5000 + "}]", f":1: '{'9' * 55}...' is too long a number"),
    ("hosts: [{name: a\x00}]", ":1: not valid YAML: character U+0000 is not allowed"),
], ids=["date", "timestamp", "bool", "long-int", "nul"])
def test_values_python_cannot_build(tmp_path: Path, text: str, expected: str) -> None:
    assert error_of(tmp_path, text) == f"{tmp_path / 'hosts.yaml'}{expected}"


def test_memory_sizes(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, "hosts:\n" + "".join(
        f"  - {{name: m{i}, kind: tcg, cpu: power9, memory: {m}}}\n"
        for i, m in enumerate(["4G", "4096M", "2048", "1.5g", "16T", "262144K"]))))
    assert [h.memory for h in inv.hosts] == ["4G", "4096M", "2048", "1.5g", "16T", "262144K"]
    assert error_of(tmp_path, host_with("memory: lots")).endswith(
        ":2: hosts['a'].memory: 'lots' is not a memory size: give a number of MiB or one with "
        "a K, M, G or T suffix (4G, 4096M, 4096)")
    assert error_of(tmp_path, host_with("memory: 4")).endswith(
        "hosts['a'].memory: '4' is not between 256M and 16T (a bare number is MiB, "
        "as for QEMU -m)")
    assert "memory: '17T' is not between 256M and 16T" in error_of(tmp_path,
                                                                  host_with("memory: 17T"))
    assert "hosts['a'].memory: Input should be a valid string" in error_of(
        tmp_path, host_with("memory: [4G]"))


@pytest.mark.parametrize(("value", "expected"), [
    ("1e400", "Input should be a finite number (got '1e400')"),
    ("1.0e+400", "Input should be a finite number (got inf)"),
    (".nan", "Input should be a finite number (got nan)"),
    ("0", "Input should be greater than 0 (got 0)"),
    ("86401", "Input should be less than or equal to 86400 (got 86401)"),
])
def test_timeouts_finite_positive_at_most_a_day(tmp_path: Path, value: str,
                                               expected: str) -> None:
    message = error_of(tmp_path, host_with(f"timeouts: {{l1_boot: {value}}}"))
    assert message == f"{tmp_path / 'hosts.yaml'}:2: hosts['a'].timeouts.l1_boot: {expected}"
    message = error_of(tmp_path, host_with("").replace("{host: h}",
                                                       f"{{host: h, connect_timeout: {value}}}"))
    assert f"hosts['a'].ssh.connect_timeout: {expected}" in message


def test_ssh_names(tmp_path: Path) -> None:
    def ssh_error(fields: str) -> str:
        return error_of(tmp_path, host_with("").replace("{host: h}", f"{{{fields}}}"))
    assert ssh_error("host: h, password_env: 'hunter2!'").endswith(
        ":2: hosts['a'].ssh.password_env: 'hunter2!' is not an environment variable name "
        "(letters, digits and _, not a digit first): give the name of the variable that "
        "holds the password")
    assert "'$P10_PASSWORD' is not an environment" in ssh_error("host: h, password_env: "
                                                                "$P10_PASSWORD")
    assert ssh_error("host: root@p10").endswith(
        "hosts['a'].ssh.host: 'root@p10' is not a host name or address "
        "(a user goes in 'user', a port in 'port')")
    assert "ssh.user: 'ro ot' is not a user name" in ssh_error("host: h, user: ro ot")
    assert "ssh.key_file: '~nosuchuser/k': no such user's home directory" in ssh_error(
        "host: h, key_file: ~nosuchuser/k")
    assert "ssh.via.keepalive: Input should be less than" in ssh_error(
        "host: h, via: {host: '::1', keepalive: 100000}")


def test_machine_properties_and_qemu_cannot_inject_options(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, host_with(
        "l1_machine: [cap-ccf-assist=off, cap-hpt-max-page-size=4k], qemu: lab:qemu-7.2")))
    assert inv.hosts[0].l1_machine == ("cap-ccf-assist=off", "cap-hpt-max-page-size=4k")
    for bad in ("'cap-x=on,dumpdtb=/tmp/x'", "'cap-x = on'", "'cap-x'", "'a=b -S'"):
        assert f"hosts['a'].l2_machine[0]: {bad} is not a -M property: give name=value" in (
            error_of(tmp_path, host_with(f"l2_machine: [{bad}]")))
    for qemu in ("'qemu-system-ppc64 -S'", "'lab:../qemu'", "''"):
        assert f"hosts['a'].qemu: {qemu} is not a QEMU" in error_of(
            tmp_path, host_with(f"qemu: {qemu}"))


def test_apis_each_once(tmp_path: Path) -> None:
    for apis in ("[]", "[nested-hv, nested-hv]"):
        assert "hosts['a'].apis: list each API once" in error_of(tmp_path,
                                                                host_with(f"apis: {apis}"))


def test_problems_are_capped_and_keys_checked(tmp_path: Path) -> None:
    message = error_of(tmp_path, "hosts:\n" + "".join(
        f"  - {{name: h{i}, kind: tcg, cpu: power7}}\n" for i in range(30)))
    lines = message.splitlines()
    assert len(lines) == 21 and lines[-1].endswith("hosts.yaml: and 10 more problems")
    assert "hosts.yaml:1: path: Extra inputs are not permitted" in error_of(
        tmp_path, "path: /etc\nhosts: [{name: a, kind: tcg, cpu: power9}]\n")
    assert "hosts.yaml:1: 1: Keys should be strings" in error_of(tmp_path, "1: 2\n")
    assert error_of(tmp_path, "hosts: []\n" + "k" * 1000 + ": 1\n").endswith(
        f"hosts.yaml:2: '{'k' * 55}...': Extra inputs are not permitted (got 1)")
    assert "hosts.yaml:1: 'a\\nb': Extra inputs" in error_of(tmp_path, '"a\\nb": 1\n')


def test_cli_inventory_check_bad_bytes(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from powernest.cli import main
    path = tmp_path / "hosts.yaml"
    path.write_bytes(b"hosts: [\xff]\n" + b"[" * 2000)
    done = CliRunner().invoke(main, ["inventory", "check", str(path)])
    assert done.exit_code == 1 and done.exception is not None
    assert done.output == f"{path}:1: not UTF-8 text: byte 0xff at offset 8 (invalid start byte)\n"
