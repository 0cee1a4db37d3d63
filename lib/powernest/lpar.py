"""A PowerVM LPAR with KVM enabled: the L1 itself, driven over SSH.

The suite does not boot an LPAR; it connects to it (its `HostSession`), checks
its kvm-hv, runs L2s there with the LPAR's own QEMU and the lab's L2 images
(uploaded once per content hash), and with `allow_kexec: true` kexecs it and
reconnects once a new kernel (a new boot id) answers.  What was done and
seen is written to `log_path`, which the report attaches like a console log.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from powernest import naming
from powernest.errors import Unavailable
from powernest.guests import L1Commands
from powernest.hosts import HostSession
from powernest.kinds import NO_RELOAD, NO_RESET
from powernest.lab import LabImages
from powernest.shell import Result

# Loads kvm-hv as the LPAR's own tools would (modprobe), else from the module
# tree of the running kernel (the twin's image has no modules.dep).
_LOAD_KVM_HV = ('{ modprobe kvm_hv || { insmod "/lib/modules/$(uname -r)/kvm.ko" 2>/dev/null; '
                'insmod "/lib/modules/$(uname -r)/kvm-hv.ko"; }; } 2>&1')
# kexec -l into the newest /boot/vmlinux-<series> or -<series>.* (6.1 must not
# match 6.12), with that kernel's Debian initrd if there is one, else the
# running root (`mkself`, the lab image).
_KEXEC_LOAD = r'''set -e
kernel=$(ls -d /boot/vmlinux-"$1" /boot/vmlinux-"$1".* 2>/dev/null | sort | tail -n 1)
[ -n "$kernel" ] || { echo "no /boot/vmlinux-$1 or /boot/vmlinux-$1.*" >&2; exit 2; }
initrd=/boot/initrd.img-${kernel#/boot/vmlinux-}
if [ ! -f "$initrd" ]; then initrd=/tmp/self.cpio; mkself "$initrd"; fi
echo "kexec -l $kernel --initrd=$initrd (command line kept)"
kexec --mem-min=0x10000000 -l "$kernel" --initrd="$initrd" --append="$(cat /proc/cmdline)"
'''
# Detached from the SSH session, which the new kernel ends.
_KEXEC_EXEC = "setsid sh -c 'sleep 1; sync; kexec -e' </dev/null >/dev/null 2>&1 &"


class Lpar(L1Commands):
    """An LPAR as the L1 of the cases that run on it (see the module docstring)."""

    boot_seconds = 0.0        # the suite does not boot it
    started_from = ""         # nor start it
    expected_release = None   # it runs its own kernel

    def __init__(self, session: HostSession, lab: LabImages, log_path: Path) -> None:
        self.session = session
        self.lab = lab
        self.log_path = log_path
        self.command_timeout = session.host.timeouts.command
        self.kernel_release = ""
        self.boot_id = ""
        self.kvm_load: Result | None = None
        self._l2_ids = itertools.count(1)
        log_path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def name(self) -> str:
        return self.session.host.name

    @property
    def kexecs(self) -> int:
        """Nothing resets an LPAR: every kexec of this run counts."""
        return self.session.kexecs

    def connect(self) -> None:
        """Read the running kernel and boot id."""
        self.kernel_release = self.run(["uname", "-r"], check=True).stdout.strip()
        self.boot_id = self.session.boot_id()
        self._log(f"connected: kernel {self.kernel_release}, boot id {self.boot_id}, "
                  f"platform {self.session.l0.platform!r}")

    def _log(self, line: str) -> None:
        with self.log_path.open("a") as log:
            log.write(f"[{time.strftime('%H:%M:%S')}] {line}\n")

    def run(self, argv: Sequence[str], timeout: float | None = None,
            check: bool = False) -> Result:
        return self.session.shell.run(argv, timeout or self.command_timeout, check)

    def alive(self) -> bool:
        return True   # the LPAR outlives the run; a lost connection fails the command

    def stop(self) -> None:
        """Nothing to stop: the suite never boots or shuts down an LPAR."""

    def load_kvm(self) -> Result:
        """kvm-hv as the cases find it: loaded at boot, or loaded now."""
        if self.kvm_hv_loaded():
            self.kvm_load = Result("grep ^kvm_hv /proc/modules", 0, "kvm_hv already loaded\n")
        else:
            self.kvm_load = self.run(["sh", "-c", _LOAD_KVM_HV])
        self._log(f"kvm-hv: {self.kvm_load.stdout.strip() or 'loaded'} "
                  f"(exit {self.kvm_load.exit_code})")
        return self.kvm_load

    def reload_kvm_hv(self) -> Result:
        raise Unavailable(NO_RELOAD)

    def reboot(self, timeout: float) -> None:
        raise Unavailable(NO_RESET)

    def kexec_unavailable(self, kernel: str) -> str | None:
        """An LPAR is kexec'd only into its own kernel series (its /boot has no other)."""
        if kernel == self.kernel:
            return None
        return (f"{self.name} runs Linux {self.kernel}: it is kexec'd only into its own "
                f"kernel series")

    def kexec(self, kernel: str, timeout: float) -> None:
        """kexec into the LPAR's /boot/vmlinux-<kernel>[.*] and reconnect over SSH.

        Waits up to `timeout` for a kernel with a new boot id to answer
        (`HostLost` if none does) and takes the host's lease again.
        """
        loaded = self.run(["sh", "-c", _KEXEC_LOAD, "sh", kernel], timeout=timeout, check=True)
        self._log(loaded.stdout.strip())
        self.stop_tracing()
        self.run(["sh", "-c", _KEXEC_EXEC], check=True)
        self._log(f"kexec -e; waiting up to {timeout:.0f} s for a new boot id")
        waited = self.session.wait_for_new_boot(self.boot_id, timeout)
        self._log(f"back after {waited:.1f} s")
        self.connect()

    def next_l2_name(self) -> str:
        """L2 names carry the run id, so a later run can reap what this one left."""
        return naming.guest_name(self.session.run_id, self.name, self.next_l2_role())

    def l2_defaults(self) -> dict[str, Any]:
        """The lab's L2 images, uploaded to the LPAR, and the LPAR's QEMU."""
        host = self.session.host
        return {"kernel": self.session.path_of(self.lab.kernels["6.12"]),
                "initrd": self.session.path_of(self.lab.l2_initrd),
                "qemu": host.qemu, "data_dir": host.qemu_data_dir}
