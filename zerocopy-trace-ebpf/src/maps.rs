//! The maps shared with the agent. Sizes here are defaults: the loader resizes the process and
//! thread maps from its `--max-processes` setting before load.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use zerocopy_trace_common::{
    drop_reason, hot::MAX_HOT_SLOT_BITS, Counters, DropCounters, HotCounters, InflightOp,
    PendingCall, ProcKey, MAX_CPUS,
};

/// Live totals per (process, syscall), one value for all CPUs, counted into with atomic adds:
/// a per-CPU map repeats every entry per possible CPU, which at 255 CPUs is 255 times the
/// memory and the agent's reads. Threads of one process on several CPUs share the entry's
/// cache lines; the hot slots take the busiest keys off the hash lookup. Preallocated: a map
/// that allocates on insert fails bursts of new processes, and each failure would be a dropped
/// count. The agent sizes it from `--max-processes`.
#[map]
pub static PROC_COUNTERS: HashMap<ProcKey, Counters> = HashMap::with_max_entries(16384, 0);

/// The hot slots, in front of `PROC_COUNTERS` (see `zerocopy_trace_common::hot`): an array
/// lookup is inlined into the program, a hash lookup hashes and walks a bucket. The loader
/// sizes it to `1 << Config::hot_slot_bits`.
#[map]
pub static HOT_COUNTERS: Array<HotCounters> = Array::with_max_entries(1 << MAX_HOT_SLOT_BITS, 0);

/// The call in flight per thread id, written at enter and consumed at exit.
#[map]
pub static PENDING: HashMap<u32, PendingCall> = HashMap::with_max_entries(16384, 0);

/// io_uring requests of traced processes between submission and completion, by request
/// address (a zero-copy send's notification request too). LRU: a request that never
/// completes visibly (`IOSQE_CQE_SKIP_SUCCESS`) is pushed out instead of filling the map; its
/// address is reused by a later request, which overwrites it anyway.
#[map]
pub static IO_URING_INFLIGHT: LruHashMap<u64, InflightOp> = LruHashMap::with_max_entries(16384, 0);

/// Processes to trace when the filter is on (tgid -> 1).
#[map]
pub static TRACED: HashMap<u32, u32> = HashMap::with_max_entries(16384, 0);

/// Parent tgid of tasks forked while attached (pid -> parent tgid).
#[map]
pub static PARENTS: HashMap<u32, u32> = HashMap::with_max_entries(65536, 0);

/// Processes whose final counts are being delivered (tgid -> 1), where the kernel does not
/// say which exiting thread was the last (before 6.16): of threads that all saw their process
/// end, the one whose insert succeeds delivers (see `process::claim_delivery`). An entry lives
/// only while its exit program runs, with preemption off as a tracepoint's programs run: about
/// one a CPU at most.
#[map]
pub static EXIT_CLAIMS: HashMap<u32, u32> = HashMap::with_max_entries(MAX_CPUS, 0);

/// Final counts of exited processes for the agent: one `ExitRecord` per id a process used,
/// room for some 15 000 between two drains (every 100 ms). The agent maps it, so its size is
/// also agent memory.
#[map]
pub static EXITS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// The names traced processes took at exec, for the agent: one `ExecRecord` (40 bytes with
/// its header) per exec, room for some 6 500 between two drains (every 100 ms). One that does
/// not fit leaves the process under its old name while it lives (its exit record names it
/// anyway).
#[map]
pub static EXECS: RingBuf = RingBuf::with_byte_size(256 << 10, 0);

/// `struct mmsghdr`s copied from user memory at once (64 bytes each).
pub const MMSG_BATCH: usize = 16;

/// Scratch space for a batch of `struct mmsghdr`s: too large for the 512-byte stack.
#[map]
pub static MMSG_SCRATCH: PerCpuArray<[u8; MMSG_BATCH * 64]> = PerCpuArray::with_max_entries(1, 0);

/// What could not be attributed, by `drop_reason`.
#[map]
pub static DROPPED: PerCpuArray<DropCounters> =
    PerCpuArray::with_max_entries(drop_reason::COUNT, 0);
