"""The spec's statements as data: each clause of kvm-nested.rst an L0 could get wrong, the
rows of the hcall table that check it (`ROW_CLAUSES`), or why no row does (`UNCOVERED`),
and the clauses each known deviation breaks (`DEVIATION_CLAUSES`).

A clause paraphrases one statement of Linux's Documentation/arch/powerpc/kvm-nested.rst
(read at commit 03c11eb3b16d) and names its section; nothing here comes from PAPR
conventions, QEMU or Linux code, which rows cite in their own `source`.  What the
document does not say, so that no clause holds it: H_TLB_INVALIDATE and
H_COPY_TOFROM_GUEST are not mentioned; H_ENTER_NESTED's return value (the exit
vector) is not stated; H_GUEST_CREATE's output register for the new ID is not named;
no return code is named for reserved flag bits, unknown guest or vCPU IDs, an
out-of-range or repeated vCPU ID, unregistered run buffers, or an element that is
read-only or of the wrong scope; the "array index" of a bad element has no stated
base.  `reporting.coverage` sets the clauses against a run's targets.
"""

from __future__ import annotations

from dataclasses import dataclass

from powernest.nested import API


@dataclass(frozen=True)
class Clause:
    """One statement of the spec: an id, the API and hcall it is about (`GSB` for the
    Guest State Buffer's format and elements, `EXIT` for what comes back at an L2
    exit), a paraphrase and its section."""

    id: str
    api: API
    hcall: str
    text: str
    source: str


HV, PAPR = API.V1, API.V2
S_EXISTING = "kvm-nested.rst, Existing API"
S_NEW = "kvm-nested.rst, New PAPR API"
S_GETCAP = "kvm-nested.rst, H_GUEST_GET_CAPABILITIES()"
S_SETCAP = "kvm-nested.rst, H_GUEST_SET_CAPABILITIES()"
S_CREATE = "kvm-nested.rst, H_GUEST_CREATE()"
S_VCPU = "kvm-nested.rst, H_GUEST_CREATE_VCPU()"
S_GET = "kvm-nested.rst, H_GUEST_GET_STATE()"
S_SET = "kvm-nested.rst, H_GUEST_SET_STATE()"
S_RUN = "kvm-nested.rst, H_GUEST_RUN_VCPU()"
S_DELETE = "kvm-nested.rst, H_GUEST_DELETE()"
S_GSB = "kvm-nested.rst, Guest State Buffer"
S_PTREGS = "kvm-nested.rst, State not in ptregs/hvregs"
S_CACHING = "kvm-nested.rst, L1 Implementation details: Caching state"

