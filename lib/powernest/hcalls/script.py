"""One case as a busybox sh script driving /proc/pnhcall, and its output read back.

The script is also the case's reproducer: a QEMU developer runs it by hand in
an L1 with the module loaded.  It prints `PNBEGIN <case>`, one
`PNSTEP <label> <module result line>` per step, and last `PNEND done` or
`PNEND setup-failed <label>`.  No PNEND line means the script stopped in the
middle: its L1 (or the L1's L0) died.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

from powernest.hcalls import numbers
from powernest.hcalls.language import MAX_BUFFERS, MAX_COMMAND, MAX_READ, PROC
from powernest.hcalls.model import (
    Addr,
    Alloc,
    Arg,
    Bound,
    Call,
    Case,
    Chunk,
    Expr,
    Guard,
    Modes,
    Read,
    Role,
    Stamp,
    Step,
    Var,
    Write,
    width,
)

MAX_WRITE = (MAX_COMMAND - 32) // 2     # bytes of one `write` command line, in hex
_MASK = (1 << 64) - 1

_PRELUDE = r"""P=${PNHCALL:-PROC}
pn() { echo "$*" 2>/dev/null >"$P"; R=; read -r R <"$P"; }
show() { echo "PNSTEP $1 $R"; }
val() { echo "$R" | awk -v k="$1" '{for (i = 1; i <= NF; i++) {
  n = index($i, "="); if (n && substr($i, 1, n - 1) == k) print substr($i, n + 1) } }'; }
