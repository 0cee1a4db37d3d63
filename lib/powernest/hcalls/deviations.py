"""The known deviations of L0s from the hcall table's rows.

Those not already in `powernest.nested` were predicted by reading QEMU's
hw/ppc/spapr_nested.c (qemu/qemu master as stored, read for the lab's QEMU
10.0.2) or met by a behavioural row, and each confirmed by running its rows on
QEMU 10.0.2 (TCG L0, power9 and power10): every one reproduced; the L0 deaths
with QEMU's own assertion message or signal (SIGABRT, SIGSEGV, SIGFPE).  A row
names its deviations by id (`Case.deviations`).
"""

from __future__ import annotations

from powernest.nested import (
    API,
    SET_CAPABILITIES_ONCE,
    TLB_INVALIDATE,
    VPA_ELEMENT,
    Deviation,
    NestedCode,
)

_READ = "measured on QEMU 10.0.2 (TCG L0) by the hcall suite; QEMU hw/ppc/spapr_nested.c "
V2_SINCE = (9, 0)
V1_SINCE = (0, 0)


def _qemu_v2(id: str, summary: str, source: str) -> Deviation:
    return Deviation(id, API.V2, V2_SINCE, None, summary, None, _READ + source)


def _qemu_v1(id: str, summary: str, source: str) -> Deviation:
    return Deviation(id, API.V1, V1_SINCE, None, summary, None, _READ + source)