CLAUSES: tuple[Clause, ...] = (
    # --- API v1 (nested-hv) -------------------------------------------------------------
    Clause("v1-enter-nested-starts-l2", HV, "H_ENTER_NESTED",
           "H_ENTER_NESTED, made by the L1, tells the L0 to start an L2 vCPU with the state "
           "the L1 gives, and the L0 runs that L2 until an L2 exit condition is reached.",
           S_EXISTING),
    Clause("v1-exit-state-given-back", HV, "EXIT",
           "Once the L2 exits, the L0 gives the state of the L2 back to the L1.", S_EXISTING),
    Clause("v1-enter-nested-full-state-each-run", HV, "H_ENTER_NESTED",
           "The full L2 vCPU state is transferred from and to the L1 every time the L2 is run "
           "(every h_enter_nested() call).", S_EXISTING),
    Clause("v1-l0-keeps-no-vcpu-state", HV, "H_ENTER_NESTED",
           "The L0 keeps no state on the L2 vCPU except in the short L1->L2 entry and L2->L1 "
           "exit sequences; when it runs no L2, it has no state information about them.",
           S_EXISTING),
    Clause("v1-set-partition-table-registers", HV, "H_SET_PARTITION_TABLE",
           "The L1 registers its partition table with h_set_partition_table().", S_EXISTING),
    Clause("v1-set-partition-table-only-kept-state", HV, "H_SET_PARTITION_TABLE",
           "The partition table (its location, as registered) is the only state the L0 keeps; "
           "all other L0 state about the L2s is cached state such as shadow page tables.",
           S_EXISTING),
    Clause("v1-enter-nested-implicit-creation", HV, "H_ENTER_NESTED",
           "The L1 may run any L2 or vCPU without first informing the L0: L2s and vCPUs are "
           "created implicitly whenever h_enter_nested() is called.", S_EXISTING),
    Clause("v1-enter-nested-untouched-registers", HV, "H_ENTER_NESTED",
           "State not in ptregs/hvstate (the vector registers and some SPRs) is loaded into the "
           "hardware registers by the L1 before h_enter_nested(), and the L0 ensures it ends up "
           "as the L2 state by not touching those registers.", S_PTREGS),

    # --- API v2 (nested-papr): general ---------------------------------------------------
    Clause("v2-run-vcpu-requires-created", PAPR, "H_GUEST_RUN_VCPU",
           "Before H_GUEST_RUN_VCPU can be called the L1 must explicitly create the L2 with "
           "H_GUEST_CREATE and its vCPUs with H_GUEST_CREATE_VCPU.", S_NEW),
    Clause("v2-create-after-capabilities", PAPR, "H_GUEST_CREATE",
           "In the basic flow the L1 and L0 negotiate capabilities with "
           "H_GUEST_{G,S}ET_CAPABILITIES (normally at L1 boot time) before the L1 requests an "
           "L2 with H_GUEST_CREATE.", S_NEW),
    Clause("v2-gsb-l0-retains-state", PAPR, "GSB",
           "The L0 retains the L2 state even when its vCPUs are no longer running, so the L1 "
           "communicates L2 state only when it modifies it or its copy is out of date.",
           S_CACHING),
    Clause("v2-gsb-explicit-state", PAPR, "GSB",
           "Unlike v1, the v2 API sets the vector registers and SPRs explicitly via the GSB "
           "(not by leaving the L1's hardware registers in place).", S_PTREGS),

    # --- H_GUEST_GET_CAPABILITIES ---------------------------------------------------------
    Clause("v2-get-capabilities-flags-reserved", PAPR, "H_GUEST_GET_CAPABILITIES",
           "The flags parameter of H_GUEST_GET_CAPABILITIES is reserved.", S_GETCAP),
    Clause("v2-get-capabilities-r4-bitmap", PAPR, "H_GUEST_GET_CAPABILITIES",
           "H_GUEST_GET_CAPABILITIES returns its return code in R3 and the Hypervisor Supported "
           "Capabilities bitmap 1 of the L0 in R4.", S_GETCAP),
    Clause("v2-get-capabilities-cpu-versions", PAPR, "H_GUEST_GET_CAPABILITIES",
           "The capabilities returned include the CPU versions (e.g. POWER9, POWER10) the L0 "
           "supports as L2s.", S_GETCAP),

    # --- H_GUEST_SET_CAPABILITIES ---------------------------------------------------------
    Clause("v2-set-capabilities-flags-reserved", PAPR, "H_GUEST_SET_CAPABILITIES",
           "The flags parameter of H_GUEST_SET_CAPABILITIES is reserved.", S_SETCAP),
    Clause("v2-set-capabilities-same-flags-as-get", PAPR, "H_GUEST_SET_CAPABILITIES",
           "The capability bits passed to H_GUEST_SET_CAPABILITIES are the same set (same "
           "meaning) as those of H_GUEST_GET_CAPABILITIES.", S_SETCAP),
    Clause("v2-set-capabilities-subset-of-get", PAPR, "H_GUEST_SET_CAPABILITIES",
           "Typically the L1 calls SET with a subset of the flags GET returned, and this GET/SET "
           "exchange negotiates the agreed set of capabilities.", S_SETCAP),
    Clause("v2-set-capabilities-only-advertised", PAPR, "H_GUEST_SET_CAPABILITIES",
           "capabilitiesBitmap1 may hold only capabilities advertised through "
           "H_GUEST_GET_CAPABILITIES.", S_SETCAP),
    Clause("v2-set-capabilities-p2-r4-invalid-count", PAPR, "H_GUEST_SET_CAPABILITIES",
           "If R3 = H_P2, R4 holds the number of invalid bitmaps.", S_SETCAP),
    Clause("v2-set-capabilities-p2-r5-first-invalid", PAPR, "H_GUEST_SET_CAPABILITIES",
           "If R3 = H_P2, R5 holds the index of the first invalid bitmap.", S_SETCAP),

    # --- H_GUEST_CREATE -------------------------------------------------------------------
    Clause("v2-create-flags-reserved", PAPR, "H_GUEST_CREATE",
           "The flags parameter of H_GUEST_CREATE is reserved.", S_CREATE),
    Clause("v2-create-unique-id", PAPR, "H_GUEST_CREATE",
           "H_GUEST_CREATE creates an L2 and returns a unique ID for it (similar to an LPID) "
           "that identifies the L2 on subsequent hcalls.", S_CREATE),
    Clause("v2-create-continue-token-initial", PAPR, "H_GUEST_CREATE",
           "On an initial H_GUEST_CREATE call continueToken is set to -1.", S_CREATE),
    Clause("v2-create-continue-token-subsequent", PAPR, "H_GUEST_CREATE",
           "On a subsequent call after H_Busy or H_LongBusyOrder, continueToken is the value "
           "that was returned in R4.", S_CREATE),
    Clause("v2-create-busy-r4-continue-token", PAPR, "H_GUEST_CREATE",
           "If R3 = H_Busy or H_LongBusyOrder, R4 holds the continueToken.", S_CREATE),
    Clause("v2-create-not-enough-resources", PAPR, "H_GUEST_CREATE",
           "R3 = H_Not_Enough_Resources means the L0 could not create the guest for lack of "
           "hypervisor memory (the text says 'Guest VCPU' and refers to "
           "takeOwnershipOfVcpuState).", S_CREATE),

    # --- H_GUEST_CREATE_VCPU --------------------------------------------------------------
    Clause("v2-create-vcpu-flags-reserved", PAPR, "H_GUEST_CREATE_VCPU",
           "The flags parameter of H_GUEST_CREATE_VCPU is reserved.", S_VCPU),
    Clause("v2-create-vcpu-creates-vcpu", PAPR, "H_GUEST_CREATE_VCPU",
           "H_GUEST_CREATE_VCPU creates a vCPU associated with the L2 whose ID is passed.",
           S_VCPU),
    Clause("v2-create-vcpu-guestid-from-create", PAPR, "H_GUEST_CREATE_VCPU",
           "guestId is the ID obtained from H_GUEST_CREATE.", S_VCPU),
    Clause("v2-create-vcpu-id-allocated-by-l1", PAPR, "H_GUEST_CREATE_VCPU",
           "The vcpuId is allocated by the L1.", S_VCPU),
    Clause("v2-create-vcpu-id-unique", PAPR, "H_GUEST_CREATE_VCPU",
           "The vcpuId is unique for this L2.", S_VCPU),
    Clause("v2-create-vcpu-id-range", PAPR, "H_GUEST_CREATE_VCPU",
           "The vcpuId must be within the range 0 to 2047.", S_VCPU),
    Clause("v2-create-vcpu-not-enough-resources", PAPR, "H_GUEST_CREATE_VCPU",
           "R3 = H_Not_Enough_Resources means the L0 could not create the guest vCPU for lack "
           "of hypervisor memory (see GET_STATE takeOwnershipOfVcpuState).", S_VCPU),

    # --- H_GUEST_GET_STATE ----------------------------------------------------------------
    Clause("v2-get-state-flag-guest-wide", PAPR, "H_GUEST_GET_STATE",
           "flags bit 0 (getGuestWideState) requests the state of the guest instead of an "
           "individual vCPU.", S_GET),
    Clause("v2-get-state-ids-match-flag", PAPR, "H_GUEST_GET_STATE",
           "The IDs in the GSB must match the guest-wide/vCPU-specific choice of flags bit 0.",
           S_GET),
    Clause("v2-get-state-take-ownership", PAPR, "H_GUEST_GET_STATE",
           "flags bit 1 (takeOwnershipOfVcpuState) means the L1 takes over ownership of the "
           "vCPU state and the L0 can free the storage holding it.", S_GET),
    Clause("v2-get-state-take-ownership-internal-format", PAPR, "H_GUEST_GET_STATE",
           "With takeOwnershipOfVcpuState the data returned in dataBuffer is in a hypervisor "
           "internal format.", S_GET),
    Clause("v2-get-state-take-ownership-return-before-run", PAPR, "H_GUEST_GET_STATE",
           "After takeOwnershipOfVcpuState the vCPU state must be returned to the hypervisor "
           "with H_GUEST_SET_STATE before H_GUEST_RUN_VCPU is called for that vCPU.", S_GET),
    Clause("v2-get-state-take-ownership-buffer-size", PAPR, "H_GUEST_GET_STATE",
           "With takeOwnershipOfVcpuState the dataBuffer size must be at least the size "
           "returned by element 0x0001.", S_GET),
    Clause("v2-get-state-flags-reserved", PAPR, "H_GUEST_GET_STATE",
           "flags bits 2-63 of H_GUEST_GET_STATE are reserved.", S_GET),
    Clause("v2-get-state-guestid-from-create", PAPR, "H_GUEST_GET_STATE",
           "guestId is the ID obtained from H_GUEST_CREATE.", S_GET),
    Clause("v2-get-state-vcpuid-from-create-vcpu", PAPR, "H_GUEST_GET_STATE",
           "vcpuId is the ID of a vCPU passed to H_GUEST_CREATE_VCPU.", S_GET),
    Clause("v2-get-state-databuffer-real-address", PAPR, "H_GUEST_GET_STATE",
           "dataBuffer is an L1 real address of the GSB.", S_GET),
    Clause("v2-get-state-buffer-size", PAPR, "H_GUEST_GET_STATE",
           "dataBufferSizeInBytes is the size of dataBuffer.", S_GET),
    Clause("v2-get-state-l0-writes-values", PAPR, "H_GUEST_GET_STATE",
           "The L1 writes only the IDs and sizes in the GSB; the L0 writes the associated value "
           "for each ID.", S_GET),
    Clause("v2-get-state-r4-invalid-element-id", PAPR, "H_GUEST_GET_STATE",
           "If R3 = H_Invalid_Element_Id, R4 holds the array index of the bad element ID.",
           S_GET),
    Clause("v2-get-state-r4-invalid-element-size", PAPR, "H_GUEST_GET_STATE",
           "If R3 = H_Invalid_Element_Size, R4 holds the array index of the bad element size.",
           S_GET),
    Clause("v2-get-state-r4-invalid-element-value", PAPR, "H_GUEST_GET_STATE",
           "If R3 = H_Invalid_Element_Value, R4 holds the array index of the bad element value.",
           S_GET),

    # --- H_GUEST_SET_STATE ----------------------------------------------------------------
    Clause("v2-set-state-flag-guest-wide", PAPR, "H_GUEST_SET_STATE",
           "flags bit 0 selects the state of the guest instead of an individual vCPU.", S_SET),
    Clause("v2-set-state-ids-match-flag", PAPR, "H_GUEST_SET_STATE",
           "The IDs in the GSB must match the guest-wide/vCPU-specific choice of flags bit 0.",
           S_SET),
    Clause("v2-set-state-return-ownership", PAPR, "H_GUEST_SET_STATE",
           "flags bit 1 (returnOwnershipOfVcpuState) returns guest vCPU state taken with "
           "GET_STATE takeOwnershipOfVcpuState.", S_SET),
    Clause("v2-set-state-return-ownership-buffer-size", PAPR, "H_GUEST_SET_STATE",
           "With the ownership flag (the SET text repeats 'If takeOwnershipOfVcpuState') the "
           "dataBuffer size must be at least the size returned by element 0x0001.", S_SET),
    Clause("v2-set-state-flags-reserved", PAPR, "H_GUEST_SET_STATE",
           "flags bits 2-63 of H_GUEST_SET_STATE are reserved.", S_SET),
    Clause("v2-set-state-guestid-from-create", PAPR, "H_GUEST_SET_STATE",
           "guestId is the ID obtained from H_GUEST_CREATE.", S_SET),
    Clause("v2-set-state-vcpuid-from-create-vcpu", PAPR, "H_GUEST_SET_STATE",
           "vcpuId is the ID of a vCPU passed to H_GUEST_CREATE_VCPU.", S_SET),
    Clause("v2-set-state-databuffer-real-address", PAPR, "H_GUEST_SET_STATE",
           "dataBuffer is an L1 real address of the GSB.", S_SET),
    Clause("v2-set-state-buffer-size", PAPR, "H_GUEST_SET_STATE",
           "dataBufferSizeInBytes is the size of dataBuffer.", S_SET),
    Clause("v2-set-state-l0-only-reads", PAPR, "H_GUEST_SET_STATE",
           "For H_GUEST_SET_STATE the L1 writes all values in the GSB and the L0 only reads "
           "the GSB.", S_SET),
    Clause("v2-set-state-r4-invalid-element-id", PAPR, "H_GUEST_SET_STATE",
           "If R3 = H_Invalid_Element_Id, R4 holds the array index of the bad element ID.",
           S_SET),
    Clause("v2-set-state-r4-invalid-element-size", PAPR, "H_GUEST_SET_STATE",
           "If R3 = H_Invalid_Element_Size, R4 holds the array index of the bad element size.",
           S_SET),
    Clause("v2-set-state-r4-invalid-element-value", PAPR, "H_GUEST_SET_STATE",
           "If R3 = H_Invalid_Element_Value, R4 holds the array index of the bad element value.",
           S_SET),

    # --- H_GUEST_RUN_VCPU -----------------------------------------------------------------
    Clause("v2-run-vcpu-guestid-from-create", PAPR, "H_GUEST_RUN_VCPU",
           "guestId is the ID obtained from H_GUEST_CREATE.", S_RUN),
    Clause("v2-run-vcpu-vcpuid-from-create-vcpu", PAPR, "H_GUEST_RUN_VCPU",
           "vcpuId is the ID of a vCPU passed to H_GUEST_CREATE_VCPU.", S_RUN),
    Clause("v2-run-vcpu-buffers-preregistered", PAPR, "H_GUEST_RUN_VCPU",
           "The run input and output GSBs are not hcall parameters: their locations must be "
           "preregistered with H_GUEST_SET_STATE elements 0x0C00 and 0x0C01.", S_RUN),
    Clause("v2-run-vcpu-input-gsb-vcpu-only", PAPR, "H_GUEST_RUN_VCPU",
           "The run input GSB may contain only vCPU-specific elements (only L2 vCPU state may "
           "be set by the run).", S_RUN),
    Clause("v2-run-vcpu-input-gsb-may-be-empty", PAPR, "H_GUEST_RUN_VCPU",
           "The run input GSB may contain zero elements (0 in its first 4 bytes) when nothing "
           "needs to be set.", S_RUN),
    Clause("v2-run-vcpu-input-gsb-sets-state", PAPR, "H_GUEST_RUN_VCPU",
           "Elements in the run input GSB set the vCPU's state for the run (an alternative to "
           "H_GUEST_SET_STATE, e.g. to synthesize an interrupt).", S_RUN),
    Clause("v2-run-vcpu-flag-external-interrupt", PAPR, "H_GUEST_RUN_VCPU",
           "flags bit 0 (generateExternalInterrupt): the L0 generates an external interrupt in "
           "the L2.", S_RUN),
    Clause("v2-run-vcpu-flag-privileged-doorbell", PAPR, "H_GUEST_RUN_VCPU",
           "flags bit 1 (generatePrivilegedDoorbell): the L0 generates a privileged doorbell in "
           "the L2.", S_RUN),
    Clause("v2-run-vcpu-flag-system-reset", PAPR, "H_GUEST_RUN_VCPU",
           "flags bit 2 (sendToSystemReset): the L0 generates a system reset interrupt in the "
           "L2.", S_RUN),
    Clause("v2-run-vcpu-flags-reserved", PAPR, "H_GUEST_RUN_VCPU",
           "flags bits 3-63 of H_GUEST_RUN_VCPU are reserved.", S_RUN),
    Clause("v2-run-vcpu-input-element-errors", PAPR, "H_GUEST_RUN_VCPU",
           "R3 = H_Invalid_Element_Id, H_Invalid_Element_Size or H_Invalid_Element_Value of "
           "H_GUEST_RUN_VCPU refers to an invalid element in the input buffer.", S_RUN),
    Clause("v2-run-vcpu-r4-invalid-element-offset", PAPR, "H_GUEST_RUN_VCPU",
           "If R3 = H_Invalid_Element_Id, _Size or _Value, R4 is the offset of the invalid "
           "element in the input buffer (an offset, not the array index GET/SET give).", S_RUN),

    # --- EXIT: running and leaving the L2 (v2) --------------------------------------------
    Clause("v2-exit-runs-with-set-state", PAPR, "EXIT",
           "The vCPU runs with the state set previously with H_GUEST_SET_STATE.", S_RUN),
    Clause("v2-exit-l1-resumes", PAPR, "EXIT",
           "When the L2 exits, the L1 resumes from the H_GUEST_RUN_VCPU hcall.", S_RUN),
    Clause("v2-exit-r4-reason", PAPR, "EXIT",
           "If R3 = H_Success, R4 holds the reason the vCPU exited (the NIA, i.e. the "
           "interrupt vector).", S_RUN),
    Clause("v2-exit-r4-0x000-unspecified", PAPR, "EXIT",
           "R4 = 0x000: the vCPU stopped for an unspecified reason, e.g. the hypervisor stopped "
           "it for an outstanding interrupt of the host partition.", S_RUN),
    Clause("v2-exit-r4-0x980-hdec", PAPR, "EXIT",
           "R4 = 0x980: the exit was a hypervisor decrementer (HDEC) interrupt.", S_RUN),
    Clause("v2-exit-r4-0xc00-hcall", PAPR, "EXIT",
           "R4 = 0xC00: the exit was the L2 making an hcall.", S_RUN),
    Clause("v2-exit-r4-0xe00-hdsi", PAPR, "EXIT",
           "R4 = 0xE00: the exit was a hypervisor data storage interrupt (HDSI).", S_RUN),
    Clause("v2-exit-r4-0xe20-hisi", PAPR, "EXIT",
           "R4 = 0xE20: the exit was a hypervisor instruction storage interrupt (HISI).", S_RUN),
    Clause("v2-exit-r4-0xe40-hea", PAPR, "EXIT",
           "R4 = 0xE40: the exit was a hypervisor emulation assistance interrupt (HEA).", S_RUN),
    Clause("v2-exit-r4-0xf80-hfac", PAPR, "EXIT",
           "R4 = 0xF80: the exit was a hypervisor facility unavailable interrupt.", S_RUN),
    Clause("v2-exit-output-gsb-filled", PAPR, "EXIT",
           "On exit the L0 fills the run output buffer with elements it determines, which "
           "depend on the exit type.", S_RUN),
    Clause("v2-exit-hcall-gprs-in-output", PAPR, "EXIT",
           "When the exit reason is an L2 hcall (R4 = 0xC00), GPR3-12 are provided in the "
           "output GSB.", S_RUN),
    Clause("v2-exit-more-state-by-get", PAPR, "EXIT",
           "State not in the output GSB may be read after the exit with H_GUEST_GET_STATE.",
           S_RUN),

    # --- H_GUEST_DELETE -------------------------------------------------------------------
    Clause("v2-delete-deletes-l2", PAPR, "H_GUEST_DELETE",
           "H_GUEST_DELETE deletes the L2 whose guestId is passed.", S_DELETE),
    Clause("v2-delete-deletes-vcpus", PAPR, "H_GUEST_DELETE",
           "All vCPUs associated with the deleted L2 are deleted too.", S_DELETE),
    Clause("v2-delete-guestid-from-create", PAPR, "H_GUEST_DELETE",
           "guestId is the ID obtained from H_GUEST_CREATE.", S_DELETE),
    Clause("v2-delete-all-guests", PAPR, "H_GUEST_DELETE",
           "flags bit 0 (deleteAllGuests) deletes all guests.", S_DELETE),
    Clause("v2-delete-all-resets-l0", PAPR, "H_GUEST_DELETE",
           "deleteAllGuests is used to reset the L0 in the case of kdump/kexec.", S_DELETE),
    Clause("v2-delete-flags-reserved", PAPR, "H_GUEST_DELETE",
           "flags bits 1-63 of H_GUEST_DELETE are reserved.", S_DELETE),

    # --- GSB format -----------------------------------------------------------------------
    Clause("v2-gsb-big-endian", PAPR, "GSB",
           "All data in the GSB is big endian.", S_GSB),
    Clause("v2-gsb-header-count", PAPR, "GSB",
           "The GSB starts with a 4-byte header at offset 0 holding the number of elements.",
           S_GSB),
    Clause("v2-gsb-header-elements-follow", PAPR, "GSB",
           "The GSB elements follow the header, from offset 4.", S_GSB),
    Clause("v2-gsb-element-id", PAPR, "GSB",
           "A GSB element starts with its 2-byte ID at offset 0.", S_GSB),
    Clause("v2-gsb-element-size", PAPR, "GSB",
           "A GSB element's 2-byte value size is at offset 2.", S_GSB),
    Clause("v2-gsb-element-value", PAPR, "GSB",
           "A GSB element's value follows at offset 4, of the size given at offset 2.", S_GSB),
    Clause("v2-gsb-scope", PAPR, "GSB",
           "Each element is either guest-wide (scope G, e.g. the timebase offset) or per vCPU "
           "(scope T, e.g. GPRs), as the table's Thread/Guest Scope column says.", S_GSB),

    # --- GSB element table (one clause per table row) -------------------------------------
    Clause("v2-gsb-0x0000-nop", PAPR, "GSB",
           "Element 0x0000 is the NOP element: read-write (RW), of either scope (TG), with "
           "no size given.", S_GSB),
    Clause("v2-gsb-0x0001-l0-vcpu-state-size", PAPR, "GSB",
           "Element 0x0001 is an 8-byte read-only (R) guest-wide element holding the size of"
           " the L0 vCPU state (see GET_STATE takeOwnershipOfVcpuState).", S_GSB),
    Clause("v2-gsb-0x0002-run-output-size", PAPR, "GSB",
           "Element 0x0002 is an 8-byte read-only (R) guest-wide element holding the size of"
           " the run vCPU output buffer.", S_GSB),
    Clause("v2-gsb-0x0003-logical-pvr", PAPR, "GSB",
           "Element 0x0003 (the logical PVR) is a 4-byte read-write guest-wide element.", S_GSB),
    Clause("v2-gsb-0x0004-tb-offset", PAPR, "GSB",
           "Element 0x0004 is an 8-byte read-write guest-wide element holding the TB offset "
           "(L1 relative).", S_GSB),
    Clause("v2-gsb-0x0005-partition-table", PAPR, "GSB",
           "Element 0x0005 is a 0x18-byte read-write guest-wide element holding the "
           "partition-scoped page table info: the table's address at 0x00, the number of "
           "address bits at 0x08, the size of the root directory at 0x10.", S_GSB),
    Clause("v2-gsb-0x0006-process-table", PAPR, "GSB",
           "Element 0x0006 is a 0x10-byte read-write guest-wide element holding the process "
           "table info: the process-scoped table's address at 0x0, the table size at 0x8.", S_GSB),
    Clause("v2-gsb-0x0c00-run-input-buffer", PAPR, "GSB",
           "Element 0x0C00 is a 0x10-byte read-write per-vCPU (thread) element giving the "
           "run vCPU input buffer: its address at 0x0, its size at 0x8.", S_GSB),
    Clause("v2-gsb-0x0c01-run-output-buffer", PAPR, "GSB",
           "Element 0x0C01 is a 0x10-byte read-write per-vCPU (thread) element giving the "
           "run vCPU output buffer: its address at 0x0, its size at 0x8.", S_GSB),
    Clause("v2-gsb-0x0c02-vpa", PAPR, "GSB",
           "Element 0x0C02 (the vCPU VPA address) is an 8-byte read-write per-vCPU (thread) "
           "element.", S_GSB),
    Clause("v2-gsb-0x1000-0x101f-gpr", PAPR, "GSB",
           "Elements 0x1000-0x101F (GPR0-31) are 8-byte read-write per-vCPU (thread) "
           "elements.", S_GSB),
    Clause("v2-gsb-0x1020-hdec-expiry-tb", PAPR, "GSB",
           "Element 0x1020 (HDEC expiry TB) is an 8-byte per-vCPU (thread) element whose RW "
           "column reads 'T' (not R, W or RW).", S_GSB),
    Clause("v2-gsb-0x1021-nia", PAPR, "GSB",
           "Element 0x1021 (NIA) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1022-msr", PAPR, "GSB",
           "Element 0x1022 (MSR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1023-lr", PAPR, "GSB",
           "Element 0x1023 (LR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1024-xer", PAPR, "GSB",
           "Element 0x1024 (XER) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1025-ctr", PAPR, "GSB",
           "Element 0x1025 (CTR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1026-cfar", PAPR, "GSB",
           "Element 0x1026 (CFAR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1027-srr0", PAPR, "GSB",
           "Element 0x1027 (SRR0) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1028-srr1", PAPR, "GSB",
           "Element 0x1028 (SRR1) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1029-dar", PAPR, "GSB",
           "Element 0x1029 (DAR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x102a-dec-expiry-tb", PAPR, "GSB",
           "Element 0x102A (the DEC expiry TB) is an 8-byte read-write per-vCPU (thread) "
           "element.", S_GSB),
    Clause("v2-gsb-0x102b-vtb", PAPR, "GSB",
           "Element 0x102B (VTB) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x102c-lpcr", PAPR, "GSB",
           "Element 0x102C (LPCR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x102d-hfscr", PAPR, "GSB",
           "Element 0x102D (HFSCR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x102e-fscr", PAPR, "GSB",
           "Element 0x102E (FSCR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x102f-fpscr", PAPR, "GSB",
           "Element 0x102F (FPSCR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1030-dawr0", PAPR, "GSB",
           "Element 0x1030 (DAWR0) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1031-dawr1", PAPR, "GSB",
           "Element 0x1031 (DAWR1) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1032-ciabr", PAPR, "GSB",
           "Element 0x1032 (CIABR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1033-purr", PAPR, "GSB",
           "Element 0x1033 (PURR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1034-spurr", PAPR, "GSB",
           "Element 0x1034 (SPURR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1035-ic", PAPR, "GSB",
           "Element 0x1035 (IC) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1036-0x1039-sprg", PAPR, "GSB",
           "Elements 0x1036-0x1039 (SPRG0-3) are 8-byte read-write per-vCPU (thread) "
           "elements.", S_GSB),
    Clause("v2-gsb-0x103a-ppr", PAPR, "GSB",
           "Element 0x103A (PPR) is an 8-byte write-only (W) per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x103b-0x103e-mmcr", PAPR, "GSB",
           "Elements 0x103B-0x103E (MMCR0-3) are 8-byte read-write per-vCPU (thread) "
           "elements.", S_GSB),
    Clause("v2-gsb-0x103f-mmcra", PAPR, "GSB",
           "Element 0x103F (MMCRA) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1040-sier", PAPR, "GSB",
           "Element 0x1040 (SIER) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1041-sier2", PAPR, "GSB",
           "Element 0x1041 (SIER2) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1042-sier3", PAPR, "GSB",
           "Element 0x1042 (SIER3) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1043-bescr", PAPR, "GSB",
           "Element 0x1043 (BESCR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1044-ebbhr", PAPR, "GSB",
           "Element 0x1044 (EBBHR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1045-ebbrr", PAPR, "GSB",
           "Element 0x1045 (EBBRR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1046-amr", PAPR, "GSB",
           "Element 0x1046 (AMR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1047-iamr", PAPR, "GSB",
           "Element 0x1047 (IAMR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1048-amor", PAPR, "GSB",
           "Element 0x1048 (AMOR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1049-uamor", PAPR, "GSB",
           "Element 0x1049 (UAMOR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x104a-sdar", PAPR, "GSB",
           "Element 0x104A (SDAR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x104b-siar", PAPR, "GSB",
           "Element 0x104B (SIAR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x104c-dscr", PAPR, "GSB",
           "Element 0x104C (DSCR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x104d-tar", PAPR, "GSB",
           "Element 0x104D (TAR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x104e-dexcr", PAPR, "GSB",
           "Element 0x104E (DEXCR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x104f-hdexcr", PAPR, "GSB",
           "Element 0x104F (HDEXCR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1050-hashkeyr", PAPR, "GSB",
           "Element 0x1050 (HASHKEYR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1051-hashpkeyr", PAPR, "GSB",
           "Element 0x1051 (HASHPKEYR) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x1052-ctrl", PAPR, "GSB",
           "Element 0x1052 (CTRL) is an 8-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x2000-cr", PAPR, "GSB",
           "Element 0x2000 (CR) is a 4-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x2001-pidr", PAPR, "GSB",
           "Element 0x2001 (PIDR) is a 4-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x2002-dsisr", PAPR, "GSB",
           "Element 0x2002 (DSISR) is a 4-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x2003-vscr", PAPR, "GSB",
           "Element 0x2003 (VSCR) is a 4-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x2004-vrsave", PAPR, "GSB",
           "Element 0x2004 (VRSAVE) is a 4-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x2005-dawrx0", PAPR, "GSB",
           "Element 0x2005 (DAWRX0) is a 4-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x2006-dawrx1", PAPR, "GSB",
           "Element 0x2006 (DAWRX1) is a 4-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x2007-0x200c-pmc", PAPR, "GSB",
           "Elements 0x2007-0x200C (PMC1-6) are 4-byte read-write per-vCPU (thread) "
           "elements.", S_GSB),
    Clause("v2-gsb-0x200d-wort", PAPR, "GSB",
           "Element 0x200D (WORT) is a 4-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x200e-pspb", PAPR, "GSB",
           "Element 0x200E (PSPB) is a 4-byte read-write per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0x3000-0x303f-vsr", PAPR, "GSB",
           "Elements 0x3000-0x303F (VSR0-63) are 0x10-byte read-write per-vCPU (thread) "
           "elements.", S_GSB),
    Clause("v2-gsb-0xf000-hdar", PAPR, "GSB",
           "Element 0xF000 (HDAR) is an 8-byte read-only (R) per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0xf001-hdsisr", PAPR, "GSB",
           "Element 0xF001 (HDSISR) is a 4-byte read-only (R) per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0xf002-heir", PAPR, "GSB",
           "Element 0xF002 (HEIR) is a 4-byte read-only (R) per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-0xf003-asdr", PAPR, "GSB",
           "Element 0xF003 (ASDR) is an 8-byte read-only (R) per-vCPU (thread) element.", S_GSB),
    Clause("v2-gsb-reserved-0x0007-0x0bff", PAPR, "GSB",
           "Element IDs 0x0007-0x0BFF are reserved.", S_GSB),
    Clause("v2-gsb-reserved-0x0c03-0x0fff", PAPR, "GSB",
           "Element IDs 0x0C03-0x0FFF are reserved.", S_GSB),
    Clause("v2-gsb-reserved-0x1053-0x1fff", PAPR, "GSB",
           "Element IDs 0x1053-0x1FFF are reserved.", S_GSB),
    Clause("v2-gsb-reserved-0x200f-0x2fff", PAPR, "GSB",
           "Element IDs 0x200F-0x2FFF are reserved.", S_GSB),
    Clause("v2-gsb-reserved-0x3040-0xefff", PAPR, "GSB",
           "Element IDs 0x3040-0xEFFF are reserved.", S_GSB),
)


