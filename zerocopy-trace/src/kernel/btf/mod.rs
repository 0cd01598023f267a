//! The kernel's BTF, as the loader needs it: `parse` reads the type information, `offsets`
//! takes from it the members the programs load at fixed offsets, and `stub` builds the one
//! type aya needs to attach the typed (tp_btf) hook.

pub mod offsets;
mod parse;
pub mod stub;

pub use parse::Btf;
