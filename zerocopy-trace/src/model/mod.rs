//! The model: from counters to what they mean. `cost` prices a process's data path (copies,
//! zero-copy bytes, transitions, verdict) and `rates` turns two snapshots into per-second
//! figures. Outputs only format what the model computed.

pub mod cost;
pub mod deltas;
pub mod rates;

pub use cost::{Cost, MethodBytes, Verdict, ZeroCopySends, ZERO_COPY_THRESHOLD};