# Row id (every row of cases.CASES: cases_v2.py, cases_v2_state.py, cases_v1.py,
# cases_l2.py, cases_v2_elements.py) -> the clauses it checks.  A row whose source is
# "spec silent" or cites only QEMU/Linux code maps to ().  The return codes rows take
# from "PAPR convention" are not in kvm-nested.rst: such a row maps to the document's
# input rule it breaks, not to a code.  A behavioural row maps to what it reads back and
# compares (setup calls it only relies on are not checks).
_R4_SET = ("v2-set-state-r4-invalid-element-id", "v2-set-state-r4-invalid-element-size",
           "v2-set-state-r4-invalid-element-value")   # read-only/scope rows: any code, R4=index

# Shared clause sets of the behavioural rows (cases_l2.py, cases_v2_elements.py).
_V1_EXIT = ("v1-enter-nested-starts-l2", "v1-exit-state-given-back",
            "v1-enter-nested-implicit-creation")
_V2_EXIT = ("v2-exit-runs-with-set-state", "v2-exit-l1-resumes", "v2-exit-r4-reason",
            "v2-exit-more-state-by-get", "v2-run-vcpu-input-gsb-may-be-empty",
            "v2-get-state-l0-writes-values", "v2-gsb-l0-retains-state", "v2-gsb-big-endian")
