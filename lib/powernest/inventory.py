"""The host inventory (`hosts.yaml`): pydantic models and a loader whose errors
name the file, the line, the field and the problem, whatever the file holds (bytes
not UTF-8, YAML past the limits below): never a traceback.  A host is plain data;
what acts on it lives elsewhere (`hosts.py`).
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from powernest.errors import PowernestError
from powernest.nested import API

CPU_MODELS = ("power8", "power9", "power10", "power11")
L1_KERNELS = ("6.12", "6.1")

MAX_BYTES = 1 << 20     # a lab of hundreds of hosts is a few tens of KiB
MAX_DEPTH = 32          # YAML nesting; a host with a jump host needs 6
MAX_VALUES = 100_000    # YAML values once aliases are expanded
MAX_DIGITS = 30         # in an integer
MAX_PROBLEMS = 20       # validation errors reported
DAY = 86_400.0          # seconds: the longest wait an inventory may set


class InventoryError(PowernestError):
    """The inventory cannot be used; the message says where and why."""


class Kind(StrEnum):
    TCG = "tcg"          # the emulated lab: QEMU TCG on the host is L0
    KVM = "kvm"          # a bare-metal POWER host running KVM-HV
    POWERVM = "powervm"  # a PowerVM LPAR with KVM enabled: it is the L1


def _short(value: Any) -> str:
    """`value`'s repr, cut to a length a message can hold."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:56]}...{text[-1]}"


def _matching(pattern: str, problem: str) -> AfterValidator:
    """A validator refusing a string that does not match `pattern`, saying `problem`."""
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"{_short(value)} {problem}")
        return value
    return AfterValidator(check)


_SIZE = re.compile(r"(\d+(?:\.\d+)?)([KMGT]?)", re.IGNORECASE)
_MIB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 ** 2}
_PLAIN = re.compile(r"[\w.-]{1,60}", re.ASCII)   # a key a message shows as it is


def _memory(value: str) -> str:
    """A QEMU `-m` size from 256M (a Linux L1 needs no less) to 16T."""
    match = _SIZE.fullmatch(value)
    if not match:
        raise ValueError(f"{_short(value)} is not a memory size: give a number of MiB or one "
                         "with a K, M, G or T suffix (4G, 4096M, 4096)")
    mib = float(match[1]) * _MIB[match[2].upper()]
    if not 256 <= mib <= 16 * 1024 ** 2:
        raise ValueError(f"{value!r} is not between 256M and 16T (a bare number is MiB, "
                         "as for QEMU -m)")
    return value


Seconds = Annotated[float, Field(gt=0, le=DAY, allow_inf_nan=False)]
Memory = Annotated[str, BeforeValidator(lambda v: str(v) if type(v) is int else v),
                   AfterValidator(_memory)]
EnvName = Annotated[str, _matching(
    r"[A-Za-z_][A-Za-z0-9_]*", "is not an environment variable name (letters, digits and _, "
    "not a digit first): give the name of the variable that holds the password")]
HostAddress = Annotated[str, _matching(
    r"[A-Za-z0-9_:][A-Za-z0-9_.:%-]*",
    "is not a host name or address (a user goes in 'user', a port in 'port')")]
