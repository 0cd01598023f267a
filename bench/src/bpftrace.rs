//! The bpftrace programs the bench compares against, generated from the syscall table so they
//! always cover exactly the syscalls zerocopy-trace counts.
//!
//! The peer is the program a bpftrace user writes for these counters: one exit program per
//! syscall, reading `args->ret`. The enter+exit variant counts a call only when its enter was
//! seen (a per-thread pending map, as zerocopy-trace's tracepoint hook does); it costs two
//! programs and a hash update per call, so it is shown, labelled, but is not the peer.

use zerocopy_trace_common::SYSCALLS;

/// The tracepoints of every traced syscall, `sys_enter_*` or `sys_exit_*`, as bpftrace probes.
fn probes(direction: &str) -> String {
    SYSCALLS
        .iter()
        .map(|s| format!("tracepoint:syscalls:sys_{direction}_{}", s.name))
        .collect::<Vec<_>>()
        .join(",\n")
}

/// Calls, bytes and errors per process and probe, counted at exit.
const EXIT_COUNTERS: &str = "  @calls[pid, probe] = count();\n  \
     if (args->ret >= 0) { @bytes[pid, probe] = sum(args->ret); } \
     else { @errors[pid, probe] = count(); }\n";

/// The peer: one exit-only program over the 21 syscalls' exit tracepoints.
pub fn exit_only() -> String {
    format!("{}\n{{\n{EXIT_COUNTERS}}}\n", probes("exit"))
}

/// Enter and exit of each syscall: a call is counted at exit only if its enter was seen.
pub fn enter_exit() -> String {
    format!(
        "{}\n{{ @pending[tid] = 1; }}\n\n{}\n/@pending[tid]/\n{{\n  delete(@pending[tid]);\n{EXIT_COUNTERS}}}\n",
        probes("enter"),
        probes("exit")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy_trace_common::SYSCALL_COUNT;

    #[test]
    fn exit_only_is_one_program_over_every_exit() {
        let program = exit_only();
        assert_eq!(program.matches("tracepoint:").count(), SYSCALL_COUNT);
        assert_eq!(
            program.matches("tracepoint:syscalls:sys_exit_").count(),
            SYSCALL_COUNT
        );
        for s in SYSCALLS {
            assert!(
                program.contains(&format!("tracepoint:syscalls:sys_exit_{},", s.name))
                    || program.contains(&format!("tracepoint:syscalls:sys_exit_{}\n", s.name)),
                "{} missing",
                s.name
            );
        }
        // One action block, no enter, no per-thread state.
        assert_eq!(program.matches('{').count(), 3);
        assert!(!program.contains("sys_enter") && !program.contains("@pending"));
        assert!(program.contains("@calls[pid, probe] = count();"));
        assert!(program.contains("if (args->ret >= 0) { @bytes[pid, probe] = sum(args->ret); }"));
        assert!(program.contains("else { @errors[pid, probe] = count(); }"));
    }

    #[test]
    fn enter_exit_pairs_by_thread() {
        let program = enter_exit();
        assert_eq!(program.matches("tracepoint:").count(), 2 * SYSCALL_COUNT);
        assert_eq!(program.matches("sys_enter_").count(), SYSCALL_COUNT);
        assert_eq!(program.matches("/@pending[tid]/").count(), 1);
        assert_eq!(program.matches("delete(@pending[tid])").count(), 1);
        assert!(program.contains("@bytes[pid, probe] = sum(args->ret)"));
    }

    #[test]
    fn probe_lists_have_no_trailing_separator() {
        let list = probes("exit");
        assert!(!list.ends_with(',') && !list.starts_with(','));
        assert_eq!(list.lines().count(), SYSCALL_COUNT);
    }
}
