//! Correlation: from per-syscall and per-operation, per-fd-kind byte counts to flows ("file ->
//! tcp via sendfile") and a finding an operator can act on. Pure functions over plain data.

pub mod finding;
pub mod flows;

pub use finding::{finding, Finding};
pub use flows::{flows, End, Flow};