UserName = Annotated[str, _matching(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*", "is not a user name")]
MachineProperty = Annotated[str, _matching(
    r"[A-Za-z0-9][A-Za-z0-9_.-]*=[A-Za-z0-9_.:/+-]+",
    "is not a -M property: give name=value, one per item, without commas, spaces or quotes")]
QemuBinary = Annotated[str, _matching(
    r"lab:[A-Za-z0-9_+-][A-Za-z0-9_.+-]*|(?!lab:)[^\s\x00-\x1f\x7f]+",
    "is not a QEMU: give a command or a path, without spaces or options, or lab:NAME")]
DirName = Annotated[str, _matching(r"[^\x00-\x1f\x7f]+", "is not a directory path")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ssh(_Model):
    """How to reach a host over SSH. Passwords only by environment variable name."""

    host: HostAddress
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    user: UserName | None = None
    key_file: Path | None = None
    password_env: EnvName | None = None
    known_hosts: Path | None = None
    verify_host_key: bool = True
    connect_timeout: Seconds = 10.0
    keepalive: Annotated[int, Field(ge=0, le=DAY)] = 15
    via: Ssh | None = None   # a jump host (bastion) that carries the connection

    @field_validator("key_file", "known_hosts")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        if value == Path(".") or "\0" in str(value):
            raise ValueError(f"{_short(str(value))} is not a file path")
        try:
            return value.expanduser()
        except RuntimeError:   # ~user of no such user
            raise ValueError(f"{_short(str(value))}: no such user's home directory") from None


class Timeouts(_Model):
    """Seconds each kind of wait may take before it fails with the console tail."""

    l1_boot: Seconds = 240.0
    l2_boot: Seconds = 240.0
    command: Seconds = 120.0


class Host(_Model):
    """One lab host: where L0 (or, for `powervm`, L1) runs and what it offers."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=63)]
    kind: Kind
    cpu: Literal["power8", "power9", "power10", "power11"]
    apis: tuple[API, ...] | None = None   # default: what its kind offers (kinds.py)
    l1_kernel: Literal["6.12", "6.1"] = "6.12"   # the kernel of the L1s the suite boots
    hcall_module: str | None = None   # pnhcall.ko built for its L1's kernel, if not the lab's
    qemu: QemuBinary = "qemu-system-ppc64"   # or lab:NAME, a QEMU the lab build unpacked
    qemu_data_dir: DirName | None = None     # QEMU -L (firmware), for a QEMU not installed
    memory: Memory = "4G"
    l1_machine: tuple[MachineProperty, ...] = ()   # extra -M pseries properties for L1
    l2_machine: tuple[MachineProperty, ...] = ()   # extra -M pseries properties for its L2s
    allow_kexec: bool | None = None       # default: per kind (kinds.py)
    allow_destructive: bool = False       # cases that may crash the L0 (tcg: always)
    ssh: Ssh | None = None
    timeouts: Timeouts = Timeouts()

    @field_validator("apis")
    @classmethod
    def _some_apis(cls, apis: tuple[API, ...] | None) -> tuple[API, ...] | None:
        if apis is not None and (not apis or len(set(apis)) < len(apis)):
            raise ValueError("list each API once, or leave 'apis' out for the kind's own")
        return apis

    @model_validator(mode="after")
    def _check_kind(self) -> Host:
        if self.kind is not Kind.TCG and self.ssh is None:
            raise ValueError(f"a '{self.kind.value}' host needs an 'ssh' section")
        return self


class _Hosts(_Model):
    """What an inventory file holds."""

    hosts: tuple[Host, ...]

    @field_validator("hosts")
    @classmethod
    def _unique_names(cls, hosts: tuple[Host, ...]) -> tuple[Host, ...]:
        seen: set[str] = set()
        for host in hosts:
            if host.name in seen:
                raise ValueError(f"host name '{host.name}' is used twice")
            seen.add(host.name)
        if not hosts:
            raise ValueError("no hosts")
        return hosts


class Inventory(_Hosts):
    """The hosts a run may use, in file order."""

    path: Path | None = None

    def select(self, names: list[str] | None) -> tuple[Host, ...]:
        """The named hosts (all when `names` is empty); unknown names are an error."""
        if not names:
            return self.hosts
        known = {h.name: h for h in self.hosts}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InventoryError(f"{self.path}: no host named {', '.join(unknown)} "
                                 f"(hosts: {', '.join(known)})")
        return tuple(known[n] for n in names)


_LINES, _LINE = object(), object()   # keys no YAML document can hold


class _Refused(yaml.MarkedYAMLError):
    """YAML the loader will not build: too deep, too large, an alias to itself."""


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line of each mapping key and refuses
    documents deeper than MAX_DEPTH before its composer, which recurses, can fail."""

    depth = 0   # of the node being composed

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(problem=f"nested deeper than {MAX_DEPTH} levels",
                               problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Any value YAML cannot build (`2024-13-01`, `!!int x`) is a YAML error."""
        try:
            return super().construct_object(node, deep)
        except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError) as exc:
            kind = (node.tag or "").rpartition(":")[2]
            why = f" ({exc})" if type(exc) is ValueError else ""
            raise yaml.constructor.ConstructorError(
                problem=f"{_short(node.value)} is not a valid {kind}{why}",
                problem_mark=node.start_mark) from None


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping[_LINES] = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
    mapping[_LINE] = node.start_mark.line + 1
    return mapping


def _construct_int(loader: _LineLoader, node: yaml.ScalarNode) -> int:
    if len(node.value) > MAX_DIGITS:
        raise _Refused(problem=f"{_short(node.value)} is too long a number",
                       problem_mark=node.start_mark)
    return loader.construct_yaml_int(node)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _check_expanded(root: yaml.Node) -> None:
    """Refuse a document larger or deeper than the limits once its aliases are expanded
    (YAML's 'billion laughs'), or that holds itself; iterative, as its depth is unknown."""
    done: dict[int, tuple[int, int]] = {}   # id(node) -> (values, depth)
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        if closing:
            sizes = [done[id(n)] for n in children]
            values = 1 + sum(v for v, _ in sizes)
            depth = 1 + max((d for _, d in sizes), default=0)
            if values > MAX_VALUES or depth > MAX_DEPTH:
                raise _Refused(problem=f"more than {MAX_VALUES} values or {MAX_DEPTH} levels "
                               "once its aliases are expanded", problem_mark=node.start_mark)
            done[id(node)] = (values, depth)
            open_.discard(id(node))
        elif id(node) in open_:
            raise _Refused(problem="an alias refers to a value that holds it",
                           problem_mark=node.start_mark)
        elif id(node) not in done:
            open_.add(id(node))
            stack.append((node, True))
            stack.extend((n, False) for n in children if id(n) not in done)


def _read(path: Path) -> str:
    """The file's text; it must be UTF-8 and at most MAX_BYTES long."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read inventory: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise InventoryError(f"{path}: over {MAX_BYTES >> 20} MiB, too large for an inventory")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InventoryError(f"{path}:{line}: not UTF-8 text: byte 0x{raw[exc.start]:02x} "
                             f"at offset {exc.start} ({exc.reason})") from None


def _parse(path: Path, text: str) -> Any:
    """The YAML document in `text`, with the line of each mapping key."""
    loader = None
    try:
        loader = _LineLoader(text)   # its reader refuses control characters at once
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded(node)
        return loader.construct_document(node)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise InventoryError(f"{path}:{line}: not valid YAML: character "
                             f"U+{exc.character:04X} is not allowed") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        kind = "" if isinstance(exc, _Refused) else "not valid YAML: "
        raise InventoryError(f"{path}{where}: {kind}{problem}") from None
    except RecursionError:   # the limits keep it away unless the caller is deep already
        raise InventoryError(f"{path}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _strip_lines(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _strip_lines(v) for k, v in data.items() if k is not _LINES and k is not _LINE}
    if isinstance(data, list):
        return [_strip_lines(v) for v in data]
    return data


def _line_of(data: Any, loc: tuple[int | str, ...]) -> int | None:
    """The source line of the deepest element of `loc` that has one."""
    line = None
    node = data
    for part in loc:
        if isinstance(node, dict):
            line = node.get(_LINES, {}).get(str(part), line)
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            if isinstance(node, dict):
                line = node.get(_LINE, line)
        else:
            break
    return line


def _field_name(data: Any, loc: tuple[int | str, ...]) -> str:
    """A readable field path: hosts[1] becomes the host's name where it has one."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and parts and part < len(node):
            node = node[part]
            name = node.get("name") if isinstance(node, dict) else None
            index = _short(name) if isinstance(name, str) and name else part
            parts[-1] = f"{parts[-1]}[{index}]"
        elif not str(part).startswith(("function-", "tagged-union")):
            parts.append(str(part) if _PLAIN.fullmatch(str(part)) else _short(part))
            node = node.get(part) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


def load_inventory(path: Path) -> Inventory:
    """Read and validate an inventory file; raise InventoryError naming what is wrong."""
    data = _parse(path, _read(path))
    if not isinstance(data, dict):
        raise InventoryError(f"{path}: an inventory is a mapping with a 'hosts' list")
    try:
        hosts = _Hosts.model_validate(_strip_lines(data)).hosts
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:MAX_PROBLEMS]:
            loc = tuple(err["loc"])
            line = _line_of(data, loc)
            where = f"{path}:{line}" if line else str(path)
            if err["type"] == "value_error":   # the validators' own words, value included
                problem = str(err["ctx"]["error"])
            else:
                got = err.get("input")
                problem = err["msg"] + (f" (got {_short(got)})"
                                        if isinstance(got, str | int | float) else "")
            problems.append(f"{where}: {_field_name(data, loc)}: {problem}")
        if exc.error_count() > MAX_PROBLEMS:
            problems.append(f"{path}: and {exc.error_count() - MAX_PROBLEMS} more problems")
        raise InventoryError("\n".join(problems)) from None
    return Inventory(hosts=hosts, path=path)
