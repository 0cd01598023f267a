//! The model: from counters to what they mean. `cost` prices a process's data path (copies,
//! zero-copy bytes, transitions, verdict), `analysis` gathers everything the outputs show of
//! one process into one value computed once per snapshot, and `rates` turns two snapshots into
//! per-second figures. Outputs only format what the model computed.

pub mod analysis;
pub mod cost;
pub mod counters;
pub mod rates;

pub use analysis::{analyse, Analysed, Analysis, FoldedAnalysis, ProcessAnalysis};
pub use cost::{Cost, MethodBytes, Verdict, ZeroCopySends, ZERO_COPY_THRESHOLD};
pub use counters::{path, ProcessCounters};