ANSWER_DEVIATIONS: tuple[Deviation, ...] = (
    VPA_ELEMENT, TLB_INVALIDATE, SET_CAPABILITIES_ONCE,
    _qemu_v2("qemu-v2-gsb-element-errors",
        "reserved IDs, wrong sizes, read-only IDs and scope mismatches in a GSB are answered "
        "with H_P3 instead of H_INVALID_ELEMENT_ID/_SIZE/_VALUE with the element's index in R4",
        "guest_state_request_check returns false for each ('Element ID %04x unknown', "
        "'Size mismatch', 'Trying to set a read-only Element', 'trying to get/set a guest "
        "wide Element'), and getset_state turns that into 'return H_P3'; measured for 0x0C02 "
        "(rc=-56, LAB-NOTES)"),
    _qemu_v2("qemu-v2-host-state-size",
        "element 0x0001 (size of the L0 vCPU state) is not in QEMU's table: H_P3",
        "guest_state_element_types has no GSB_HV_VCPU_STATE_SIZE entry, so "
        "guest_state_element_type_find(0x0001) is NULL"),
    _qemu_v2("qemu-v2-set-capabilities-unoffered",
        "H_GUEST_SET_CAPABILITIES accepts a processor mode GET did not offer",
        "h_guest_set_capabilities checks only 'capabilities & ~H_GUEST_CAP_VALID_MASK' (all "
        "modes QEMU knows), not the modes ppc_check_compat offered in GET"),
    _qemu_v2("qemu-v2-set-capabilities-r5",
        "H_GUEST_SET_CAPABILITIES' H_P2 leaves in R5 a bit number (unknown bit) or the bitmap "
        "passed in (COPY_MEM), not the index of the first invalid bitmap",
        "h_guest_set_capabilities: for a bit outside H_GUEST_CAP_VALID_MASK "
        "'env->gpr[5] = 63 - ctz64(capabilities)', the IBM bit number of the lowest bit set; "
        "for COPY_MEM it sets only gpr[4] = 1, so R5 keeps the bitmap argument"),
    _qemu_v2("qemu-v2-vcpu-ids-linear",
        "H_GUEST_CREATE_VCPU aborts the L0 for any vCPU ID but the next in sequence",
        "h_guest_create_vcpu: 'assert(vcpuid == guest->nr_vcpus); /* linear vcpuid "
        "allocation only */', before the PAPR_NESTED_GUEST_VCPU_MAX check"),
    _qemu_v2("qemu-v2-state-unchecked-vcpu",
        "GET/SET_STATE on a vCPU that does not exist (or a guest-wide 0x0002 on a guest "
        "without vCPUs) aborts the L0 instead of answering H_P3",
        "h_guest_getset_state never validates vcpuid; get_vcpu_state_ptr and get_vcpu_ptr "
        "'assert(spapr_nested_vcpu_check(guest, vcpuid, false))'"),
    _qemu_v2("qemu-v2-gsb-length-asserts",
        "a GSB length of 0, 1-3 or over 1 MiB aborts (or crashes) the L0",
        "h_guest_getset_state 'assert(buflen <= GSB_MAX_BUF_SIZE)'; guest_state_request_check "
        "'assert(len >= 4)'; for length 0 address_space_map returns NULL and "
        "map_and_getset_state still calls address_space_unmap(NULL), which takes it for a "
        "bounce buffer"),
    _qemu_v2("qemu-v2-gsb-value-asserts",
        "element values QEMU cannot use abort the L0 instead of H_INVALID_ELEMENT_VALUE; "
        "GET of 0x0005/0x0006/0x0C00/0x0C01 aborts too",
        "copy_state_runbuf 'assert(runbuf->addr)', 'assert(size <= 16384)', "
        "'assert(size >= VCPU_OUT_BUF_MIN_SZ)' and 'assert(set)'; copy_state_pagetbl "
        "'assert(rts == 52)' and 'assert(set)'; copy_state_proctbl 'g_assert_not_reached()' "
        "for sizes other than 4 KiB and 16 MiB"),
    _qemu_v2("qemu-v2-gsb-outside-ram",
        "a GSB address outside the L1's RAM is accepted (read as an empty buffer: H_SUCCESS) "
        "instead of H_P4",
        "map_and_getset_state relies on address_space_map, which maps unassigned memory "
        "through a zeroed bounce buffer of up to 4 KiB: a count of 0, so getset_state "
        "succeeds"),
    _qemu_v2("qemu-v2-run-buffers-not-defined",
        "H_GUEST_RUN_VCPU before the run buffers are set answers H_P3, not "
        "H_INPUT_BUFFER_NOT_DEFINED / H_OUTPUT_BUFFER_NOT_DEFINED",
        "h_guest_run_vcpu: 'if (!spapr_nested_vcpu_check(guest, vcpuid, true)) return H_P3', "
        "the check that covers both an unknown vCPU and unset run buffers"),
    _qemu_v2("qemu-v2-delete-all-use-after-free",
        "after H_GUEST_DELETE(deleteAllGuests) the next H_GUEST_CREATE uses a freed hash "
        "table: the L0 may crash or corrupt its heap",
        "h_guest_delete: 'g_hash_table_destroy(spapr->nested.guests); return H_SUCCESS;' "
        "without setting spapr->nested.guests to NULL; h_guest_create then calls "
        "g_hash_table_size/lookup/insert on it"),
    _qemu_v1("qemu-v1-partition-table-base",
        "H_SET_PARTITION_TABLE accepts a table base outside the L1's RAM",
        "h_set_ptbl checks only '(ptcr & PRTS_MASK) + 12 - 4 > 12'; Linux's "
        "kvmhv_set_partition_table also requires kvm_is_visible_gfn(base)"),
    _qemu_v1("qemu-v1-enter-nested-regs",
        "H_ENTER_NESTED with pt_regs outside the L1's RAM enters the L2 with zeroed "
        "registers instead of answering H_PARAMETER",
        "h_enter_nested maps regs_ptr with address_space_map, which gives unassigned memory "
        "a zeroed bounce buffer of the full size, so the 'len != sizeof(*regs)' check passes"),
    Deviation(
        "qemu-v1-enter-nested-lpid-0-abort", API.V1, (7, 0), (10, 0),
        "H_ENTER_NESTED for LPID 0 (also an hv_guest_state outside RAM, read as zeros) "
        "aborts the L0 instead of answering H_PARAMETER",
        None,
        "measured by the hcall suite: QEMU 7.2.22 (TCG L0) dies with 'hw/ppc/spapr_hcall.c:"
        "1793: spapr_exit_nested: Assertion `env->spr[SPR_LPIDR] != 0' failed.' (SIGABRT); "
        "QEMU 10.0.2 answers H_PARAMETER. Nested-HV under TCG arrived in 7.0; the first "
        "fixed release is not bisected (10.0 is the first the lab has seen fixed)"),
    _qemu_v1("qemu-v1-enter-nested-msr-hv",
        "H_ENTER_NESTED with MSR[HV] set in the L2's pt_regs aborts the L0 (TCG) instead of "
        "running the L2 without HV or refusing",
        "found by `powernest hcall campaign` (seed 1, p10-emulated, nested-hv) and replayed: "
        "'target/ppc/mmu-radix64.c:704: ppc_radix64_xlate_impl: Assertion `!(mmuidx_hv("
        "mmu_idx) && cpu->vhyp)' failed.' (SIGABRT) with MSR = SF|HV; SF|ME or every bit "
        "but HV runs the L2 to an exit; QEMU 7.2.22 dies alike (mmu-radix64.c:602). "
        "h_enter_nested takes the L2's MSR from pt_regs as given; Linux "
        "kvmhv_enter_nested_guest clears HV"),
    _qemu_v1("qemu-v1-tlb-invalidate-unchecked",
        "H_TLB_INVALIDATE answers H_SUCCESS to any arguments",
        "h_tlb_invalidate: 'return H_SUCCESS;' unconditionally, where Linux's "
        "kvmhv_emulate_priv_tlbie refuses R=0, PRS=1, RIC=3, IS=1 with H_PARAMETER"),
)

_MEASURED = ("measured on QEMU 10.0.2 (TCG L0, power9 and power10) by an L2 micro-program "
             "row; QEMU hw/ppc/spapr_nested.c ")
_HFSCR = ("an L2 whose HFSCR lacks MSGP executes msgsndp: no Hypervisor Facility Unavailable "
          "exit (0xF80), the run goes on; the HFSCR the L1 set is accepted and not honoured")
