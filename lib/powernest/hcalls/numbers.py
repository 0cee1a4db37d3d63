"""Hcall opcodes and PAPR return codes, with name lookups both ways.

Values from Linux arch/powerpc/include/asm/hvcall.h: the base codes as in
every release, the v2 opcodes and element/buffer codes as added with the
nestedv2 support (Linux 6.7, "KVM: PPC: Add support for nestedv2 guests").
"""

from __future__ import annotations

OPCODES: dict[str, int] = {
    # API v1 (KVM-specific hcalls, nested-hv)
    "H_SET_PARTITION_TABLE": 0xF800,
    "H_ENTER_NESTED": 0xF804,
    "H_TLB_INVALIDATE": 0xF808,
    "H_COPY_TOFROM_GUEST": 0xF80C,
    # API v2 (PAPR nested API, nested-papr)
    "H_GUEST_GET_CAPABILITIES": 0x460,
    "H_GUEST_SET_CAPABILITIES": 0x464,
    "H_GUEST_CREATE": 0x470,
    "H_GUEST_CREATE_VCPU": 0x474,
    "H_GUEST_GET_STATE": 0x478,
    "H_GUEST_SET_STATE": 0x47C,
    "H_GUEST_RUN_VCPU": 0x480,
    "H_GUEST_COPY_MEMORY": 0x484,
    "H_GUEST_DELETE": 0x488,
    # not nested hcalls: the ones an L1's trace shows beside them
    "H_GET_TERM_CHAR": 0x54,
    "H_PUT_TERM_CHAR": 0x58,
    "H_GET_CPU_CHARACTERISTICS": 0x1C8,
    "H_SET_MODE": 0x31C,
}

V1_HCALLS = ("H_SET_PARTITION_TABLE", "H_ENTER_NESTED", "H_TLB_INVALIDATE",
             "H_COPY_TOFROM_GUEST")
V2_HCALLS = ("H_GUEST_GET_CAPABILITIES", "H_GUEST_SET_CAPABILITIES", "H_GUEST_CREATE",
             "H_GUEST_CREATE_VCPU", "H_GUEST_GET_STATE", "H_GUEST_SET_STATE",
             "H_GUEST_RUN_VCPU", "H_GUEST_DELETE")

RETURN_CODES: dict[str, int] = {
    "H_SUCCESS": 0, "H_BUSY": 1, "H_CLOSED": 2, "H_NOT_AVAILABLE": 3, "H_CONSTRAINED": 4,
    "H_PARTIAL": 5, "H_IN_PROGRESS": 14, "H_PAGE_REGISTERED": 15, "H_PARTIAL_STORE": 16,
    "H_PENDING": 17, "H_CONTINUE": 18,
    "H_LONG_BUSY_ORDER_1_MSEC": 9900, "H_LONG_BUSY_ORDER_10_MSEC": 9901,
    "H_LONG_BUSY_ORDER_100_MSEC": 9902, "H_LONG_BUSY_ORDER_1_SEC": 9903,
    "H_LONG_BUSY_ORDER_10_SEC": 9904, "H_LONG_BUSY_ORDER_100_SEC": 9905,
    "H_HARDWARE": -1, "H_FUNCTION": -2, "H_PRIVILEGE": -3, "H_PARAMETER": -4,
    "H_BAD_MODE": -5, "H_PTEG_FULL": -6, "H_NOT_FOUND": -7, "H_RESERVED_DABR": -8,
    "H_NO_MEM": -9, "H_AUTHORITY": -10, "H_PERMISSION": -11, "H_DROPPED": -12,
    "H_SOURCE_PARM": -13, "H_DEST_PARM": -14, "H_REMOTE_PARM": -15, "H_RESOURCE": -16,
    "H_ADAPTER_PARM": -17, "H_RH_PARM": -18, "H_RCQ_PARM": -19, "H_SCQ_PARM": -20,
    "H_EQ_PARM": -21, "H_RT_PARM": -22, "H_ST_PARM": -23, "H_SIGT_PARM": -24,
    "H_TOKEN_PARM": -25, "H_MLENGTH_PARM": -27, "H_MEM_PARM": -28,
    "H_MEM_ACCESS_PARM": -29, "H_ATTR_PARM": -30, "H_PORT_PARM": -31, "H_MCG_PARM": -32,
    "H_VL_PARM": -33, "H_TSIZE_PARM": -34, "H_TRACE_PARM": -35, "H_MASK_PARM": -37,
    "H_MCG_FULL": -38, "H_ALIAS_EXIST": -39, "H_P_COUNTER": -40, "H_TABLE_FULL": -41,
    "H_ALT_TABLE": -42, "H_MR_CONDITION": -43, "H_NOT_ENOUGH_RESOURCES": -44,
    "H_R_STATE": -45, "H_RESCINDED": -46,
    "H_P2": -55, "H_P3": -56, "H_P4": -57, "H_P5": -58, "H_P6": -59, "H_P7": -60,
    "H_P8": -61, "H_P9": -62,
    "H_TOO_BIG": -64, "H_OVERLAP": -68, "H_INTERRUPT": -69, "H_BAD_DATA": -70,
    "H_NOT_ACTIVE": -71, "H_SG_LIST": -72, "H_OP_MODE": -73, "H_COP_HW": -74,
    "H_STATE": -75, "H_IN_USE": -77,
    "H_INVALID_ELEMENT_ID": -79, "H_INVALID_ELEMENT_SIZE": -80,
    "H_INVALID_ELEMENT_VALUE": -81, "H_INPUT_BUFFER_NOT_DEFINED": -82,
    "H_INPUT_BUFFER_TOO_SMALL": -83, "H_OUTPUT_BUFFER_NOT_DEFINED": -84,
    "H_OUTPUT_BUFFER_TOO_SMALL": -85, "H_PARTITION_PAGE_TABLE_NOT_DEFINED": -86,
    "H_GUEST_VCPU_STATE_NOT_HV_OWNED": -87,
    "H_MULTI_THREADS_ACTIVE": -9005, "H_OUTSTANDING_COP_OPS": -9006,
}

