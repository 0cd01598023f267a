//! What the developer tools share, so none of them copies it: the agent's `build.rs` (the eBPF
//! build command and the git revision), xtask (all four) and the bench (running commands,
//! installing the packages it drives).
//!
//! - `ebpf_build`: how the eBPF crate is built and where its object lands.
//! - `revision`: the git revision a build comes from, for `--version`.
//! - `cmd`: running child processes, each printed first; a failure carries its exit code.
//! - `apt`: installing Debian packages (as root, where apt-get exists).

pub mod apt;
pub mod cmd;
pub mod ebpf_build;
pub mod revision;
