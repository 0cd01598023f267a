//! The only code that touches BPF. `preflight` checks what must hold before anything loads,
//! `plan` prepares the programs' configuration from the tracepoints' format files (`tracefs`)
//! and the kernel's BTF (`btf`) without touching the kernel, `attach` loads, attaches and
//! detaches (with `kfunc_calls`, which links the object's kfunc placeholders, and `load_error`,
//! which says in one line why the kernel refused), `program_stats` counts the runs the kernel
//! skipped, and `maps`
//! reads the counters the programs keep (batched by `map_batch`).

pub mod attach;
pub mod btf;
pub mod kfunc_calls;
pub mod load_error;
pub mod map_batch;
pub mod maps;
pub mod plan;
pub mod preflight;
pub mod program_stats;
pub mod tracefs;