# What every v2 exit row GETs back and checks (GPRs, NIA, MSR, LR, SRR0/1, DAR, SPRG0-3,
# PIDR, DSISR); CTR, XER and CR only when the exit is no sc 1 (HCALL_VOLATILE).
_V2_EXIT_REGS = ("v2-gsb-0x1000-0x101f-gpr", "v2-gsb-0x1021-nia", "v2-gsb-0x1022-msr",
                 "v2-gsb-0x1023-lr", "v2-gsb-0x1027-srr0", "v2-gsb-0x1028-srr1",
                 "v2-gsb-0x1029-dar", "v2-gsb-0x1036-0x1039-sprg", "v2-gsb-0x2001-pidr",
                 "v2-gsb-0x2002-dsisr")
_V2_NOT_HCALL_REGS = ("v2-gsb-0x1024-xer", "v2-gsb-0x1025-ctr", "v2-gsb-0x2000-cr")
# A round trip that GETs back what it SET (the L1 writes IDs and sizes; big-endian values)
_GET_BACK = ("v2-gsb-l0-retains-state", "v2-get-state-l0-writes-values", "v2-gsb-big-endian")
# ... of state in neither pt_regs nor hv_guest_state (vector/FP state, SPRs v1 leaves in
# the hardware registers)
_EXPLICIT = (*_GET_BACK, "v2-gsb-explicit-state")
_WIDE = ("v2-set-state-flag-guest-wide", "v2-get-state-flag-guest-wide")

