//! The model: from counters to what they mean. `split` says how each call's bytes crossed
//! (copied, by DMA, pinned, in the kernel), `flows` where the bytes went (each byte once, with
//! the CPU copies it cost), `cost` prices a process's data path (copies, zero-copy bytes,
//! transitions, verdict) and `rates` turns two snapshots into per-second figures. Outputs only
//! format what the model computed.

pub mod cost;
pub mod deltas;
pub mod flows;
pub mod rates;
pub mod split;

pub use cost::{CallsBytes, Cost, Verdict, ZERO_COPY_THRESHOLD};
pub use flows::{flows, End, Flow};
pub use split::{MethodBytes, ZeroCopySends};