fail() { echo "PNEND setup-failed $1"; exit 1; }
need() {
  l=$1; shift
  case "$R" in error:*|"") fail "$l";; esac
  [ $# -eq 0 ] && return 0
  c=$(val rc); for ok in "$@"; do [ "$c" = "$ok" ] && return 0; done
  fail "$l"
}
[ -e "$P" ] || { echo "PNEND setup-failed module ($P missing: insmod pnhcall.ko)"; exit 1; }
""".replace("PROC", PROC)


def labelled(case: Case) -> Iterator[tuple[str, Step]]:
    """Each step with its output label (calls and guards keep theirs; unique)."""
    seen: dict[str, int] = {}
    for step in case.steps:
        if isinstance(step, Call | Guard | Stamp | Read | Bound | Modes):
            base = step.label
        elif isinstance(step, Alloc):
            base = f"alloc-{step.buf}"
        else:
            base = f"write-{step.buf}"
        seen[base] = seen.get(base, 0) + 1
        yield (base if seen[base] == 1 else f"{base}-{seen[base]}"), step


def _var(name: str) -> str:
    return "V_" + name.replace("-", "_")


def _addr_sum(a: Addr) -> str:
    """Shell arithmetic for an address (offset and bits as hex: they may not fit a
    signed 64-bit decimal)."""
    text = "A_" + a.buf.replace("-", "_")
    if a.offset:
        text += f" + {a.offset:#x}"
    return text + (f" | {a.bits:#x}" if a.bits else "")


def _addr(a: Addr) -> str:
    if not (a.offset or a.bits):
        return f"$A_{a.buf.replace('-', '_')}"
    return f"$(printf 0x%x $(({_addr_sum(a)})))"


class _ShellNames(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return _var(key)


def _arith(e: Expr) -> str:
    return e.text.format_map(_ShellNames())


def _arg(arg: Arg) -> str:
    if isinstance(arg, Var):
        return f"${_var(arg.name)}"
    if isinstance(arg, Addr):
        return _addr(arg)
    if isinstance(arg, Expr):
        return f"$(printf 0x%x $(({_arith(arg)})))"
    return f"{arg & _MASK:#x}"


def _chunk(chunk: Chunk) -> str:
    if isinstance(chunk, Addr):
        return f"$(printf %016x $(({_addr_sum(chunk)})))"
    return chunk.hex()


def _comment(text: str, indent: str = "#   ") -> list[str]:
    return textwrap.wrap(text, 76, initial_indent=indent, subsequent_indent=indent)


def _header(case: Case) -> list[str]:
    lines = ["#!/bin/sh", f"# powernest hcall case {case.id}: {case.summary}",
             f"# API: {case.api.value} (the L0 runs -M pseries,{case.api.machine_prop})",
             f"# Hcall under test: {case.hcall} ({numbers.opcode(case.hcall):#x})",
             "# Expected:"]
    for label, step in labelled(case):
        if isinstance(step, Call) and step.role is Role.CHECK:
            lines += _comment(f"{label}: {step.expect.describe()}")
        elif isinstance(step, Read | Bound | Modes):
            lines += _comment(f"{label}: {step.describe()}")
    lines += ["# Source:", *_comment(case.source)]
    if case.deviations:
        lines += _comment(f"Known deviations: {', '.join(case.deviations)}", "# ")
    if case.may_crash_l0:
        lines += _comment(f"MAY CRASH THE L0: {case.crash_evidence}", "# ")
    lines += _comment(f"Leaves L0 state for later cases: {'yes' if case.leaves_state else 'no'}"
                      f"; needs an L0 untouched since reset: "
                      f"{'yes' if case.needs_fresh else 'no'}", "# ")
    lines += ["# Run, in an L1 whose kvm-hv is not loaded (it registers with the L0 too):",
              "#   insmod pnhcall.ko; sh THIS_FILE",
              "# Output: PNSTEP <label> <result> per step, then PNEND done or",
              "# PNEND setup-failed <label>; no PNEND line: the L1 or its L0 died.", ""]
    return lines


def _buffers(case: Case) -> dict[str, int]:
    ids: dict[str, int] = {}
    for step in case.steps:
        if isinstance(step, Alloc) and step.buf not in ids:
            ids[step.buf] = len(ids)
    if len(ids) > MAX_BUFFERS:
        raise ValueError(f"{case.id}: {len(ids)} buffers, the module has {MAX_BUFFERS}")
    return ids


def _step(label: str, step: Step, ids: dict[str, int]) -> list[str]:
    if isinstance(step, Alloc):
        return [f"pn alloc {ids[step.buf]} {step.size}", f"show {label}", f"need {label}",
                f"A_{step.buf.replace('-', '_')}=$(val addr)"]
    if isinstance(step, Write):
        if width(step.data) > MAX_WRITE:
            raise ValueError(f"{label}: the module takes at most {MAX_WRITE} bytes a write")
        data = "".join(_chunk(c) for c in step.data)
        return [f'pn write {ids[step.buf]} {step.offset} "{data}"', f"show {label}",
                f"need {label}"]
    if isinstance(step, Guard):
        return [f"if [ $(({_arith(step.test)})) -ne 0 ]; then R=ok; else "
                f"R='error: not applicable: {step.why}'; fi", f"show {label}",
                f"need {label}"]
    if isinstance(step, Stamp):
        order = "le" if step.little else "be"
        return [f"pn stamp {ids[step.buf]} {step.offset} {step.delta:#x} {order}",
                f"show {label}", f"need {label}"]
    if isinstance(step, Read):
        if step.length > MAX_READ:
            raise ValueError(f"{label}: the module reads at most {MAX_READ} bytes at once")
        return [f"# check: what {step.buf} holds now",
                f"pn read {ids[step.buf]} {step.offset} {step.length}", f"show {label}"]
    if isinstance(step, Bound):
        return _comment(f"check {label}: {step.why}", "# ")
    if isinstance(step, Modes):
        return [f"# check: {step.describe()}",
                "R=\"generation=$(sed -n 's/^cpu[[:space:]]*: POWER\\([0-9][0-9]*\\).*/\\1/p' "
                "/proc/cpuinfo | head -n 1) pvr=$(sed -n 's/^revision.*(pvr \\([0-9a-f]*\\) .*/"
                "\\1/p' /proc/cpuinfo | head -n 1)\"", f"show {label}"]
    args = " ".join(_arg(a) for a in step.args)
    lines = [f"pn call {step.opcode:#x} {args}".rstrip(), f"show {label}"]
    if step.role is Role.CHECK:
        lines.insert(0, f"# check: {step.hcall} must return {step.expect.describe()}")
    if step.role is Role.SETUP:
        if numbers.UNSUPPORTED_FLAG in step.expect.codes:
            raise ValueError(f"{label}: a setup step needs exact return codes")
        lines.append(f"need {label} " + " ".join(str(numbers.rc(c)) for c in step.expect.codes))
    if step.save:
        lines.append(f"{_var(step.save)}=$(val r4)")
    return lines


def compile_case(case: Case) -> str:
    """The sh script (and reproducer) of one case."""
    ids = _buffers(case)
    frees = [f"pn free {n}" for n in ids.values()]
    lines = [*_header(case), _PRELUDE.rstrip("\n"), *frees, f"echo 'PNBEGIN {case.id}'"]
    for label, step in labelled(case):
        lines += _step(label, step, ids)
    lines += [*frees, "echo 'PNEND done'"]
    return "\n".join(lines) + "\n"