ROW_CLAUSES: dict[str, tuple[str, ...]] = {
    # cases_v2.py: capabilities
    "v2-get-capabilities": ("v2-get-capabilities-r4-bitmap",),
    "v2-get-capabilities-processor-mode": ("v2-get-capabilities-r4-bitmap",
                                           "v2-get-capabilities-cpu-versions"),
    "v2-get-capabilities-reserved-flags": ("v2-get-capabilities-flags-reserved",),
    "v2-set-capabilities": ("v2-set-capabilities-same-flags-as-get",
                            "v2-set-capabilities-subset-of-get"),
    "v2-set-capabilities-reserved-flags": ("v2-set-capabilities-flags-reserved",),
    "v2-set-capabilities-unknown-bit": ("v2-set-capabilities-only-advertised",
                                        "v2-set-capabilities-p2-r4-invalid-count",
                                        "v2-set-capabilities-p2-r5-first-invalid"),
    "v2-set-capabilities-copy-mem-not-offered": ("v2-set-capabilities-only-advertised",
                                                 "v2-set-capabilities-p2-r4-invalid-count",
                                                 "v2-set-capabilities-p2-r5-first-invalid"),
    "v2-set-capabilities-mode-not-offered": ("v2-set-capabilities-only-advertised",
                                             "v2-set-capabilities-p2-r4-invalid-count",
                                             "v2-set-capabilities-p2-r5-first-invalid"),
    "v2-set-capabilities-empty": (),           # "spec silent on an empty bitmap"
    "v2-set-capabilities-twice": (),           # "spec silent on a repeated call"
    "v2-set-capabilities-subset": ("v2-set-capabilities-subset-of-get",),
    # cases_v2.py: guests
    "v2-create-before-set-capabilities": ("v2-create-after-capabilities",),
    "v2-create": ("v2-create-unique-id", "v2-create-continue-token-initial"),
    "v2-create-ids-unique": ("v2-create-unique-id",),
    "v2-create-reserved-flags": ("v2-create-flags-reserved",),
    "v2-create-bad-continue-token": ("v2-create-continue-token-initial",
                                     "v2-create-continue-token-subsequent"),
    "v2-delete": ("v2-delete-deletes-l2",),
    "v2-delete-unknown-guest": ("v2-delete-guestid-from-create",),
    "v2-delete-reserved-flags": ("v2-delete-flags-reserved",),
    "v2-delete-all-then-create": ("v2-delete-all-guests", "v2-delete-all-resets-l0"),
    "v2-delete-all-then-delete": ("v2-delete-all-guests", "v2-delete-guestid-from-create"),
    # cases_v2.py: vCPUs
    "v2-create-vcpu": ("v2-create-vcpu-creates-vcpu",),
    "v2-create-vcpu-not-sequential": ("v2-create-vcpu-id-allocated-by-l1",
                                      "v2-create-vcpu-id-range"),
    "v2-create-vcpu-out-of-range": ("v2-create-vcpu-id-range",),
    "v2-create-vcpu-duplicate": ("v2-create-vcpu-id-unique",),
    "v2-create-vcpu-unknown-guest": ("v2-create-vcpu-guestid-from-create",),
    "v2-create-vcpu-deleted-guest": ("v2-delete-deletes-l2",
                                     "v2-create-vcpu-guestid-from-create"),
    "v2-create-vcpu-reserved-flags": ("v2-create-vcpu-flags-reserved",),
    # cases_v2.py: runs
    "v2-run-vcpu-unknown-guest": ("v2-run-vcpu-guestid-from-create",),
    "v2-run-vcpu-unknown-vcpu": ("v2-run-vcpu-vcpuid-from-create-vcpu",
                                 "v2-run-vcpu-requires-created"),
    "v2-run-vcpu-no-run-buffers": ("v2-run-vcpu-buffers-preregistered",),
    "v2-run-vcpu-reserved-flags": ("v2-run-vcpu-flags-reserved",),
    "v2-run-vcpu-bad-input-buffer": ("v2-run-vcpu-input-element-errors",
                                     "v2-gsb-reserved-0x0c03-0x0fff"),
    # cases_v2.py: cross-API (QEMU/Linux behaviour only)
    "v2-l0-rejects-set-partition-table": (),
    "v2-l0-rejects-enter-nested": (),
    "v2-l0-rejects-copy-tofrom-guest": (),
    "v2-tlb-invalidate-guest-lpid": (),        # "spec silent"
    # cases_v2_state.py
    "v2-set-state-gpr": ("v2-gsb-0x1000-0x101f-gpr",),
    "v2-get-state-guest-wide": ("v2-get-state-flag-guest-wide", "v2-gsb-0x0004-tb-offset"),
    "v2-get-state-unknown-guest": ("v2-get-state-guestid-from-create",),
    "v2-get-state-unknown-vcpu": ("v2-get-state-vcpuid-from-create-vcpu",),
    "v2-set-state-reserved-element": ("v2-gsb-reserved-0x0c03-0x0fff",
                                      "v2-set-state-r4-invalid-element-id"),
    "v2-get-state-reserved-element": ("v2-gsb-reserved-0x0007-0x0bff",
                                      "v2-get-state-r4-invalid-element-id"),
    "v2-set-state-bad-second-element": ("v2-gsb-reserved-0x200f-0x2fff",
                                        "v2-set-state-r4-invalid-element-id"),
    "v2-set-state-wrong-size": ("v2-gsb-0x1000-0x101f-gpr",
                                "v2-set-state-r4-invalid-element-size"),
    "v2-set-state-read-only-element": ("v2-gsb-0xf000-hdar", *_R4_SET),
    "v2-set-state-guest-wide-element-as-vcpu": ("v2-set-state-ids-match-flag", "v2-gsb-scope",
                                                "v2-gsb-0x0004-tb-offset", *_R4_SET),
    "v2-set-state-vcpu-element-as-guest-wide": ("v2-set-state-ids-match-flag", "v2-gsb-scope",
                                                "v2-gsb-0x1000-0x101f-gpr", *_R4_SET),
    "v2-get-state-host-state-size": ("v2-gsb-0x0001-l0-vcpu-state-size",
                                     "v2-get-state-flag-guest-wide"),
    "v2-get-state-run-output-min-size": ("v2-gsb-0x0002-run-output-size",),
    "v2-get-state-guest-wide-no-vcpu": ("v2-gsb-0x0002-run-output-size",
                                        "v2-get-state-flag-guest-wide"),
    "v2-get-state-partition-table": ("v2-gsb-0x0005-partition-table",),
    "v2-set-state-vpa": ("v2-gsb-0x0c02-vpa",),
    "v2-set-state-length-0": ("v2-gsb-header-count", "v2-set-state-buffer-size"),
    "v2-set-state-length-3": ("v2-gsb-header-count", "v2-set-state-buffer-size"),
    "v2-set-state-length-over-max": (),        # "kvm-nested.rst sets no maximum": silent
    "v2-get-state-buffer-outside-ram": ("v2-get-state-databuffer-real-address",),
    "v2-get-state-run-input-buffer": ("v2-gsb-0x0c00-run-input-buffer",),
    "v2-get-state-length-0": ("v2-gsb-header-count", "v2-get-state-buffer-size"),
    "v2-set-state-unknown-guest": ("v2-set-state-guestid-from-create",),
    "v2-set-state-unknown-vcpu": ("v2-set-state-vcpuid-from-create-vcpu",),
    "v2-set-state-buffer-outside-ram": ("v2-set-state-databuffer-real-address",),
    "v2-set-state-nop-element": ("v2-gsb-0x0000-nop",),
    "v2-get-state-nop-element": ("v2-gsb-0x0000-nop",),
    "v2-set-state-reserved-element-0x1053": ("v2-gsb-reserved-0x1053-0x1fff",
                                             "v2-set-state-r4-invalid-element-id"),
    "v2-get-state-reserved-element-0x3040": ("v2-gsb-reserved-0x3040-0xefff",
                                             "v2-get-state-r4-invalid-element-id"),
    "v2-get-state-vcpu-element-as-guest-wide": ("v2-get-state-ids-match-flag", "v2-gsb-scope"),
    "v2-get-state-deleted-guest": ("v2-delete-deletes-l2", "v2-delete-deletes-vcpus",
                                   "v2-get-state-guestid-from-create"),
    "v2-get-state-reserved-flags": ("v2-get-state-flags-reserved",),
    "v2-set-state-reserved-flags": ("v2-set-state-flags-reserved",),
    "v2-set-state-run-input-address-0": ("v2-gsb-0x0c00-run-input-buffer",),
    "v2-set-state-run-output-too-small": ("v2-gsb-0x0c01-run-output-buffer",),
    "v2-set-state-partition-table-ea-bits": ("v2-gsb-0x0005-partition-table",
                                             "v2-set-state-flag-guest-wide"),
    "v2-set-state-process-table-size": ("v2-gsb-0x0006-process-table",
                                        "v2-set-state-flag-guest-wide"),
    # cases_v1.py
    "v1-set-partition-table": ("v1-set-partition-table-registers",),
    "v1-set-partition-table-zero": (),         # Linux kvmhv_nested_exit / REF only
    "v1-set-partition-table-size-too-large": (),
    "v1-set-partition-table-outside-ram": (),
    "v1-enter-nested-no-partition-table": (),
    "v1-enter-nested-hv-state-version-3": (),
    "v1-enter-nested-lpid-0": (),              # "spec silent"
    "v1-enter-nested-hv-state-outside-ram": (),
    "v1-enter-nested-regs-outside-ram": (),
    "v1-tlb-invalidate-lpid": (),              # the document never names H_TLB_INVALIDATE
    "v1-tlb-invalidate-not-radix": (),
    "v1-tlb-invalidate-ric-3": (),
    "v1-copy-tofrom-guest-both-buffers": (),   # nor H_COPY_TOFROM_GUEST
    "v1-copy-tofrom-guest-bad-eaddr": (),
    "v1-l0-rejects-guest-get-capabilities": (),
    "v1-l0-rejects-guest-set-capabilities": (),
    "v1-l0-rejects-guest-create": (),
    "v1-l0-rejects-guest-create-vcpu": (),
    "v1-l0-rejects-guest-get-state": (),
    "v1-l0-rejects-guest-set-state": (),
    "v1-l0-rejects-guest-run-vcpu": (),
    "v1-l0-rejects-guest-delete": (),
    # cases_l2.py, API v1: H_ENTER_NESTED of an L2 program that leaves by one cause; the
    # exit vector in R3 is not in the document (its notes above), the state written back
    # to pt_regs/hv_guest_state and the implicit creation of LPID 1 are.
    "v1-l2-exit-hcall": (*_V1_EXIT, "v1-enter-nested-full-state-each-run"),  # enters again
    "v1-enter-nested-msr-hv": ("v1-enter-nested-starts-l2",),
    "v1-l2-exit-load-unmapped": (*_V1_EXIT, "v1-set-partition-table-registers"),
    "v1-l2-exit-fetch-unmapped": (*_V1_EXIT, "v1-set-partition-table-registers"),
    "v1-l2-exit-store-read-only": (*_V1_EXIT, "v1-set-partition-table-registers"),
    "v1-l2-exit-illegal": _V1_EXIT,
    "v1-l2-exit-facility": _V1_EXIT,
    "v1-l2-exit-hdec": _V1_EXIT,
    "v1-l2-exit-trap": _V1_EXIT,
    # cases_l2.py, API v2: H_GUEST_RUN_VCPU (first run with an empty input buffer), R4,
    # then a GET of every register the program set (the element clauses of what is read
    # back and checked); the l2-timebase bound checks 0x0004, the HDEC bound 0x1020; the
    # translation faults depend on the partition table of 0x0005.
    "v2-l2-exit-hcall": (*_V2_EXIT, "v2-exit-r4-0xc00-hcall", *_V2_EXIT_REGS,
                         "v2-gsb-0x0004-tb-offset",
                         # the run output buffer, decoded as a GSB: GPR3-12
                         "v2-exit-output-gsb-filled", "v2-exit-hcall-gprs-in-output",
                         "v2-run-vcpu-buffers-preregistered", "v2-gsb-0x0c01-run-output-buffer",
                         "v2-gsb-header-count", "v2-gsb-header-elements-follow",
                         "v2-gsb-element-id", "v2-gsb-element-size", "v2-gsb-element-value"),
    "v2-l2-exit-load-unmapped": (*_V2_EXIT, "v2-exit-r4-0xe00-hdsi", *_V2_EXIT_REGS,
                                 *_V2_NOT_HCALL_REGS, "v2-gsb-0x0004-tb-offset",
                                 "v2-gsb-0x0005-partition-table", "v2-gsb-0xf000-hdar",
                                 "v2-gsb-0xf001-hdsisr", "v2-gsb-0xf003-asdr"),
    "v2-l2-exit-fetch-unmapped": (*_V2_EXIT, "v2-exit-r4-0xe20-hisi", *_V2_EXIT_REGS,
                                  *_V2_NOT_HCALL_REGS, "v2-gsb-0x0004-tb-offset",
                                  "v2-gsb-0x0005-partition-table", "v2-gsb-0xf003-asdr"),
    "v2-l2-exit-store-read-only": (*_V2_EXIT, "v2-exit-r4-0xe00-hdsi", *_V2_EXIT_REGS,
                                   *_V2_NOT_HCALL_REGS, "v2-gsb-0x0004-tb-offset",
                                   "v2-gsb-0x0005-partition-table", "v2-gsb-0xf000-hdar",
                                   "v2-gsb-0xf001-hdsisr", "v2-gsb-0xf003-asdr"),
    "v2-l2-exit-illegal": (*_V2_EXIT, "v2-exit-r4-0xe40-hea", *_V2_EXIT_REGS,
                           *_V2_NOT_HCALL_REGS, "v2-gsb-0x0004-tb-offset",
                           "v2-gsb-0xf002-heir"),
    "v2-l2-exit-facility": (*_V2_EXIT, "v2-exit-r4-0xf80-hfac", *_V2_EXIT_REGS,
                            *_V2_NOT_HCALL_REGS, "v2-gsb-0x0004-tb-offset",
                            "v2-gsb-0x102d-hfscr"),
    "v2-l2-exit-hdec": (*_V2_EXIT, "v2-exit-r4-0x980-hdec", *_V2_EXIT_REGS,
                        *_V2_NOT_HCALL_REGS, "v2-gsb-0x1020-hdec-expiry-tb"),
    "v2-l2-exit-trap": (*_V2_EXIT, "v2-exit-r4-0xc00-hcall", *_V2_EXIT_REGS,
                        "v2-gsb-0x0004-tb-offset"),
    # cases_v2_elements.py: round trips (SET, GET back; most also run and GET again).
    "v2-state-round-trip-gprs": (*_GET_BACK, "v2-gsb-0x1000-0x101f-gpr"),
    "v2-state-round-trip-vsrs": (*_EXPLICIT, "v2-gsb-0x3000-0x303f-vsr"),
    "v2-state-round-trip-logical-pvr": (*_GET_BACK, *_WIDE, "v2-gsb-0x0003-logical-pvr"),
    "v2-state-round-trip-tb-offset": (*_GET_BACK, *_WIDE, "v2-gsb-0x0004-tb-offset"),
    "v2-state-round-trip-hdec-expiry-tb": (*_GET_BACK, "v2-gsb-0x1020-hdec-expiry-tb"),
    "v2-state-round-trip-nia": (*_GET_BACK, "v2-gsb-0x1021-nia"),
    "v2-state-round-trip-msr": (*_GET_BACK, "v2-gsb-0x1022-msr"),
    "v2-state-round-trip-lr": (*_GET_BACK, "v2-gsb-0x1023-lr"),
    "v2-state-round-trip-xer": (*_GET_BACK, "v2-gsb-0x1024-xer"),
    "v2-state-round-trip-ctr": (*_GET_BACK, "v2-gsb-0x1025-ctr"),
    "v2-state-round-trip-cfar": (*_GET_BACK, "v2-gsb-0x1026-cfar"),
    "v2-state-round-trip-srr0": (*_GET_BACK, "v2-gsb-0x1027-srr0"),
    "v2-state-round-trip-srr1": (*_GET_BACK, "v2-gsb-0x1028-srr1"),
    "v2-state-round-trip-dar": (*_GET_BACK, "v2-gsb-0x1029-dar"),
    "v2-state-round-trip-dec-expiry-tb": (*_EXPLICIT, "v2-gsb-0x102a-dec-expiry-tb"),
    "v2-state-round-trip-vtb": (*_GET_BACK, "v2-gsb-0x102b-vtb"),
    "v2-state-round-trip-lpcr": (*_GET_BACK, "v2-gsb-0x102c-lpcr"),
    "v2-state-round-trip-hfscr": (*_GET_BACK, "v2-gsb-0x102d-hfscr"),
    "v2-state-round-trip-fscr": (*_EXPLICIT, "v2-gsb-0x102e-fscr"),
    "v2-state-round-trip-fpscr": (*_EXPLICIT, "v2-gsb-0x102f-fpscr"),
    "v2-state-round-trip-dawr0": (*_GET_BACK, "v2-gsb-0x1030-dawr0"),
    "v2-state-round-trip-dawr1": (*_GET_BACK, "v2-gsb-0x1031-dawr1"),
    "v2-state-round-trip-ciabr": (*_GET_BACK, "v2-gsb-0x1032-ciabr"),
    "v2-state-round-trip-purr": (*_GET_BACK, "v2-gsb-0x1033-purr"),
    "v2-state-round-trip-spurr": (*_GET_BACK, "v2-gsb-0x1034-spurr"),
    "v2-state-round-trip-ic": (*_GET_BACK, "v2-gsb-0x1035-ic"),
    "v2-state-round-trip-sprg0": (*_GET_BACK, "v2-gsb-0x1036-0x1039-sprg"),
    "v2-state-round-trip-sprg1": (*_GET_BACK, "v2-gsb-0x1036-0x1039-sprg"),
    "v2-state-round-trip-sprg2": (*_GET_BACK, "v2-gsb-0x1036-0x1039-sprg"),
    "v2-state-round-trip-sprg3": (*_GET_BACK, "v2-gsb-0x1036-0x1039-sprg"),
    "v2-state-round-trip-ppr": ("v2-gsb-0x103a-ppr",),      # W: SET only, no GET, no run
    "v2-state-round-trip-mmcr0": (*_EXPLICIT, "v2-gsb-0x103b-0x103e-mmcr"),
    "v2-state-round-trip-mmcr1": (*_EXPLICIT, "v2-gsb-0x103b-0x103e-mmcr"),
    "v2-state-round-trip-mmcr2": (*_EXPLICIT, "v2-gsb-0x103b-0x103e-mmcr"),
    "v2-state-round-trip-mmcr3": (*_EXPLICIT, "v2-gsb-0x103b-0x103e-mmcr"),
    "v2-state-round-trip-mmcra": (*_EXPLICIT, "v2-gsb-0x103f-mmcra"),
    "v2-state-round-trip-sier": (*_EXPLICIT, "v2-gsb-0x1040-sier"),
    "v2-state-round-trip-sier2": (*_EXPLICIT, "v2-gsb-0x1041-sier2"),
    "v2-state-round-trip-sier3": (*_EXPLICIT, "v2-gsb-0x1042-sier3"),
    "v2-state-round-trip-bescr": (*_EXPLICIT, "v2-gsb-0x1043-bescr"),
    "v2-state-round-trip-ebbhr": (*_EXPLICIT, "v2-gsb-0x1044-ebbhr"),
    "v2-state-round-trip-ebbrr": (*_EXPLICIT, "v2-gsb-0x1045-ebbrr"),
    "v2-state-round-trip-amr": (*_EXPLICIT, "v2-gsb-0x1046-amr"),
    "v2-state-round-trip-iamr": (*_EXPLICIT, "v2-gsb-0x1047-iamr"),
    "v2-state-round-trip-amor": (*_GET_BACK, "v2-gsb-0x1048-amor"),
    "v2-state-round-trip-uamor": (*_EXPLICIT, "v2-gsb-0x1049-uamor"),
    "v2-state-round-trip-sdar": (*_EXPLICIT, "v2-gsb-0x104a-sdar"),
    "v2-state-round-trip-siar": (*_EXPLICIT, "v2-gsb-0x104b-siar"),
    "v2-state-round-trip-dscr": (*_EXPLICIT, "v2-gsb-0x104c-dscr"),
    "v2-state-round-trip-tar": (*_EXPLICIT, "v2-gsb-0x104d-tar"),
    "v2-state-round-trip-dexcr": (*_EXPLICIT, "v2-gsb-0x104e-dexcr"),
    "v2-state-round-trip-hdexcr": (*_EXPLICIT, "v2-gsb-0x104f-hdexcr"),
    "v2-state-round-trip-hashkeyr": (*_EXPLICIT, "v2-gsb-0x1050-hashkeyr"),
    "v2-state-round-trip-hashpkeyr": (*_EXPLICIT, "v2-gsb-0x1051-hashpkeyr"),
    "v2-state-round-trip-ctrl": (*_EXPLICIT, "v2-gsb-0x1052-ctrl"),
    "v2-state-round-trip-cr": (*_GET_BACK, "v2-gsb-0x2000-cr"),
    "v2-state-round-trip-pidr": (*_GET_BACK, "v2-gsb-0x2001-pidr"),
    "v2-state-round-trip-dsisr": (*_GET_BACK, "v2-gsb-0x2002-dsisr"),
    "v2-state-round-trip-vscr": (*_EXPLICIT, "v2-gsb-0x2003-vscr"),
    "v2-state-round-trip-vrsave": (*_EXPLICIT, "v2-gsb-0x2004-vrsave"),
    "v2-state-round-trip-dawrx0": (*_GET_BACK, "v2-gsb-0x2005-dawrx0"),
    "v2-state-round-trip-dawrx1": (*_GET_BACK, "v2-gsb-0x2006-dawrx1"),
    "v2-state-round-trip-pmc1": (*_EXPLICIT, "v2-gsb-0x2007-0x200c-pmc"),
    "v2-state-round-trip-pmc2": (*_EXPLICIT, "v2-gsb-0x2007-0x200c-pmc"),
    "v2-state-round-trip-pmc3": (*_EXPLICIT, "v2-gsb-0x2007-0x200c-pmc"),
    "v2-state-round-trip-pmc4": (*_EXPLICIT, "v2-gsb-0x2007-0x200c-pmc"),
    "v2-state-round-trip-pmc5": (*_EXPLICIT, "v2-gsb-0x2007-0x200c-pmc"),
    "v2-state-round-trip-pmc6": (*_EXPLICIT, "v2-gsb-0x2007-0x200c-pmc"),
    "v2-state-round-trip-wort": (*_EXPLICIT, "v2-gsb-0x200d-wort"),
    "v2-state-round-trip-pspb": (*_EXPLICIT, "v2-gsb-0x200e-pspb"),
    # cases_v2_elements.py: values an L0 must refuse.  Why each value is bad comes from
    # the Power ISA, not the document; what the document gives is R4 = the index.
    "v2-set-state-msr-hv": ("v2-set-state-r4-invalid-element-value",),
    "v2-set-state-lpcr-reserved": ("v2-set-state-r4-invalid-element-value",),
    # a mode outside the "CPU versions ... supported as L2s"
    "v2-set-state-logical-pvr-power7": ("v2-set-state-r4-invalid-element-value",
                                        "v2-get-capabilities-cpu-versions"),
}


