"""Property test of the inventory loader: whatever the bytes, `load_inventory` returns an
Inventory or raises InventoryError naming the file, and `powernest inventory check`
exits 0 or 1 without a traceback.

Inputs: random bytes, YAML-ish text built from YAML's own tokens, and mutations of the
repo's hosts.yaml and of an inventory with jump hosts (fields deleted, duplicated,
replaced by odd values: huge numbers, NaN, infinities, deep nesting; bytes spliced in,
not UTF-8 among them).  Derandomized, no example database: every run draws the same
1000 examples (EXAMPLES: 150 random bytes, 250 YAML-ish texts, 250 mutations of each
inventory, 100 through the command), in a few seconds; `pytest
tests/test_inventory_fuzz.py --hypothesis-show-statistics` prints them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from powernest.cli import main
from powernest.inventory import Inventory, InventoryError, load_inventory

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = {"bytes": 150, "yamlish": 250, "repo": 250, "jump": 250, "cli": 100}

JUMP = {"hosts": [
    {"name": "p10-lpar", "kind": "powervm", "cpu": "power10", "apis": ["nested-papr"],
     "qemu": "/usr/bin/qemu-system-ppc64", "memory": "8G", "allow_kexec": False,
     "l2_machine": ["cap-ccf-assist=off"],
     "ssh": {"host": "p10-lpar.lab", "user": "root", "password_env": "P10_LPAR_PASSWORD",
             "known_hosts": "~/.ssh/known_hosts", "connect_timeout": 10, "keepalive": 15,
             "via": {"host": "bastion.lab", "port": 2222, "key_file": "~/.ssh/id_ed25519",
                     "via": {"host": "10.0.0.1"}}},
     "timeouts": {"l1_boot": 300, "l2_boot": 600.5, "command": 120}},
    {"name": "p9-kvm", "kind": "kvm", "cpu": "power9", "memory": 4096,
     "l1_machine": ["cap-hpt-max-page-size=4k"], "ssh": {"host": "::1", "port": 22}},
]}
FIELDS = ["hosts", "name", "kind", "cpu", "apis", "l1_kernel", "qemu", "qemu_data_dir",
          "memory", "l1_machine", "l2_machine", "allow_kexec", "allow_destructive", "ssh",
          "timeouts", "host", "port", "user", "key_file", "password_env", "known_hosts",
          "verify_host_key", "connect_timeout", "keepalive", "via", "l1_boot", "l2_boot",
          "command", "path", "x"]
TOKENS = [*(f"{f}: " for f in FIELDS), "\n", "  ", "- ", "{", "}", "[", "]", ": ", ", ",
          "tcg", "kvm", "powervm", "power9", "nested-hv", "&a ", "*a", "<<: *a", "!!int ",
          "!!float ", "!!bool ", "!!timestamp ", "!!binary ", "!!set ", "!!omap ",
          "!!python/object:os.system ", "!foo ", "? ", "'", '"', "#", "---\n", "...\n",
          "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "\t", "|\n", ">-\n", "~", "1e400", "1.0e+400",
          ".inf", "-.nan", "0x1F", "0o17", "1:30:00", "2024-13-45", "9" * 40, "4G", "lots",
          "a=b,c", "k" * 300, "\x00", "\x85", "\ufeff", "\u2028", "é", "\\x00", "\\u"]
ODD = st.one_of(
    st.none(), st.booleans(), st.integers(-(10 ** 40), 10 ** 40), st.floats(),
    st.text(max_size=20),
    st.sampled_from(["lots", "0", "4", "17T", "1e400", "-1", "P10 PASS", "$PASS", "a=b,c=d",
                     "a=b -S", "~nosuchuser/k", "lab:../x", "root@h", "power7", "nested-hv",
                     "kvm", "", " ", "x" * 300]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), st.integers(), max_size=2),
)


def nested(value: Any, depth: int, as_map: bool) -> Any:
    for _ in range(depth):
        value = {"a": value} if as_map else [value]
    return value


def slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in `doc`."""
    found: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        items = (list(node.items()) if isinstance(node, dict)
                 else list(enumerate(node)) if isinstance(node, list) else [])
        for key, value in items:
            found.append((node, key))
            stack.append(value)
    return found


@st.composite
def spliced(draw: st.DrawFn, raw: bytes) -> bytes:
    """`raw` with a few bytes cut at one place and others put there."""
    at = draw(st.integers(0, len(raw)))
    cut = draw(st.integers(0, 8))
    put = draw(st.one_of(
        st.binary(max_size=8),
        st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\x00", b"\t",
                         b"\n  ", b"[" * 100, b"{a: " * 60, b"&a ", b"*a", b": ", b"- "])))
    return raw[:at] + put + raw[at + cut:]


