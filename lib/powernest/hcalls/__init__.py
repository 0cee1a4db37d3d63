"""Hcall-level conformance of the two POWER nested APIs.

A kernel module in the L1 (`pnhcall.ko`, `/proc/pnhcall`: `module/`, its
language in `language`) issues raw hcalls to the L0.  The contract, pure
Python: hcall numbers and return codes (`numbers`), the Guest State Buffer
(`gsb`), the row model (`model`), L2 micro-programs (`asm`, `radix`,
`l2program`), the table (`cases`, from `cases_v1`, `cases_v2`,
`cases_v2_state`, `cases_l2`, `cases_v2_elements`) and its known deviations
(`deviations`), a row as a busybox script that doubles as its reproducer
(`script`) and its verdict (`verdict`).  Running it: `driver` (the module in an
L1), `runner` (rows in L1s of a run), `replay` (a reproducer on this machine);
and apart, `trace`: kvm-hv's own hcalls, recorded passively.
"""