# Clause id -> why no row of the table (cases.CASES, all five row files) checks it.
UNCOVERED: dict[str, str] = {
    "v1-l0-keeps-no-vcpu-state":
        "not observable in an hcall answer; no row",
    "v1-set-partition-table-only-kept-state":
        "no row: what the L0 retains shows only through stale translations after the L1 "
        "changes its tables",
    "v1-enter-nested-untouched-registers":
        "no row loads vector registers or SPRs outside hv_guest_state before H_ENTER_NESTED"
        " and checks the L2 sees them",
    "v2-create-busy-r4-continue-token":
        "needs an L0 that answers H_GUEST_CREATE with H_Busy/H_LongBusyOrder; no row can "
        "force one",
    "v2-create-not-enough-resources":
        "needs the L0's memory exhausted; no row does that",
    "v2-create-vcpu-not-enough-resources":
        "needs the L0's memory exhausted; no row does that",
    "v2-get-state-take-ownership":
        "no row uses takeOwnershipOfVcpuState (flags bit 1); QEMU has no element 0x0001 "
        "(qemu-v2-host-state-size)",
    "v2-get-state-take-ownership-internal-format":
        "no row uses takeOwnershipOfVcpuState; the format is the L0's own, so only a round "
        "trip could check it",
    "v2-get-state-take-ownership-return-before-run":
        "no row takes ownership and then runs the vCPU; the document names no return code "
        "for a run without the state",
    "v2-get-state-take-ownership-buffer-size":
        "no row uses takeOwnershipOfVcpuState with a buffer smaller than element 0x0001",
    "v2-get-state-r4-invalid-element-size":
        "no GET row sends a wrong element size",
    "v2-get-state-r4-invalid-element-value":
        "no GET row provokes it (on GET the L1 writes no values, so the document leaves "
        "open what would)",
    "v2-set-state-return-ownership":
        "no row uses returnOwnershipOfVcpuState (flags bit 1)",
    "v2-set-state-return-ownership-buffer-size":
        "no row uses the ownership flags",
    "v2-set-state-l0-only-reads":
        "no row reads a SET buffer back to check the L0 left it untouched",
    "v2-run-vcpu-input-gsb-vcpu-only":
        "no row puts a guest-wide element (e.g. 0x0004) in the run input buffer",
    "v2-run-vcpu-input-gsb-sets-state":
        "v2-l2-exit-hcall's second run has an HDEC expiry in its input buffer, but a later "
        "one than the expiry SET before it (still ~0.5 s off), so that run ends by its "
        "hcall whether or not the L0 applies the input buffer",
    "v2-run-vcpu-flag-external-interrupt":
        "no row sets generateExternalInterrupt; it needs an L2 program whose 0x500 vector "
        "reports the interrupt",
    "v2-run-vcpu-flag-privileged-doorbell":
        "no row sets generatePrivilegedDoorbell; it needs an L2 program whose doorbell "
        "vector reports it",
    "v2-run-vcpu-flag-system-reset":
        "no row sets sendToSystemReset; it needs an L2 program whose 0x100 vector reports "
        "it",
    "v2-run-vcpu-r4-invalid-element-offset":
        "v2-run-vcpu-bad-input-buffer leaves R4 unchecked (offset, whose base and unit the "
        "document does not give)",
    "v2-exit-r4-0x000-unspecified":
        "an L0-chosen stop (e.g. a host interrupt); no row can provoke it, and the exit "
        "rows would count it a failure",
}


