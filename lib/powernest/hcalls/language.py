"""The /proc/pnhcall command language and its limits, read from the module's source.

`module/pnhcall.c` defines them (its `#define`s and its command table); this
module reads them from there, so no other file restates them.
"""

from __future__ import annotations

import re
from pathlib import Path

MODULE_SOURCE = Path(__file__).resolve().parent / "module" / "pnhcall.c"
_TEXT = MODULE_SOURCE.read_text()


def _define(name: str) -> int:
    """The value of `#define NAME <number or (1 << n)>` in the module's source."""
    match = re.search(rf"^#define {name}\s+\(?(\d+)(?:\s*<<\s*(\d+))?\)?\s*$", _TEXT, re.M)
    if not match:
        raise RuntimeError(f"{MODULE_SOURCE.name} defines no {name}")
    return int(match[1]) << int(match[2] or 0)


MODULE_NAME = "pnhcall"                # pnhcall.ko, as /proc/modules names it
PROC = "/proc/" + re.findall(r'proc_create\("(\w+)"', _TEXT)[0]
MAX_COMMAND = _define("MAX_COMMAND")   # bytes of one command line
MAX_BUFFERS = _define("MAX_BUFFERS")   # buffer IDs 0 .. MAX_BUFFERS - 1
MAX_SIZE = _define("MAX_SIZE")         # bytes of one buffer
MAX_READ = _define("MAX_READ")         # bytes of one `read`
COMMANDS: tuple[str, ...] = tuple(re.findall(r'\{ "(\w+)", do_\w+ \}', _TEXT))
_NESTED = re.search(r"nested_hcalls\[\] = \{([^}]*)\}", _TEXT)
# The hcalls the module makes without being told (the others: `insmod ... allow=`).
NESTED_HCALLS: tuple[int, ...] = tuple(
    int(n, 16) for n in re.findall(r"0x[0-9A-Fa-f]+", _NESTED[1] if _NESTED else ""))
