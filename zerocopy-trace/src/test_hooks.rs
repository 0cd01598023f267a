//! Hooks the integration tests need and the product must not have: compiled only with the
//! `test-hooks` feature, which `cargo xtask test` turns on.

/// Set in the environment to N: the N-th tick panics while attached (tests/cleanup.rs proves
/// a panic leaves no program loaded and the terminal restored).
pub const PANIC_AT_TICK: &str = "ZEROCOPY_TRACE_TEST_PANIC";

/// Called on every tick of the loop.
pub fn on_tick(ticks: u64) {
    let at = std::env::var(PANIC_AT_TICK)
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    if at.is_some_and(|at| ticks >= at) {
        panic!("{PANIC_AT_TICK} is set: panicking on purpose while attached");
    }
}

/// Set in the environment (to anything): the live counters are read one entry at a time, as on
/// kernels without batch lookups (tests/servers.rs counts a live server exactly both ways).
pub const ENTRY_BY_ENTRY: &str = "ZEROCOPY_TRACE_TEST_ENTRY_BY_ENTRY";

/// Whether `ENTRY_BY_ENTRY` is set.
pub fn entry_by_entry() -> bool {
    std::env::var_os(ENTRY_BY_ENTRY).is_some()
}

/// Set in the environment to N: at the N-th tick, once, the agent tries what its privilege
/// drop and seccomp filter must refuse, and logs what it got (tests/least_privilege.rs): reading
/// /etc/shadow, and making a socket (a syscall outside the allow-list).
pub const FORBIDDEN_AT_TICK: &str = "ZEROCOPY_TRACE_TEST_FORBIDDEN";

/// Called on every tick of the loop.
pub fn try_forbidden(ticks: u64) {
    let at = std::env::var(FORBIDDEN_AT_TICK)
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    if at != Some(ticks) {
        return;
    }
    let shadow = std::fs::File::open("/etc/shadow").map(|_| ());
    log::warn!("test hook: opening /etc/shadow: {shadow:?}");
    // SAFETY: socket(2) with constant arguments; the descriptor, if any, is closed at once.
    let socket = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    let error = std::io::Error::last_os_error();
    if socket >= 0 {
        // SAFETY: closing the descriptor just made.
        unsafe { libc::close(socket) };
        log::warn!("test hook: socket(AF_INET): made one");
    } else {
        log::warn!("test hook: socket(AF_INET): {error}");
    }
}
