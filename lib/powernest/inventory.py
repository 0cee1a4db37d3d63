"""The host inventory (`hosts.yaml`): pydantic models and a loader whose errors
name the file, the line, the field and the problem.

A host is plain data; what acts on it lives elsewhere (`hosts.py`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from powernest.errors import PowernestError
from powernest.nested import API

CPU_MODELS = ("power8", "power9", "power10", "power11")
L1_KERNELS = ("6.12", "6.1")


class InventoryError(PowernestError):
    """The inventory cannot be used; the message says where and why."""


class Kind(StrEnum):
    TCG = "tcg"          # the emulated lab: QEMU TCG on the host is L0
    KVM = "kvm"          # a bare-metal POWER host running KVM-HV
    POWERVM = "powervm"  # a PowerVM LPAR with KVM enabled: it is the L1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ssh(_Model):
    """How to reach a host over SSH. Passwords only by environment variable name."""

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    user: str | None = None
    key_file: Path | None = None
    password_env: str | None = None
    known_hosts: Path | None = None
    verify_host_key: bool = True
    connect_timeout: Annotated[float, Field(gt=0)] = 10.0
    keepalive: Annotated[int, Field(ge=0)] = 15
    via: Ssh | None = None   # a jump host (bastion) that carries the connection

    @field_validator("key_file", "known_hosts")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value else None


class Timeouts(_Model):
    """Seconds each kind of wait may take before it fails with the console tail."""

    l1_boot: Annotated[float, Field(gt=0)] = 240.0
    l2_boot: Annotated[float, Field(gt=0)] = 240.0
    command: Annotated[float, Field(gt=0)] = 120.0


class Host(_Model):
    """One lab host: where L0 (or, for `powervm`, L1) runs and what it offers."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    kind: Kind
    cpu: Literal["power8", "power9", "power10", "power11"]
    apis: tuple[API, ...] | None = None   # default: what its kind offers (kinds.py)
    l1_kernel: Literal["6.12", "6.1"] = "6.12"   # the kernel of the L1s the suite boots
    qemu: str = "qemu-system-ppc64"    # or lab:NAME, a QEMU the lab build unpacked
    qemu_data_dir: str | None = None   # QEMU -L (firmware), for a QEMU not installed
    memory: str = "4G"
    l1_machine: tuple[str, ...] = ()   # extra -M pseries properties for L1, after the cap
    l2_machine: tuple[str, ...] = ()   # extra -M pseries properties for the L2s in an L1
    allow_kexec: bool | None = None       # default: per kind (kinds.py)
    allow_destructive: bool = False       # cases that may crash the L0 (tcg: always)
    ssh: Ssh | None = None
    timeouts: Timeouts = Timeouts()

    @model_validator(mode="after")
    def _check_kind(self) -> Host:
        if self.kind is not Kind.TCG and self.ssh is None:
            raise ValueError(f"a '{self.kind.value}' host needs an 'ssh' section")
        return self


class Inventory(_Model):
    """The hosts a run may use, in file order."""

    hosts: tuple[Host, ...]
    path: Path | None = None

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

    def select(self, names: list[str] | None) -> tuple[Host, ...]:
        """The named hosts (all when `names` is empty); unknown names are an error."""
        if not names:
            return self.hosts
        known = {h.name: h for h in self.hosts}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InventoryError(
                f"{self.path}: no host named {', '.join(unknown)} "
                f"(hosts: {', '.join(known)})")
        return tuple(known[n] for n in names)


class _LineLoader(yaml.SafeLoader):
    """A YAML loader that remembers the line of each mapping key."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value}
    mapping["__lines__"] = lines
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip_lines(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _strip_lines(v) for k, v in data.items() if k not in ("__lines__", "__line__")}
    if isinstance(data, list):
        return [_strip_lines(v) for v in data]
    return data


def _line_of(data: Any, loc: tuple[int | str, ...]) -> int | None:
    """The source line of the deepest element of `loc` that has one."""
    line = None
    node = data
    for part in loc:
        if isinstance(node, dict):
            line = node.get("__lines__", {}).get(str(part), line)
            node = node.get(part) if isinstance(part, str) else None
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            if isinstance(node, dict):
                line = node.get("__line__", line)
        else:
            break
    return line


def _field_name(data: Any, loc: tuple[int | str, ...]) -> str:
    """A readable field path: hosts[1] becomes the host's name where it has one."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
            name = node.get("name") if isinstance(node, dict) else None
            parts[-1] = f"{parts[-1]}[{name!r}]" if name else f"{parts[-1]}[{part}]"
        elif isinstance(part, str) and not part.startswith(("function-", "tagged-union")):
            parts.append(part)
            node = node.get(part) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


def load_inventory(path: Path) -> Inventory:
    """Read and validate an inventory file; raise InventoryError naming what is wrong."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read inventory: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InventoryError(f"{path}{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise InventoryError(f"{path}: an inventory is a mapping with a 'hosts' list")
    try:
        return Inventory(**_strip_lines(data), path=path)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _line_of(data, loc)
            where = f"{path}:{line}" if line else str(path)
            problems.append(f"{where}: {_field_name(data, loc)}: {err['msg']}"
                            + (f" (got {err['input']!r})" if _scalar(err.get("input")) else ""))
        raise InventoryError("\n".join(problems)) from None


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and not isinstance(value, dict)
