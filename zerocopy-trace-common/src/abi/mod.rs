//! `#[repr(C)]` records shared with the kernel, one file per record (and what it is made
//! of). Every one is padding-free (each file checks its sizes), holds only integers, and gets
//! `aya::Pod` on the agent side.

mod config;
mod counters;
mod dropped;
mod exec;
mod exit;
pub mod hot;
mod inflight_op;
mod limits;
mod pending;

pub use config::*;
pub use counters::*;
pub use dropped::*;
pub use exec::*;
pub use exit::*;
pub use inflight_op::*;
pub use limits::*;
pub use pending::*;
