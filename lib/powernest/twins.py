"""Emulated twins of the lab's real host kinds, run by QEMU TCG on this machine.

A twin boots the lab's L1 image as a lab host would run: with an SSH server
(dropbear) that the suite reaches through a QEMU user-network port forward on
127.0.0.1, and an inventory entry written exactly as for the real host.

- `powervm`: a pseries machine with `cap-nested-papr=on`, the API PowerVM
  offers its LPARs, with kvm-hv loaded at boot: the twin is the LPAR (the L1).
- `kvm`: a `powernv9` machine booting skiboot and the 6.12 kernel as a
  bare-metal hypervisor with kvm-hv loaded natively: the suite starts L1s
  there with `-accel kvm`.

Trust is set up as on a real lab: the controller makes a key pair for the
twin and passes the public key on the kernel command line; the twin prints
its host key on its console, which becomes the known_hosts entry.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
import pexpect

from powernest.console import Console, ConsoleClosed
from powernest.guests import L1_READY
from powernest.inventory import Kind
from powernest.lab import LabImages
from powernest.local import LocalShell
from powernest.nested import API
from powernest.qemu import LAB_KERNEL_ARGS, SPAPR_RNG, GuestSpec, GuestStartError

# to the end of the line: pexpect matches as soon as it can, maybe on half a key
HOSTKEY = r"POWERNEST-SSH-HOSTKEY (ssh-\S+ [A-Za-z0-9+/]+=*)[\r\n]"
# A QEMU TCG machine cannot honour the Spectre-mitigation defaults that a
# pseries guest under KVM asks for; QEMU's own KVM tests relax the same caps.
RELAXED_CAPS = ("cap-cfpc=broken", "cap-sbbc=broken", "cap-ibs=broken", "cap-ccf-assist=off",
                "cap-hpt-max-page-size=4k")


@dataclass(frozen=True)
class TwinKind:
    """How to boot one kind of twin."""

    kind: Kind
    board: str
    cpu: str
    machine_props: tuple[str, ...]
    nic: str           # the guest's NIC driver module (the l1-init loads it)
    nic_device: str    # how QEMU adds that NIC on this board
    memory: str
    boot_timeout: float
    gzip_initrd: bool = False   # powernv loads at most 128 MiB of initrd; the L1's is 160 MB


KINDS = {
    Kind.POWERVM: TwinKind(Kind.POWERVM, "pseries", "power10", (API.V2.machine_prop,),
                           "ibmveth", "spapr-vlan", "4G", 180),
    Kind.KVM: TwinKind(Kind.KVM, "powernv9", "power9", (), "e1000e",
                       "e1000e,bus=pcie.0,romfile=", "6G", 300, gzip_initrd=True),
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Twin:
    """A running twin; `stop()` kills its QEMU."""

    name: str
    kind: Kind
    cpu: str
    port: int
    key_file: Path
    known_hosts: Path
    log_path: Path
    console: Console
    boot_seconds: float
    ended: threading.Event = field(default_factory=threading.Event)  # its QEMU is gone

    def inventory_entry(self) -> dict[str, Any]:
        """The twin's inventory entry, as a real host of its kind would have."""
        entry: dict[str, Any] = {
            "name": self.name, "kind": self.kind.value, "cpu": self.cpu,
            "qemu": "/usr/bin/qemu-system-ppc64", "allow_kexec": True,
            "allow_destructive": True,   # a twin is disposable
            "ssh": {"host": "127.0.0.1", "port": self.port, "user": "root",
                    "key_file": str(self.key_file), "known_hosts": str(self.known_hosts),
                    "connect_timeout": 10},
        }
        if self.kind is Kind.POWERVM:
            entry["apis"] = ["nested-papr"]
        else:
            # pseries L1s (and their L2s) under KVM on the emulated POWER9 host
            entry.update(l1_machine=list(RELAXED_CAPS), l2_machine=list(RELAXED_CAPS),
                         memory="3G",   # an L1 with room for the 2G L2 of test_lifecycle
                         timeouts={"l1_boot": 300, "l2_boot": 600, "command": 300})
        return entry

    def keep_reading(self) -> None:
        """Copy the console to its log in the background from now on.

        Nobody expects anything on a booted twin's console, but unread output
        would fill the pty and stall the machine at its next kernel message.
        """
        def drain() -> None:
            with contextlib.suppress(Exception):   # ends when the console is closed
                while self.console.alive():
                    with contextlib.suppress(pexpect.TIMEOUT):
                        self.console.proc.read_nonblocking(65536, timeout=1)
            self.ended.set()
        threading.Thread(target=drain, name=f"twin {self.name} console", daemon=True).start()

    def stop(self) -> None:
        self.console.close()


def _gzipped(image: Path, workdir: Path) -> Path:
    """A gzip copy of `image` in `workdir`, made once (fast level: it is read once)."""
    out = workdir / f"{image.name}.gz"
    if not out.exists():
        part = out.with_name(out.name + ".part")
        with image.open("rb") as src, gzip.open(part, "wb", compresslevel=1) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        part.rename(out)
    return out


def start(kind: Kind, lab: LabImages, workdir: Path, name: str, port: int = 0,
          kernel: str = "6.12") -> Twin:
    """Boot a twin of `kind` running the lab's `kernel` series and wait for its SSH
    server; the files go in `workdir`."""
    twin = KINDS[kind]
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    key_file = workdir / f"{name}.key"
    key = paramiko.ECDSAKey.generate()
    key.write_private_key_file(str(key_file))
    spec = GuestSpec(
        name=f"pn-twin.{name}", kernel=str(lab.kernels[kernel]),
        initrd=str(_gzipped(lab.l1_initrd, workdir) if twin.gzip_initrd else lab.l1_initrd),
        board=twin.board, machine_props=twin.machine_props, cpu=twin.cpu, memory=twin.memory,
        append=(f"console=hvc0 {LAB_KERNEL_ARGS} powernest.net={twin.nic} powernest.kvm=1 "
                f"powernest.ssh={key.get_name()}:{key.get_base64()}"),
        extra=("-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22",
               "-device", f"{twin.nic_device},netdev=net0",
               *(SPAPR_RNG if twin.board == "pseries" else ())))
    log_path = workdir / f"{name}.console.log"
    started = time.monotonic()
    console = Console(LocalShell(name).spawn(spec.argv()), log_path, name)
    try:
        hostkey = console.expect(HOSTKEY, twin.boot_timeout)[1]
        console.expect(L1_READY, twin.boot_timeout)
    except ConsoleClosed:
        raise GuestStartError.from_log(name, log_path) from None
    except BaseException:
        console.close()
        raise
    known_hosts = workdir / f"{name}.known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {' '.join(hostkey.split())}\n")
    booted = Twin(name, kind, twin.cpu, port, key_file, known_hosts, log_path, console,
                  time.monotonic() - started)
    booted.keep_reading()
    return booted
