//! Names of the maps, programs and globals in the eBPF object. Both sides use these constants,
//! so a rename cannot silently break the loader.

/// Program attached to every `syscalls/sys_enter_*` tracepoint of the data path.
pub const PROG_SYSCALL_ENTER: &str = "syscall_enter";
/// Program attached to every `syscalls/sys_exit_*` tracepoint of the data path.
pub const PROG_SYSCALL_EXIT: &str = "syscall_exit";
/// Program on the raw `sys_exit` tracepoint: all of the counting, from the saved registers.
pub const PROG_RAW_SYSCALL_EXIT: &str = "raw_syscall_exit";
/// Program on the BTF-typed `sys_exit` tracepoint (tp_btf): the same, with direct loads.
pub const PROG_TYPED_SYSCALL_EXIT: &str = "btf_syscall_exit";
/// The same, reading the fd array's slot by helper: for verifiers that refuse the direct load.
pub const PROG_TYPED_SYSCALL_EXIT_SLOT_READ: &str = "btf_syscall_exit_slot_read";
/// The raw tracepoint both exit-only programs attach to.
pub const TRACEPOINT_SYS_EXIT: &str = "sys_exit";
/// Empty programs on the same hooks, for the benchmark's floor (`zerocopy-trace
/// empty-programs`).
pub const PROG_EMPTY_TYPED: &str = "empty_btf";
pub const PROG_EMPTY_RAW: &str = "empty_raw";
pub const PROG_EMPTY_TRACEPOINT: &str = "empty_tracepoint";
/// Program on `sched/sched_process_fork`: follows children and remembers parents.
pub const PROG_PROCESS_FORK: &str = "process_fork";
/// Program on `sched/sched_process_exec`: `--comm` names matched at exec, and the new name of
/// a traced process sent to the agent.
pub const PROG_PROCESS_EXEC: &str = "process_exec";
/// Program on `sched/sched_process_exit`: frees per-thread state and delivers final counts.
pub const PROG_PROCESS_EXIT: &str = "process_exit";
/// The same three on the raw tracepoints of the same names, used wherever BTF gives the
/// task's layout (see the eBPF crate's `process`).
pub const PROG_PROCESS_FORK_RAW: &str = "process_fork_raw";
pub const PROG_PROCESS_EXEC_RAW: &str = "process_exec_raw";
pub const PROG_PROCESS_EXIT_RAW: &str = "process_exit_raw";

/// Program on `io_uring/io_uring_submit_req`: remembers who submitted a request.
pub const PROG_IO_URING_SUBMIT: &str = "io_uring_submit";
/// Program on `io_uring/io_uring_complete`: counts a request's completion for its submitter.
pub const PROG_IO_URING_COMPLETE: &str = "io_uring_complete";

/// Per-CPU hash `ProcKey -> Counters`: the live per-process, per-syscall totals.
pub const MAP_PROC_COUNTERS: &str = "PROC_COUNTERS";
/// Per-CPU array of `HotCounters`: the live counters of the keys that claimed a slot (see
/// `hot`).
pub const MAP_HOT_COUNTERS: &str = "HOT_COUNTERS";
/// Hash `tid -> EnterRecord`: what the exit tracepoint needs from the enter one.
pub const MAP_PENDING: &str = "PENDING";
/// Hash `tgid -> parent tgid`: the processes to trace when a filter is on.
pub const MAP_TRACED: &str = "TRACED";
/// Hash `pid -> parent tgid`, filled at fork: the parent of processes that exit.
pub const MAP_PARENTS: &str = "PARENTS";
/// Ring buffer of `ExitRecord`s: final counts of processes that exited.
pub const MAP_EXITS: &str = "EXITS";
/// Ring buffer of `ExecRecord`s: the names traced processes took at exec.
pub const MAP_EXECS: &str = "EXECS";
/// LRU hash `request address -> InflightOp`: io_uring requests between submit and completion.
pub const MAP_IO_URING_INFLIGHT: &str = "IO_URING_INFLIGHT";
/// Per-CPU array of `DropCounters`, indexed by `DropReason`.
pub const MAP_DROPPED: &str = "DROPPED";

/// Read-only global with the `Config` the loader fills in from tracepoint `format` files.
pub const GLOBAL_CONFIG: &str = "CONFIG";
