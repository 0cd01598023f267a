//! Reserved for `cargo xtask bench`: the overhead measurement (a fixed syscall workload, untraced
//! versus traced, medians of several runs, plus the per-program `run_time_ns` from
//! `kernel.bpf_stats_enabled`). It will build through [`crate::tasks::build`] like `run` does and
//! get its own `Task::Bench` variant in `main.rs`. Nothing lives here yet.
