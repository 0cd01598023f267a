//! What the agent reads of and does to the machine outside BPF: `/proc` (`procfs`), cgroups
//! (`cgroup`), the containers they hold and their runtimes' names for them (`containers`),
//! capabilities (`privileges`) and the command `run` starts (`launch`).

pub mod cgroup;
pub mod containers;
pub mod launch;
pub mod privileges;
pub mod procfs;