_HFSCR_SOURCE = ("(reference L0 Linux reflects HFAC to the L1 with HFSCR[IC]); QEMU's facility "
                 "checks raise no hypervisor interrupt for a guest of its virtual hypervisor "
                 "(target/ppc helper_hfscr_facility_check)")
_HISI = ("the cause of an HISI exit (0xE20; HSRR1 bit 33: no translation) is not in the MSR "
         "handed back, so the L1 cannot tell why the fetch failed")
_HISI_SOURCE = ("exit code takes the L2's MSR from HSRR1 & msr_mask, and msr_mask excludes the "
                "HISI cause bits; the reference L0 Linux ORs them in, and Linux L1s read "
                "them from the MSR (fault_dsisr = msr & DSISR_SRR1_MATCH_64S)")
L2_DEVIATIONS: tuple[Deviation, ...] = (
    _qemu_v1("qemu-v1-hfscr-not-enforced", _HFSCR, _MEASURED + _HFSCR_SOURCE),
    _qemu_v2("qemu-v2-hfscr-not-enforced", _HFSCR, _MEASURED + _HFSCR_SOURCE),
    _qemu_v1("qemu-v1-hisi-cause-lost", _HISI,
             _MEASURED + "spapr_exit_nested_hv: " + _HISI_SOURCE),
    _qemu_v2("qemu-v2-hisi-cause-lost", _HISI,
             _MEASURED + "spapr_exit_nested_papr: " + _HISI_SOURCE),
    _qemu_v1("qemu-v1-heir-not-returned",
        "after an emulation assist exit (0xE40) hv_guest_state.heir does not hold the "
        "instruction: the L1 cannot emulate it",
        _MEASURED + "spapr_exit_nested_hv writes hdar, hdsisr and asdr for 0xE00 and asdr "
        "for 0xE20, and never heir; the reference L0 Linux save_hv_return_state sets "
        "hr->heir = emul_inst for 0xE40"),
    _qemu_v2("qemu-v2-tb-offset-not-returned",
        "H_GUEST_GET_STATE of the TB offset (0x0004) returns 0, not the offset set",
        _MEASURED + "the SET copies the offset into each vCPU and never into guest->tb_offset, "
        "which the GET returns"),
    _qemu_v2("qemu-v2-spurr-from-purr",
        "after a run, SPURR (0x1034) holds the PURR's value, not the SPURR's",
        _MEASURED + "nested_load_state: 'env->spr[SPR_SPURR] = load->purr'"),
    _qemu_v2("qemu-v2-dec-expiry-inverted",
        "after a run, the DEC expiry TB (0x102A) is not the expiry set (set 0x504e102ac3a5102a, "
        "read 0xabf0a008f): the L2's DEC is lost at every exit",
        _MEASURED + "at entry DEC = expiry - now, at exit expiry = now - DEC (the sign of DEC "
        "inverted)"),
    _qemu_v2("qemu-v2-elements-ignored",
        "MMCR3, SIER2, SIER3 and WORT: SET succeeds and keeps nothing; GET returns 0",
        _MEASURED + "guest_state_element_types gives these IDs no storage (GSBE_NESTED_VCPU "
        "entries without a location): their SET is ignored and their GET writes nothing"),
    Deviation(
        "kvm-v1-msgsndp-no-exit", API.V1, (6, 12), None,
        "an L2 whose HFSCR lacks MSGP runs msgsndp and the L1 gets no exit for it (neither "
        "HFAC nor HEAI): the run ends at its HDEC expiry, NIA at the instruction before",
        None,
        "measured on the kvm twin (Linux 6.12 KVM-HV L0 on QEMU 10.0.2 TCG powernv) by "
        "v1-l2-exit-facility; book3s_hv_nested.c turns an HFAC for a facility the L0 does "
        "not permit its L1 (MSGP: KVM emulates doorbells) into an HEAI for the L1; whether "
        "Linux or the TCG powernv processor loses it is not isolated",
        l0=NestedCode.LINUX_KVM,
        seen_on="Linux 6.12.95+deb12 KVM-HV on a QEMU 10.0.2 TCG powernv9 (POWER9)"),
    _qemu_v2("qemu-v2-element-values-unchecked",
        "values an L0 cannot use are accepted (MSR with HV, LPCR reserved bit 0, a POWER7 "
        "logical PVR) instead of H_INVALID_ELEMENT_VALUE",
        _MEASURED + "getset_state applies an element's mask only 'if (!~mask && ...)', i.e. "
        "never; copy_logical_pvr logs an unknown PVR and stores it"),
)

# Every known deviation a row of the table may meet.
HCALL_DEVIATIONS = ANSWER_DEVIATIONS + L2_DEVIATIONS

_BY_ID = {d.id: d for d in HCALL_DEVIATIONS}


def deviation(deviation_id: str) -> Deviation:
    """A known deviation by its id."""
    return _BY_ID[deviation_id]
