//! Empty programs, for the benchmark's floor: the cost of merely having a program on each hook
//! zerocopy-trace uses, which no program doing work there can beat. Attached by the hidden
//! `zerocopy-trace floor` command, never while counting.

use aya_ebpf::{
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};

#[raw_tracepoint]
pub fn floor_raw(_ctx: RawTracePointContext) -> i32 {
    0
}

#[tracepoint]
pub fn floor_tracepoint(_ctx: TracePointContext) -> u32 {
    0
}