@st.composite
def mutated(draw: st.DrawFn, base: Any, text: bytes | None = None) -> bytes:
    """`base` with 1-4 of its values deleted, duplicated, replaced or nested, as YAML
    bytes, some spliced; or `text` itself spliced."""
    if text is not None and draw(st.booleans()):
        return draw(spliced(text))
    holder = {"root": copy.deepcopy(base)}
    for _ in range(draw(st.integers(1, 4))):
        node, key = draw(st.sampled_from(slots(holder)))
        op = draw(st.sampled_from(["delete", "replace", "duplicate", "nest"]))
        if op == "delete" and node is not holder:
            del node[key]
        elif op == "duplicate" and isinstance(node, list):
            node.insert(key, copy.deepcopy(node[key]))
        elif op == "duplicate":
            name = draw(st.one_of(st.sampled_from(FIELDS), st.text(max_size=300)))
            node[name] = copy.deepcopy(node[key])
        elif op == "nest":
            node[key] = nested(node[key], draw(st.integers(1, 60)), draw(st.booleans()))
        else:
            node[key] = draw(ODD)
    raw = yaml.safe_dump(holder["root"], sort_keys=False, allow_unicode=draw(st.booleans()),
                         default_flow_style=draw(st.sampled_from([False, None, True]))).encode()
    return draw(spliced(raw)) if draw(st.booleans()) else raw


REPO_HOSTS = (REPO / "hosts.yaml").read_bytes()
RANDOM_BYTES = st.binary(max_size=600)
YAMLISH = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)),
                   max_size=80).map(lambda parts: "".join(parts).encode())
REPO_MUTATED = mutated(yaml.safe_load(REPO_HOSTS), REPO_HOSTS)
JUMP_MUTATED = mutated(JUMP, yaml.safe_dump(JUMP, sort_keys=False).encode())


def fuzz(examples: int) -> Any:
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def inventory_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file every example rewrites (hypothesis runs a test's examples in one call)."""
    return tmp_path_factory.mktemp("fuzz") / "hosts.yaml"


def loads_or_refuses(path: Path, raw: bytes) -> None:
    """The property: an Inventory, or an InventoryError whose every line names the file."""
    path.write_bytes(raw)
    try:
        inventory = load_inventory(path)
    except InventoryError as exc:
        lines = str(exc).splitlines()
        assert lines and all(line.startswith(f"{path}:") and len(line) < 400 for line in lines)
    else:
        assert isinstance(inventory, Inventory) and inventory.hosts


@fuzz(EXAMPLES["bytes"])
@given(raw=RANDOM_BYTES)
def test_random_bytes(inventory_file: Path, raw: bytes) -> None:
    loads_or_refuses(inventory_file, raw)


@fuzz(EXAMPLES["yamlish"])
@given(raw=YAMLISH)
def test_yamlish_text(inventory_file: Path, raw: bytes) -> None:
    loads_or_refuses(inventory_file, raw)


@fuzz(EXAMPLES["repo"])
@given(raw=REPO_MUTATED)
def test_mutated_repo_hosts_yaml(inventory_file: Path, raw: bytes) -> None:
    loads_or_refuses(inventory_file, raw)


@fuzz(EXAMPLES["jump"])
@given(raw=JUMP_MUTATED)
def test_mutated_inventory_with_jump_hosts(inventory_file: Path, raw: bytes) -> None:
    loads_or_refuses(inventory_file, raw)


@fuzz(EXAMPLES["cli"])
@given(raw=st.one_of(RANDOM_BYTES, YAMLISH, REPO_MUTATED, JUMP_MUTATED))
def test_inventory_check_command(inventory_file: Path, raw: bytes) -> None:
    """`powernest inventory check`: exit 0 listing the hosts, or 1 naming the file."""
    inventory_file.write_bytes(raw)
    done = CliRunner().invoke(main, ["inventory", "check", str(inventory_file)])
    assert done.exit_code in (0, 1), done.output
    assert done.exception is None or isinstance(done.exception, SystemExit), done.output
    assert "Traceback" not in done.output
    if done.exit_code == 1:
        assert done.output.startswith(f"{inventory_file}:")
    else:
        assert done.output.count("\n") == len(load_inventory(inventory_file).hosts)


def test_seeds_are_valid(tmp_path: Path) -> None:
    """The mutations start from inventories that load."""
    assert len(load_inventory(REPO / "hosts.yaml").hosts) == 3
    (tmp_path / "jump.yaml").write_text(yaml.safe_dump(JUMP))
    lpar = load_inventory(tmp_path / "jump.yaml").hosts[0]
    assert lpar.ssh and lpar.ssh.via and lpar.ssh.via.via and lpar.ssh.via.via.host == "10.0.0.1"
