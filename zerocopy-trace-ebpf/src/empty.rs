//! Empty programs, for the benchmark's floor: the cost of merely having a program on each hook
//! zerocopy-trace uses, which no program doing work there can beat. Attached by the hidden
//! `zerocopy-trace empty-programs` command (a bench-only build), never while counting.

use aya_ebpf::{
    macros::{btf_tracepoint, raw_tracepoint, tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
};

#[btf_tracepoint(function = "sys_exit")]
pub fn empty_btf(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[raw_tracepoint]
pub fn empty_raw(_ctx: RawTracePointContext) -> i32 {
    0
}

#[tracepoint]
pub fn empty_tracepoint(_ctx: TracePointContext) -> u32 {
    0
}
