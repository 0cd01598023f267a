//! Correlation: from the model's cost and flows to the finding an operator can act on. Pure
//! functions over plain data.

pub mod finding;

pub use finding::{finding, Finding};
