"""The emulated lab: boot images for QEMU TCG built from Debian packages.

`build_lab()` turns ppc64el Debian packages into two kernels (6.12 and 6.1),
an L2 initramfs, an L1 initramfs (QEMU, KVM modules, kexec, the L2 images) and
pnhcall.ko cross-built for each kernel (`LabImages.hcall_modules`), kept in a
content-addressed cache; `find_lab()` returns them without building;
`hcall_module_for()` cross-builds pnhcall.ko for another kernel (an LPAR's own);
`build_host_initrd()` is a userland to append to the L1's that builds modules itself.
"""

from powernest.lab.builder import build_host_initrd, build_lab, hcall_module_for
from powernest.lab.cache import LabImages, default_cache, find_lab
from powernest.lab.errors import LabBuildError

__all__ = ["LabBuildError", "LabImages", "build_host_initrd", "build_lab", "default_cache",
           "find_lab", "hcall_module_for"]