# Deviation id (hcalls.deviations) -> the clauses whose statement the deviating L0 does not
# keep, each named by a row that names the deviation; () where the deviation breaks no
# statement of the document (the comment says why).
DEVIATION_CLAUSES: dict[str, tuple[str, ...]] = {
    # --- answers (ANSWER_DEVIATIONS) ----------------------------------------------------
    # SET of 0x0C02 answered H_P3: QEMU has no such element, the document has it RW per vCPU
    "qemu-v2-vpa-element": ("v2-gsb-0x0c02-vpa",),
    "qemu-v2-tlb-invalidate": (),  # the document never names H_TLB_INVALIDATE
    "qemu-v2-set-capabilities-once": (),  # spec silent on a repeated H_GUEST_SET_CAPABILITIES
    # bad elements get H_P3, not H_Invalid_Element_Id/_Size/_Value with R4 = index
    # (for GET/SET), nor those codes for the run input buffer
    "qemu-v2-gsb-element-errors": ("v2-set-state-r4-invalid-element-id",
                                   "v2-set-state-r4-invalid-element-size",
                                   "v2-set-state-r4-invalid-element-value",
                                   "v2-get-state-r4-invalid-element-id",
                                   "v2-run-vcpu-input-element-errors"),
    # element 0x0001 (R, guest-wide: size of the L0 vCPU state) does not exist in QEMU
    "qemu-v2-host-state-size": ("v2-gsb-0x0001-l0-vcpu-state-size",),
    # R5 after H_P2 is a bit number or the bitmap passed in, not the first invalid bitmap
    "qemu-v2-set-capabilities-r5": ("v2-set-capabilities-p2-r5-first-invalid",),
    # a mode GET did not advertise is accepted (R3 is H_Success, so the H_P2/R4 clause
    # is never reached)
    "qemu-v2-set-capabilities-unoffered": ("v2-set-capabilities-only-advertised",),
    # any vcpuId but the next in sequence kills the L0: the L1 does not allocate the ID,
    # and IDs within 0-2047 are refused
    "qemu-v2-vcpu-ids-linear": ("v2-create-vcpu-id-allocated-by-l1",
                                "v2-create-vcpu-id-range"),
    # vcpuId is never checked against H_GUEST_CREATE_VCPU; the guest-wide 0x0002 is kept per
    # vCPU, so a guest-wide GET needs a vCPU
    "qemu-v2-state-unchecked-vcpu": ("v2-get-state-vcpuid-from-create-vcpu",
                                     "v2-set-state-vcpuid-from-create-vcpu",
                                     "v2-gsb-0x0002-run-output-size",
                                     "v2-get-state-flag-guest-wide"),
    # a buffer too short for the 4-byte count, or of a size the document allows (over
    # 1 MiB), kills the L0
    "qemu-v2-gsb-length-asserts": ("v2-gsb-header-count", "v2-set-state-buffer-size",
                                   "v2-get-state-buffer-size"),
    # values of these RW elements kill the L0, and so does any GET of them
    "qemu-v2-gsb-value-asserts": ("v2-gsb-0x0005-partition-table",
                                  "v2-gsb-0x0006-process-table",
                                  "v2-gsb-0x0c00-run-input-buffer",
                                  "v2-gsb-0x0c01-run-output-buffer"),
    # an address that is no L1 real address is taken for an (empty) GSB
    "qemu-v2-gsb-outside-ram": ("v2-get-state-databuffer-real-address",
                                "v2-set-state-databuffer-real-address"),
    # QEMU does refuse the run; H_INPUT/OUTPUT_BUFFER_NOT_DEFINED come from hvcall.h, the
    # document names no code
    "qemu-v2-run-buffers-not-defined": (),
    # after deleteAllGuests the L0 is left unusable (use after free), not reset
    "qemu-v2-delete-all-use-after-free": ("v2-delete-all-resets-l0", "v2-delete-all-guests"),
    # spec silent: no rule that the table base lies in the L1's RAM (a Linux check)
    "qemu-v1-partition-table-base": (),
    # spec silent on a pt_regs address outside RAM; H_PARAMETER is Linux's answer
    "qemu-v1-enter-nested-regs": (),
    # an L0 abort on input the document does not address (LPID 0, hv_guest_state outside
    # RAM)
    "qemu-v1-enter-nested-lpid-0-abort": (),
    # the L0 dies instead of running the L2 to an exit condition
    "qemu-v1-enter-nested-msr-hv": ("v1-enter-nested-starts-l2",),
    "qemu-v1-tlb-invalidate-unchecked": (),  # the document never names H_TLB_INVALIDATE
    # --- L2 behaviour (L2_DEVIATIONS) ---------------------------------------------------
    # the L2 does not run with the HFSCR the L1 gave, and its exit condition is not reported
    "qemu-v1-hfscr-not-enforced": ("v1-enter-nested-starts-l2",),
    # the L2 does not run with the HFSCR set by H_GUEST_SET_STATE (0x102D round-trips fine)
    "qemu-v2-hfscr-not-enforced": ("v2-exit-runs-with-set-state",),
    # the MSR handed back at the HISI exit lacks the cause bits
    "qemu-v1-hisi-cause-lost": ("v1-exit-state-given-back",),
    # the MSR element read after the HISI exit lacks the cause bits (R4 = 0xE20 is right)
    "qemu-v2-hisi-cause-lost": ("v2-gsb-0x1022-msr",),
    # hv_guest_state.heir is not written back at the 0xE40 exit
    "qemu-v1-heir-not-returned": ("v1-exit-state-given-back",),
    # GET of the RW element 0x0004 does not return the offset set
    "qemu-v2-tb-offset-not-returned": ("v2-gsb-0x0004-tb-offset",),
    # 0x1034 holds the PURR, not the SPURR
    "qemu-v2-spurr-from-purr": ("v2-gsb-0x1034-spurr",),
    # the DEC expiry saved at each exit is wrong: the L2's DEC is not retained
    "qemu-v2-dec-expiry-inverted": ("v2-gsb-0x102a-dec-expiry-tb", "v2-gsb-l0-retains-state"),
    # SET keeps nothing (the SPRs are not set via the GSB, nor retained); GET writes no value
    "qemu-v2-elements-ignored": ("v2-gsb-0x103b-0x103e-mmcr", "v2-gsb-0x1041-sier2",
                                 "v2-gsb-0x1042-sier3", "v2-gsb-0x200d-wort",
                                 "v2-gsb-l0-retains-state", "v2-get-state-l0-writes-values",
                                 "v2-gsb-explicit-state"),
    # the exit condition (the facility fault) is reached and never reported to the L1
    "kvm-v1-msgsndp-no-exit": ("v1-enter-nested-starts-l2",),
    # bad values are accepted instead of H_Invalid_Element_Value with R4 = index
    "qemu-v2-element-values-unchecked": ("v2-set-state-r4-invalid-element-value",),
}


def rows_checking(clause_id: str) -> list[str]:
    """The rows that name `clause_id`, in the table's order of `ROW_CLAUSES`."""
    return [row for row, ids in ROW_CLAUSES.items() if clause_id in ids]
