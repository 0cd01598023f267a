//! Load and attach errors in one line an operator can act on: what the kernel said, not a
//! guess. A refusal for want of privilege says which privileges; a verifier refusal gives the
//! verifier's own last words (its whole log, megabytes on some kernels, goes to the debug log:
//! `RUST_LOG=debug`); anything else is the kernel's error as it came.

use std::io;

use aya::programs::ProgramError;

/// Lines of the verifier's log kept in the error: its verdict is at the end.
const VERDICT_LINES: usize = 2;

/// `error` from loading or attaching `what`, as one line.
pub fn describe(error: anyhow::Error, what: &str) -> anyhow::Error {
    if let Some(ProgramError::LoadError {
        io_error,
        verifier_log,
    }) = error.downcast_ref::<ProgramError>()
    {
        let log = verifier_log.to_string();
        if !log.trim().is_empty() {
            log::debug!("the verifier's log for {what}:\n{log}");
            return anyhow::anyhow!(
                "{what}: the verifier refused it ({io_error}): {}",
                verdict(&log)
            );
        }
    }
    if denied(&error) {
        return error.context(format!(
            "{what}: permission denied (needs root, or CAP_BPF and CAP_PERFMON)"
        ));
    }
    error.context(what.to_owned())
}

/// Whether the kernel refused for want of privilege (EPERM or EACCES anywhere in the chain).
fn denied(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
            .is_some_and(|code| code == libc::EPERM || code == libc::EACCES)
    })
}

/// The verifier's verdict: the last lines of its log that say something, without its closing
/// statistics ("processed N insns ...", "verification time ...").
pub fn verdict(log: &str) -> String {
    let said: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !is_statistics(line))
        .collect();
    let start = said.len().saturating_sub(VERDICT_LINES);
    let verdict = said[start..].join("; ");
    if verdict.is_empty() {
        "no reason given".to_owned()
    } else {
        verdict
    }
}

fn is_statistics(line: &str) -> bool {
    [
        "processed ",
        "verification time",
        "stack depth",
        "max_states_per_insn",
    ]
    .iter()
    .any(|prefix| line.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_is_the_last_words_before_the_statistics() {
        let log = "func#0 @0\n0: R1=ctx() R10=fp0\n; let regs = ctx.arg(0)\n\
                   41: (79) r1 = *(u64 *)(r1 +0)\nR1 invalid mem access 'scalar'\n\
                   processed 2113 insns (limit 1000000) max_states_per_insn 4 total_states 99\n";
        assert_eq!(
            verdict(log),
            "41: (79) r1 = *(u64 *)(r1 +0); R1 invalid mem access 'scalar'"
        );
        let too_large = "BPF program is too large. Processed 1000001 insn\n\
                         processed 1000001 insns (limit 1000000) max_states_per_insn 10\n\
                         verification time 4021312 usec\nstack depth 320\n";
        assert_eq!(
            verdict(too_large),
            "BPF program is too large. Processed 1000001 insn"
        );
        assert_eq!(verdict("\n\n"), "no reason given");
    }

    #[test]
    fn a_verifier_refusal_is_one_line_and_names_no_privilege() {
        let refused = ProgramError::LoadError {
            io_error: io::Error::from_raw_os_error(libc::E2BIG),
            verifier_log: aya_obj::VerifierLog::new(format!(
                "{}BPF program is too large. Processed 1000001 insn\nprocessed 1000001 insns\n",
                "0: R1=ctx()\n".repeat(100_000)
            )),
        };
        let line = describe(refused.into(), "loading program process_exit").to_string();
        assert!(
            line.starts_with(
                "loading program process_exit: the verifier refused it (Argument list too long"
            ),
            "{line}"
        );
        assert!(line.ends_with("BPF program is too large. Processed 1000001 insn"));
        assert!(!line.contains('\n') && !line.contains("CAP_BPF"), "{line}");
    }

    #[test]
    fn a_permission_error_names_the_privileges() {
        let denied = ProgramError::LoadError {
            io_error: io::Error::from_raw_os_error(libc::EPERM),
            verifier_log: aya_obj::VerifierLog::new(String::new()),
        };
        let error = describe(denied.into(), "loading program syscall_exit");
        assert_eq!(
            error.to_string(),
            "loading program syscall_exit: permission denied (needs root, or CAP_BPF and CAP_PERFMON)"
        );
        let other = describe(
            anyhow::Error::new(io::Error::from_raw_os_error(libc::ENOENT)),
            "attaching syscalls/sys_exit_read",
        );
        assert_eq!(
            format!("{other:#}"),
            "attaching syscalls/sys_exit_read: No such file or directory (os error 2)"
        );
    }
}