# The interrupts an L2 leaves by, as the L1 is told (API v1: R3 of H_ENTER_NESTED; API v2:
# R4 of H_GUEST_RUN_VCPU): the vector of the interrupt the L0 took (Power ISA Book III).
EXITS: dict[str, int] = {
    "EXIT_HDEC": 0x980, "EXIT_HCALL": 0xC00, "EXIT_HDSI": 0xE00, "EXIT_HISI": 0xE20,
    "EXIT_HEAI": 0xE40, "EXIT_HMI": 0xE60, "EXIT_HDOORBELL": 0xE80, "EXIT_HVIRT": 0xEA0,
    "EXIT_HFAC": 0xF80,
}

# hvcall.h: H_UNSUPPORTED_FLAG_START -256 .. H_UNSUPPORTED_FLAG_END -511.  A case
# that accepts "H_UNSUPPORTED_FLAG" accepts the whole range (QEMU answers -256).
UNSUPPORTED_FLAG = "H_UNSUPPORTED_FLAG"
UNSUPPORTED_FLAG_RANGE = range(-511, -255)

_OPCODE_NAMES = {value: name for name, value in OPCODES.items()}
_RC_NAMES = {value: name for name, value in (RETURN_CODES | EXITS).items()}


def opcode(name: str) -> int:
    """The opcode of an hcall, by name."""
    return OPCODES[name]


def opcode_name(value: int) -> str:
    """The name of an hcall opcode (KeyError if unknown)."""
    return _OPCODE_NAMES[value]


def rc(name: str) -> int:
    """The value of a return code, by name ("H_UNSUPPORTED_FLAG": the range start)."""
    if name == UNSUPPORTED_FLAG:
        return UNSUPPORTED_FLAG_RANGE[-1]
    return EXITS[name] if name in EXITS else RETURN_CODES[name]


def rc_name(value: int) -> str:
    """The name of a return code; values in no table get "rc <value>"."""
    if value in _RC_NAMES:
        return _RC_NAMES[value]
    if value in UNSUPPORTED_FLAG_RANGE:
        return f"{UNSUPPORTED_FLAG}({value})"
    return f"rc {value}"


def describe_rc(value: int) -> str:
    """A return code for a message: `H_P2 (-55)`."""
    name = rc_name(value)
    return name if name.startswith("rc ") else f"{name} ({value})"


def is_known_rc(name: str) -> bool:
    return name == UNSUPPORTED_FLAG or name in RETURN_CODES or name in EXITS
